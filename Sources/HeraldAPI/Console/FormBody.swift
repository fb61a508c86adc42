import Foundation

/// An `application/x-www-form-urlencoded` body (HTML forms): `+` is a space, `%XX` a byte; a name may repeat.
struct FormBody: Sendable, Equatable {
    private(set) var fields: [String: [String]] = [:]

    init(_ text: String) {
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = Self.decode(parts[0]), !name.isEmpty else { continue }
            let value = parts.count > 1 ? Self.decode(parts[1]) ?? "" : ""
            fields[name, default: []].append(value)
        }
    }

    /// The first value of a field.
    subscript(_ name: String) -> String? { fields[name]?.first }

    /// Every value of a field, in order.
    func all(_ name: String) -> [String] { fields[name] ?? [] }

    static func decode(_ text: Substring) -> String? {
        text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }
}
