import Foundation
import HeraldCore
import Logging
import NIOCore
import NIOPosix
import SQLKit
import SQLiteKit
import ServiceLifecycle
import Synchronization

/// SQLite in WAL mode through one connection per process (SQLite has a single writer anyway). Statements and
/// transactions take turns through an ``AsyncMutex`` and run on the store's SQLite thread (``SerialThreadExecutor``),
/// which calls SQLite directly (``SQLiteHandle``); transactions use `BEGIN IMMEDIATE` so that two processes sharing a
/// file never deadlock upgrading a read lock, and a busy database is waited for by suspending (``SQLiteHandleDatabase``).
final class SQLiteDriver: DatabaseDriver {
    let dialect = SQLDialectKind.sqlite
    private let handle: SQLiteHandle
    private let database: any SQLDatabase
    private let mutex = AsyncMutex()
    /// Checkpoints the WAL beside the writer (file databases).
    private let checkpointer: SQLiteCheckpointer?
    /// What the URL asked for (acknowledged commits), and the setting in force on the connection.
    private let configured: DatabaseURL.SQLiteSynchronous
    private let sync: Mutex<(current: DatabaseURL.SQLiteSynchronous, lastFull: ContinuousClock.Instant)>

    private init(
        handle: SQLiteHandle, checkpointer: SQLiteCheckpointer?, synchronous: DatabaseURL.SQLiteSynchronous, logger: Logger
    ) {
        self.handle = handle
        self.checkpointer = checkpointer
        self.configured = synchronous
        self.sync = Mutex((synchronous, .now))
        self.database = SQLiteHandleDatabase(handle: handle, logger: logger, eventLoop: MultiThreadedEventLoopGroup.singleton.any())
    }

    /// Opens (creating if needed) the database file, or an in-memory database for a nil path.
    static func open(path: String?, synchronous: DatabaseURL.SQLiteSynchronous, logger: Logger) async throws -> SQLiteDriver {
        if let path {
            let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw HeraldError(.configuration, "cannot open SQLite database \(path): directory \(directory) does not exist")
            }
        }
        let handle: SQLiteHandle
        do {
            handle = try SQLiteHandle(path: path ?? ":memory:")
        } catch {
            throw HeraldError(.unavailable, "cannot open SQLite database \(path ?? ":memory:"): \(error)")
        }
        let checkpointer = path.flatMap { path -> SQLiteCheckpointer? in
            do {
                return try SQLiteCheckpointer(path: path, synchronous: synchronous)
            } catch {
                // Not fatal: the writer then checkpoints by itself, at SQLite's usual threshold.
                logger.warning("no background checkpoints for this SQLite database", metadata: ["error": "\(error)"])
                return nil
            }
        }
        let backgroundCheckpoints = checkpointer != nil
        let driver = SQLiteDriver(handle: handle, checkpointer: checkpointer, synchronous: synchronous, logger: logger)
        do {
            try await driver.withConnection { db in
                if path != nil {
                    try await db.raw("PRAGMA journal_mode = WAL").run()
                }
                if backgroundCheckpoints {
                    try await db.raw(SQLQueryString("PRAGMA wal_autocheckpoint = \(unsafeRaw: String(SQLiteCheckpointer.writerThreshold))"))
                        .run()
                    // A WAL that grew past 64 MiB under a burst is truncated back once it has been checkpointed.
                    try await db.raw("PRAGMA journal_size_limit = 67108864").run()
                }
                try await db.raw(SQLQueryString("PRAGMA synchronous = \(unsafeRaw: synchronous.rawValue.uppercased())")).run()
                try await db.raw("PRAGMA foreign_keys = ON").run()
                // 64 MiB of page cache (the default is 2 MiB): fan-out touches notifications, messages and deliveries at once.
                try await db.raw("PRAGMA cache_size = -65536").run()
            }
        } catch {
            handle.close()
            checkpointer?.stop()
            throw HeraldError(.unavailable, "cannot use SQLite database \(path ?? ":memory:"): \(error)")
        }
        checkpointer?.start(interval: 0.2, logger: logger)
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
    ///
    /// A replayable transaction commits with `synchronous = NORMAL` (no fsync; it becomes durable with the next fsync of
    /// the WAL) unless the last fsynced commit is older than ``Durability/replayableWindow``, which bounds how much of
    /// the engine's work a power loss can take back.
    func withTransaction<T: Sendable>(
        durability: Durability, _ body: @escaping @Sendable (any SQLDatabase) async throws -> T
    ) async throws -> T {
        let database = self.database
        return try await withTaskExecutorPreference(SerialThreadExecutor.sqlite) {
            try await mutex.withLock {
                let now = ContinuousClock.now
                let (wanted, current) = sync.withLock { state in
                    let relaxed = durability == .replayable && now - state.lastFull < Durability.replayableWindow
                    return (relaxed ? DatabaseURL.SQLiteSynchronous.normal : configured, state.current)
                }
                if wanted != current {
                    try await database.raw(SQLQueryString("PRAGMA synchronous = \(unsafeRaw: wanted.rawValue.uppercased())")).run()
                    sync.withLock { $0.current = wanted }
                }
                try await database.raw("BEGIN IMMEDIATE").run()
                do {
                    let result = try await body(database)
                    try await database.raw("COMMIT").run()
                    if wanted == .full { sync.withLock { $0.lastFull = now } }
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
        checkpointer?.stop()
        let handle = self.handle
        try? await mutex.withLock { handle.close() }
    }
}
