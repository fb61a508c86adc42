import ArgumentParser
import Foundation
import HeraldCore
import HeraldStore
import Logging

/// `--database`, shared by every command that opens the store.
struct DatabaseOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Database URL: sqlite://PATH, sqlite::memory: or postgres://user:pass@host:port/db. [env: HERALD_DATABASE_URL] [default: sqlite://./herald.sqlite]",
            valueName: "url"
        )
    )
    var database: String?

    @Option(name: .long, help: ArgumentHelp("Log level: trace … critical. [env: HERALD_LOG_LEVEL] [default: info]", valueName: "level"))
    var logLevel: String?

    /// The database URL from the flag, the environment or the default.
    func databaseURL() throws -> DatabaseURL {
        try DatabaseURL(parsing: database ?? ProcessInfo.processInfo.environment["HERALD_DATABASE_URL"] ?? "sqlite://./herald.sqlite")
    }

    /// Opens the store, loading the encryption key the way `serve` does.
    func openStore(logger: Logger) async throws -> SQLStore {
        let url = try databaseURL()
        let cipher = try EncryptionKeyLoader.load(for: url, environment: ProcessInfo.processInfo.environment, logger: logger)
        return try await SQLStore.open(url, cipher: cipher, logger: logger)
    }

    /// The body of a store command: logging set up, the store migrated and checked, Herald errors reported as one
    /// line with exit status 1.
    func run(_ body: @escaping @Sendable (SQLStore) async throws -> Void) async throws {
        try await reportingErrors {
            try await withMigratedStore(logger: try makeLogger(level: logLevel), body)
        }
    }

    /// Opens the store, applies pending migrations, checks the key, and runs `body` with it.
    func withMigratedStore(logger: Logger, _ body: @escaping @Sendable (SQLStore) async throws -> Void) async throws {
        let store = try await openStore(logger: logger)
        try await store.withRunning { store in
            try await store.migrator().migrate()
            try await store.transaction { try await $0.verifyEncryptionKey() }
            try await body(store)
        }
    }
}
