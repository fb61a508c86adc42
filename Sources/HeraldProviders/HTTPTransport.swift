import AsyncHTTPClient
import Foundation
import HeraldCore
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// The outbound HTTP client every provider shares: pooled HTTP/1.1 keep-alive connections for single requests, Herald's
/// own HTTP/2 client for batches to one HTTPS API, no redirects (a redirect could lead a webhook to a private address), bounded timeouts.
///
/// Every request passes the SSRF guard (``OutboundURLPolicy``): the URL is checked, its host resolved once and
/// every address vetted, and the connection goes to a vetted address — a client per (host, address) whose DNS
/// override pins the connection while TLS still verifies the host name — so a name that resolves differently the
/// next time (DNS rebinding) cannot redirect it. Resolutions are cached for 30 seconds.
public final class HTTPTransport: Sendable {
    /// The client for IP-literal URLs (nothing to resolve).
    public let client: HTTPClient
    let configuration: HTTPClient.Configuration
    /// The outbound URL guard every request passes.
    public let policy: OutboundURLPolicy
    let resolver: @Sendable (String) async -> [IPAddress]
    private let resolutions = Mutex<[String: (addresses: [IPAddress], expires: ContinuousClock.Instant)]>([:])
    private let pinned = Mutex<(clients: [String: HTTPClient], order: [String])>(([:], []))
    /// Single requests outstanding per origin: what a crash can repeat (``OutstandingRequests``). One and a half times
    /// the pooled connections, so that a connection freed while the next task waits for a thread finds a request
    /// queued (with exactly one permit per connection, 100,000-member fan-outs ran at 0.85x; at 1.5x, no cost
    /// measured — docs/reliability.md §Crashes).
    let outstanding: OutstandingRequests
    private let http2Pools = Mutex<(pools: [HTTP2Pool.Key: HTTP2Pool], order: [HTTP2Pool.Key])>(([:], []))
    /// Most pinned clients kept; the least recently created beyond that is shut down.
    static let pinnedLimit = 256
    /// Longest a provider call may take.
    public let timeout: TimeAmount
    /// Largest response body read.
    public let maxResponseBytes: Int

    /// TLS for every connection: the system trust store plus, when `HERALD_CA_FILE` names a PEM file, that CA (the
    /// simulator's, so that a development or test Herald reaches its TLS emulators).
    public let tlsConfiguration: TLSConfiguration

    public init(
        connectionsPerHost: Int = 64, timeout: TimeAmount = .seconds(30), maxResponseBytes: Int = 1 << 20,
        caFile: String? = ProcessInfo.processInfo.environment["HERALD_CA_FILE"], policy: OutboundURLPolicy,
        resolver: @escaping @Sendable (String) async -> [IPAddress] = HTTPTransport.systemResolve
    ) {
        self.policy = policy
        self.resolver = resolver
        var tls = TLSConfiguration.makeClientConfiguration()
        if let caFile, !caFile.isEmpty { tls.additionalTrustRoots = [.file(caFile)] }
        var configuration = HTTPClient.Configuration(
            tlsConfiguration: tls, redirectConfiguration: .disallow, timeout: .init(connect: .seconds(10), read: timeout))
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: connectionsPerHost)
        // HTTP/1.1 only: single requests (webhooks, chat, email and SMS APIs, Web Push) go over a pool of keep-alive
        // connections per host. AsyncHTTPClient's HTTP/2 path carried every request to a host on one connection,
        // queued the rest for at most the connect timeout, and against servers that end a connection after a number
        // of requests (hypercorn's default 1,000) lost the answers of the streams in flight: the receiver got them,
        // Herald recorded transport failures and sent them again (docs/reliability.md). Batches to one HTTPS API
        // (APNs, FCM) use Herald's own HTTP/2 client, ``HTTP2Pool``.
        configuration.httpVersion = .http1Only
        // Herald bootstraps no tracer; without this the client still builds span attributes for every request.
        configuration.tracing.tracer = nil
        self.client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.outstanding = OutstandingRequests(limit: connectionsPerHost * 3 / 2)
        self.configuration = configuration
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
        _ method: HTTPMethod, _ url: String, headers: [(String, String)], body: ByteBuffer?, tls: TLSConfiguration? = nil,
        timeout: TimeAmount? = nil
    ) async throws -> Response {
        if let problem = Self.headerProblem(headers) { throw OutboundURLRefusal(problem) }
        let (client, origin) = try await guardedClient(for: url)
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(body) }
        if let tls { request.tlsConfiguration = tls }
        return try await outstanding.withPermit(origin) {
            let response = try await client.execute(request, timeout: timeout ?? self.timeout)
            let collected = try await response.body.collect(upTo: maxResponseBytes)
            return Response(status: Int(response.status.code), headers: response.headers, body: collected)
        }
    }

    /// Why a request's headers cannot be sent (``HTTPFieldSyntax``), or nil. Supplied headers (a raw payload's) are
    /// checked at the API; this is the last line before the encoders — NIO's HPACK encoder stops the process on a
    /// non-ASCII name.
    static func headerProblem(_ headers: [(String, String)]) -> String? {
        headers.lazy.compactMap { HTTPFieldSyntax.problem(name: $0.0, value: $0.1) }.first
    }

    /// Sends requests to one HTTPS API (`base` plus each request's path) and reads every answer: over pooled HTTP/2
    /// connections of Herald's own (``HTTP2Pool``) when the origin negotiates `h2` — a batch written in one go, no
    /// per-request channel — otherwise over the HTTP/1.1 client, one request each, concurrently. The SSRF guard
    /// checks the base once and pins the connections to its vetted address; a path with characters a URL may not
    /// hold is refused. One result per request, in order; a failure is a transport failure (or a refusal).
    public func send(
        base: String, _ requests: [HTTPBatchRequest], tls: TLSConfiguration? = nil
    ) async -> [Result<Response, any Error>] {
        guard !requests.isEmpty else { return [] }
        let checked: CheckedURL
        do { checked = try policy.check(base) } catch { return requests.map { _ in .failure(error) } }
        var prefix = ""
        if let scheme = base.range(of: "://"), let slash = base[scheme.upperBound...].firstIndex(of: "/") {
            prefix = String(base[slash...])
        }
        let authority = base.range(of: "://").map { String(base[$0.upperBound...].prefix { $0 != "/" }) } ?? checked.host
        var results = [Result<Response, any Error>?](repeating: nil, count: requests.count)
        var valid: [Int] = []
        for (index, request) in requests.enumerated() {
            if !request.path.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\\") }) {
                results[index] = .failure(OutboundURLRefusal("the URL contains spaces, control, non-ASCII characters or backslashes"))
            } else if let problem = Self.headerProblem(request.headers) {
                results[index] = .failure(OutboundURLRefusal(problem))
            } else {
                valid.append(index)
            }
        }
        if checked.scheme == "https", !valid.isEmpty {
            do {
                let address = try await vettedAddress(checked, policy: policy)
                let pool = try http2Pool(
                    HTTP2Pool.Key(host: checked.host, address: address, port: checked.port, tls: .init(configuration: tls)),
                    authority: authority, tls: tls ?? tlsConfiguration)
                var prefixed = valid.map { requests[$0] }
                if !prefix.isEmpty { for index in prefixed.indices { prefixed[index].path = prefix + prefixed[index].path } }
                if let answers = await pool.execute(prefixed) {
                    for (index, answer) in zip(valid, answers) { results[index] = answer }
                    valid = []
                }
            } catch {
                for index in valid { results[index] = .failure(error) }
                valid = []
            }
        }
        // Not HTTPS, or the origin does not speak HTTP/2: one request each over the HTTP/1.1 client.
        if !valid.isEmpty {
            let pending = valid
            let answers = await PushSupport.each(indices: pending.indices) { position -> Result<Response, any Error> in
                let request = requests[pending[position]]
                do {
                    return .success(
                        try await self.send(request.method, base + request.path, headers: request.headers, body: request.body, tls: tls))
                } catch {
                    return .failure(error)
                }
            }
            for (index, answer) in zip(pending, answers) { results[index] = answer }
        }
        return results.map { $0! }
    }

    /// The HTTP/2 pool of an origin; the least recently created beyond ``pinnedLimit`` is shut down.
    func http2Pool(_ key: HTTP2Pool.Key, authority: String, tls: TLSConfiguration) throws -> HTTP2Pool {
        if let existing = http2Pools.withLock({ $0.pools[key] }) { return existing }
        let created = try HTTP2Pool(key: key, authority: authority, tls: tls, timeout: timeout, maxResponseBytes: maxResponseBytes)
        let (winner, evicted) = http2Pools.withLock { state -> (HTTP2Pool, HTTP2Pool?) in
            if let existing = state.pools[key] { return (existing, nil) }
            state.pools[key] = created
            state.order.append(key)
            guard state.order.count > Self.pinnedLimit else { return (created, nil) }
            return (created, state.pools.removeValue(forKey: state.order.removeFirst()))
        }
        if let evicted { Task { await evicted.shutdown() } }
        return winner
    }

    /// The client that may carry a request to `url`: the shared one for a vetted IP literal, else the one pinned to
    /// the vetted address of its host. Throws ``OutboundURLRefusal``.
    func guardedClient(for url: String) async throws -> (client: HTTPClient, origin: String) {
        let checked = try policy.check(url)
        let origin = "\(checked.scheme)://\(checked.host):\(checked.port)"
        if checked.address != nil { return (client, origin) }
        let target = try await vettedAddress(checked, policy: policy)
        let key = "\(checked.host) \(target)"
        if let existing = pinned.withLock({ $0.clients[key] }) { return (existing, origin) }
        var configuration = self.configuration
        configuration.dnsOverride = [checked.host: target.description]
        let created = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let (winner, evicted) = pinned.withLock { state -> (HTTPClient, HTTPClient?) in
            if let existing = state.clients[key] { return (existing, created) }
            state.clients[key] = created
            state.order.append(key)
            guard state.order.count > Self.pinnedLimit else { return (created, nil) }
            let oldest = state.order.removeFirst()
            return (created, state.clients.removeValue(forKey: oldest))
        }
        if let evicted { Task { try? await evicted.shutdown() } }
        return (winner, origin)
    }

    /// The address to connect to for a checked host: an IP literal as it is, else the host resolved (cached 30 s) and
    /// every address vetted by `policy` — IPv4 preferred. Throws ``OutboundURLRefusal``.
    public func vettedAddress(_ checked: CheckedURL, policy: OutboundURLPolicy) async throws -> IPAddress {
        if let address = checked.address { return address }
        let now = ContinuousClock.now
        var addresses = resolutions.withLock { cache in cache[checked.host].flatMap { $0.expires > now ? $0.addresses : nil } }
        if addresses == nil {
            let resolved = await resolver(checked.host)
            addresses = resolved
            if !resolved.isEmpty { resolutions.withLock { $0[checked.host] = (resolved, now + .seconds(30)) } }
        }
        let vetted = try policy.vet(checked, resolved: addresses ?? [])
        return vetted.first { $0.isV4 } ?? vetted[0]
    }

    /// getaddrinfo on a thread of NIO's blocking pool.
    public static let systemResolve: @Sendable (String) async -> [IPAddress] = { host in
        (try? await NIOThreadPool.singleton.runIfActive { IPAddress.resolve(host) }) ?? []
    }

    public func shutdown() async {
        try? await client.shutdown()
        let clients = pinned.withLock { state in
            defer { state = ([:], []) }
            return Array(state.clients.values)
        }
        for client in clients { try? await client.shutdown() }
        let pools = http2Pools.withLock { state in
            defer { state = ([:], []) }
            return Array(state.pools.values)
        }
        for pool in pools { await pool.shutdown() }
    }
}

/// The outcome classes of plain HTTP answers, shared by providers without their own error vocabulary (webhooks):
/// 2xx delivered, 404/410 gone, 401/403 credentials, 408/425/429/5xx retry (honouring `Retry-After`), other 4xx bad
/// request.
public enum HTTPOutcome {
    public static func classify(_ response: HTTPTransport.Response, now: Date = Date()) -> DeliveryOutcome {
        let retryAfter = response.headers.first(name: "retry-after").flatMap { RetryAfter.parse($0, now: now) }
        guard !(200..<300).contains(response.status) else { return .delivered(providerMessageId: messageId(in: response.body)) }
        return HTTPStatusClasses.webhook.outcome(
            status: response.status, reason: "HTTP \(response.status)", detail: String(response.text.prefix(200)), retryAfter: retryAfter)
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

    /// A transport failure: the provider may not have seen the request, so it is retried — except a URL the SSRF
    /// guard refuses, which no retry will cure.
    public static func transportFailure(_ error: any Error) -> DeliveryOutcome {
        if let refusal = error as? OutboundURLRefusal { return .badRequest(reason: "URL refused: \(refusal.reason)") }
        // AsyncHTTPClient's errors name the failure (`HTTPClientError.remoteConnectionClosed`) and carry no URL or
        // header; other errors are named by their type only.
        if let error = error as? HTTPClientError { return .retryLater(reason: "transport: \(error)", after: nil) }
        if let error = error as? HTTP2ClientError { return .retryLater(reason: "transport: \(error)", after: nil) }
        return .retryLater(reason: "transport: \(String(describing: type(of: error)))", after: nil)
    }
}

extension HTTPTransport: WebhookPoster {
    /// Status webhooks wait at most 10 s for an answer (Standard Webhooks asks receivers to answer at once and work
    /// later): a slow endpoint must not hold its job — and the other endpoints behind it — for the transport's 30 s.
    public func postWebhook(_ url: String, headers: [(String, String)], body: [UInt8]) async throws -> WebhookAnswer {
        let response = try await send(.POST, url, headers: headers, body: ByteBuffer(bytes: body), timeout: .seconds(10))
        return WebhookAnswer(status: response.status, retryAfter: response.headers.first(name: "retry-after"))
    }
}
