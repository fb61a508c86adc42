import HeraldCore
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization

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
