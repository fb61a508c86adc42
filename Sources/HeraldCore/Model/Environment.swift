import Foundation

/// An isolated tenant of one Herald installation (`development`, `production`, …). Every other record belongs to
/// exactly one environment, and an API key sees only its own environment's records.
public struct Environment: Sendable, Hashable, Codable {
    public var id: String
    public var name: String
    public var createdAt: Date

    public init(id: String, name: String, createdAt: Date) {
        self.id = id
        self.name = name
        self.createdAt = createdAt
    }

    /// The environment created on first start.
    public static let defaultName = "development"

    /// Whether `name` is acceptable for an environment: 1–64 characters of `a-z 0-9 - _`.
    public static func isValidName(_ name: String) -> Bool {
        (1...64).contains(name.utf8.count)
            && name.utf8.allSatisfy { c in
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c)
                    || c == UInt8(ascii: "-") || c == UInt8(ascii: "_")
            }
    }
}

/// A secret API key of an environment as stored: only its SHA-256 hash and a short prefix are kept.
public struct APIKey: Sendable, Hashable, Codable {
    public var id: String
    public var environmentId: String
    /// The first characters of the key, enough to recognise it in a list.
    public var prefix: String
    public var createdAt: Date
    public var lastUsedAt: Date?
    public var revokedAt: Date?

    public init(id: String, environmentId: String, prefix: String, createdAt: Date, lastUsedAt: Date? = nil, revokedAt: Date? = nil) {
        self.id = id
        self.environmentId = environmentId
        self.prefix = prefix
        self.createdAt = createdAt
        self.lastUsedAt = lastUsedAt
        self.revokedAt = revokedAt
    }

    /// How many characters of a key are kept as its ``prefix``.
    public static let prefixLength = 10
}
