import Foundation
import HeraldCore
import Logging
import NIOCore
import NIOPosix
import SQLKit
import SQLiteKit
import ServiceLifecycle
import Synchronization

/// SQLite in WAL mode through one writing connection per process (SQLite has a single writer anyway). Statements and
/// transactions take turns through an ``AsyncMutex`` and run on the store's SQLite thread (``SerialThreadExecutor``),
/// which calls SQLite directly (``SQLiteHandle``); transactions use `BEGIN IMMEDIATE` so that two processes sharing a
/// file never deadlock upgrading a read lock, and a busy database is waited for by suspending (``SQLiteHandleDatabase``).
/// Reads outside transactions (``SQLStore/read(_:)``) use a second, query-only connection on its own thread, each in
/// a read transaction (one snapshot): a WAL reader sees the last commit without waiting for the writer, so API reads
/// and the engine's loads do not queue behind a fan-out's writes.
final class SQLiteDriver: DatabaseDriver {
    let dialect = SQLDialectKind.sqlite
    private let handle: SQLiteHandle
    private let database: any SQLDatabase
    private let mutex = AsyncMutex()
    /// The read connection (file databases; an in-memory database is private to its connection).
    private let reader: (handle: SQLiteHandle, database: any SQLDatabase, mutex: AsyncMutex)?
    /// Checkpoints the WAL beside the writer (file databases).
    private let checkpointer: SQLiteCheckpointer?
    /// What the URL asked for (acknowledged commits), and the setting in force on the connection.
    private let configured: DatabaseURL.SQLiteSynchronous
    private let sync: Mutex<(current: DatabaseURL.SQLiteSynchronous, lastFull: ContinuousClock.Instant)>

    private init(
        handle: SQLiteHandle, reader: SQLiteHandle?, checkpointer: SQLiteCheckpointer?, synchronous: DatabaseURL.SQLiteSynchronous,
        logger: Logger
    ) {
        self.handle = handle
        self.checkpointer = checkpointer
        self.configured = synchronous
        self.sync = Mutex((synchronous, .now))
        let eventLoop = MultiThreadedEventLoopGroup.singleton.any()
        self.database = SQLiteHandleDatabase(handle: handle, logger: logger, eventLoop: eventLoop)
        self.reader = reader.map { ($0, SQLiteHandleDatabase(handle: $0, logger: logger, eventLoop: eventLoop), AsyncMutex()) }
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
        let setup = SQLiteDriver(handle: handle, reader: nil, checkpointer: checkpointer, synchronous: synchronous, logger: logger)
        do {
            try await setup.withConnection { db in
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
        // The read connection opens once the file is in WAL mode.
        var reader: SQLiteHandle?
        if let path { reader = await openReader(path: path, logger: logger) }
        checkpointer?.start(interval: 0.2, logger: logger)
        return SQLiteDriver(handle: handle, reader: reader, checkpointer: checkpointer, synchronous: synchronous, logger: logger)
    }

    /// A query-only connection for reads; nil (reads then share the writer) when it cannot be opened.
    private static func openReader(path: String, logger: Logger) async -> SQLiteHandle? {
        do {
            let reader = try SQLiteHandle(path: path)
            let database = SQLiteHandleDatabase(handle: reader, logger: logger, eventLoop: MultiThreadedEventLoopGroup.singleton.any())
            do {
                try await withTaskExecutorPreference(SerialThreadExecutor.sqliteReader) {
                    try await database.raw("PRAGMA query_only = 1").run()
                    try await database.raw("PRAGMA cache_size = -16384").run()
                }
            } catch {
                reader.close()
                throw error
            }
            return reader
        } catch {
            logger.warning("no separate read connection for this SQLite database", metadata: ["error": "\(error)"])
            return nil
        }
    }

    func withConnection<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        let database = self.database
        return try await withTaskExecutorPreference(SerialThreadExecutor.sqlite) {
            try await mutex.withLock { try await body(database) }
        }
    }

    func withReader<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        guard let reader else { return try await withConnection(body) }
        return try await withTaskExecutorPreference(SerialThreadExecutor.sqliteReader) {
            try await reader.mutex.withLock {
                // One snapshot for the whole body, as when reads took turns with the writer's transactions.
                try await reader.database.raw("BEGIN").run()
                do {
                    let result = try await body(reader.database)
                    try await reader.database.raw("COMMIT").run()
                    return result
                } catch {
                    try? await reader.database.raw("ROLLBACK").run()
                    throw error
                }
            }
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
        if let reader { try? await reader.mutex.withLock { reader.handle.close() } }
        try? await mutex.withLock { handle.close() }
    }
}
