/// What an HTTP header may hold (RFC 9110 §5.1 and §5.5), for headers an API user supplies (a raw APNs or Web Push
/// payload's `headers`): a name is a token, a value has no control character but horizontal tab. The API refuses
/// others with the field's location, and the outbound transport refuses them again before anything is sent — NIO's
/// HTTP/2 encoder stops the process on a non-ASCII name.
public enum HTTPFieldSyntax {
    /// `token = 1*tchar`: letters, digits and ``!#$%&'*+-.^_`|~``.
    public static func isName(_ name: String) -> Bool {
        !name.isEmpty
            && name.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                    true
                default: "!#$%&'*+-.^_`|~".utf8.contains(byte)
                }
            }
    }

    /// No control character (CR, LF and NUL among them) but horizontal tab.
    public static func isValue(_ value: String) -> Bool {
        value.utf8.allSatisfy { $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }
    }

    /// Why a header cannot be sent, or nil when it can.
    public static func problem(name: String, value: String) -> String? {
        if !isName(name) { return "a header name is a token: letters, digits and !#$%&'*+-.^_`|~" }
        if !isValue(value) { return "a header value may not hold control characters (line breaks among them)" }
        return nil
    }
}
