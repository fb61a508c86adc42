import HeraldCore
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization

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
