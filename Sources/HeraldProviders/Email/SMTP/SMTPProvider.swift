import Foundation
import HeraldCore
import NIOCore
import NIOSSL

/// The `nodemailer` provider: e-mail over SMTP to the integration's own server (RFC 5321), on SwiftNIO.
///
/// Credentials (Novu's names): `host`, `port`, `secure` (TLS from the first byte, RFC 8314; default when the port is
/// 465), `user` and `password` (AUTH PLAIN, else LOGIN — RFC 4954), `requireTls` (fail unless the server offers
/// STARTTLS), `ignoreTls` (never STARTTLS), `from`, `senderName`. STARTTLS is used whenever the server offers it;
/// credentials are never sent in clear unless `ignoreTls` says so. The host passes the SSRF guard like every URL and
/// the connection goes to the address that was checked; the certificate is verified against the host name (system
/// roots plus `HERALD_CA_FILE`).
///
/// Connections are reused (up to 100 messages each, idle at most 30 s); the envelope is pipelined when the server
/// offers `PIPELINING` (RFC 2920), the message size checked against `SIZE` before sending. Outcomes: 4xx replies
/// `retryLater`; a 5xx to `RCPT` with an address status (RFC 3463 `5.1.x`, `5.2.1`, or plain 550/551/553)
/// `invalidToken` — the address is marked, no retry or failover; authentication or sender refusals, TLS failures and
/// `5.7.x` policy refusals `authConfig` (the engine fails over to the next email integration); other 5xx
/// `badRequest`; a lost connection `retryLater`.
public final class SMTPProvider: DeliveryProvider {
    public let providerId = "nodemailer"
    public var batchSize: Int { ProviderCatalog.batchLimit(providerId) }
    public let concurrency = 2
    /// Connections one batch uses at once (so at most `concurrency × lanes` per integration).
    static let lanes = 3

    let settings: Settings
    let tls: NIOSSLContext
    let transport: HTTPTransport
    let clock: any WallClock
    let pool: SMTPConnectionPool

    struct Settings: Sendable {
        var host: String
        var port: Int
        var implicitTLS: Bool
        var requireTLS: Bool
        var ignoreTLS: Bool
        var user: String?
        var password: String?
        var from: String
        var senderName: String?
    }

    public init(integration: Integration, transport: HTTPTransport, clock: any WallClock = SystemWallClock()) throws {
        let credentials = integration.credentials
        func flag(_ key: String) -> Bool? {
            switch credentials[key] {
            case .bool(let value)?: value
            case .string(let text)?: ["true", "1", "yes"].contains(text.lowercased())
            default: nil
            }
        }
        let host = try PushSupport.required(integration, "host")
        let port: Int? =
            switch credentials["port"] {
            case .number(let number)?: Int(exactly: number)
            case .string(let text)?: Int(text)
            default: nil
            }
        guard let port, (1...65535).contains(port) else {
            throw HeraldError(.configuration, "nodemailer: credentials.port must be a port number")
        }
        let user = credentials.string("user").flatMap { $0.isEmpty ? nil : $0 }
        settings = Settings(
            host: host, port: port, implicitTLS: flag("secure") ?? (port == 465), requireTLS: flag("requireTls") ?? false,
            ignoreTLS: flag("ignoreTls") ?? false, user: user, password: credentials.string("password"),
            from: try PushSupport.required(integration, "from"), senderName: credentials.string("senderName"))
        do {
            tls = try NIOSSLContext(configuration: transport.tlsConfiguration)
        } catch {
            throw HeraldError(.configuration, "nodemailer: TLS configuration: \(error)")
        }
        self.transport = transport
        self.clock = clock
        pool = SMTPConnectionPool(limit: concurrency * Self.lanes)
    }

    public func send(_ batch: [OutboundMessage]) async -> [DeliveryOutcome] {
        // Each lane sends its share of the batch one message after another on one connection.
        let lanes = min(Self.lanes, batch.count)
        let results = await PushSupport.each(indices: 0..<lanes) { lane in
            await self.sendLane(stride(from: lane, to: batch.count, by: lanes).map { ($0, batch[$0]) })
        }
        var outcomes = [DeliveryOutcome](repeating: .retryLater(reason: "not sent", after: nil), count: batch.count)
        for (index, outcome) in results.joined() { outcomes[index] = outcome }
        return outcomes
    }

    /// Drops the pooled connections: the next message connects and authenticates afresh.
    public func refreshCredentials() async {
        for connection in await pool.drain() { await connection.quit() }
    }

    public func shutdown() async { await refreshCredentials() }

    /// Sends messages in order on one connection, opening a new one when the current one fails.
    private func sendLane(_ messages: [(Int, OutboundMessage)]) async -> [(Int, DeliveryOutcome)] {
        var results: [(Int, DeliveryOutcome)] = []
        var connection: SMTPConnection?
        var reused = false
        for (index, message) in messages {
            let prepared: Prepared
            switch prepare(message) {
            case .ready(let value): prepared = value
            case .refused(let outcome):
                results.append((index, outcome))
                continue
            }
            var outcome: DeliveryOutcome?
            for attempt in 1...2 where outcome == nil {
                if connection == nil {
                    switch await lease() {
                    case .connection(let leased, let pooled): (connection, reused) = (leased, pooled)
                    case .refused(let refusal): outcome = refusal
                    }
                }
                guard let current = connection else { break }
                switch await deliver(prepared, on: current) {
                case .done(let result, let healthy):
                    outcome = result
                    if !healthy {
                        current.abort()
                        connection = nil
                    }
                case .connectionLost(let failure, let beforeData):
                    current.abort()
                    connection = nil
                    // A pooled connection the server had closed fails before any of the message was accepted: safe to
                    // try once more on a fresh one. Otherwise the server may have queued it; retry later (a bounded
                    // duplicate at worst, with the same Message-ID).
                    if !(beforeData && reused && attempt == 1) { outcome = .retryLater(reason: failure.description, after: nil) }
                }
                reused = true
            }
            results.append((index, outcome ?? .retryLater(reason: "SMTP: not sent", after: nil)))
        }
        if let connection { await pool.release(connection) }
        return results
    }

    // MARK: - Connection set-up

    /// A connection ready for `MAIL`: from the pool, else a new one through greeting, EHLO, STARTTLS and AUTH.
    private func lease() async -> Lease {
        if let pooled = await pool.take() { return .connection(pooled, pooled: true) }
        do {
            return .connection(try await connect(), pooled: false)
        } catch let failure as SetupFailure {
            return .refused(failure.outcome)
        } catch let failure as SMTPFailure {
            if case .tls = failure { return .refused(.authConfig(reason: failure.description)) }
            return .refused(.retryLater(reason: failure.description, after: nil))
        } catch {
            return .refused(.retryLater(reason: "SMTP: \(error)", after: nil))
        }
    }

    enum Lease {
        case connection(SMTPConnection, pooled: Bool)
        case refused(DeliveryOutcome)
    }

    /// A refusal while setting up a connection, already classified.
    struct SetupFailure: Error {
        var outcome: DeliveryOutcome

        init(outcome: DeliveryOutcome) { self.outcome = outcome }

        /// A set-up step the server refused: transient replies are retried, permanent ones are configuration.
        init(_ reply: SMTPReply, _ step: String) {
            let reason = "SMTP \(step): \(reply)"
            outcome = reply.isTransient ? .retryLater(reason: reason, after: nil) : .authConfig(reason: reason)
        }
    }

    private func connect() async throws -> SMTPConnection {
        let policy = transport.policy
        let address: IPAddress
        let checked: CheckedURL
        do {
            checked = try policy.check(host: settings.host, port: settings.port)
            address = try await transport.vettedAddress(checked, policy: policy)
        } catch let refusal as OutboundURLRefusal {
            throw SetupFailure(outcome: .authConfig(reason: "SMTP host refused: \(refusal.reason)"))
        }
        let serverName = checked.address == nil ? checked.host : nil
        let (connection, greeting) = try await SMTPConnection.open(
            address: address, port: settings.port, tls: settings.implicitTLS ? tls : nil, serverName: serverName)
        do {
            try await handshake(connection, greeting: greeting, serverName: serverName)
            return connection
        } catch {
            await connection.quit()
            throw error
        }
    }

    private func handshake(_ connection: SMTPConnection, greeting: SMTPReply, serverName: String?) async throws {
        guard greeting.code == 220 else { throw SetupFailure(greeting, "greeting") }
        let name = Self.helloName(connection)
        var hello = try await connection.hello(name)
        guard hello.code == 250 else { throw SetupFailure(hello, "EHLO") }
        if !connection.encrypted, !settings.ignoreTLS {
            if connection.extensions["STARTTLS"] != nil {
                let reply = try await connection.startTLS(context: tls, serverName: serverName)
                guard reply.code == 220 else { throw SetupFailure(reply, "STARTTLS") }
                hello = try await connection.hello(name)
                guard hello.code == 250 else { throw SetupFailure(hello, "EHLO after STARTTLS") }
            } else if settings.requireTLS || settings.user != nil {
                throw SetupFailure(
                    outcome: .authConfig(
                        reason:
                            "SMTP: \(settings.host) does not offer STARTTLS; refusing to send \(settings.user != nil ? "credentials" : "mail") in clear (set ignoreTls to allow)"
                    ))
            }
        }
        if let user = settings.user { try await authenticate(connection, user: user, password: settings.password ?? "") }
    }

    /// AUTH PLAIN with an initial response, else AUTH LOGIN (RFC 4954; the mechanisms nodemailer uses).
    private func authenticate(_ connection: SMTPConnection, user: String, password: String) async throws {
        let mechanisms = Set((connection.extensions["AUTH"] ?? "").uppercased().split(separator: " ").map(String.init))
        func base64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }
        func check(_ reply: SMTPReply) throws {
            guard reply.code == 235 else { throw SetupFailure(reply, "AUTH") }
        }
        if mechanisms.contains("PLAIN") {
            try check(try await connection.command("AUTH PLAIN " + base64("\0\(user)\0\(password)")))
        } else if mechanisms.contains("LOGIN") {
            var reply = try await connection.command("AUTH LOGIN")
            guard reply.code == 334 else { return try check(reply) }
            reply = try await connection.command(base64(user))
            guard reply.code == 334 else { return try check(reply) }
            try check(try await connection.command(base64(password)))
        } else {
            throw SetupFailure(
                outcome: .authConfig(
                    reason:
                        "SMTP: \(settings.host) offers no AUTH mechanism Herald speaks (PLAIN, LOGIN)\(connection.encrypted ? "" : " on an unencrypted connection"): '\(mechanisms.sorted().joined(separator: " "))'"
                ))
        }
    }

    /// The EHLO name: an address literal of our end of the connection (RFC 5321 §4.1.4 when no host name is known).
    static func helloName(_ connection: SMTPConnection) -> String {
        switch connection.channel.localAddress {
        case .v4(let address)?: "[\(address.host)]"
        case .v6(let address)?: "[IPv6:\(address.host)]"
        default: "[127.0.0.1]"
        }
    }

    // MARK: - One message

    struct Prepared: Sendable {
        var from: String
        var to: String
        var data: [UInt8]
        var size: Int
        var smtpUTF8: Bool
    }

    /// The message as DATA bytes, or a final outcome for what no server would take.
    enum Preparation {
        case ready(Prepared)
        case refused(DeliveryOutcome)
    }

    private func prepare(_ message: OutboundMessage) -> Preparation {
        let content = message.content
        let to = message.target.revealed
        let sender = content.from ?? settings.from
        for (role, address) in [("recipient", to), ("sender", sender)] where !Self.isAddress(address) {
            return .refused(
                role == "recipient"
                    ? .invalidToken(reason: "SMTP: '\(address)' is not an e-mail address")
                    : .badRequest(reason: "SMTP: the sender '\(address)' is not an e-mail address"))
        }
        let overrides = content.overrides.objectValue ?? [:]
        let headers = EmailHeaders.fields(content)
        let domain = sender.split(separator: "@").last.map(String.init) ?? "herald.invalid"
        let mime = MIMEMessage(
            fromAddress: sender, fromName: content.senderName ?? settings.senderName, to: to, subject: content.title ?? "",
            html: content.body, text: content.text, messageId: "<\(message.deliveryId)@\(domain)>", date: clock.now(),
            replyTo: overrides["replyTo"]?.stringValue.flatMap { Self.isAddress($0) ? $0 : nil }, extraHeaders: headers)
        let rendered = mime.rendered()
        let smtpUTF8 = !(to + sender).allSatisfy(\.isASCII)
        return .ready(Prepared(from: sender, to: to, data: MIMEMessage.dotStuffed(rendered), size: rendered.count, smtpUTF8: smtpUTF8))
    }

    /// A plain `local@domain` address without anything that could break out of `<…>` in a command.
    static func isAddress(_ text: String) -> Bool {
        guard text.utf8.count <= 254, let at = text.lastIndex(of: "@"), at != text.startIndex, text.index(after: at) != text.endIndex
        else { return false }
        return !text.contains { $0 == "<" || $0 == ">" || $0 == "\r" || $0 == "\n" || $0 == " " || $0 == "\0" || $0 == "," }
    }

    enum Attempt {
        /// The message has an outcome; `healthy` says whether the connection can carry the next one.
        case done(DeliveryOutcome, healthy: Bool)
        /// The connection broke; `beforeData` when the server had not yet received any of the message.
        case connectionLost(SMTPFailure, beforeData: Bool)
    }

    private func deliver(_ message: Prepared, on connection: SMTPConnection) async -> Attempt {
        let extensions = connection.extensions
        if let limit = extensions["SIZE"].flatMap({ Int($0) }), limit > 0, message.size > limit {
            return .done(.badRequest(reason: "SMTP: the message (\(message.size) bytes) exceeds the server's SIZE \(limit)"), healthy: true)
        }
        if message.smtpUTF8, extensions["SMTPUTF8"] == nil {
            return .done(.badRequest(reason: "SMTP: a non-ASCII address needs SMTPUTF8, which the server does not offer"), healthy: true)
        }
        var mail = "MAIL FROM:<\(message.from)>"
        if extensions["SIZE"] != nil { mail += " SIZE=\(message.size)" }
        if message.smtpUTF8 { mail += " SMTPUTF8" }
        let rcpt = "RCPT TO:<\(message.to)>"
        var dataSent = false
        do {
            let mailReply: SMTPReply
            let rcptReply: SMTPReply
            let dataReply: SMTPReply
            if extensions["PIPELINING"] != nil {
                try await connection.write(Array("\(mail)\r\n\(rcpt)\r\nDATA\r\n".utf8))
                mailReply = try await connection.reply()
                rcptReply = try await connection.reply()
                dataReply = try await connection.reply()
            } else {
                mailReply = try await connection.command(mail)
                guard mailReply.code == 250 else { return await abandon(connection, Self.classify(mailReply, stage: .mail)) }
                rcptReply = try await connection.command(rcpt)
                guard rcptReply.code == 250 || rcptReply.code == 251 else {
                    return await abandon(connection, Self.classify(rcptReply, stage: .rcpt))
                }
                dataReply = try await connection.command("DATA")
            }
            let failure: DeliveryOutcome? =
                mailReply.code != 250
                ? Self.classify(mailReply, stage: .mail)
                : (rcptReply.code != 250 && rcptReply.code != 251)
                    ? Self.classify(rcptReply, stage: .rcpt)
                    : dataReply.code != 354 ? Self.classify(dataReply, stage: .data) : nil
            if let failure {
                if dataReply.code == 354 {
                    // The server opened DATA although the envelope failed: end it empty before resetting.
                    try await connection.write(Array(".\r\n".utf8))
                    _ = try await connection.reply()
                }
                return await abandon(connection, failure)
            }
            dataSent = true
            try await connection.write(message.data)
            let final = try await connection.reply(timeout: SMTPConnection.dataTimeout)
            connection.markSent()
            guard final.code == 250 else { return await abandon(connection, Self.classify(final, stage: .data)) }
            return .done(.delivered(providerMessageId: Self.queueId(final)), healthy: true)
        } catch let failure as SMTPFailure {
            return .connectionLost(failure, beforeData: !dataSent)
        } catch {
            return .connectionLost(.connection("\(error)"), beforeData: !dataSent)
        }
    }

    /// After a refused transaction: `RSET` so that the connection can carry the next message; a connection that
    /// does not reset (or that the server is closing, 421) is dropped.
    private func abandon(_ connection: SMTPConnection, _ outcome: DeliveryOutcome) async -> Attempt {
        guard connection.isActive, let reset = try? await connection.command("RSET"), reset.code == 250 else {
            return .done(outcome, healthy: false)
        }
        return .done(outcome, healthy: true)
    }

    enum Stage { case mail, rcpt, data }

    /// RFC 5321 reply classes refined by RFC 3463 enhanced codes.
    static func classify(_ reply: SMTPReply, stage: Stage) -> DeliveryOutcome {
        let reason = "SMTP \(stage == .mail ? "MAIL FROM" : stage == .rcpt ? "RCPT TO" : "DATA"): \(reply)"
        if reply.isTransient || reply.code == 421 { return .retryLater(reason: reason, after: nil) }
        guard (500..<600).contains(reply.code) else { return .badRequest(reason: reason) }
        if [530, 534, 535, 538].contains(reply.code) { return .authConfig(reason: reason) }
        if let enhanced = reply.enhanced {
            let code = (enhanced.subject, enhanced.detail)
            // X.1.7/X.1.8: the sender's address or domain is refused — the integration's `from` is wrong.
            if stage == .mail, code == (1, 7) || code == (1, 8) { return .authConfig(reason: reason) }
            // X.1.1 bad mailbox, X.1.2 bad domain, X.1.3 bad syntax, X.1.6 moved, X.1.10 null MX, X.2.1 disabled.
            if [(1, 1), (1, 2), (1, 3), (1, 6), (1, 10), (2, 1)].contains(where: { $0 == code }) {
                return stage == .rcpt ? .invalidToken(reason: reason) : .badRequest(reason: reason)
            }
            // X.7.x security or policy: relaying denied, authentication needed, encryption needed — configuration,
            // unless the content itself was refused (spam, after DATA).
            if enhanced.subject == 7, stage != .data { return .authConfig(reason: reason) }
            return .badRequest(reason: reason)
        }
        if stage == .rcpt, [550, 551, 553].contains(reply.code) { return .invalidToken(reason: reason) }
        if stage == .mail, reply.code == 553 || reply.code == 550 { return .authConfig(reason: reason) }
        return .badRequest(reason: reason)
    }

    /// The server's id for the queued message: the text after `queued as` when present, else the reply text.
    static func queueId(_ reply: SMTPReply) -> String? {
        let text = reply.lines.first ?? ""
        if let range = text.range(of: "queued as ", options: .caseInsensitive) {
            return String(text[range.upperBound...].prefix { !$0.isWhitespace })
        }
        let withoutCode = reply.enhanced != nil ? String(text.drop { $0 != " " }.dropFirst()) : text
        return withoutCode.isEmpty ? nil : String(withoutCode.prefix(200))
    }
}

/// Idle SMTP connections of one integration, ready for the next message.
actor SMTPConnectionPool {
    let limit: Int
    /// Messages per connection before it is replaced (nodemailer's `maxMessages`).
    static let maxMessages = 100
    /// Longest a connection stays idle before it is closed rather than reused.
    static let maxIdle: Duration = .seconds(30)
    private var idle: [SMTPConnection] = []

    init(limit: Int) { self.limit = limit }

    /// A live idle connection, most recently used first; stale ones are closed.
    func take() -> SMTPConnection? {
        while let connection = idle.popLast() {
            if connection.isActive, connection.idleSince.duration(to: .now) < Self.maxIdle { return connection }
            Task { await connection.quit() }
        }
        return nil
    }

    func release(_ connection: SMTPConnection) {
        guard connection.isActive, connection.sent < Self.maxMessages, idle.count < limit else {
            Task { await connection.quit() }
            return
        }
        connection.markIdle()
        idle.append(connection)
    }

    func drain() -> [SMTPConnection] {
        defer { idle = [] }
        return idle
    }
}
