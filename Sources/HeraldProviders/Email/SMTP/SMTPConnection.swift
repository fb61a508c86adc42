import Foundation
import HeraldCore
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// One SMTP reply (RFC 5321 §4.2): the code, the RFC 3463 enhanced status code when the server sends one, and the
/// text of every line.
struct SMTPReply: Sendable, Equatable, CustomStringConvertible {
    var code: Int
    var lines: [String]

    /// `5.1.1` and the like, from the start of the first line (servers that offer `ENHANCEDSTATUSCODES`).
    var enhanced: (klass: Int, subject: Int, detail: Int)? {
        guard let first = lines.first else { return nil }
        let token = first.prefix { $0 != " " }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let klass = Int(parts[0]), [2, 4, 5].contains(klass), let subject = Int(parts[1]),
            let detail = Int(parts[2]), parts[1].count <= 3, parts[2].count <= 3
        else { return nil }
        return (klass, subject, detail)
    }

    var isPositive: Bool { (200..<400).contains(code) }
    var isTransient: Bool { (400..<500).contains(code) }
    /// The reply as one line, for outcomes and logs (a server's text never holds our credentials).
    var description: String { "\(code) \(lines.joined(separator: " / "))".trimmingCharacters(in: .whitespaces) }
}

/// Why an SMTP exchange stopped without a reply.
enum SMTPFailure: Error, CustomStringConvertible {
    case connection(String)
    case timeout(String)
    case tls(String)
    case protocolViolation(String)

    var description: String {
        switch self {
        case .connection(let detail): "SMTP connection failed: \(detail)"
        case .timeout(let detail): "SMTP timeout: \(detail)"
        case .tls(let detail): "SMTP TLS failed: \(detail)"
        case .protocolViolation(let detail): "SMTP protocol error: \(detail)"
        }
    }
}

/// Replies decoded on the event loop, waiting for the task that reads them: a single reader at a time.
final class SMTPReplyQueue: Sendable {
    private struct State {
        var buffered: [SMTPReply] = []
        var failure: SMTPFailure?
        var waiter: CheckedContinuation<SMTPReply, any Error>?
    }
    private let state = Mutex(State())

    func push(_ reply: SMTPReply) {
        let waiter = state.withLock { state -> CheckedContinuation<SMTPReply, any Error>? in
            guard let waiter = state.waiter else {
                state.buffered.append(reply)
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume(returning: reply)
    }

    /// Ends the queue: the waiting and every later read fail with `failure` (the first one wins).
    func finish(_ failure: SMTPFailure) {
        let (waiter, error) = state.withLock { state -> (CheckedContinuation<SMTPReply, any Error>?, SMTPFailure) in
            if state.failure == nil { state.failure = failure }
            defer { state.waiter = nil }
            return (state.waiter, state.failure!)
        }
        waiter?.resume(throwing: error)
    }

    /// Replies received but not read yet.
    var pending: Int { state.withLock { $0.buffered.count } }

    func next() async throws -> SMTPReply {
        try await withCheckedThrowingContinuation { continuation in
            let ready = state.withLock { state -> Result<SMTPReply, any Error>? in
                if !state.buffered.isEmpty { return .success(state.buffered.removeFirst()) }
                if let failure = state.failure { return .failure(failure) }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}

/// Splits the server's byte stream into replies: CRLF (or LF) lines, `ddd-` continuation lines, `ddd ` the last one.
/// Lines beyond 4,096 bytes or replies beyond 128 lines are protocol errors (a hostile server cannot grow memory).
final class SMTPClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    static let maxLine = 4096
    static let maxLines = 128

    let queue: SMTPReplyQueue
    private var buffer = ByteBuffer()
    private var lines: [String] = []
    private var code: Int?

    init(queue: SMTPReplyQueue) { self.queue = queue }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        buffer.writeBuffer(&incoming)
        do {
            while let line = try nextLine() { try take(line) }
        } catch {
            queue.finish(error as? SMTPFailure ?? .protocolViolation("\(error)"))
            context.close(promise: nil)
        }
        buffer.discardReadBytes()
    }

    private func nextLine() throws -> String? {
        let view = buffer.readableBytesView
        guard let newline = view.firstIndex(of: UInt8(ascii: "\n")) else {
            if view.count > Self.maxLine { throw SMTPFailure.protocolViolation("a reply line is longer than \(Self.maxLine) bytes") }
            return nil
        }
        let length = view.distance(from: view.startIndex, to: newline) + 1
        guard length <= Self.maxLine, var bytes = buffer.readBytes(length: length) else {
            throw SMTPFailure.protocolViolation("a reply line is longer than \(Self.maxLine) bytes")
        }
        bytes.removeLast()
        if bytes.last == 13 { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }

    private func take(_ line: String) throws {
        let scalars = Array(line.utf8)
        guard scalars.count >= 3, scalars[0...2].allSatisfy({ (48...57).contains($0) }), (50...53).contains(scalars[0]),
            let value = Int(String(decoding: scalars[0...2], as: UTF8.self))
        else { throw SMTPFailure.protocolViolation("malformed reply line '\(line.prefix(80))'") }
        let separator = scalars.count > 3 ? scalars[3] : 32
        guard separator == 32 || separator == 45 else { throw SMTPFailure.protocolViolation("malformed reply line '\(line.prefix(80))'") }
        if let code, code != value { throw SMTPFailure.protocolViolation("reply code changed within a multi-line reply") }
        code = value
        lines.append(scalars.count > 4 ? String(decoding: scalars[4...], as: UTF8.self) : "")
        guard lines.count <= Self.maxLines else { throw SMTPFailure.protocolViolation("a reply has more than \(Self.maxLines) lines") }
        if separator == 32 {
            queue.push(SMTPReply(code: value, lines: lines))
            lines = []
            code = nil
        }
    }

    /// Called on the event loop after the `220` to `STARTTLS`: anything the server sent after that reply arrived in
    /// clear and is refused (RFC 3207 §6 — the STARTTLS command-injection class of bugs).
    func prepareForTLS() throws {
        guard buffer.readableBytes == 0, lines.isEmpty, queue.pending == 0 else {
            throw SMTPFailure.protocolViolation("the server sent data in clear after agreeing to STARTTLS")
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        queue.finish(.connection("the server closed the connection"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let failure: SMTPFailure =
            switch error {
            case let error as NIOSSLError: .tls("\(error)")
            case let error as BoringSSLError: .tls("\(error)")
            case let error as NIOSSLExtraError: .tls("\(error)")
            default: .connection("\(error)")
            }
        queue.finish(failure)
        context.close(promise: nil)
    }
}

/// One SMTP client connection (RFC 5321): the channel, its replies, the extensions the last `EHLO` announced, and
/// whether it is encrypted. Used by one task at a time — the one that leased it from ``SMTPConnectionPool``.
final class SMTPConnection: Sendable {
    let channel: any NIOCore.Channel
    private let queue: SMTPReplyQueue
    private struct State {
        var extensions: [String: String] = [:]
        var encrypted = false
        var sent = 0
        var idleSince = ContinuousClock.now
    }
    private let state = Mutex(State())

    /// The longest wait for any reply but the one after the message data (RFC 5321 §4.5.3.2 allows minutes; a
    /// notification that waits that long is better retried).
    static let replyTimeout: TimeAmount = .seconds(60)
    /// The wait for the reply to the end of the data (RFC 5321 §4.5.3.2.6 suggests 10 minutes).
    static let dataTimeout: TimeAmount = .minutes(5)

    private init(channel: any NIOCore.Channel, queue: SMTPReplyQueue, encrypted: Bool) {
        self.channel = channel
        self.queue = queue
        state.withLock { $0.encrypted = encrypted }
    }

    /// Connects to `address` and reads the greeting; with `tls` the connection starts encrypted (port 465, RFC 8314).
    /// `serverName` is the name the certificate must carry (nil for an IP literal: the address is verified).
    static func open(
        address: IPAddress, port: Int, tls: NIOSSLContext?, serverName: String?, connectTimeout: TimeAmount = .seconds(10)
    ) async throws -> (SMTPConnection, SMTPReply) {
        let queue = SMTPReplyQueue()
        let socketAddress: SocketAddress
        do {
            socketAddress = try SocketAddress(ipAddress: address.description, port: port)
        } catch { throw SMTPFailure.connection("bad address \(address)") }
        let channel: any NIOCore.Channel
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(connectTimeout)
                .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tls {
                            try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName))
                        }
                        try channel.pipeline.syncOperations.addHandler(SMTPClientHandler(queue: queue))
                    }
                }
                .connect(to: socketAddress).get()
        } catch {
            throw SMTPFailure.connection("\(address):\(port): \(error)")
        }
        let connection = SMTPConnection(channel: channel, queue: queue, encrypted: tls != nil)
        do {
            let greeting = try await connection.reply(timeout: replyTimeout)
            return (connection, greeting)
        } catch {
            connection.abort()
            throw error
        }
    }

    var extensions: [String: String] { state.withLock { $0.extensions } }
    var encrypted: Bool { state.withLock { $0.encrypted } }
    var sent: Int { state.withLock { $0.sent } }
    var idleSince: ContinuousClock.Instant { state.withLock { $0.idleSince } }
    var isActive: Bool { channel.isActive }

    func markSent() { state.withLock { $0.sent += 1 } }
    func markIdle() { state.withLock { $0.idleSince = .now } }

    /// Reads the next reply; the connection is closed when none comes within `timeout` or the task is cancelled.
    func reply(timeout: TimeAmount = replyTimeout) async throws -> SMTPReply {
        let channel = self.channel
        let queue = self.queue
        let timer = channel.eventLoop.scheduleTask(in: timeout) {
            queue.finish(.timeout("no reply within \(timeout.nanoseconds / 1_000_000_000) s"))
            channel.close(promise: nil)
        }
        defer { timer.cancel() }
        return try await withTaskCancellationHandler {
            try await queue.next()
        } onCancel: {
            channel.close(promise: nil)
        }
    }

    /// Writes raw bytes (several pipelined commands, or the message data).
    func write(_ bytes: [UInt8]) async throws {
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        do {
            try await channel.writeAndFlush(buffer).get()
        } catch {
            throw SMTPFailure.connection("write failed: \(error)")
        }
    }

    /// Sends one command line and reads its reply.
    func command(_ line: String, timeout: TimeAmount = replyTimeout) async throws -> SMTPReply {
        try await write(Array((line + "\r\n").utf8))
        return try await reply(timeout: timeout)
    }

    /// `EHLO` (falling back to `HELO` when the server does not know it) and the extensions it lists.
    func hello(_ name: String) async throws -> SMTPReply {
        let reply = try await command("EHLO \(name)")
        if reply.code == 250 {
            var extensions: [String: String] = [:]
            for line in reply.lines.dropFirst() {
                let keyword = line.prefix { $0 != " " && $0 != "=" }.uppercased()
                extensions[keyword] = String(line.dropFirst(keyword.count)).trimmingCharacters(in: .whitespaces)
            }
            state.withLock { $0.extensions = extensions }
            return reply
        }
        guard (500..<600).contains(reply.code) else { return reply }
        let helo = try await command("HELO \(name)")
        state.withLock { $0.extensions = [:] }
        return helo
    }

    /// `STARTTLS` (RFC 3207): after the server's `220`, the TLS handshake runs at the front of the pipeline and
    /// everything the server said before is forgotten; the caller says `EHLO` again.
    func startTLS(context: NIOSSLContext, serverName: String?) async throws -> SMTPReply {
        let reply = try await command("STARTTLS")
        guard reply.code == 220 else { return reply }
        let channel = self.channel
        try await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.handler(type: SMTPClientHandler.self).prepareForTLS()
            try channel.pipeline.syncOperations.addHandler(
                NIOSSLClientHandler(context: context, serverHostname: serverName), position: .first)
        }.get()
        state.withLock {
            $0.encrypted = true
            $0.extensions = [:]
        }
        return reply
    }

    /// Closes without ceremony (after an error).
    func abort() { channel.close(promise: nil) }

    /// `QUIT` and close; a server that does not answer within a second is closed on anyway.
    func quit() async {
        if channel.isActive {
            _ = try? await command("QUIT", timeout: .seconds(1))
        }
        try? await channel.close().get()
    }
}
