import Foundation
import HeraldCore
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization

/// A message the SMTP emulator accepted (or refused at the end of DATA, with `reply`).
public struct SMTPRecord: Sendable {
    public var envelopeFrom: String
    public var recipients: [String]
    /// Whether the connection was encrypted (STARTTLS or implicit TLS) when the message came.
    public var encrypted: Bool
    /// The authenticated user, if any.
    public var user: String?
    /// Whether `RCPT` and `DATA` arrived before the reply to `MAIL` was sent (RFC 2920 pipelining).
    public var pipelined: Bool
    /// Which connection carried it (1, 2, …) and its position on that connection — connection reuse is visible.
    public var connection: Int
    public var sequence: Int
    /// The `SIZE=` the client declared, if it did.
    public var declaredSize: Int?
    /// The message as received, after removing dot-stuffing.
    public var raw: [UInt8]
    public var mail: ParsedMail
    /// The final reply sent for it.
    public var reply: String
}

/// A fault program for the SMTP emulator: at `stage`, for recipient `to` (any when nil), answer `reply` instead —
/// or, for `disconnect`, drop the connection after the message data without answering.
public struct SMTPFault: Sendable, Codable, Equatable {
    public enum Stage: String, Sendable, Codable { case greeting, mail, rcpt, data, disconnect }
    public var stage: Stage
    public var to: String?
    public var reply: String
    public var times: Int?

    public init(stage: Stage, to: String? = nil, reply: String = "", times: Int? = nil) {
        self.stage = stage
        self.to = to
        self.reply = reply
        self.times = times
    }
}

extension SMTPFault: CountedFault {}

/// A real SMTP server for tests and `herald dev` (RFC 5321 with ESMTP `PIPELINING`, `SIZE`, `8BITMIME`,
/// `ENHANCEDSTATUSCODES`, `SMTPUTF8`, RFC 3207 `STARTTLS` with the simulator's certificate, RFC 4954 `AUTH PLAIN` and
/// `LOGIN` offered only over TLS): it checks the command sequence, CRLF line ends and line lengths, removes
/// dot-stuffing, parses the MIME of every message and keeps it with its envelope. Accounts registered with
/// ``registerAccount(user:password:)`` make authentication mandatory. Listeners: STARTTLS (submission, like port
/// 587) and implicit TLS (like 465).
public final class SMTPEmulator: Sendable {
    private struct State {
        var records: [SMTPRecord] = []
        var faults: [SMTPFault] = []
        var accounts: [String: String] = [:]
        var mechanisms = ["PLAIN", "LOGIN"]
        var connections = 0
        var open: [ObjectIdentifier: any NIOCore.Channel] = [:]
    }
    private let state = Mutex(State())
    /// The `SIZE` the server announces.
    public let maxSize: Int

    public init(maxSize: Int = 10 << 20) { self.maxSize = maxSize }

    public func registerAccount(user: String, password: String) { state.withLock { $0.accounts[user] = password } }
    public func addFault(_ fault: SMTPFault) { state.withLock { $0.faults.append(fault) } }
    /// The AUTH mechanisms offered over TLS (`PLAIN` and `LOGIN` unless set).
    public func offerMechanisms(_ mechanisms: [String]) { state.withLock { $0.mechanisms = mechanisms.map { $0.uppercased() } } }
    func offers(_ mechanism: String) -> Bool { state.withLock { $0.mechanisms.contains(mechanism) } }
    var mechanisms: [String] { state.withLock { $0.mechanisms } }
    public func messages() -> [SMTPRecord] { state.withLock { $0.records } }
    /// Connections accepted so far.
    public var connectionCount: Int { state.withLock { $0.connections } }

    func requiresAuth() -> Bool { state.withLock { !$0.accounts.isEmpty } }
    func verify(user: String, password: String) -> Bool { state.withLock { $0.accounts[user] == password } }
    func fault(_ stage: SMTPFault.Stage, to: String?) -> SMTPFault? {
        state.withLock { $0.faults.take { $0.stage == stage && ($0.to == nil || $0.to == to) } }
    }
    func record(_ record: SMTPRecord) {
        state.withLock { $0.records.append(record) }
        if record.reply.hasPrefix("250") { observers.notify(record) }
    }

    private let observers = Observers<SMTPRecord>()
    /// Calls `observer` for every message accepted from now on.
    public func observe(_ observer: @escaping @Sendable (SMTPRecord) -> Void) { observers.add(observer) }

    func opened(_ channel: any NIOCore.Channel) -> Int {
        state.withLock { state in
            state.connections += 1
            state.open[ObjectIdentifier(channel)] = channel
            return state.connections
        }
    }
    func closed(_ channel: any NIOCore.Channel) { _ = state.withLock { $0.open.removeValue(forKey: ObjectIdentifier(channel)) } }

    /// A listener service: `implicitTLS` encrypts from the first byte; otherwise `STARTTLS` is offered.
    public func listener(
        identity: TLSIdentity, host: String = "127.0.0.1", port: Int = 0, implicitTLS: Bool,
        onRunning: @escaping @Sendable (Int) async -> Void
    ) throws -> some Service {
        Listener(
            emulator: self, tls: try NIOSSLContext(configuration: identity.smtpServerConfiguration), host: host, port: port,
            implicitTLS: implicitTLS, onRunning: onRunning)
    }

    struct Listener: Service {
        let emulator: SMTPEmulator
        let tls: NIOSSLContext
        let host: String
        let port: Int
        let implicitTLS: Bool
        let onRunning: @Sendable (Int) async -> Void

        func run() async throws {
            let emulator = self.emulator
            let tls = self.tls
            let implicitTLS = self.implicitTLS
            let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(ChannelOptions.backlog, value: 256)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if implicitTLS { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                        try channel.pipeline.syncOperations.addHandler(
                            SMTPServerHandler(emulator: emulator, tls: tls, encrypted: implicitTLS))
                    }
                }
                .bind(host: host, port: port).get()
            await onRunning(server.localAddress?.port ?? port)
            try? await gracefulShutdown()
            try? await server.close()
            let open = emulator.state.withLock { state in
                defer { state.open = [:] }
                return Array(state.open.values)
            }
            for channel in open { try? await channel.close() }
        }
    }

    public func register<Context: RequestContext>(on router: Router<Context>) {
        router.get("/_control/smtp/messages") { _, _ -> Response in
            let list: [JSONValue] = self.messages().map { record in
                [
                    "from": .string(record.envelopeFrom), "to": .array(record.recipients.map(JSONValue.string)),
                    "subject": .string(record.mail.header("Subject") ?? ""), "text": .string(record.mail.text ?? ""),
                    "html": .string(record.mail.html ?? ""), "encrypted": .bool(record.encrypted),
                    "user": record.user.map(JSONValue.string) ?? .null, "reply": .string(record.reply),
                ]
            }
            return PushEmulator.json(200, ["data": .array(list)])
        }
        router.post("/_control/smtp/faults") { request, _ -> Response in
            let buffer = try await request.body.collect(upTo: 1 << 20)
            self.addFault(try JSONDecoder().decode(SMTPFault.self, from: Data(buffer.readableBytesView)))
            return Response(status: .noContent)
        }
    }
}

extension TLSIdentity {
    /// Server TLS for the SMTP listeners (no ALPN).
    var smtpServerConfiguration: TLSConfiguration {
        TLSConfiguration.makeServerConfiguration(certificateChain: [.certificate(certificate)], privateKey: .privateKey(privateKey))
    }
}

/// The protocol state of one SMTP session: what the client has established (TLS, greeting, authentication) and the
/// mail transaction under way. One value, so that what a command may do is read from one place.
struct SMTPSessionState {
    enum AuthStep {
        case none
        case plain
        case loginUser
        case loginPassword(String)
    }

    /// The envelope and data of the mail transaction under way (reset by EHLO, HELO, RSET, STARTTLS and each message).
    struct Transaction {
        var from: String?
        var declaredSize: Int?
        var recipients: [String] = []
        /// Whether MAIL came with more commands in the same read (PIPELINING).
        var pipelined = false
    }

    var encrypted: Bool
    var greeted = false
    var user: String?
    var auth = AuthStep.none
    var transaction = Transaction()
    /// Between DATA and the final dot: lines are message data.
    var inData = false
    var data: [UInt8] = []
    var dataProblem: String?
    /// The emulator's number of this connection, and of the message on it.
    var connection = 0
    var sequence = 0
    var closing = false
}

/// One server-side SMTP session, on its channel's event loop.
final class SMTPServerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    typealias AuthStep = SMTPSessionState.AuthStep

    let emulator: SMTPEmulator
    let tls: NIOSSLContext
    var buffer = ByteBuffer()
    var state: SMTPSessionState

    init(emulator: SMTPEmulator, tls: NIOSSLContext, encrypted: Bool) {
        self.emulator = emulator
        self.tls = tls
        self.state = SMTPSessionState(encrypted: encrypted)
    }

    func channelActive(context: ChannelHandlerContext) {
        state.connection = emulator.opened(context.channel)
        if let fault = emulator.fault(.greeting, to: nil) {
            send(context, fault.reply)
            context.close(promise: nil)
            return
        }
        send(context, "220 127.0.0.1 ESMTP Herald SMTP emulator")
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        emulator.closed(context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func send(_ context: ChannelHandlerContext, _ line: String) {
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: line + "\r\n")), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data input: NIOAny) {
        var incoming = unwrapInboundIn(input)
        buffer.writeBuffer(&incoming)
        while !state.closing, let line = nextLine() {
            if state.inData { dataLine(context, line) } else { command(context, line) }
        }
        if !state.inData, buffer.readableBytes > 4096 {
            send(context, "500 5.5.6 Line too long")
            state.closing = true
            context.close(promise: nil)
        }
        buffer.discardReadBytes()
    }

    /// The next line including its terminator.
    private func nextLine() -> [UInt8]? {
        let view = buffer.readableBytesView
        guard let newline = view.firstIndex(of: 10) else { return nil }
        return buffer.readBytes(length: view.distance(from: view.startIndex, to: newline) + 1)
    }

    private func resetTransaction() {
        state.transaction = .init()
    }

    private func command(_ context: ChannelHandlerContext, _ bytes: [UInt8]) {
        guard bytes.count >= 2, bytes[bytes.count - 2] == 13 else {
            send(context, "500 5.5.2 Commands must end with CRLF")
            return
        }
        let line = String(decoding: bytes.dropLast(2), as: UTF8.self)
        switch state.auth {
        case .none: break
        case .plain:
            state.auth = .none
            return finishPlain(context, line)
        case .loginUser:
            guard let user = Self.base64(line) else { return authFailed(context) }
            state.auth = .loginPassword(user)
            return send(context, "334 UGFzc3dvcmQ6")
        case .loginPassword(let user):
            state.auth = .none
            guard let password = Self.base64(line) else { return authFailed(context) }
            return authenticate(context, user: user, password: password)
        }
        let verb = line.prefix { $0 != " " }.uppercased()
        let argument = line.dropFirst(verb.count).trimmingCharacters(in: .whitespaces)
        switch verb {
        case "EHLO":
            guard !argument.isEmpty else { return send(context, "501 5.5.4 EHLO needs a domain or address literal") }
            state.greeted = true
            resetTransaction()
            var lines = [
                "127.0.0.1 Hello \(argument)", "PIPELINING", "SIZE \(emulator.maxSize)", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8",
            ]
            if !state.encrypted { lines.append("STARTTLS") }
            if state.encrypted, !emulator.mechanisms.isEmpty { lines.append("AUTH " + emulator.mechanisms.joined(separator: " ")) }
            for (index, text) in lines.enumerated() { send(context, "250\(index == lines.count - 1 ? " " : "-")\(text)") }
        case "HELO":
            state.greeted = true
            resetTransaction()
            send(context, "250 127.0.0.1")
        case "STARTTLS":
            guard !state.encrypted else { return send(context, "503 5.5.1 TLS already active") }
            send(context, "220 2.0.0 Ready to start TLS")
            guard buffer.readableBytes == 0 else {
                // Commands pipelined after STARTTLS in clear: a real server must not act on them (RFC 3207 §6).
                state.closing = true
                context.close(promise: nil)
                return
            }
            do {
                try context.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls), position: .first)
            } catch {
                state.closing = true
                context.close(promise: nil)
                return
            }
            state.encrypted = true
            state.greeted = false
            state.user = nil
            resetTransaction()
        case "AUTH":
            guard state.greeted else { return send(context, "503 5.5.1 EHLO first") }
            guard state.encrypted else { return send(context, "538 5.7.11 Encryption required for requested authentication mechanism") }
            guard state.user == nil else { return send(context, "503 5.5.1 Already authenticated") }
            let pieces = argument.split(separator: " ").map(String.init)
            let mechanism: String? = pieces.first?.uppercased()
            switch mechanism.flatMap({ emulator.offers($0) ? $0 : nil }) {
            case "PLAIN":
                if pieces.count > 1 { return finishPlain(context, pieces[1]) }
                state.auth = .plain
                send(context, "334 ")
            case "LOGIN":
                state.auth = .loginUser
                send(context, "334 VXNlcm5hbWU6")
            default:
                send(context, "504 5.5.4 Unrecognized authentication type")
            }
        case "MAIL":
            guard state.greeted else { return send(context, "503 5.5.1 EHLO first") }
            guard !emulator.requiresAuth() || state.user != nil else { return send(context, "530 5.7.0 Authentication required") }
            guard state.transaction.from == nil else { return send(context, "503 5.5.1 Nested MAIL command") }
            guard let address = Self.path(argument, verb: "FROM") else { return send(context, "501 5.5.4 Syntax: MAIL FROM:<address>") }
            let parameters = Self.parameters(argument)
            if let size = parameters["SIZE"].flatMap({ Int($0) }), size > emulator.maxSize {
                return send(context, "552 5.3.4 Message size exceeds fixed limit")
            }
            state.transaction.pipelined = buffer.readableBytesView.contains(10)
            if let fault = emulator.fault(.mail, to: nil) { return send(context, fault.reply) }
            state.transaction.from = address
            state.transaction.declaredSize = parameters["SIZE"].flatMap { Int($0) }
            send(context, "250 2.1.0 Ok")
        case "RCPT":
            guard state.transaction.from != nil else { return send(context, "503 5.5.1 Need MAIL command") }
            guard let address = Self.path(argument, verb: "TO"), address.contains("@") else {
                return send(context, "501 5.1.3 Bad recipient address syntax")
            }
            if let fault = emulator.fault(.rcpt, to: address) { return send(context, fault.reply) }
            state.transaction.recipients.append(address)
            send(context, "250 2.1.5 Ok")
        case "DATA":
            guard state.transaction.from != nil, !state.transaction.recipients.isEmpty else {
                return send(context, "554 5.5.1 No valid recipients")
            }
            state.inData = true
            state.data = []
            state.dataProblem = nil
            send(context, "354 End data with <CR><LF>.<CR><LF>")
        case "RSET":
            resetTransaction()
            send(context, "250 2.0.0 Ok")
        case "NOOP":
            send(context, "250 2.0.0 Ok")
        case "QUIT":
            send(context, "221 2.0.0 Bye")
            state.closing = true
            context.close(promise: nil)
        default:
            send(context, "502 5.5.2 Error: command not recognized")
        }
    }

    private func finishPlain(_ context: ChannelHandlerContext, _ text: String) {
        guard let decoded = Data(base64Encoded: text) else { return authFailed(context) }
        let fields = decoded.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        guard fields.count == 3 else { return authFailed(context) }
        authenticate(context, user: fields[1], password: fields[2])
    }

    private func authenticate(_ context: ChannelHandlerContext, user: String, password: String) {
        guard emulator.verify(user: user, password: password) else { return authFailed(context) }
        state.user = user
        send(context, "235 2.7.0 Authentication successful")
    }

    private func authFailed(_ context: ChannelHandlerContext) {
        send(context, "535 5.7.8 Authentication credentials invalid")
    }

    private func dataLine(_ context: ChannelHandlerContext, _ bytes: [UInt8]) {
        let crlf = bytes.count >= 2 && bytes[bytes.count - 2] == 13
        if !crlf, state.dataProblem == nil { state.dataProblem = "bare LF in the message data" }
        if bytes.count > 1000, state.dataProblem == nil { state.dataProblem = "a line longer than 1000 octets" }
        if bytes == [46, 13, 10] { return endData(context) }
        state.data += bytes.first == 46 ? Array(bytes.dropFirst()) : bytes
    }

    private func endData(_ context: ChannelHandlerContext) {
        state.inData = false
        state.sequence += 1
        let to = state.transaction.recipients.first
        var reply = "250 2.0.0 Ok: queued as \(String(UUID().uuidString.prefix(12)).replacingOccurrences(of: "-", with: ""))"
        if let problem = state.dataProblem {
            reply = "550 5.6.0 \(problem)"
        } else if state.data.count > emulator.maxSize {
            reply = "552 5.3.4 Message size exceeds fixed limit"
        } else if let fault = emulator.fault(.disconnect, to: to) {
            emulator.record(record(reply: fault.reply.isEmpty ? "(disconnected)" : fault.reply))
            state.closing = true
            context.close(promise: nil)
            return
        } else if let fault = emulator.fault(.data, to: to) {
            reply = fault.reply
        }
        emulator.record(record(reply: reply))
        resetTransaction()
        send(context, reply)
    }

    private func record(reply: String) -> SMTPRecord {
        SMTPRecord(
            envelopeFrom: state.transaction.from ?? "", recipients: state.transaction.recipients, encrypted: state.encrypted,
            user: state.user, pipelined: state.transaction.pipelined, connection: state.connection, sequence: state.sequence,
            declaredSize: state.transaction.declaredSize, raw: state.data, mail: ParsedMail(raw: state.data), reply: reply)
    }

    static func base64(_ text: String) -> String? { Data(base64Encoded: text).map { String(decoding: $0, as: UTF8.self) } }

    /// The address of `FROM:<…>` / `TO:<…>`.
    static func path(_ argument: String, verb: String) -> String? {
        guard argument.uppercased().hasPrefix(verb + ":") else { return nil }
        let rest = argument.dropFirst(verb.count + 1).trimmingCharacters(in: .whitespaces)
        guard rest.hasPrefix("<"), let close = rest.firstIndex(of: ">") else { return nil }
        return String(rest[rest.index(after: rest.startIndex)..<close])
    }

    /// `KEY=value` parameters after the path.
    static func parameters(_ argument: String) -> [String: String] {
        guard let close = argument.firstIndex(of: ">") else { return [:] }
        var result: [String: String] = [:]
        for item in argument[argument.index(after: close)...].split(separator: " ") {
            let pieces = item.split(separator: "=", maxSplits: 1)
            result[pieces[0].uppercased()] = pieces.count > 1 ? String(pieces[1]) : ""
        }
        return result
    }
}
