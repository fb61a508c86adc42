import HeraldCore
import SQLKit
import SQLiteNIO
import Synchronization

/// A multi-row `INSERT` of plain values, built without SQLKit's expression tree. The statements that write a batch's
/// rows (notifications, messages, deliveries, execution details) run for every notification, and building them as
/// SQLKit expressions — an `SQLBind` per value, each serialized through the dialect and converted back from
/// `Encodable` — cost as much as SQLite's own work on them. On SQLite the store's connection executes the statement
/// directly (``SQLiteHandleDatabase``); on PostgreSQL it serializes like any expression.
struct RowInsert: SQLExpression {
    let table: String
    let columns: [String]
    /// Row-major values, `columns.count` per row.
    private(set) var values: [BoundValue] = []
    /// Raw SQL after the values (`ON CONFLICT (…) DO NOTHING RETURNING id`).
    var suffix = ""

    init(into table: String, columns: [String]) {
        self.table = table
        self.columns = columns
    }

    /// Appends a row: one value per column, in column order.
    mutating func row(_ row: any SQLBindable...) {
        precondition(row.count == columns.count, "a row of \(table) needs \(columns.count) values, not \(row.count)")
        values.reserveCapacity(values.count + row.count)
        for value in row { values.append(value.boundValue) }
    }

    var isEmpty: Bool { values.isEmpty }

    func serialize(to serializer: inout SQLSerializer) {
        serializer.write("INSERT INTO ")
        SQLIdentifier(table).serialize(to: &serializer)
        serializer.write(" (")
        writeColumns(to: &serializer)
        if serializer.dialect.name == "postgresql", let rows = jsonRows {
            // One parameter for the whole batch: PostgreSQL parses and plans a `VALUES` list of thousands of
            // parameters for every statement (and Herald encodes each of them), which cost more than the rows' own
            // writes; `json_populate_recordset` reads the rows with the table's own column types.
            serializer.write(") SELECT ")
            writeColumns(to: &serializer)
            serializer.write(" FROM json_populate_recordset(NULL::")
            SQLIdentifier(table).serialize(to: &serializer)
            serializer.write(", ")
            serializer.write(bind: rows)
            serializer.write("::json)")
            if !suffix.isEmpty { serializer.write(" " + suffix) }
            return
        }
        serializer.write(") VALUES ")
        for (index, value) in values.enumerated() {
            let column = index % columns.count
            serializer.write(column == 0 ? (index == 0 ? "(" : "), (") : ", ")
            switch value {
            case .null: serializer.write("NULL")
            case .text(let text): serializer.write(bind: text)
            case .integer(let integer): serializer.write(bind: integer)
            case .real(let real): serializer.write(bind: real)
            case .bool(let flag): serializer.write(bind: flag)
            }
        }
        serializer.write(")")
        if !suffix.isEmpty { serializer.write(" " + suffix) }
    }

    private func writeColumns(to serializer: inout SQLSerializer) {
        for (index, column) in columns.enumerated() {
            if index > 0 { serializer.write(", ") }
            SQLIdentifier(column).serialize(to: &serializer)
        }
    }

    /// The rows as a JSON array of objects keyed by column, for PostgreSQL; nil for a single row (a `VALUES` row is as
    /// cheap) and for values JSON cannot carry (a non-finite number).
    var jsonRows: String? {
        let rowCount = values.count / max(1, columns.count)
        guard rowCount > 1 else { return nil }
        let keys = columns.map { column -> [UInt8] in
            var key: [UInt8] = []
            JSONValue.appendString(column, to: &key)
            key.append(UInt8(ascii: ":"))
            return key
        }
        var json: [UInt8] = []
        json.reserveCapacity(values.count * 24)
        json.append(UInt8(ascii: "["))
        for (index, value) in values.enumerated() {
            let column = index % columns.count
            if column == 0 {
                if index > 0 { json.append(contentsOf: "},".utf8) }
                json.append(UInt8(ascii: "{"))
            } else {
                json.append(UInt8(ascii: ","))
            }
            json.append(contentsOf: keys[column])
            switch value {
            case .null: json.append(contentsOf: "null".utf8)
            case .text(let text): JSONValue.appendString(text, to: &json)
            case .integer(let integer): json.append(contentsOf: String(integer).utf8)
            case .real(let real):
                guard real.isFinite else { return nil }
                json.append(contentsOf: "\(real)".utf8)
            case .bool(let flag): json.append(contentsOf: (flag ? "true" : "false").utf8)
            }
        }
        json.append(contentsOf: "}]".utf8)
        return String(decoding: json, as: UTF8.self)
    }

    /// The statement with SQLite's `?` placeholders, and its values.
    var sqlite: (sql: String, binds: [SQLiteData]) {
        let rowCount = values.count / max(1, columns.count)
        let placeholders = "(" + Array(repeating: "?", count: columns.count).joined(separator: ", ") + ")"
        var sql = "INSERT INTO \"\(table)\" (" + columns.map { "\"\($0)\"" }.joined(separator: ", ") + ") VALUES "
        sql.reserveCapacity(sql.utf8.count + rowCount * (placeholders.utf8.count + 2) + suffix.utf8.count + 1)
        for index in 0..<rowCount {
            if index > 0 { sql += ", " }
            sql += placeholders
        }
        if !suffix.isEmpty { sql += " " + suffix }
        let binds = values.map { value -> SQLiteData in
            switch value {
            case .null: .null
            case .text(let text): .text(text)
            case .integer(let integer): .integer(SQLiteInt64(integer))
            case .real(let real): .float(real)
            case .bool(let flag): .integer(flag ? 1 : 0)
            }
        }
        return (sql, binds)
    }
}

/// A value bound into a ``RowInsert``.
enum BoundValue: Sendable, Hashable {
    case null
    case text(String)
    case integer(Int64)
    case real(Double)
    case bool(Bool)
}

/// A Swift value a ``RowInsert`` binds.
protocol SQLBindable {
    var boundValue: BoundValue { get }
}

extension String: SQLBindable {
    var boundValue: BoundValue { .text(self) }
}

extension Int: SQLBindable {
    var boundValue: BoundValue { .integer(Int64(self)) }
}

extension Int64: SQLBindable {
    var boundValue: BoundValue { .integer(self) }
}

extension Double: SQLBindable {
    var boundValue: BoundValue { .real(self) }
}

extension Bool: SQLBindable {
    var boundValue: BoundValue { .bool(self) }
}

extension Optional: SQLBindable where Wrapped: SQLBindable {
    var boundValue: BoundValue { self?.boundValue ?? .null }
}

extension StoreSession {
    /// Runs a ``RowInsert`` and returns the rows its `RETURNING` clause produced.
    func run(_ insert: RowInsert) async throws -> [any SQLRow] {
        guard !insert.isEmpty else { return [] }
        let rows = RowCollector()
        try await db.execute(sql: insert) { row in rows.rows.withLock { $0.append(row) } }
        return rows.rows.withLock { $0 }
    }
}

/// Collects the rows of a statement (the row callback must be `@Sendable`).
private final class RowCollector: Sendable {
    let rows = Mutex<[any SQLRow]>([])
}
