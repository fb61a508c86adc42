import Foundation
import HeraldCore
import Hummingbird
import HummingbirdHTTP2
import Logging
import NIOSSL
import ServiceLifecycle

/// Where a running simulator listens.
public struct SimulatorEndpoints: Sendable {
    /// `http://127.0.0.1:<port>`: webhooks and the control API (every route is also served over TLS).
    public var plain: String
    /// `https://127.0.0.1:<port>`: HTTP/2 (and HTTP/1.1) over TLS with the simulator's CA — the push APIs.
    public var tls: String
    /// `https://127.0.0.1:<port>`: the same over TLS that requires a client certificate of the simulator's CA (APNs
    /// certificate authentication).
    public var mutualTLS: String
    /// SMTP on `127.0.0.1`: `smtp` offers STARTTLS (submission, like port 587), `smtps` is TLS from the first byte
    /// (like port 465).
    public var smtpPort: Int
    public var smtpsPort: Int
}

/// The provider emulators (`docs/providers.md` §Emulators), served on two listeners: plain HTTP (webhooks, control API)
/// and TLS with ALPN `h2`/`http/1.1` (the push services; APNs requires HTTP/2). Tests, benchmarks, the crash test and
/// `herald dev` run it on `127.0.0.1` and ephemeral ports.
public struct Simulator: Sendable {
    public let webhooks: WebhookEmulator
    public let push: PushEmulator
    public let chat: ChatEmulator
    public let sms: SMSEmulator
    public let email: EmailEmulator
    public let smtp: SMTPEmulator
    public let identity: TLSIdentity

    public init(
        webhooks: WebhookEmulator = WebhookEmulator(), push: PushEmulator = PushEmulator(), chat: ChatEmulator = ChatEmulator(),
        sms: SMSEmulator = SMSEmulator(), email: EmailEmulator = EmailEmulator(), smtp: SMTPEmulator = SMTPEmulator(),
        devAccounts: Bool = true
    ) throws {
        self.sms = sms
        self.smtp = smtp
        self.email = email
        self.webhooks = webhooks
        self.push = push
        self.chat = chat
        self.identity = try TLSIdentity()
        if devAccounts {
            DevAccounts.register(on: push)
            chat.registerTelegramBot(token: DevAccounts.telegramBotToken)
            sms.registerTwilioAccount(sid: DevAccounts.twilioAccountSid, token: DevAccounts.twilioToken)
            sms.registerVonageAccount(key: DevAccounts.vonageKey, secret: DevAccounts.vonageSecret)
            for (provider, key) in DevAccounts.emailKeys { email.registerKey(provider: provider, key: key) }
            email.registerMailgunDomain(DevAccounts.mailgunDomain)
            smtp.registerAccount(user: DevAccounts.smtpUser, password: DevAccounts.smtpPassword)
        }
    }

    func router() -> Router<SimulatorContext> {
        let router = Router(context: SimulatorContext.self)
        webhooks.register(on: router)
        push.register(on: router)
        chat.register(on: router)
        sms.register(on: router)
        email.register(on: router)
        smtp.register(on: router)
        router.get("/_control/health") { _, _ in "ok" }
        // Where an email provider's webhook events go, and their secret (herald dev's loop; ReceiptPoster).
        router.post("/_control/receipts") { request, _ -> HTTPResponse.Status in
            guard case .object(let body)? = try? JSONValue.parse(bytes: try await PushEmulator.body(request)),
                let provider = body["provider"]?.stringValue, let url = body["url"]?.stringValue, let secret = body["secret"]?.stringValue
            else { return .badRequest }
            self.email.receipts.configure(provider: provider, url: url, secret: secret)
            return .noContent
        }
        // A hostile endpoint for the SSRF tests: answers every call with a redirect to `?to=`.
        router.post("/redirect") { request, _ -> Response in
            let target: String = request.uri.queryParameters.get("to").map { String($0) } ?? "http://169.254.169.254/"
            return Response(status: .found, headers: [.location: target])
        }
        return router
    }

    /// The plain-HTTP application; `onRunning` receives the bound port.
    public func application(
        host: String = "127.0.0.1", port: Int = 0, logger: Logger, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        Application(
            router: router(), configuration: .init(address: .hostname(host, port: port), serverName: "HeraldSimulator"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) }, logger: logger)
    }

    /// The TLS application (HTTP/2 with HTTP/1.1 fallback); `mutual` requires client certificates.
    public func tlsApplication(
        host: String = "127.0.0.1", port: Int = 0, mutual: Bool = false, logger: Logger,
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) throws -> some ApplicationProtocol {
        Application(
            router: router(),
            server: try .http2Upgrade(tlsConfiguration: mutual ? identity.mutualServerConfiguration : identity.serverConfiguration),
            configuration: .init(address: .hostname(host, port: port), serverName: "HeraldSimulator"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) }, logger: logger)
    }

    /// Runs every listener until cancelled; `onRunning` receives the endpoints once both are bound.
    public func run(
        host: String = "127.0.0.1", port: Int = 0, tlsPort: Int = 0, logger: Logger,
        onRunning: @escaping @Sendable (SimulatorEndpoints) async -> Void
    ) async throws {
        let ports = AsyncStream<(Int, Int)>.makeStream()
        let plain = application(host: host, port: port, logger: logger) { ports.continuation.yield((0, $0)) }
        let secure = try tlsApplication(host: host, port: tlsPort, logger: logger) { ports.continuation.yield((1, $0)) }
        let mutual = try tlsApplication(host: host, port: 0, mutual: true, logger: logger) { ports.continuation.yield((2, $0)) }
        let submission = try smtp.listener(identity: identity, host: host, implicitTLS: false) { ports.continuation.yield((3, $0)) }
        let implicitTLS = try smtp.listener(identity: identity, host: host, implicitTLS: true) { ports.continuation.yield((4, $0)) }
        let group = ServiceGroup(
            configuration: .init(
                services: [plain, secure, mutual, submission, implicitTLS], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            tasks.addTask {
                var bound: [Int: Int] = [:]
                for await (listener, port) in ports.stream {
                    bound[listener] = port
                    if let plainPort = bound[0], let tlsPort = bound[1], let mutualPort = bound[2], let smtpPort = bound[3],
                        let smtpsPort = bound[4]
                    {
                        await onRunning(
                            SimulatorEndpoints(
                                plain: "http://\(host):\(plainPort)", tls: "https://\(host):\(tlsPort)",
                                mutualTLS: "https://\(host):\(mutualPort)", smtpPort: smtpPort, smtpsPort: smtpsPort))
                        break
                    }
                }
            }
            try await tasks.waitForAll()
        }
    }

    /// Runs the simulator around `body` and stops it afterwards.
    public func withRunning<T: Sendable>(
        logger: Logger, _ body: @escaping @Sendable (SimulatorEndpoints) async throws -> T
    ) async throws -> T {
        let ready = AsyncStream<SimulatorEndpoints>.makeStream()
        let server = Task { try await run(logger: logger) { ready.continuation.yield($0) } }
        defer { server.cancel() }
        var iterator = ready.stream.makeAsyncIterator()
        guard let endpoints = await iterator.next() else { throw HeraldError(.unavailable, "simulator did not start") }
        let result = try await body(endpoints)
        server.cancel()
        _ = try? await server.value
        return result
    }
}
