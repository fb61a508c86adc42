/// The one error type the domain throws.
///
/// A struct over a closed set of codes (the shape of postgres-nio's `PSQLError`): callers switch on ``code``, the
/// HTTP edge maps it to a status and the wire format of the API in use, and metrics label by ``Code/rawValue``.
/// ``message`` is written for the API user and must never contain a secret; ``context`` carries safe details such as
/// the field or the record id that an API error body may show.
public struct HeraldError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of failure this is. Stable strings: they appear in API bodies and metric labels.
    public struct Code: Sendable, Hashable, RawRepresentable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The record does not exist in the caller's environment.
        public static let notFound = Code(rawValue: "not_found")
        /// The record exists already or the request collides with another one.
        public static let conflict = Code(rawValue: "conflict")
        /// The request is malformed or a value is out of range.
        public static let invalidInput = Code(rawValue: "invalid_input")
        /// The credentials of the caller are missing, unknown or revoked.
        public static let unauthorized = Code(rawValue: "unauthorized")
        /// A body, payload or file is larger than its limit.
        public static let tooLarge = Code(rawValue: "too_large")
        /// A stored secret failed to decrypt: wrong key, or a ciphertext that was altered or moved.
        public static let decryptionFailed = Code(rawValue: "decryption_failed")
        /// The server is configured wrongly (missing key, bad database URL, …).
        public static let configuration = Code(rawValue: "configuration")
        /// The database schema is newer than this binary, or a migration cannot be applied.
        public static let schema = Code(rawValue: "schema")
        /// The database cannot be reached.
        public static let unavailable = Code(rawValue: "unavailable")
        /// A bug or an unexpected state. Shown to API users only as a generic message.
        public static let `internal` = Code(rawValue: "internal")
    }

    /// What kind of failure this is.
    public var code: Code
    /// A human-readable explanation without secrets.
    public var message: String
    /// Safe details (field names, ids) that may be shown to the API user.
    public var context: [String: String]

    public init(_ code: Code, _ message: String, context: [String: String] = [:]) {
        self.code = code
        self.message = message
        self.context = context
    }

    public var description: String { "\(code): \(message)" }

    public static func notFound(_ message: String, context: [String: String] = [:]) -> HeraldError {
        HeraldError(.notFound, message, context: context)
    }
    public static func conflict(_ message: String, context: [String: String] = [:]) -> HeraldError {
        HeraldError(.conflict, message, context: context)
    }
    public static func invalidInput(_ message: String, context: [String: String] = [:]) -> HeraldError {
        HeraldError(.invalidInput, message, context: context)
    }
}
