import AsyncHTTPClient
import Foundation
import HeraldCore
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL
import Synchronization
import Testing

@testable import HeraldProviders
@testable import HeraldSimulator

/// Herald's own HTTP/2 client (``HTTPTransport/send(base:_:tls:)``), driven against a bare NIOHTTP2 server whose
/// behaviour each test sets: many streams on few connections, a GOAWAY in the middle of a batch, a server that
/// never answers or answers too much, and an origin that only speaks HTTP/1.1.
@Suite struct HTTP2ClientTests {
    @Test("a batch four times the server's stream limit is answered in order over a few HTTP/2 connections; oversized answers are cut off")
    func batchOverHTTP2() async throws {
        try await withServer { server, transport in
            let requests = (0..<400).map { index in
                HTTPBatchRequest(
                    path: "/echo/\(index)", headers: [("content-type", "application/json"), ("X-Trace", "t\(index)")],
                    body: ByteBuffer(string: "{\"n\":\(index)}"))
            }
            let answers = await transport.send(base: server.base + "/api", requests)
            #expect(answers.count == 400)
            let failures = answers.compactMap { $0.failure.map { String(describing: $0) } }
            #expect(
                failures.isEmpty, "\(failures.count) failed: \(Set(failures)) at \(answers.indices.filter { answers[$0].failure != nil })")
            for (index, answer) in answers.enumerated() {
                let response = try answer.get()
                #expect(response.status == 200)
                #expect(response.text == "/api/echo/\(index) t\(index) \("{\"n\":\(index)}".utf8.count)")
                #expect(response.headers.first(name: "x-served") == "h2")
            }
            #expect(server.state.answered.count == 400)
            #expect(server.state.connections.load(ordering: .relaxed) <= 4)

            // An answer over the size limit is cut off (the stream reset); the connection goes on.
            let big = await transport.send(base: server.base, [HTTPBatchRequest(method: .GET, path: "/big", headers: [], body: nil)])
            guard case .failure(let tooLarge as HTTP2ClientError) = big[0] else {
                Issue.record("expected responseTooLarge, got \(big[0])")
                return
            }
            #expect(tooLarge.kind == .responseTooLarge)
            let after = await transport.send(base: server.base, [HTTPBatchRequest(path: "/echo/after", headers: [], body: nil)])
            #expect((try? after[0].get().status) == 200)
        }
    }

    @Test("a GOAWAY in the middle of a batch: the requests the server never saw go again on new connections, each answered once")
    func goAwayResendsUnprocessed() async throws {
        try await withServer(goAwayAfter: 40) { server, transport in
            let requests = (0..<300).map { HTTPBatchRequest(path: "/echo/\($0)", headers: [], body: ByteBuffer(string: "x")) }
            let answers = await transport.send(base: server.base, requests)
            let failures = answers.compactMap { $0.failure.map { String(describing: $0) } }
            let failed = answers.indices.filter { answers[$0].failure != nil }
            #expect(
                failures.isEmpty,
                "\(failures.count) failed: \(Set(failures)); indices \(failed); served \(server.state.connections.load(ordering: .relaxed)) connections"
            )
            for (index, answer) in answers.enumerated() {
                #expect((try? answer.get().text) == "/echo/\(index) - 1")
            }
            // Every request was answered exactly once, and more than one connection was needed.
            let answered = server.state.answered
            #expect(answered.count == 300 && Set(answered).count == 300)
            #expect(server.state.connections.load(ordering: .relaxed) >= 2)
        }
    }

    @Test("a server that never answers times out, as a transport failure the engine retries")
    func timeout() async throws {
        try await withServer(timeout: .seconds(2)) { server, transport in
            let started = ContinuousClock.now
            let silent = await transport.send(base: server.base, [HTTPBatchRequest(method: .GET, path: "/silent", headers: [], body: nil)])
            let waited = ContinuousClock.now - started
            guard case .failure(let error as HTTP2ClientError) = silent[0] else {
                Issue.record("expected a timeout, got \(silent[0])")
                return
            }
            #expect(error.kind == .timeout)
            #expect(waited >= .seconds(2) && waited < .seconds(8), "\(waited)")
            if case .retryLater(let reason, _) = HTTPOutcome.transportFailure(error) {
                #expect(reason.hasPrefix("transport: HTTP/2 timeout"))
            } else {
                Issue.record("a timeout is retried")
            }
        }
    }

    @Test("an origin that does not negotiate h2 is served over HTTP/1.1; a path a URL may not hold is refused")
    func fallsBackToHTTP1() async throws {
        try await withServer(http2: false) { server, transport in
            let requests = (0..<4).map { HTTPBatchRequest(path: "/echo/\($0)", headers: [], body: ByteBuffer(string: "x")) }
            var answers = await transport.send(base: server.base, requests + [HTTPBatchRequest(path: "/a b", headers: [], body: nil)])
            // Under the full suite's load AsyncHTTPClient has failed to open its TLS connections within its 10 s connect
            // timeout (twice in five runs); what is tested here is the routing, so a transport failure is sent once more,
            // as the engine would.
            for index in 0..<4 where answers[index].failure is HTTPClientError {
                answers[index] = await transport.send(base: server.base, [requests[index]])[0]
            }
            for index in 0..<4 {
                let response = try answers[index].get()
                #expect(response.headers.first(name: "x-served") == "h1")
                #expect(response.text == "/echo/\(index)")
            }
            #expect(HTTPOutcome.transportFailure(try #require(answers[4].failure)).isBadRequest)
            // Later batches go straight to HTTP/1.1.
            let again = await transport.send(base: server.base, [HTTPBatchRequest(path: "/echo/again", headers: [], body: nil)])
            #expect((try? again[0].get().headers.first(name: "x-served")) == "h1")
            #expect(Set(server.state.answered).count == 5)
        }
    }

    /// Runs `body` with a TLS server on 127.0.0.1 and a transport that trusts its CA (answers up to 64 KiB).
    func withServer(
        http2: Bool = true, goAwayAfter: Int? = nil, timeout: TimeAmount = .seconds(60),
        _ body: (TestServer, HTTPTransport) async throws -> Void
    ) async throws {
        let identity = try TLSIdentity()
        let caFile = FileManager.default.temporaryDirectory.appendingPathComponent("herald-h2-\(UUID().uuidString).pem").path
        try identity.writeCA(to: caFile)
        defer { try? FileManager.default.removeItem(atPath: caFile) }
        let server = try await TestServer.start(identity: identity, http2: http2, goAwayAfter: goAwayAfter)
        let transport = HTTPTransport(
            timeout: timeout, maxResponseBytes: 65_536, caFile: caFile, policy: try OutboundURLPolicy(allowing: ["127.0.0.1"]))
        do {
            try await body(server, transport)
        } catch {
            await transport.shutdown()
            try await server.channel.close()
            throw error
        }
        await transport.shutdown()
        try await server.channel.close()
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}

extension DeliveryOutcome {
    var isBadRequest: Bool {
        if case .badRequest = self { return true }
        return false
    }
}

/// What the test server saw.
final class TestServerState: Sendable {
    let connections = Atomic<Int>(0)
    private let paths = Mutex<[String]>([])
    var answered: [String] { paths.withLock { $0 } }
    func record(_ path: String) { paths.withLock { $0.append(path) } }
}

/// A TLS server speaking HTTP/2 (NIOHTTP2's frames, no multiplexer) or HTTP/1.1. `/echo/…` answers 200 with the
/// path, the `x-trace` header and the body's length; `/silent` never answers; `/big` answers 200 KB.
struct TestServer {
    let channel: any NIOCore.Channel
    let base: String
    let state: TestServerState

    static func start(identity: TLSIdentity, http2: Bool, goAwayAfter: Int?) async throws -> TestServer {
        var tls = identity.serverConfiguration
        tls.applicationProtocols = http2 ? ["h2"] : ["http/1.1"]
        let context = try NIOSSLContext(configuration: tls)
        let state = TestServerState()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                state.connections.wrappingAdd(1, ordering: .relaxed)
                return channel.eventLoop.makeCompletedFuture {
                    let operations = channel.pipeline.syncOperations
                    try operations.addHandler(NIOSSLServerHandler(context: context))
                    if http2 {
                        try operations.addHandler(NIOHTTP2Handler(mode: .server))
                        try operations.addHandler(FrameServer(state: state, goAwayAfter: goAwayAfter))
                    } else {
                        try operations.configureHTTPServerPipeline()
                        try operations.addHandler(HTTP1Server(state: state))
                    }
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return TestServer(channel: channel, base: "https://127.0.0.1:\(channel.localAddress!.port!)", state: state)
    }
}

final class FrameServer: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame
    let state: TestServerState
    let goAwayAfter: Int?
    var requests: [HTTP2StreamID: (path: String, trace: String, length: Int)] = [:]
    var received = 0
    var lastAccepted: HTTP2StreamID?
    var goAwaySent = false

    init(state: TestServerState, goAwayAfter: Int?) {
        self.state = state
        self.goAwayAfter = goAwayAfter
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if let lastAccepted, frame.streamID > lastAccepted { return }
        switch frame.payload {
        case .headers(let block):
            received += 1
            requests[frame.streamID] = (block.headers.first(name: ":path") ?? "", block.headers.first(name: "x-trace") ?? "-", 0)
            if let goAwayAfter, received == goAwayAfter {
                // Streams above this one were not processed. The GOAWAY is written after this read: written from
                // inside it, NIOHTTP2 stops decoding the rest of the read.
                lastAccepted = frame.streamID
                let goAway = HTTP2Frame(
                    streamID: .rootStream, payload: .goAway(lastStreamID: frame.streamID, errorCode: .noError, opaqueData: nil))
                let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                context.eventLoop.execute {
                    let (server, context) = bound.value
                    context.writeAndFlush(NIOAny(goAway), promise: nil)
                    server.goAwaySent = true
                    if server.requests.isEmpty { context.close(promise: nil) }
                }
            }
            if block.endStream { answer(frame.streamID, context: context) }
        case .data(let payload):
            requests[frame.streamID]?.length += payload.data.readableBytes
            if payload.endStream { answer(frame.streamID, context: context) }
        default:
            break
        }
    }

    func answer(_ id: HTTP2StreamID, context: ChannelHandlerContext) {
        guard let request = requests.removeValue(forKey: id) else { return }
        defer { if goAwaySent, requests.isEmpty { context.close(promise: nil) } }
        if request.path == "/silent" { return }
        state.record(request.path)
        let body =
            request.path == "/big"
            ? ByteBuffer(repeating: UInt8(ascii: "x"), count: 200_000)
            : ByteBuffer(string: "\(request.path) \(request.trace) \(request.length)")
        let headers: HPACKHeaders = [":status": "200", "x-served": "h2", "content-length": String(body.readableBytes)]
        context.write(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .headers(.init(headers: headers)))), promise: nil)
        context.writeAndFlush(
            wrapOutboundOut(HTTP2Frame(streamID: id, payload: .data(.init(data: .byteBuffer(body), endStream: true)))), promise: nil)
    }
}

final class HTTP1Server: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let state: TestServerState
    var path = ""

    init(state: TestServerState) { self.state = state }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): path = head.uri
        case .body: break
        case .end:
            state.record(path)
            let body = ByteBuffer(string: path)
            let head = HTTPResponseHead(
                version: .http1_1, status: .ok, headers: ["x-served": "h1", "content-length": String(body.readableBytes)])
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}
