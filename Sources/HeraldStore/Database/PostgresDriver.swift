import HeraldCore
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresKit
import PostgresNIO
import SQLKit
import ServiceLifecycle
import Synchronization

/// PostgreSQL through PostgresNIO's connection pool. Any number of Herald processes may share one database:
/// the queue claims with `FOR UPDATE SKIP LOCKED`, and enqueues `NOTIFY herald_jobs` so that idle workers of every
/// process wake up at once.
final class PostgresDriver: DatabaseDriver {
    let dialect = SQLDialectKind.postgres
    private let client: PostgresClient
    private let listenerConfiguration: PostgresConnection.Configuration
    private let logger: Logger

    /// The channel of `LISTEN/NOTIFY` wake-ups.
    static let jobsChannel = "herald_jobs"

    /// The sessions open now, for ``watchSessions()``.
    private let watched = WatchedSessions()

    private init(client: PostgresClient, listenerConfiguration: PostgresConnection.Configuration, logger: Logger) {
        self.client = client
        self.listenerConfiguration = listenerConfiguration
        self.logger = logger
    }

    /// Checks that the server answers (one clear error if not), then creates the pool. The pool only works while
    /// ``run(signal:)`` runs.
    static func open(_ location: DatabaseURL.PostgresLocation, maxConnections: Int, logger: Logger) async throws -> PostgresDriver {
        let tlsConfiguration = TLSConfiguration.makeClientConfiguration()
        let (connectionTLS, clientTLS): (PostgresConnection.Configuration.TLS, PostgresClient.Configuration.TLS) =
            switch location.sslMode {
            case "disable": (.disable, .disable)
            case "require": (.require(try NIOSSLContext(configuration: tlsConfiguration)), .require(tlsConfiguration))
            default: (.prefer(try NIOSSLContext(configuration: tlsConfiguration)), .prefer(tlsConfiguration))
            }
        let connectionConfiguration = PostgresConnection.Configuration(
            host: location.host, port: location.port, username: location.username, password: location.password?.revealed,
            database: location.database, tls: connectionTLS
        )
        try await probe(connectionConfiguration, location: location, logger: logger)
        var configuration = PostgresClient.Configuration(
            host: location.host, port: location.port, username: location.username, password: location.password?.revealed,
            database: location.database, tls: clientTLS
        )
        configuration.options.maximumConnections = maxConnections
        configuration.options.connectTimeout = .seconds(10)
        return PostgresDriver(
            client: PostgresClient(configuration: configuration, backgroundLogger: logger), listenerConfiguration: connectionConfiguration,
            logger: logger
        )
    }

    /// Connects once so that an unreachable server, a bad password or a missing database is reported in one line
    /// instead of surfacing later as a pool time-out.
    private static func probe(
        _ configuration: PostgresConnection.Configuration, location: DatabaseURL.PostgresLocation, logger: Logger
    ) async throws {
        do {
            let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
            try await connection.close()
        } catch {
            throw HeraldError(
                .unavailable,
                "cannot connect to PostgreSQL at \(location.host):\(location.port)/\(location.database): \(Self.explain(error))"
            )
        }
    }

    /// A one-line, secret-free explanation of a PostgresNIO error.
    static func explain(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return "\(error)" }
        if let message = error.serverInfo?[.message] {
            return message
        }
        if let underlying = error.underlying {
            let text = "\(underlying)"
            for (phrase, summary) in [
                ("Connection refused", "connection refused"), ("timed out", "connection timed out"),
                ("ConnectTimeout", "connection timed out"),
                ("No address", "host name not found"), ("getaddrinfo", "host name not found"),
                ("Network is unreachable", "network unreachable"),
            ] where text.contains(phrase) {
                return summary
            }
            return text
        }
        return "\(error.code)"
    }

    /// Whether an error means the database cannot be reached now (down, restarting, the connection lost), as opposed
    /// to a statement failing: connection-level PostgresNIO errors, SQLSTATE class 08 (connection exception) and 57P
    /// (operator intervention: shutdown, cannot connect now), and the pool's own failures.
    static func isUnavailable(_ error: any Error) -> Bool {
        if let error = error as? PSQLError {
            switch error.code {
            case .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .poolClosed: return true
            case .server:
                let state = error.serverInfo?[.sqlState] ?? ""
                return state.hasPrefix("08") || state.hasPrefix("57P")
            default: return false
            }
        }
        return String(describing: type(of: error)).contains("ConnectionPool")
    }

    /// Runs `operation`, turning "the database cannot be reached" into ``HeraldError`` `unavailable` (a 503 with
    /// `Retry-After` at the API; a retry for the workers). A transaction whose COMMIT was lost may or may not have
    /// committed: the caller is told to retry, never that it succeeded.
    private func mappingOutages<T>(_ operation: () async throws -> T) async throws -> T {
        do {
            return try await operation()
        } catch let error where Self.isUnavailable(error) {
            watched.noteFault()
            throw Self.unavailable(Self.explain(error))
        }
    }

    /// The error every outage surfaces as.
    static func unavailable(_ why: String) -> HeraldError {
        HeraldError(.unavailable, "the database is unavailable (\(why)); retry shortly")
    }

    /// Longest a session waits for a connection before it gives up with `unavailable`: while the server is down the
    /// pool keeps requests waiting and reconnecting, and an API request must answer 503 rather than hang.
    static let acquireTimeout: Duration = .seconds(5)

    /// How long a session that began before a connection fault (the server stopped, restarted or dropped
    /// connections) may still run after it. When the server stops (`pg_ctl stop -m fast`, a failover), a session
    /// that was waiting on its connection can stay suspended for good inside PostgresNIO — closing the connection
    /// under it does not wake it — and with it a worker slot, a trigger lane or a graceful stop. Such a session is
    /// given up: its connection closed, its caller told `unavailable` (may or may not have committed, like a lost
    /// COMMIT answer), the suspended task left to end whenever it does, on a connection that no longer works.
    /// Sessions that began after the last fault are never cut short for their length (a long transaction is not a
    /// fault), except by ``sessionBackstop``.
    static let faultGrace: Duration = .seconds(10)

    /// The longest any session may run (migrations exempt): the backstop for a fault nothing reported.
    static let sessionBackstop: Duration = .seconds(600)

    /// Runs `operation`, which calls `acquired` with its connection once it holds one. If that has not happened within
    /// ``acquireTimeout``, or the session outlives a fault by ``faultGrace`` (or runs past ``sessionBackstop``), the
    /// caller gets `unavailable`
    /// at once and the operation is cancelled and abandoned: a connection acquired after that is handed back unused
    /// (`acquired` throws), so abandoned work never runs a statement.
    private func acquiring<T: Sendable>(
        _ operation: @escaping @Sendable (_ acquired: @escaping @Sendable (PostgresConnection) throws -> Void) async throws -> T
    )
        async throws -> T
    {
        let session = AbandonableSession<T>()
        let watched = self.watched
        let exempt = SessionLimit.exempt
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                guard session.start(continuation) else { return }
                let work = Task {
                    do {
                        session.finish(.success(try await operation { connection in try session.acquired(connection) }))
                    } catch {
                        session.finish(.failure(error))
                    }
                }
                // One sweep a second over every open session (``watchSessions()``) enforces both limits: no timer
                // per session on the hot path.
                let id = ObjectIdentifier(session)
                watched.add(id, WatchedSession(session: session, started: .now, exempt: exempt))
                session.onEnd { abandoned in
                    watched.remove(id)
                    if abandoned { work.cancel() }
                }
            }
        } onCancel: {
            session.abandon(CancellationError())
        }
    }

    func withConnection<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await acquiring { acquired in
            try await self.mappingOutages {
                try await self.client.withConnection { connection in
                    try acquired(connection)
                    return try await body(connection.sql(queryLogLevel: .trace))
                }
            }
        }
    }

    func withTransaction<T: Sendable>(
        durability: Durability, _ body: @escaping @Sendable (any SQLDatabase) async throws -> T
    ) async throws -> T {
        do {
            return try await acquiring { acquired in
                try await self.mappingOutages {
                    try await self.client.withTransaction(logger: self.logger) { connection in
                        try acquired(connection)
                        let database = connection.sql(queryLogLevel: .trace)
                        if durability == .replayable {
                            // Consistent, not yet flushed when COMMIT returns; the WAL writer flushes it within
                            // `wal_writer_delay` (200 ms by default).
                            try await database.raw("SET LOCAL synchronous_commit TO OFF").run()
                        }
                        return try await body(database)
                    }
                }
            }
        } catch let error as PostgresTransactionError {
            // Surface the caller's own error (a HeraldError, a conflict) rather than the wrapper.
            let inner = error.closureError ?? error.beginError ?? error.commitError ?? error.rollbackError
            if let inner, Self.isUnavailable(inner) { throw Self.unavailable(Self.explain(inner)) }
            if let closureError = error.closureError { throw closureError }
            throw error
        }
    }

    func run(signal: JobSignal) async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.client.run() }
            group.addTask { await self.listen(signal: signal) }
            group.addTask { await self.watchSessions() }
            await group.next()
            group.cancelAll()
        }
    }

    /// Forwards `NOTIFY herald_jobs` to `signal` over a dedicated connection (outside the pool, so it never takes
    /// capacity from queries), reconnecting after errors until cancelled or shut down.
    private func listen(signal: JobSignal) async {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let connection = try await PostgresConnection.connect(
                        configuration: self.listenerConfiguration, id: 1, logger: self.logger)
                    let outcome: Result<Void, any Error>
                    do {
                        try await withTaskCancellationHandler {
                            try await connection.listen(on: Self.jobsChannel) { notifications in
                                signal.signal()  // jobs may have been enqueued while no one listened
                                for try await _ in notifications {
                                    signal.signal()
                                }
                            }
                        } onCancel: {
                            connection.close()
                        }
                        outcome = .success(())
                    } catch {
                        outcome = .failure(error)
                    }
                    // A connection must be fully closed before it is released.
                    try? await connection.close()
                    try? await connection.closeFuture.get()
                    try outcome.get()
                } catch {
                    if Task.isCancelled { return }
                    self.watched.noteFault()
                    self.logger.warning("job wake-up listener lost its connection; retrying", metadata: ["error": "\(Self.explain(error))"])
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
    }

    /// Once a second: gives up on sessions with no connection after ``acquireTimeout`` and on sessions holding one
    /// that began before a connection fault and still run ``faultGrace`` after it, or past ``sessionBackstop``
    /// (closing their connection), until cancelled.
    private func watchSessions() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            let now = ContinuousClock.now
            let fault = watched.lastFault
            for entry in watched.snapshot() {
                let age = now - entry.started
                guard let connection = entry.session.heldConnection else {
                    if age >= Self.acquireTimeout { entry.session.abandon(Self.unavailable("no connection within 5 s")) }
                    continue
                }
                guard !entry.exempt else { continue }
                let outlivedFault = fault.map { entry.started < $0 && now - $0 >= Self.faultGrace } ?? false
                guard outlivedFault || age >= Self.sessionBackstop else { continue }
                logger.warning(
                    "a database session outlived a connection fault or its backstop; closed its connection and gave up on it",
                    metadata: ["seconds": "\(age.components.seconds)", "after_fault": "\(outlivedFault)"])
                let _: EventLoopFuture<Void> = connection.close()
                entry.session.abandon(Self.unavailable("the session did not end after a connection fault"))
            }
        }
    }

    func shutdown() async {}
}

/// Work exempt from the session watch's limits once connected (migrations), marked for the sessions it opens.
public enum SessionLimit {
    @TaskLocal public static var exempt = false
}

/// What the session sweep sees of a session (its result type erased).
protocol AbandonableWork: AnyObject, Sendable {
    var heldConnection: PostgresConnection? { get }
    func abandon(_ error: any Error)
}

struct WatchedSession: Sendable {
    var session: any AbandonableWork
    var started: ContinuousClock.Instant
    var exempt: Bool
}

/// The PostgreSQL sessions open in this process.
final class WatchedSessions: Sendable {
    private let sessions = Mutex<[ObjectIdentifier: WatchedSession]>([:])
    private let fault = Mutex<ContinuousClock.Instant?>(nil)
    /// When a connection last failed (a statement's connection error, the listener losing its connection).
    var lastFault: ContinuousClock.Instant? { fault.withLock { $0 } }
    func noteFault() { fault.withLock { $0 = .now } }
    func add(_ id: ObjectIdentifier, _ session: WatchedSession) { sessions.withLock { $0[id] = session } }
    func remove(_ id: ObjectIdentifier) { _ = sessions.withLock { $0.removeValue(forKey: id) } }
    func snapshot() -> [WatchedSession] { sessions.withLock { Array($0.values) } }
}

/// One store session on PostgreSQL that its caller may stop waiting for (``PostgresDriver/faultGrace``): the
/// caller's continuation is resumed exactly once, by the session's end or by giving up on it.
final class AbandonableSession<T: Sendable>: AbandonableWork {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var connection: PostgresConnection?
        var abandoned = false
        var ended = false
        var onEnd: (@Sendable (_ abandoned: Bool) -> Void)?
    }
    private let state = Mutex(State())

    /// Registers the caller's continuation; false (and the continuation resumed with `CancellationError`) when the
    /// caller was cancelled before it got here.
    func start(_ continuation: CheckedContinuation<T, any Error>) -> Bool {
        let abandoned = state.withLock { state -> Bool in
            if state.abandoned { return true }
            state.continuation = continuation
            return false
        }
        if abandoned { continuation.resume(throwing: CancellationError()) }
        return !abandoned
    }

    var heldConnection: PostgresConnection? { state.withLock { $0.connection } }

    /// The operation holds a connection; throws if the caller gave up meanwhile (the connection goes back unused).
    func acquired(_ connection: PostgresConnection) throws {
        try state.withLock { state in
            if state.abandoned { throw CancellationError() }
            state.connection = connection
        }
    }

    /// Runs `action` once when the session ends — finished, or abandoned (`true`) — at once if it has.
    func onEnd(_ action: @escaping @Sendable (_ abandoned: Bool) -> Void) {
        let ended = state.withLock { state -> Bool? in
            if state.ended { return state.abandoned }
            state.onEnd = action
            return nil
        }
        if let ended { action(ended) }
    }

    func finish(_ result: Result<T, any Error>) {
        let (continuation, end) = state.withLock { state in
            state.ended = true
            return (state.continuation.take(), state.onEnd.take())
        }
        continuation?.resume(with: result)
        end?(false)
    }

    func abandon(_ error: any Error) {
        let (continuation, end) = state.withLock { state in
            state.abandoned = true
            state.ended = true
            return (state.continuation.take(), state.onEnd.take())
        }
        continuation?.resume(throwing: error)
        end?(true)
    }
}
