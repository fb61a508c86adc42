import Foundation
import HeraldCore
import PostgresNIO
import SQLKit

/// One connection's (or one transaction's) view of the store. Every domain operation is an extension of this type
/// (`StoreSession+Subscribers.swift`, …), written once against `SQLDatabase` for both dialects.
public struct StoreSession: Sendable {
    /// The connection, for statements not covered by the typed operations.
    public let db: any SQLDatabase
    public let dialect: SQLDialectKind
    let cipher: CredentialCipher
    let clock: any WallClock
    let ids: any IDGenerator
    let enqueued: EnqueueFlag?

    func flagging(_ flag: EnqueueFlag) -> StoreSession {
        StoreSession(db: db, dialect: dialect, cipher: cipher, clock: clock, ids: ids, enqueued: flag)
    }

    /// A new record id.
    public func newId() -> String { ids.next() }

    /// The generator of record ids, for pure code that makes records this session writes.
    public var idGenerator: any IDGenerator { ids }

    /// The store clock's current time.
    public var now: Date { clock.now() }

    /// The current time in the schema's representation (milliseconds since the epoch).
    var nowMilliseconds: Int64 { clock.now().millisecondsSince1970 }
}

extension SQLRow {
    /// Decodes an optional column.
    func optional<T: Decodable>(_ column: String, as type: T.Type = T.self) throws -> T? {
        try decodeNil(column: column) ? nil : decode(column: column, as: T.self)
    }

    /// Decodes a status column into its typed status; a value the type does not know is a store error, not a guess.
    func status<S: RawRepresentable>(_ column: String = "status", as type: S.Type) throws -> S where S.RawValue == String {
        let text = try decode(column: column, as: String.self)
        guard let status = S(rawValue: text) else {
            throw HeraldError(.internal, "unknown \(S.self) '\(text)' in column \(column)")
        }
        return status
    }

    /// Decodes a timestamp column (milliseconds since the epoch).
    func date(_ column: String) throws -> Date {
        Date(millisecondsSince1970: try decode(column: column, as: Int64.self))
    }

    /// Decodes an optional timestamp column.
    func optionalDate(_ column: String) throws -> Date? {
        try optional(column, as: Int64.self).map(Date.init(millisecondsSince1970:))
    }

    /// Decodes a JSON text column holding a string map.
    func stringMap(_ column: String) throws -> [String: String] {
        guard let text = try optional(column, as: String.self), case .object(let object) = try JSONValue.parse(text) else { return [:] }
        return object.compactMapValues(\.stringValue)
    }
}

extension Dictionary where Key == String, Value == String {
    /// Compact JSON text of a string map.
    var jsonString: String { JSONValue.object(mapValues { .string($0) }).jsonString() }
}

/// Whether a database error is a unique-constraint violation (SQLite `SQLITE_CONSTRAINT_UNIQUE`/`PRIMARYKEY`,
/// PostgreSQL SQLSTATE 23505).
func isUniqueViolation(_ error: any Error) -> Bool {
    if let error = error as? SQLiteFailure {
        return error.isUniqueViolation
    }
    if let error = error as? PSQLError {
        return error.serverInfo?[.sqlState] == "23505"
    }
    return false
}
