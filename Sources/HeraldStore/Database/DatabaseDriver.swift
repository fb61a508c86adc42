import SQLKit

/// The SQL dialects the store speaks. Most statements are shared; these name the places that differ.
public enum SQLDialectKind: String, Sendable {
    case sqlite
    case postgres
}

/// Access to one database: sessions, transactions and cross-process wake-ups. One implementation per engine;
/// everything above it is written once against `SQLDatabase`.
protocol DatabaseDriver: Sendable {
    var dialect: SQLDialectKind { get }

    /// Runs `body` on one connection.
    func withConnection<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T

    /// Runs `body` inside a transaction: committed when it returns, rolled back when it throws.
    func withTransaction<T: Sendable>(
        durability: Durability, _ body: @escaping @Sendable (any SQLDatabase) async throws -> T
    ) async throws -> T

    /// Keeps the driver's background work (connection pool, `LISTEN` loop) running until cancelled or shut down.
    func run(signal: JobSignal) async throws

    /// Closes connections. Idempotent.
    func shutdown() async
}

/// How durable a transaction's commit must be when it returns.
public enum Durability: Sendable, Equatable {
    /// On stable storage before the commit returns (SQLite: the WAL is fsynced when the database URL says
    /// `synchronous=full`, the default; PostgreSQL: the server's `synchronous_commit`). For everything a client is
    /// told was committed — a 2xx answer.
    case acknowledged
    /// The engine's own bookkeeping, which the durable queue replays if a power loss (not a process crash) takes the
    /// commit: claims, expansion pages, runs, recorded outcomes. It reaches stable storage with the next acknowledged
    /// commit, or at the latest ``replayableWindow`` later — the WAL is sequential, so a power loss can only take a
    /// suffix of these transactions, whose jobs are then claimed and run again (duplicate sends bounded by that
    /// window, never a lost one). SQLite commits it with `synchronous = NORMAL`; PostgreSQL with
    /// `synchronous_commit = off`.
    case replayable

    /// The longest stretch of replayable commits on SQLite without an fsync.
    public static let replayableWindow: Duration = .milliseconds(200)
}
