/// A string that must never reach a log line or an error body: API keys, credentials, push tokens.
///
/// `description` and `debugDescription` show only enough to tell two values apart (a short prefix and the length);
/// the value itself is read through ``revealed`` where it is really needed.
public struct Secret: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The secret value. Reading it is a deliberate act: grep for `.revealed` to audit every use.
    public let revealed: String

    public init(_ value: String) { self.revealed = value }

    public var description: String { Self.redact(revealed) }
    public var debugDescription: String { description }

    /// A redacted rendering of `value`: its first four characters and its length.
    public static func redact(_ value: String) -> String {
        if value.count <= 8 { return "<redacted \(value.count) chars>" }
        return "\(value.prefix(4))…<redacted \(value.count) chars>"
    }
}
