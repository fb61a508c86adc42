import HeraldCore
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization

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

/// Pooled HTTP/2 connections to one origin (`https`, host, vetted address, port, TLS configuration) for the
/// high-volume push APIs (APNs, FCM), without AsyncHTTPClient's per-request machinery: no child channel or HTTP/1
/// translation per stream; a batch of requests is written to one connection in one event-loop turn and one flush,
/// and its answers are collected into one continuation.
///
/// Up to ``maximumConnections`` connections, spread over the event loops; a batch goes to the connection with the
/// fewest streams in flight, and a new connection is opened while every open one carries at least
/// ``streamsPerConnection``. Streams beyond the server's `SETTINGS_MAX_CONCURRENT_STREAMS` wait in NIOHTTP2's
/// buffer. A request the server certainly did not process (GOAWAY, `REFUSED_STREAM`) is sent again on another
/// connection; every other failure is the caller's (a transport failure, retried by the engine).
final class HTTP2Pool: Sendable {
    struct Key: Hashable, Sendable {
        var host: String
        var address: IPAddress
        var port: Int
        var tls: TLSKey
    }

    /// A TLS configuration compared the way AsyncHTTPClient pools them (best effort: closures by identity).
    struct TLSKey: Hashable, Sendable {
        var configuration: TLSConfiguration?
        static func == (lhs: TLSKey, rhs: TLSKey) -> Bool {
            switch (lhs.configuration, rhs.configuration) {
            case (nil, nil): true
            case (let left?, let right?): left.bestEffortEquals(right)
            default: false
            }
        }
        func hash(into hasher: inout Hasher) { configuration?.bestEffortHash(into: &hasher) }
    }

    enum Negotiated: Sendable {
        case unknown, http2, other
    }

    let key: Key
    /// The `:authority` of every request (the URL's host and port as the caller wrote them).
    let authority: String
    let context: NIOSSLContext
    let timeout: TimeAmount
    let maxResponseBytes: Int
    let maximumConnections: Int
    let streamsPerConnection: Int
    private let state = Mutex<State>(State())

    struct State {
        var connections: [HTTP2Connection] = []
        var connecting: [EventLoopFuture<HTTP2Connection>] = []
        var negotiated: Negotiated = .unknown
        var closed = false
    }

    init(
        key: Key, authority: String, tls: TLSConfiguration, timeout: TimeAmount, maxResponseBytes: Int, maximumConnections: Int = 4,
        streamsPerConnection: Int = 100
    ) throws {
        self.key = key
        self.authority = authority
        var tls = tls
        tls.applicationProtocols = ["h2"]
        self.context = try NIOSSLContext(configuration: tls)
        self.timeout = timeout
        self.maxResponseBytes = maxResponseBytes
        self.maximumConnections = maximumConnections
        self.streamsPerConnection = streamsPerConnection
    }

    /// Sends the batch; nil when the origin turned out not to speak HTTP/2 (nothing was sent). Requests the server
    /// certainly did not process go again on another connection, until three rounds in a row get none processed.
    func execute(_ requests: [HTTPBatchRequest]) async -> [Result<HTTPTransport.Response, any Error>]? {
        var results = [Result<HTTPTransport.Response, any Error>?](repeating: nil, count: requests.count)
        var pending = Array(requests.indices)
        var stalled = 0
        while !pending.isEmpty {
            let connection: HTTP2Connection
            do {
                connection = try await self.connection()
            } catch let error as HTTP2ClientError where error.kind == .notHTTP2 {
                if pending.count == requests.count { return nil }
                for index in pending { results[index] = .failure(error) }
                break
            } catch {
                for index in pending { results[index] = .failure(error) }
                break
            }
            let answers = await connection.execute(pending.map { requests[$0] }, deadline: .now() + timeout)
            var again: [Int] = []
            for (index, answer) in zip(pending, answers) {
                results[index] = answer
                if case .failure(let error as HTTP2ClientError) = answer, error.unprocessed { again.append(index) }
            }
            // Rounds in which the server saw none of them (a connection that went away just as the batch was given
            // to it, a server refusing everything): three in a row end it, and the engine retries later.
            stalled = again.count == pending.count ? stalled + 1 : 0
            if stalled == 3 { break }
            pending = again
        }
        return results.map { $0 ?? .failure(HTTP2ClientError(.connectionClosed, unprocessed: true)) }
    }

    /// The connection for the next batch: the least busy usable one (and one more opened beside it while every one
    /// carries its share and there is room), or one being opened when none is usable.
    func connection() async throws -> HTTP2Connection {
        enum Choice {
            case ready(HTTP2Connection, alsoOpen: EventLoopPromise<HTTP2Connection>?)
            case wait(EventLoopFuture<HTTP2Connection>, open: EventLoopPromise<HTTP2Connection>?)
        }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let choice = try state.withLock { state -> Choice in
            guard !state.closed else { throw HTTP2ClientError(.connectionClosed, "transport shut down") }
            guard state.negotiated != .other else { throw HTTP2ClientError(.notHTTP2) }
            state.connections.removeAll { !$0.usable }
            let best = state.connections.min { $0.inflight < $1.inflight }
            if let best, best.inflight < streamsPerConnection { return .ready(best, alsoOpen: nil) }
            // Until the first connection tells whether the origin speaks HTTP/2, only one is opened.
            let room =
                state.connections.count + state.connecting.count < maximumConnections
                && (state.negotiated == .http2 || state.connecting.isEmpty)
            var promise: EventLoopPromise<HTTP2Connection>?
            if room {
                promise = loop.makePromise(of: HTTP2Connection.self)
                state.connecting.append(promise!.futureResult)
            }
            if let best { return .ready(best, alsoOpen: promise) }
            return .wait(promise?.futureResult ?? state.connecting[0], open: promise)
        }
        switch choice {
        case .ready(let connection, let promise):
            if let promise { startConnection(promise, on: loop) }
            return connection
        case .wait(let future, let promise):
            if let promise { startConnection(promise, on: loop) }
            return try await future.get()
        }
    }

    /// Opens a connection for `promise`, which `connection()` registered as connecting.
    private func startConnection(_ promise: EventLoopPromise<HTTP2Connection>, on loop: any EventLoop) {
        let future = HTTP2Connection.connect(pool: self, on: loop)
        future.whenComplete { [self] result in
            let close: HTTP2Connection? = state.withLock { state in
                state.connecting.removeAll { $0 === promise.futureResult }
                switch result {
                case .success(let connection):
                    state.negotiated = .http2
                    if state.closed { return connection }
                    state.connections.append(connection)
                case .failure(let error as HTTP2ClientError) where error.kind == .notHTTP2:
                    state.negotiated = .other
                case .failure:
                    break
                }
                return nil
            }
            close?.close()
        }
        future.cascade(to: promise)
    }

    /// Forgets a connection that closed.
    func remove(_ connection: HTTP2Connection) {
        state.withLock { $0.connections.removeAll { $0 === connection } }
    }

    func shutdown() async {
        let connections = state.withLock { state in
            state.closed = true
            defer { state.connections = [] }
            return state.connections
        }
        for connection in connections { connection.close() }
        for connection in connections { try? await connection.channel.closeFuture.get() }
    }
}

/// One HTTP/2 connection of a pool: a TLS channel with NIOHTTP2's connection handler and ``HTTP2StreamsHandler``.
final class HTTP2Connection: Sendable {
    let channel: any NIOCore.Channel
    let handler: NIOLoopBound<HTTP2StreamsHandler>
    let counters: HTTP2StreamsHandler.Counters

    init(channel: any NIOCore.Channel, handler: HTTP2StreamsHandler) {
        self.channel = channel
        self.handler = NIOLoopBound(handler, eventLoop: channel.eventLoop)
        self.counters = handler.counters
    }

    /// Streams in flight (written and not yet answered).
    var inflight: Int { counters.inflight.load(ordering: .relaxed) }
    /// False once the connection closed, received a GOAWAY or ran out of stream ids.
    var usable: Bool { counters.usable.load(ordering: .relaxed) }

    func execute(_ requests: [HTTPBatchRequest], deadline: NIODeadline) async -> [Result<HTTPTransport.Response, any Error>] {
        await withCheckedContinuation { continuation in
            let batch = HTTP2Batch(count: requests.count, continuation: continuation)
            let handler = self.handler
            if channel.eventLoop.inEventLoop {
                handler.value.submit(requests, batch: batch, deadline: deadline)
            } else {
                channel.eventLoop.execute { handler.value.submit(requests, batch: batch, deadline: deadline) }
            }
        }
    }

    func close() { channel.close(promise: nil) }

    /// Connects to the pool's vetted address, completes TLS and opens HTTP/2 (fails with `notHTTP2` when ALPN does
    /// not select `h2`).
    static func connect(pool: HTTP2Pool, on loop: any EventLoop) -> EventLoopFuture<HTTP2Connection> {
        let ready = loop.makePromise(of: HTTP2Connection.self)
        let address: SocketAddress
        do { address = try SocketAddress(ipAddress: pool.key.address.description, port: pool.key.port) } catch {
            ready.fail(error)
            return ready.futureResult
        }
        let serverHostname = IPAddress(pool.key.host) == nil ? pool.key.host : nil
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(.seconds(10))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let tls = try NIOSSLClientHandler(context: pool.context, serverHostname: serverHostname)
                    try channel.pipeline.syncOperations.addHandler(tls)
                    try channel.pipeline.syncOperations.addHandler(HTTP2Establishing(pool: pool, ready: ready))
                }
            }
        bootstrap.connect(to: address).whenFailure { ready.fail($0) }
        return ready.futureResult
    }
}

/// Waits for the TLS handshake; with `h2` negotiated it replaces itself with the HTTP/2 handlers.
private final class HTTP2Establishing: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    let pool: HTTP2Pool
    let ready: EventLoopPromise<HTTP2Connection>
    var done = false

    init(pool: HTTP2Pool, ready: EventLoopPromise<HTTP2Connection>) {
        self.pool = pool
        self.ready = ready
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case TLSUserEvent.handshakeCompleted(let negotiated) = event, !done else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        done = true
        guard negotiated == "h2" else {
            ready.fail(HTTP2ClientError(.notHTTP2, negotiated ?? "no ALPN"))
            context.close(promise: nil)
            return
        }
        do {
            let streams = HTTP2StreamsHandler(pool: pool)
            var settings = HTTP2Settings()
            settings.append(HTTP2Setting(parameter: .enablePush, value: 0))
            settings.append(HTTP2Setting(parameter: .maxConcurrentStreams, value: 100))
            settings.append(HTTP2Setting(parameter: .initialWindowSize, value: min(pool.maxResponseBytes + 1024, Int(Int32.max))))
            settings.append(HTTP2Setting(parameter: .maxHeaderListSize, value: 1 << 16))
            let operations = context.pipeline.syncOperations
            try operations.addHandler(NIOHTTP2Handler(mode: .client, initialSettings: settings), position: .after(self))
            try operations.addHandler(streams, position: .last)
            let connection = HTTP2Connection(channel: context.channel, handler: streams)
            streams.connection = connection
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            ready.succeed(connection)
        } catch {
            ready.fail(error)
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !done {
            done = true
            ready.fail(error)
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !done {
            done = true
            ready.fail(HTTP2ClientError(.connectionClosed, "during the TLS handshake"))
        }
        context.fireChannelInactive()
    }
}

/// The answers of one batch, filled in on the connection's event loop.
final class HTTP2Batch: @unchecked Sendable {
    private var results: [Result<HTTPTransport.Response, any Error>?]
    private var remaining: Int
    private let continuation: CheckedContinuation<[Result<HTTPTransport.Response, any Error>], Never>

    init(count: Int, continuation: CheckedContinuation<[Result<HTTPTransport.Response, any Error>], Never>) {
        self.results = Array(repeating: nil, count: count)
        self.remaining = count
        self.continuation = continuation
        if count == 0 { continuation.resume(returning: []) }
    }

    func complete(_ index: Int, _ result: Result<HTTPTransport.Response, any Error>) {
        guard results[index] == nil else { return }
        results[index] = result
        remaining -= 1
        if remaining == 0 { continuation.resume(returning: results.map { $0! }) }
    }
}

/// The client side of one HTTP/2 connection, below NIOHTTP2's connection handler: it opens a stream per request
/// (ids assigned here, in order), matches answers to requests, keeps the connection's receive window open, fails
/// requests past their deadline and, on a GOAWAY, hands back the requests the server never saw.
final class HTTP2StreamsHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTP2Frame
    typealias OutboundIn = Never
    typealias OutboundOut = HTTP2Frame

    /// What the pool reads from other threads.
    final class Counters: Sendable {
        let inflight = Atomic<Int>(0)
        let usable = Atomic<Bool>(true)
    }

    struct Stream {
        var batch: HTTP2Batch
        var index: Int
        var deadline: NIODeadline
        var status: Int?
        var headers = HTTPHeaders()
        var body: ByteBuffer?
    }

    let counters = Counters()
    let pool: HTTP2Pool
    weak var connection: HTTP2Connection?
    private var context: ChannelHandlerContext?
    private var streams: [Int32: Stream] = [:]
    private var nextStreamID: Int32 = 1
    /// A GOAWAY's last stream id: streams above it were refused.
    private var lastAcceptedStreamID: Int32?
    private var unacknowledgedBytes = 0
    private var sweeper: RepeatedTask?
    private var lastRead = NIODeadline.now()
    private var idleSince: NIODeadline? = .now()

    /// The receive window of the connection is raised to this at once and topped up as answers are read.
    static let connectionWindow = 1 << 22

    init(pool: HTTP2Pool) { self.pool = pool }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let increment = Self.connectionWindow - 65_535
        context.writeAndFlush(
            wrapOutboundOut(HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: increment))), promise: nil)
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        sweeper = context.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in handler.value.sweep() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        sweeper?.cancel()
        self.context = nil
    }

    /// Writes one stream per request and flushes once.
    func submit(_ requests: [HTTPBatchRequest], batch: HTTP2Batch, deadline: NIODeadline) {
        guard let context, counters.usable.load(ordering: .relaxed) else {
            for index in requests.indices { batch.complete(index, .failure(HTTP2ClientError(.connectionClosed, unprocessed: true))) }
            return
        }
        idleSince = nil
        for (index, request) in requests.enumerated() {
            guard nextStreamID < Int32.max - 2 else {
                counters.usable.store(false, ordering: .relaxed)
                batch.complete(index, .failure(HTTP2ClientError(.connectionClosed, "stream ids exhausted", unprocessed: true)))
                continue
            }
            let id = nextStreamID
            nextStreamID += 2
            var headers = HPACKHeaders()
            headers.reserveCapacity(request.headers.count + 5)
            headers.add(name: ":method", value: request.method.rawValue)
            headers.add(name: ":scheme", value: "https")
            headers.add(name: ":authority", value: pool.authority)
            headers.add(name: ":path", value: request.path)
            for (name, value) in request.headers {
                let lowered = name.lowercased()
                if Self.connectionSpecific.contains(lowered) { continue }
                headers.add(name: lowered, value: value)
            }
            if let body = request.body { headers.add(name: "content-length", value: String(body.readableBytes)) }
            streams[id] = Stream(batch: batch, index: index, deadline: deadline)
            counters.inflight.wrappingAdd(1, ordering: .relaxed)
            let promise = context.eventLoop.makePromise(of: Void.self)
            let streamID = HTTP2StreamID(id)
            if let body = request.body {
                context.write(wrapOutboundOut(HTTP2Frame(streamID: streamID, payload: .headers(.init(headers: headers)))), promise: nil)
                context.write(
                    wrapOutboundOut(HTTP2Frame(streamID: streamID, payload: .data(.init(data: .byteBuffer(body), endStream: true)))),
                    promise: promise)
            } else {
                context.write(
                    wrapOutboundOut(HTTP2Frame(streamID: streamID, payload: .headers(.init(headers: headers, endStream: true)))),
                    promise: promise)
            }
            let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
            promise.futureResult.whenFailure { error in
                handler.value.finish(id, .failure(HTTP2ClientError(.writeFailed, String(describing: type(of: error)))))
            }
        }
        context.flush()
    }

    static let connectionSpecific: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host", "content-length",
    ]

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        lastRead = .now()
        let id = Int32(frame.streamID)
        switch frame.payload {
        case .headers(let block):
            guard var stream = streams[id] else { return }
            if stream.status == nil {
                guard let status = block.headers.first(name: ":status").flatMap({ Int($0) }) else {
                    reset(id, context: context, error: HTTP2ClientError(.streamReset, "answer without :status"))
                    return
                }
                if (100..<200).contains(status) { return }  // informational
                stream.status = status
                for (name, value, _) in block.headers where !name.hasPrefix(":") { stream.headers.add(name: name, value: value) }
            }
            streams[id] = stream
            if block.endStream { finish(id) }
        case .data(let payload):
            let length = payload.data.readableBytes
            unacknowledgedBytes += length + (payload.paddingBytes.map { $0 + 1 } ?? 0)
            if unacknowledgedBytes >= Self.connectionWindow / 2 {
                context.write(
                    wrapOutboundOut(HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: unacknowledgedBytes))),
                    promise: nil)
                context.flush()
                unacknowledgedBytes = 0
            }
            guard var stream = streams[id] else { return }
            if case .byteBuffer(let bytes) = payload.data {
                if (stream.body?.readableBytes ?? 0) + bytes.readableBytes > pool.maxResponseBytes {
                    reset(id, context: context, error: HTTP2ClientError(.responseTooLarge, "over \(pool.maxResponseBytes) bytes"))
                    return
                }
                if stream.body == nil {
                    stream.body = bytes
                } else {
                    var copy = bytes
                    stream.body!.writeBuffer(&copy)
                }
            }
            streams[id] = stream
            if payload.endStream { finish(id) }
        case .rstStream(let code):
            finish(id, .failure(HTTP2ClientError(.streamReset, "\(code)", unprocessed: code == .refusedStream)))
        case .goAway(let lastStreamID, let code, _):
            counters.usable.store(false, ordering: .relaxed)
            let last = Int32(lastStreamID)
            lastAcceptedStreamID = min(lastAcceptedStreamID ?? last, last)
            for streamID in streams.keys where streamID > last {
                finish(streamID, .failure(HTTP2ClientError(.goAway, "\(code)", unprocessed: true)))
            }
            closeIfDrained(context: context)
        default:
            break
        }
    }

    /// A stream error NIOHTTP2 raised for one stream (a protocol violation on it): that request fails. Other errors
    /// need nothing here: NIOHTTP2 and NIOSSL close the connection themselves on a connection error (and
    /// `channelInactive` fails what is left), and a refused write fails its request through the write's promise.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let streamError = error as? NIOHTTP2Errors.StreamError {
            finish(
                Int32(streamError.streamID), .failure(HTTP2ClientError(.streamReset, String(describing: type(of: streamError.baseError)))))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        counters.usable.store(false, ordering: .relaxed)
        let open = streams
        streams = [:]
        for (id, stream) in open {
            let error = HTTP2ClientError(.connectionClosed, unprocessed: lastAcceptedStreamID.map { id > $0 } ?? false)
            stream.batch.complete(stream.index, .failure(error))
        }
        counters.inflight.store(0, ordering: .relaxed)
        if let connection { pool.remove(connection) }
        sweeper?.cancel()
        context.fireChannelInactive()
    }

    /// Completes a stream from what was read.
    private func finish(_ id: Int32) {
        guard let stream = streams[id] else { return }
        finish(id, .success(HTTPTransport.Response(status: stream.status ?? 0, headers: stream.headers, body: stream.body ?? ByteBuffer())))
    }

    private func finish(_ id: Int32, _ result: Result<HTTPTransport.Response, any Error>) {
        guard let stream = streams.removeValue(forKey: id) else { return }
        counters.inflight.wrappingSubtract(1, ordering: .relaxed)
        stream.batch.complete(stream.index, result)
        if streams.isEmpty {
            idleSince = .now()
            if let context { closeIfDrained(context: context) }
        }
    }

    private func reset(_ id: Int32, context: ChannelHandlerContext, error: HTTP2ClientError) {
        finish(id, .failure(error))
        context.writeAndFlush(wrapOutboundOut(HTTP2Frame(streamID: HTTP2StreamID(id), payload: .rstStream(.cancel))), promise: nil)
    }

    /// A connection that is going away closes once its last stream is answered.
    private func closeIfDrained(context: ChannelHandlerContext) {
        if streams.isEmpty, !counters.usable.load(ordering: .relaxed) { context.close(promise: nil) }
    }

    /// Once a second: fails requests past their deadline (resetting their streams); closes a connection on which
    /// nothing was read for a whole timeout while requests waited, and one idle for a minute.
    func sweep() {
        guard let context else { return }
        let now = NIODeadline.now()
        if let idleSince, now - idleSince > .seconds(60) {
            counters.usable.store(false, ordering: .relaxed)
            context.close(promise: nil)
            return
        }
        var expired: [Int32] = []
        for (id, stream) in streams where stream.deadline < now { expired.append(id) }
        guard !expired.isEmpty else { return }
        for id in expired.sorted() {
            reset(id, context: context, error: HTTP2ClientError(.timeout, "no answer within \(pool.timeout.nanoseconds / 1_000_000_000) s"))
        }
        if now - lastRead > pool.timeout {
            counters.usable.store(false, ordering: .relaxed)
            context.close(promise: nil)
        }
    }
}
