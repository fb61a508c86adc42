/// Why an HTTP/2 request got no answer. `unprocessed` requests certainly did not reach the server's application (a
/// GOAWAY or `REFUSED_STREAM` said so, or the stream was never opened): they may be sent again at once.
public struct HTTP2ClientError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case connectionClosed, goAway, streamReset, timeout, responseTooLarge, notHTTP2, writeFailed
    }
    public var kind: Kind
    public var detail: String
    public var unprocessed: Bool

    init(_ kind: Kind, _ detail: String = "", unprocessed: Bool = false) {
        self.kind = kind
        self.detail = detail
        self.unprocessed = unprocessed
    }

    public var description: String { "HTTP/2 \(kind.rawValue)\(detail.isEmpty ? "" : " (\(detail))")" }
}
