import HeraldCore
import HeraldStore
import Hummingbird
import HummingbirdCore

/// Query-string reading with Novu SDK conventions: numbers may come as `10.0`, arrays as repeated keys (`a=1&a=2`
/// or `a[]=1`), booleans as `true`/`false`. Bad values are 422s that name the parameter.
struct NovuQuery {
    let parameters: FlatDictionary<Substring, Substring>

    init(_ request: Request) {
        parameters = request.uri.queryParameters
    }

    func string(_ name: String) -> String? {
        parameters[Substring(name)].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
    }

    func strings(_ name: String) -> [String] {
        (parameters[values: Substring(name)] + parameters[values: Substring(name + "[]")]).map(String.init).filter { !$0.isEmpty }
    }

    func bool(_ name: String) throws -> Bool? {
        guard let text = string(name) else { return nil }
        switch text.lowercased() {
        case "true", "1": return true
        case "false", "0": return false
        default: throw APIError.invalidField(name, "\(name) must be true or false")
        }
    }

    /// An integer parameter within `range`, accepting `10.0`.
    func integer(_ name: String, default defaultValue: Int, range: ClosedRange<Int>) throws -> Int {
        guard let text = string(name) else { return defaultValue }
        guard let number = Double(text), number.rounded() == number, let value = Int(exactly: number) else {
            throw APIError.invalidField(name, "\(name) must be an integer number")
        }
        guard value >= range.lowerBound else { throw APIError.invalidField(name, "\(name) must not be less than \(range.lowerBound)") }
        guard value <= range.upperBound else { throw APIError.invalidField(name, "\(name) must not be greater than \(range.upperBound)") }
        return value
    }

    /// Novu v2 cursor parameters: `after`, `before`, `limit` (1–100, default 10), `orderDirection` (`ASC`/`DESC`,
    /// default DESC), `includeCursor`.
    func cursor() throws -> CursorRequest {
        let direction = string("orderDirection")?.uppercased() ?? "DESC"
        guard direction == "ASC" || direction == "DESC" else {
            throw APIError.invalidField("orderDirection", "orderDirection must be one of the following values: ASC, DESC")
        }
        let after = string("after")
        let before = string("before")
        guard after == nil || before == nil else {
            throw APIError.invalidField("after", "after and before cannot be used together")
        }
        for (name, cursor) in [("after", after), ("before", before)] {
            if let cursor, !ObjectIDGenerator.isValid(cursor) { throw APIError.invalidField(name, "\(name) is not a valid cursor") }
        }
        return CursorRequest(
            after: after, before: before, limit: try integer("limit", default: 10, range: 1...100), ascending: direction == "ASC",
            includeCursor: try bool("includeCursor") ?? false
        )
    }
}

extension APIError {
    /// A 422 for one request field.
    static func invalidField(_ field: String, _ message: String, value: JSONValue? = nil) -> APIError {
        APIError(.unprocessableContent, message, fieldErrors: [field: .init(messages: [message], value: value)])
    }
}

extension CursorPage {
    /// Novu's flat cursor page: `{data, next, previous, totalCount, totalCountCapped}`.
    func novuJSON(_ encode: (Item) -> JSONValue) -> JSONValue {
        [
            "data": .array(items.map(encode)), "next": next.map(JSONValue.string) ?? .null,
            "previous": previous.map(JSONValue.string) ?? .null,
            "totalCount": .number(Double(totalCount)), "totalCountCapped": .bool(totalCountCapped),
        ]
    }
}
