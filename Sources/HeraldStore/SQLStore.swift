import HeraldCore
import Logging
import SQLKit
import ServiceLifecycle
import Synchronization

/// Herald's persistence: one implementation on SQLKit for SQLite and PostgreSQL.
///
/// Work happens in sessions: ``read(_:)`` for one connection, ``transaction(_:)`` for atomic writes (domain rows
/// and the jobs they enqueue commit together). The store is a `Service`: while ``run()`` runs, PostgreSQL's pool
/// and its `LISTEN` loop are alive; put it first in the `ServiceGroup` so that it stops last.
public struct SQLStore: Sendable, Service {
    let driver: any DatabaseDriver
    /// Which SQL dialect the database speaks.
    public let dialect: SQLDialectKind
    /// Seals and opens integration credentials.
    public let cipher: CredentialCipher
    /// Source of every timestamp the store writes.
    public let clock: any WallClock
    /// Source of record ids.
    public let ids: any IDGenerator
    /// Wakes workers when jobs are enqueued.
    public let jobSignal: JobSignal
    let logger: Logger
    /// The SQLite file, for the worker lock (nil for PostgreSQL and in-memory databases).
    var sqlitePath: String? = nil
    /// The sent journal beside a SQLite file (``SentJournalFile``); nil elsewhere, where the `sent_journal` table
    /// serves.
    public private(set) var sentJournalFile: SentJournalFile? = nil

    /// Opens the database at `url`. Does not migrate: call ``migrator`` (or ``open(_:cipher:clock:ids:logger:maxConnections:)``
    /// then `migrator.migrate()`).
    ///
    /// - Parameter maxConnections: PostgreSQL pool size (default 10); SQLite always uses one connection.
    public static func open(
        _ url: DatabaseURL, cipher: CredentialCipher, clock: any WallClock = SystemWallClock(), ids: any IDGenerator = ObjectIDGenerator(),
        logger: Logger, maxConnections: Int = 10
    ) async throws -> SQLStore {
        let driver: any DatabaseDriver
        switch url {
        case .sqlite(let path, let synchronous):
            driver = try await SQLiteDriver.open(path: path, synchronous: synchronous, logger: logger)
        case .sqliteMemory:
            driver = try await SQLiteDriver.open(path: nil, synchronous: .full, logger: logger)
        case .postgres(let location):
            driver = try await PostgresDriver.open(location, maxConnections: maxConnections, logger: logger)
        }
        var store = SQLStore(
            driver: driver, dialect: driver.dialect, cipher: cipher, clock: clock, ids: ids, jobSignal: JobSignal(), logger: logger
        )
        if case .sqlite(let path, _) = url {
            store.sqlitePath = path
            store.sentJournalFile = SentJournalFile(path: path + "-sent.journal")
        }
        return store
    }

    /// Whether several processes may run queue workers on this database (PostgreSQL; SQLite has one writer process).
    public var allowsSeveralWorkerProcesses: Bool { dialect == .postgres }

    /// Claims the right to run queue workers: on a SQLite file an exclusive lock (a second process gets a clear error);
    /// elsewhere nothing. Pair with ``releaseWorkerOwnership()``.
    public func acquireWorkerOwnership() throws {
        if let sqlitePath { try SQLiteWorkerLock.acquire(path: sqlitePath) }
    }

    public func releaseWorkerOwnership() {
        if let sqlitePath { SQLiteWorkerLock.release(path: sqlitePath) }
    }

    /// The migration runner for this database with the migrations shipped in this binary.
    public func migrator() throws -> Migrator {
        Migrator(store: self, migrations: try Migration.bundled(for: dialect), logger: logger)
    }

    /// Runs `body` on one connection, outside a transaction.
    public func read<T: Sendable>(_ body: @escaping @Sendable (StoreSession) async throws -> T) async throws -> T {
        try await autocommit(body)
    }

    /// Runs `body` on one connection outside a transaction, each statement committing alone: one round trip for a
    /// one-statement write instead of four (`BEGIN`, `SET LOCAL`, the statement, `COMMIT`). Meant for PostgreSQL's
    /// unlogged tables, whose commits never wait for a WAL flush (the sent journal, migration 0018); on SQLite a
    /// statement outside a transaction commits with the connection's own `synchronous` setting.
    public func autocommit<T: Sendable>(_ body: @escaping @Sendable (StoreSession) async throws -> T) async throws -> T {
        let session = makeSession
        return try await driver.withConnection { db in try await body(session(db)) }
    }

    /// Runs `body` in a transaction: everything it writes commits together when it returns, or not at all when it
    /// throws. Workers are woken after the commit if `body` enqueued jobs (on PostgreSQL by one `NOTIFY` in the
    /// transaction, delivered at commit). Commits are ``Durability/acknowledged``
    /// unless the caller is the engine working off its queue (``Durability/replayable``).
    @discardableResult
    public func transaction<T: Sendable>(
        durability: Durability = .acknowledged, _ body: @escaping @Sendable (StoreSession) async throws -> T
    ) async throws -> T {
        let enqueued = EnqueueFlag()
        let session = makeSession
        let notifies = dialect == .postgres
        let result = try await driver.withTransaction(durability: durability) { db in
            let transaction = session(db).flagging(enqueued)
            let result = try await body(transaction)
            // One NOTIFY per transaction however many enqueues it made (each is a round trip, and a transaction that
            // notifies takes PostgreSQL's notify lock at commit).
            if notifies, enqueued.isSet { try await transaction.notifyWorkers() }
            return result
        }
        if enqueued.isSet { jobSignal.signal() }
        return result
    }

    private var makeSession: @Sendable (any SQLDatabase) -> StoreSession {
        let dialect = self.dialect
        let cipher = self.cipher
        let clock = self.clock
        let ids = self.ids
        return { db in StoreSession(db: db, dialect: dialect, cipher: cipher, clock: clock, ids: ids, enqueued: nil) }
    }

    /// Keeps the connection pool and the job wake-up listener alive until graceful shutdown or cancellation.
    public func run() async throws {
        do {
            try await driver.run(signal: jobSignal)
        } catch is CancellationError {}
        await driver.shutdown()
    }

    /// Closes the connections (when not running as a service).
    public func shutdown() async {
        await driver.shutdown()
    }

    /// Runs `body` with this store's background work running beside it — for commands and tests that use the store
    /// outside a `ServiceGroup`. Shuts the store down afterwards.
    public func withRunning<T: Sendable>(_ body: @escaping @Sendable (SQLStore) async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await self.run()
                return nil
            }
            let result: T
            do {
                result = try await body(self)
            } catch {
                group.cancelAll()
                await self.shutdown()
                throw error
            }
            group.cancelAll()
            await self.shutdown()
            return result
        }
    }
}

/// Set when a transaction enqueues jobs, so that the store wakes workers after it commits.
final class EnqueueFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}
