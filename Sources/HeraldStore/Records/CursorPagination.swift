import HeraldCore
import SQLKit

/// A request for one page of a cursor-paginated listing (Novu v2): records after or before a record id, in
/// ascending or descending id order (ids sort by creation time).
public struct CursorRequest: Sendable, Equatable {
    public var after: String?
    public var before: String?
    public var limit: Int
    public var ascending: Bool
    /// Whether the record named by the cursor is itself included.
    public var includeCursor: Bool

    public init(after: String? = nil, before: String? = nil, limit: Int = 10, ascending: Bool = false, includeCursor: Bool = false) {
        self.after = after
        self.before = before
        self.limit = limit
        self.ascending = ascending
        self.includeCursor = includeCursor
    }
}

/// One page of a cursor-paginated listing with the cursors to the neighbouring pages and the (capped) total.
public struct CursorPage<Item: Sendable>: Sendable {
    public var items: [Item]
    public var next: String?
    public var previous: String?
    public var totalCount: Int
    public var totalCountCapped: Bool

    /// Novu caps `totalCount` here and sets `totalCountCapped`.
    public static var countCap: Int { 50_000 }
}

extension StoreSession {
    /// Runs a cursor-paginated query over `table` (whose `id` column is the cursor) restricted by `filter`.
    /// Pages are keyset queries on the primary key, so every page costs the same however deep it is.
    func cursorPage<Item: Sendable>(
        table: String, columns: String, filter: SQLQueryString, request: CursorRequest, decode: (any SQLRow) throws -> Item,
        id: (Item) -> String
    ) async throws -> CursorPage<Item> {
        let backwards = request.before != nil
        // Walking backwards flips the order of the query; the page is flipped back afterwards.
        let ascending = request.ascending != backwards
        var query = SQLQueryString("SELECT \(unsafeRaw: columns) FROM \(ident: table) WHERE ") + filter
        if let cursor = request.before ?? request.after {
            let op = (ascending ? ">" : "<") + (request.includeCursor ? "=" : "")
            query += " AND id \(unsafeRaw: op) \(bind: cursor)"
        }
        query += " ORDER BY id \(unsafeRaw: ascending ? "ASC" : "DESC") LIMIT \(bind: request.limit + 1)"
        var items = try await db.raw(query).all().map(decode)
        let more = items.count > request.limit
        items = Array(items.prefix(request.limit))
        if backwards { items.reverse() }
        let next: String?
        let previous: String?
        if backwards {
            previous = more ? items.first.map(id) : nil
            next = items.last.map(id)
        } else {
            next = more ? items.last.map(id) : nil
            previous = request.after != nil ? items.first.map(id) : nil
        }
        let countQuery =
            SQLQueryString("SELECT COUNT(*) AS n FROM (SELECT 1 FROM \(ident: table) WHERE ") + filter
            + " LIMIT \(bind: CursorPage<Item>.countCap + 1)) AS capped"
        let total = try await db.raw(countQuery).first()?.decode(column: "n", as: Int.self) ?? 0
        return CursorPage(
            items: items, next: next, previous: previous, totalCount: min(total, CursorPage<Item>.countCap),
            totalCountCapped: total > CursorPage<Item>.countCap
        )
    }
}
