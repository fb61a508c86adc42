import Foundation
import HeraldCore
import HeraldStore
import HeraldTestSupport
import SQLKit
import Testing

@Suite("Credential encryption at rest")
struct CredentialTests {
    static let canary = "CANARY-secret-7f3a9c"

    func makeIntegration(_ store: SQLStore, environmentId: String, identifier: String) async throws -> Integration {
        let now = store.clock.now()
        return try await store.transaction { session async throws in
            try await session.createIntegration(
                Integration(
                    id: store.ids.next(), environmentId: environmentId, providerId: "apns", channel: .push, name: "APNs",
                    identifier: identifier, credentials: ["secretKey": .string(Self.canary + identifier), "secure": true, "port": 443],
                    createdAt: now, updatedAt: now
                )
            )
        }
    }

    @Test("credentials round-trip and are not stored in plaintext", arguments: Backend.available)
    func roundTrip(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            let environment = try await makeEnvironment(store)
            let created = try await makeIntegration(store, environmentId: environment.id, identifier: "apns-main")
            let loaded = try #require(try await store.read { try await $0.integration(environmentId: environment.id, id: created.id) })
            #expect(loaded.credentials == created.credentials)
            #expect(loaded.credentials.string("secretKey") == Self.canary + "apns-main")
            #expect(loaded.credentials["secure"] == .bool(true))
            #expect(!"\(loaded)".contains(Self.canary))
            let raw = try await store.read {
                try await $0.db.raw("SELECT credentials FROM integrations").first()?.decode(column: "credentials", as: String.self)
            }
            #expect(raw?.contains(Self.canary) == false)
            #expect(raw?.contains("\"secretKey\":\"v1.") == true)
        }
    }

    @Test("tampered ciphertext fails with an error naming the integration, not the secret", arguments: Backend.available)
    func tamper(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            let environment = try await makeEnvironment(store)
            let created = try await makeIntegration(store, environmentId: environment.id, identifier: "apns-main")
            let raw = try #require(
                try await store.read {
                    try await $0.db.raw("SELECT credentials FROM integrations").first()?.decode(column: "credentials", as: String.self)
                }
            )
            var object = try #require(try JSONValue.parse(raw).objectValue)
            var sealed = Array(try #require(object["secretKey"]?.stringValue))
            // Flip one character of the base64 body.
            sealed[sealed.count - 6] = sealed[sealed.count - 6] == "A" ? "B" : "A"
            object["secretKey"] = .string(String(sealed))
            let tampered = JSONValue.object(object).jsonString()
            try await store.transaction { try await $0.db.raw("UPDATE integrations SET credentials = \(bind: tampered)").run() }
            let error = await #expect(throws: HeraldError.self) {
                try await store.read { try await $0.integration(environmentId: environment.id, id: created.id) }
            }
            #expect(error?.code == .decryptionFailed)
            #expect(error?.message.contains(created.id) == true)
            #expect(error?.message.contains("secretKey") == true)
            #expect(error?.message.contains(Self.canary) == false)
        }
    }

    @Test("ciphertext swapped between integrations fails to decrypt", arguments: Backend.available)
    func swapped(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            let environment = try await makeEnvironment(store)
            let first = try await makeIntegration(store, environmentId: environment.id, identifier: "one")
            let second = try await makeIntegration(store, environmentId: environment.id, identifier: "two")
            try await store.transaction { session async throws in
                try await session.db.raw(
                    "UPDATE integrations SET credentials = (SELECT credentials FROM integrations WHERE id = \(bind: first.id)) WHERE id = \(bind: second.id)"
                ).run()
            }
            #expect(try await store.read { try await $0.integration(environmentId: environment.id, id: first.id) } != nil)
            let error = await #expect(throws: HeraldError.self) {
                try await store.read { try await $0.integration(environmentId: environment.id, id: second.id) }
            }
            #expect(error?.code == .decryptionFailed)
            #expect(error?.message.contains(second.id) == true)
        }
    }

    @Test("a different encryption key is refused at start-up", arguments: Backend.available)
    func wrongKey(backend: Backend) async throws {
        try await withStore(backend) { store, url in
            try await store.transaction { try await $0.verifyEncryptionKey() }
            try await store.transaction { try await $0.verifyEncryptionKey() }  // same key: fine
            let other = try await SQLStore.open(url, cipher: CredentialCipher(current: .random()), logger: testLogger)
            try await other.withRunning { other in
                let error = await #expect(throws: HeraldError.self) { try await other.transaction { try await $0.verifyEncryptionKey() } }
                #expect(error?.code == .configuration)
            }
            // The old key listed as previous during a rotation is accepted.
            let rotating = try await SQLStore.open(
                url, cipher: CredentialCipher(current: .random(), previous: [store.cipher.current]), logger: testLogger)
            try await rotating.withRunning { try await $0.transaction { try await $0.verifyEncryptionKey() } }
        }
    }

    @Test("key loading: env var, generated key file with mode 0600, PostgreSQL requires the variable")
    func keyLoading() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("herald-key-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("db.sqlite").path
        let first = try EncryptionKeyLoader.load(for: .sqlite(path: path, synchronous: .full), environment: [:], logger: testLogger)
        let attributes = try FileManager.default.attributesOfItem(atPath: path + ".key")
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let second = try EncryptionKeyLoader.load(for: .sqlite(path: path, synchronous: .full), environment: [:], logger: testLogger)
        #expect(first.current.id == second.current.id)

        let key = CredentialCipher.Key.random()
        let fromEnvironment = try EncryptionKeyLoader.load(
            for: .sqlite(path: path, synchronous: .full), environment: ["HERALD_ENCRYPTION_KEY": key.base64], logger: testLogger
        )
        #expect(fromEnvironment.current.id == key.id)

        let postgres = try DatabaseURL(parsing: "postgres://u:p@localhost/db")
        let missing = #expect(throws: HeraldError.self) {
            try EncryptionKeyLoader.load(for: postgres, environment: [:], logger: testLogger)
        }
        #expect(missing?.message.contains("HERALD_ENCRYPTION_KEY is required") == true)
        let short = #expect(throws: HeraldError.self) {
            try EncryptionKeyLoader.load(for: postgres, environment: ["HERALD_ENCRYPTION_KEY": "c2hvcnQ="], logger: testLogger)
        }
        #expect(short?.message.contains("32") == true)
    }
}
