import Foundation
import HeraldCore
import HeraldStore
import Logging
import SQLKit
import Testing

/// The databases store tests run on: SQLite always, PostgreSQL when `HERALD_TEST_POSTGRES_URL` names a server
/// (`scripts/test` starts one). Each test gets a fresh, empty database.
public enum Backend: String, CaseIterable, CustomStringConvertible, Sendable {
    case sqlite
    case postgres

    public var description: String { rawValue }

    public static let postgresURL = ProcessInfo.processInfo.environment["HERALD_TEST_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 }

    /// The backends available in this run.
    public static var available: [Backend] { postgresURL == nil ? [.sqlite] : [.sqlite, .postgres] }

    /// PostgreSQL when this run has one: for behaviour only PostgreSQL has (its sent-journal table, several processes).
    public static var postgresOnly: [Backend] { postgresURL == nil ? [] : [.postgres] }
}

public let testLogger: Logger = {
    var logger = Logger(label: "herald.test")
    logger.logLevel = .warning
    return logger
}()

/// Bounds how many PostgreSQL test databases are created (and dropped) at once: the suite starts well over a hundred
/// PostgreSQL test cases together on two cores, and unbounded `CREATE DATABASE`s made connections wait past the
/// store's 5 s acquire timeout.
actor DatabaseCreationGate {
    static let shared = DatabaseCreationGate(limit: 4)
    let limit: Int
    private var running = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(limit: Int) { self.limit = limit }

    func run<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        if running >= limit { await withCheckedContinuation { waiting.append($0) } } else { running += 1 }
        defer {
            if waiting.isEmpty { running -= 1 } else { waiting.removeFirst().resume() }
        }
        return try await body()
    }
}

/// A fresh empty database of `backend`: its URL, and a clean-up to call afterwards.
public func makeTestDatabase(_ backend: Backend) async throws -> (url: DatabaseURL, cleanUp: @Sendable () async throws -> Void) {
    let name = "herald_test_\(UInt64.random(in: 0...UInt64.max))"
    switch backend {
    case .sqlite:
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(name).sqlite").path
        return (
            .sqlite(path: path, synchronous: .normal),
            {
                for suffix in ["", "-wal", "-shm", ".key"] { try? FileManager.default.removeItem(atPath: path + suffix) }
            }
        )
    case .postgres:
        guard let postgresURL = Backend.postgresURL else { throw HeraldError(.configuration, "HERALD_TEST_POSTGRES_URL is not set") }
        let adminURL = try DatabaseURL(parsing: postgresURL)
        guard case .postgres(var location) = adminURL else { throw HeraldError(.configuration, "not a PostgreSQL URL") }
        try await DatabaseCreationGate.shared.run {
            let admin = try await SQLStore.open(
                adminURL, cipher: CredentialCipher(current: .random()), logger: testLogger, maxConnections: 1)
            try await admin.withRunning { admin in
                try await admin.read { try await $0.db.raw("CREATE DATABASE \(unsafeRaw: name)").run() }
            }
        }
        location.database = name
        return (
            .postgres(location),
            {
                try await DatabaseCreationGate.shared.run {
                    let admin = try await SQLStore.open(
                        adminURL, cipher: CredentialCipher(current: .random()), logger: testLogger, maxConnections: 1)
                    try await admin.withRunning { admin in
                        try await admin.read { try await $0.db.raw("DROP DATABASE IF EXISTS \(unsafeRaw: name) WITH (FORCE)").run() }
                    }
                }
            }
        )
    }
}

/// Runs `body` with a migrated store on a fresh database of `backend`.
public func withStore<T: Sendable>(
    _ backend: Backend, clock: any WallClock = SystemWallClock(), cipher: CredentialCipher = CredentialCipher(current: .random()),
    _ body: @escaping @Sendable (SQLStore, DatabaseURL) async throws -> T
) async throws -> T {
    let (url, cleanUp) = try await makeTestDatabase(backend)
    do {
        let store = try await SQLStore.open(url, cipher: cipher, clock: clock, logger: testLogger)
        let result = try await store.withRunning { store in
            try await store.migrator().migrate()
            return try await body(store, url)
        }
        try await cleanUp()
        return result
    } catch {
        try? await cleanUp()
        throw error
    }
}

/// Creates an environment for a test.
public func makeEnvironment(_ store: SQLStore, _ name: String = "development") async throws -> Environment {
    try await store.transaction { try await $0.createEnvironment(named: name) }
}
