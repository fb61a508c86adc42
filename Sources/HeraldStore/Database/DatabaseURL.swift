import Foundation
import HeraldCore

/// Where the data lives: `sqlite://PATH`, `sqlite::memory:` or `postgres://user:pass@host:port/db`.
///
/// SQLite URLs accept `?synchronous=full|normal` (default `full`: every commit is fsynced, so an acknowledged
/// write survives a power loss, not only a crash). PostgreSQL URLs accept `?sslmode=disable|prefer|require`
/// (default `prefer`). The password never appears in ``description``.
public enum DatabaseURL: Sendable, Hashable, CustomStringConvertible {
    case sqlite(path: String, synchronous: SQLiteSynchronous)
    case sqliteMemory
    case postgres(PostgresLocation)

    /// SQLite's `PRAGMA synchronous` in WAL mode.
    public enum SQLiteSynchronous: String, Sendable, Hashable {
        /// fsync on every commit: durable across power loss.
        case full
        /// fsync at checkpoints: durable across process crashes, may lose the last commits on power loss.
        case normal
    }

    /// Connection details of a PostgreSQL server.
    public struct PostgresLocation: Sendable, Hashable {
        public var host: String
        public var port: Int
        public var username: String
        public var password: Secret?
        public var database: String
        public var sslMode: String

        public init(host: String, port: Int = 5432, username: String, password: Secret?, database: String, sslMode: String = "prefer") {
            self.host = host
            self.port = port
            self.username = username
            self.password = password
            self.database = database
            self.sslMode = sslMode
        }
    }

    /// Parses a database URL, with an error that says what is wrong and never echoes the password.
    public init(parsing string: String) throws {
        if string == "sqlite::memory:" || string == "sqlite://:memory:" {
            self = .sqliteMemory
            return
        }
        if string.hasPrefix("sqlite://") {
            var rest = String(string.dropFirst("sqlite://".count))
            var synchronous = SQLiteSynchronous.full
            if let question = rest.firstIndex(of: "?") {
                let query = rest[rest.index(after: question)...]
                rest = String(rest[..<question])
                for pair in query.split(separator: "&") {
                    let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
                    guard parts.count == 2, parts[0] == "synchronous", let value = SQLiteSynchronous(rawValue: parts[1].lowercased())
                    else {
                        throw HeraldError(
                            .configuration, "unsupported SQLite URL option '\(parts[0])' (supported: synchronous=full|normal)")
                    }
                    synchronous = value
                }
            }
            guard !rest.isEmpty else {
                throw HeraldError(.configuration, "SQLite URL needs a file path, e.g. sqlite://./herald.sqlite")
            }
            self = .sqlite(path: rest, synchronous: synchronous)
            return
        }
        if string.hasPrefix("postgres://") || string.hasPrefix("postgresql://") {
            guard let components = URLComponents(string: string), let host = components.host, !host.isEmpty else {
                throw HeraldError(.configuration, "PostgreSQL URL must look like postgres://user:pass@host:port/database")
            }
            guard let user = components.user, !user.isEmpty else {
                throw HeraldError(.configuration, "PostgreSQL URL has no user name (postgres://user:pass@host:port/database)")
            }
            let database = String(components.path.drop(while: { $0 == "/" }))
            guard !database.isEmpty else {
                throw HeraldError(.configuration, "PostgreSQL URL has no database name (postgres://user:pass@host:port/database)")
            }
            var sslMode = "prefer"
            for item in components.queryItems ?? [] {
                guard item.name == "sslmode", let value = item.value, ["disable", "prefer", "require"].contains(value) else {
                    throw HeraldError(
                        .configuration, "unsupported PostgreSQL URL option '\(item.name)' (supported: sslmode=disable|prefer|require)")
                }
                sslMode = value
            }
            self = .postgres(
                PostgresLocation(
                    host: host, port: components.port ?? 5432, username: user.removingPercentEncoding ?? user,
                    password: components.password.map { Secret($0.removingPercentEncoding ?? $0) }, database: database, sslMode: sslMode
                )
            )
            return
        }
        throw HeraldError(
            .configuration, "unsupported database URL scheme; use sqlite://PATH, sqlite::memory: or postgres://user:pass@host:port/db")
    }

    public var description: String {
        switch self {
        case .sqlite(let path, let synchronous): "sqlite://\(path)" + (synchronous == .full ? "" : "?synchronous=\(synchronous.rawValue)")
        case .sqliteMemory: "sqlite::memory:"
        case .postgres(let location):
            "postgres://\(location.username)\(location.password == nil ? "" : ":***")@\(location.host):\(location.port)/\(location.database)"
        }
    }
}
