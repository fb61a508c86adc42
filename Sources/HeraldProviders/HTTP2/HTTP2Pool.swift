import HeraldCore
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization

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

    let key: Key
    /// The `:authority` of every request (the URL's host and port as the caller wrote them).
    let authority: String
    let context: NIOSSLContext
    let timeout: TimeAmount
    let maxResponseBytes: Int
    let maximumConnections: Int
    let streamsPerConnection: Int
    private let state: Mutex<HTTP2PoolState<HTTP2Connection, EventLoopFuture<HTTP2Connection>>>

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
        self.state = Mutex(HTTP2PoolState(maximumConnections: maximumConnections, streamsPerConnection: streamsPerConnection))
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

    /// The connection for the next batch (``HTTP2PoolState/choose(usable:inflight:open:)`` decides): the least busy
    /// usable one, with one more opened beside it while every one carries its share and there is room, or one being
    /// opened when none is usable.
    func connection() async throws -> HTTP2Connection {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        var promise: EventLoopPromise<HTTP2Connection>?
        let choice = state.withLock { state in
            state.choose(usable: \.usable, inflight: \.inflight) {
                promise = loop.makePromise(of: HTTP2Connection.self)
                return promise!.futureResult
            }
        }
        if let promise { startConnection(promise, on: loop) }
        switch choice {
        case .ready(let connection): return connection
        case .wait(let future): return try await future.get()
        case .refused(let error): throw error
        }
    }

    /// Opens a connection for `promise`, which `connection()` registered as connecting.
    private func startConnection(_ promise: EventLoopPromise<HTTP2Connection>, on loop: any EventLoop) {
        let future = HTTP2Connection.connect(pool: self, on: loop)
        future.whenComplete { [self] result in
            let outcome: HTTP2PoolState<HTTP2Connection, EventLoopFuture<HTTP2Connection>>.Opened
            switch result {
            case .success(let connection): outcome = .http2(connection)
            case .failure(let error as HTTP2ClientError) where error.kind == .notHTTP2: outcome = .notHTTP2
            case .failure: outcome = .failed
            }
            let close = state.withLock { $0.opened(promise.futureResult, outcome, same: ===) }
            close?.close()
        }
        future.cascade(to: promise)
    }

    /// Forgets a connection that closed.
    func remove(_ connection: HTTP2Connection) {
        state.withLock { $0.remove(connection) }
    }

    func shutdown() async {
        let connections = state.withLock { $0.close() }
        for connection in connections { connection.close() }
        for connection in connections { try? await connection.channel.closeFuture.get() }
    }
}
