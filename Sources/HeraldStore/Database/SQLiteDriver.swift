import Foundation
import HeraldCore
import Logging
import NIOCore
import NIOPosix
import SQLKit
import SQLiteKit
import SQLiteNIO
import ServiceLifecycle

/// SQLite in WAL mode through one connection per process (SQLite has a single writer anyway). Statements and
/// transactions take turns through an ``AsyncMutex``; transactions use `BEGIN IMMEDIATE` so that two processes
/// sharing a file never deadlock upgrading a read lock, and `busy_timeout` makes the other process wait its turn.
final class SQLiteDriver: DatabaseDriver {
    let dialect = SQLDialectKind.sqlite
    private let connection: SQLiteConnection
    private let database: any SQLDatabase
    private let mutex = AsyncMutex()

    private init(connection: SQLiteConnection, logger: Logger) {
        self.connection = connection
        self.database = connection.sql(queryLogLevel: .trace)
    }

    /// Opens (creating if needed) the database file, or an in-memory database for a nil path.
    static func open(path: String?, synchronous: DatabaseURL.SQLiteSynchronous, logger: Logger) async throws -> SQLiteDriver {
        let storage: SQLiteConnection.Storage
        if let path {
            let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw HeraldError(.configuration, "cannot open SQLite database \(path): directory \(directory) does not exist")
            }
            storage = .file(path: path)
        } else {
            storage = .memory
        }
        let connection: SQLiteConnection
        do {
            connection = try await SQLiteConnection.open(storage: storage, logger: logger)
        } catch {
            throw HeraldError(.unavailable, "cannot open SQLite database \(path ?? ":memory:"): \(error)")
        }
        let driver = SQLiteDriver(connection: connection, logger: logger)
        let db = driver.database
        do {
            if path != nil {
                try await db.raw("PRAGMA journal_mode = WAL").run()
            }
            try await db.raw(SQLQueryString("PRAGMA synchronous = \(unsafeRaw: synchronous.rawValue.uppercased())")).run()
            try await db.raw("PRAGMA foreign_keys = ON").run()
            try await db.raw("PRAGMA busy_timeout = 10000").run()
            // 64 MiB of page cache (the default is 2 MiB): fan-out touches notifications, messages and deliveries at once.
            try await db.raw("PRAGMA cache_size = -65536").run()
        } catch {
            try? await connection.close()
            throw HeraldError(.unavailable, "cannot use SQLite database \(path ?? ":memory:"): \(error)")
        }
        return driver
    }

    func withConnection<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        let database = self.database
        return try await withTaskExecutorPreference(SerialThreadExecutor.sqlite) {
            try await mutex.withLock { try await body(database) }
        }
    }

    /// The body runs with the SQLite executor as its preference: between its statements it resumes at once instead of
    /// queueing on the cooperative pool while every other database user waits for the lock.
    func withTransaction<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        let database = self.database
        return try await withTaskExecutorPreference(SerialThreadExecutor.sqlite) {
            try await mutex.withLock {
                try await database.raw("BEGIN IMMEDIATE").run()
                do {
                    let result = try await body(database)
                    try await database.raw("COMMIT").run()
                    return result
                } catch {
                    try? await database.raw("ROLLBACK").run()
                    throw error
                }
            }
        }
    }

    func run(signal: JobSignal) async throws {
        // Nothing runs in the background: wake-ups are in-process (the store signals after enqueueing commits).
        try await gracefulShutdown()
    }

    func shutdown() async {
        try? await mutex.withLock { try await self.connection.close() }
    }
}
