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
    func withTransaction<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> T) async throws -> T

    /// Keeps the driver's background work (connection pool, `LISTEN` loop) running until cancelled or shut down.
    func run(signal: JobSignal) async throws

    /// Closes connections. Idempotent.
    func shutdown() async
}
