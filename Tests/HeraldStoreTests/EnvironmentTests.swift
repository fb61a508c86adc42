import Foundation
import HeraldCore
import HeraldStore
import HeraldTestSupport
import SQLKit
import Testing

@Suite("Environments and API keys")
struct EnvironmentTests {
    @Test("bootstrap creates development with the provided key once", arguments: Backend.available)
    func bootstrap(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            let provided = "sk_test_provided_key_0001"
            let first = try await store.transaction { try await $0.bootstrap(providedKey: provided) }
            #expect(first?.0.name == "development")
            #expect(first?.1.revealed == provided)
            #expect(try await store.transaction { try await $0.bootstrap(providedKey: nil) } == nil)
            let environment = try await store.read { try await $0.authenticate(apiKey: provided) }
            #expect(environment?.name == "development")
            // Only the hash is stored.
            let stored = try await store.read { try await $0.db.raw("SELECT key_hash, prefix FROM api_keys").all() }
            #expect(stored.count == 1)
            #expect(try stored[0].decode(column: "key_hash", as: String.self) != provided)
            #expect(try stored[0].decode(column: "prefix", as: String.self) == String(provided.prefix(10)))
        }
    }

    @Test("generated keys authenticate until revoked", arguments: Backend.available)
    func keyLifecycle(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            let production = try await makeEnvironment(store, "production")
            let (key, secret) = try await store.transaction { try await $0.createAPIKey(environmentId: production.id) }
            #expect(secret.revealed.hasPrefix("hk_"))
            #expect(!secret.description.contains(secret.revealed))
            #expect(try await store.read { try await $0.authenticate(apiKey: secret.revealed) }?.id == production.id)
            #expect(try await store.read { try await $0.authenticate(apiKey: secret.revealed + "x") } == nil)
            let revoked = try await store.transaction { try await $0.revokeAPIKey(environmentId: production.id, reference: key.prefix) }
            #expect(revoked.revokedAt != nil)
            #expect(try await store.read { try await $0.authenticate(apiKey: secret.revealed) } == nil)
            let listed = try await store.read { try await $0.apiKeys(environmentId: production.id) }
            #expect(listed.map(\.id) == [key.id])
            #expect(listed[0].revokedAt != nil)
        }
    }

    @Test("environment names are unique and validated", arguments: Backend.available)
    func uniqueNames(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            _ = try await makeEnvironment(store, "staging")
            let duplicate = await #expect(throws: HeraldError.self) { try await makeEnvironment(store, "staging") }
            #expect(duplicate?.code == .conflict)
            let invalid = await #expect(throws: HeraldError.self) { try await makeEnvironment(store, "Bad Name") }
            #expect(invalid?.code == .invalidInput)
        }
    }

    @Test("records of one environment are invisible to another", arguments: Backend.available)
    func isolation(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            let a = try await makeEnvironment(store, "a")
            let b = try await makeEnvironment(store, "b")
            _ = try await store.transaction { try await $0.upsertSubscriber(environmentId: a.id, subscriberId: "u1", patch: .init()) }
            _ = try await store.transaction { try await $0.upsertTopic(environmentId: a.id, key: "news", name: nil) }
            let device = try await store.transaction {
                try await $0.registerDevice(
                    environmentId: a.id, DeviceRegistration(provider: "fcm", token: Secret("tok-1"), subscriberId: "u1"))
            }
            try await store.read { session async throws in
                #expect(try await session.subscriber(environmentId: b.id, subscriberId: "u1") == nil)
                #expect(try await session.topic(environmentId: b.id, key: "news") == nil)
                #expect(try await session.device(environmentId: b.id, id: device.id) == nil)
                #expect(try await session.devices(environmentId: b.id, subscriberId: "u1").isEmpty)
                #expect(try await session.subscriber(environmentId: a.id, subscriberId: "u1") != nil)
            }
            #expect(try await store.transaction { try await $0.removeDevices(environmentId: b.id, ids: [device.id]) } == 0)
            #expect(try await store.transaction { try await $0.deleteSubscriber(environmentId: b.id, subscriberId: "u1") } == false)
        }
    }
}
