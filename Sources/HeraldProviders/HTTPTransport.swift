import AsyncHTTPClient
import Foundation
import HeraldCore
import NIOCore
import NIOHTTP1
import NIOSSL

/// The outbound HTTP client every provider shares: pooled keep-alive connections (HTTP/2 where the server offers it),
/// no redirects (a redirect could lead a webhook to a private address), bounded timeouts.
public final class HTTPTransport: Sendable {
    /// The process-wide transport: one connection pool for every provider, alive as long as the process.
    public static let shared = HTTPTransport()

    public let client: HTTPClient
    /// Longest a provider call may take.
    public let timeout: TimeAmount
    /// Largest response body read.
    public let maxResponseBytes: Int

    /// TLS for every connection: the system trust store plus, when `HERALD_CA_FILE` names a PEM file, that CA (the
    /// simulator's, so that a development or test Herald reaches its TLS emulators).
    public let tlsConfiguration: TLSConfiguration

    public init(
        connectionsPerHost: Int = 64, timeout: TimeAmount = .seconds(30), maxResponseBytes: Int = 1 << 20,
        caFile: String? = ProcessInfo.processInfo.environment["HERALD_CA_FILE"]
    ) {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let caFile, !caFile.isEmpty { tls.additionalTrustRoots = [.file(caFile)] }
        var configuration = HTTPClient.Configuration(
            tlsConfiguration: tls, redirectConfiguration: .disallow, timeout: .init(connect: .seconds(10), read: timeout))
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: connectionsPerHost)
        configuration.httpVersion = .automatic
        self.client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.tlsConfiguration = tls
        self.timeout = timeout
        self.maxResponseBytes = maxResponseBytes
    }

    /// A response, read whole.
    public struct Response: Sendable {
        public var status: Int
        public var headers: HTTPHeaders
        public var body: ByteBuffer
        public var text: String { String(buffer: body) }
    }

    /// POSTs `body` to `url`. Throws only for transport failures (connection refused, reset, timeout).
    public func post(_ url: String, headers: [(String, String)], body: ByteBuffer) async throws -> Response {
        try await send(.POST, url, headers: headers, body: body)
    }

    /// Sends a request and reads the whole answer. `tls` replaces the transport's TLS configuration for this request
    /// (APNs certificate authentication presents a client certificate); connections are pooled per configuration.
    public func send(
        _ method: HTTPMethod, _ url: String, headers: [(String, String)], body: ByteBuffer?, tls: TLSConfiguration? = nil
    ) async throws -> Response {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(body) }
        if let tls { request.tlsConfiguration = tls }
        let response = try await client.execute(request, timeout: timeout)
        let collected = try await response.body.collect(upTo: maxResponseBytes)
        return Response(status: Int(response.status.code), headers: response.headers, body: collected)
    }

    public func shutdown() async {
        try? await client.shutdown()
    }
}

/// The outcome classes of plain HTTP answers, shared by providers without their own error vocabulary (webhooks):
/// 2xx delivered, 404/410 gone, 401/403 credentials, 408/425/429/5xx retry (honouring `Retry-After`), other 4xx bad
/// request.
public enum HTTPOutcome {
    public static func classify(_ response: HTTPTransport.Response, now: Date = Date()) -> DeliveryOutcome {
        let retryAfter = response.headers.first(name: "retry-after").flatMap { RetryAfter.parse($0, now: now) }
        switch response.status {
        case 200..<300:
            return .delivered(providerMessageId: messageId(in: response.body))
        case 404, 410:
            return .invalidToken(reason: "HTTP \(response.status)")
        case 401, 403:
            return .authConfig(reason: "HTTP \(response.status)")
        case 408, 425, 429, 500..<600:
            return .retryLater(reason: "HTTP \(response.status)", after: retryAfter)
        default:
            return .badRequest(reason: "HTTP \(response.status): \(String(response.text.prefix(200)))")
        }
    }

    /// The `id` (or `messageId`) field of a JSON answer.
    static func messageId(in body: ByteBuffer) -> String? {
        guard body.readableBytes > 0, body.readableBytes < 65_536,
            case .object(let object)? = try? JSONValue.parse(String(buffer: body))
        else { return nil }
        for key in ["id", "messageId", "message_id", "sid"] {
            if let value = object[key] {
                switch value {
                case .string(let text): return text
                case .number(let number): return String(Int64(number))
                default: continue
                }
            }
        }
        return nil
    }

    /// A transport failure: the provider may not have seen the request, so it is retried.
    public static func transportFailure(_ error: any Error) -> DeliveryOutcome {
        .retryLater(reason: "transport: \(String(describing: type(of: error)))", after: nil)
    }
}
