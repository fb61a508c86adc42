import NIOCore
import NIOHTTP1

/// One request of a batch sent with ``HTTPTransport/send(base:_:tls:)``: its path is appended to the batch's base URL.
public struct HTTPBatchRequest: Sendable {
    public var method: HTTPMethod
    public var path: String
    public var headers: [(String, String)]
    public var body: ByteBuffer?

    public init(method: HTTPMethod = .POST, path: String, headers: [(String, String)], body: ByteBuffer?) {
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
    }
}
