import ArgumentParser
import Foundation
import HeraldAPI
import HeraldCore
import HeraldProviders
import HeraldSimulator
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1

struct Dev: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run Herald with the provider simulator in one process, ready to trigger.",
        discussion: """
            Starts the simulator (every push emulator over HTTP/2 and TLS with its own CA, plus the webhook receivers),
            then Herald on SQLite (./herald-dev.sqlite unless --database or HERALD_DATABASE_URL says otherwise) with the
            example workflows. In the development environment it creates one integration of every push provider
            pointed at the simulator, one of every chat, SMS and email provider, and a subscriber `demo` with a device,
            chat address, email and phone on each; prints the API key and ready curl commands for `order-shipped`
            (push), `password-reset` (email and SMS) and `incident-alert` (chat), and then one line per message the
            simulator accepts and per step skipped for want of an active integration or by the subscriber's preferences.
            """
    )

    @Option(help: "HTTP port of Herald.") var port = 3000
    @Option(help: "Directory of workflow files.") var workflows = "./workflows"
    @Option(help: "The operator console at /console: on or off.") var console: ConsoleSwitch = .on
    @OptionGroup var options: DatabaseOptions

    static let defaultKey = "herald-dev-secret-key"

    func run() async throws {
        try await reportingErrors {
            let logger = try makeLogger(level: options.logLevel ?? "warning", devLines: true)
            let simulator = try Simulator()
            let caFile = FileManager.default.temporaryDirectory.appendingPathComponent("herald-dev-ca-\(getpid()).pem").path
            try simulator.identity.writeCA(to: caFile)
            defer { try? FileManager.default.removeItem(atPath: caFile) }
            let ready = AsyncStream<SimulatorEndpoints>.makeStream()
            let simulatorTask = Task { try await simulator.run(logger: logger) { ready.continuation.yield($0) } }
            defer { simulatorTask.cancel() }
            var iterator = ready.stream.makeAsyncIterator()
            guard let endpoints = await iterator.next() else { throw HeraldError(.unavailable, "the simulator did not start") }
            simulator.push.observe { record in
                guard (200..<300).contains(record.status) else { return }
                let target = record.target.count > 24 ? record.target.prefix(21) + "…" : Substring(record.target)
                Dev.arrival("push", record.provider, String(target), record.title ?? "")
            }
            simulator.chat.observe { Dev.arrival("chat", $0.provider, $0.target, $0.text) }
            simulator.sms.observe { Dev.arrival("sms", $0.provider, $0.to, $0.body) }
            simulator.email.observe { Dev.arrival("email", $0.provider, $0.to, $0.subject) }
            // The receipts the emulators post back (delivered, opened, a bounce for bounce@… or a number ending 0000).
            for receipts in [simulator.email.receipts, simulator.sms.receipts] {
                receipts.observe { provider, to, event, status in Dev.arrival("rcpt", provider, to, "\(event) → HTTP \(status)") }
            }
            simulator.smtp.observe { record in
                Dev.arrival("email", "smtp", record.recipients.joined(separator: ","), record.mail.header("Subject") ?? "")
            }

            var databaseOptions = options
            if databaseOptions.database == nil, ProcessInfo.processInfo.environment["HERALD_DATABASE_URL"] == nil {
                databaseOptions.database = "sqlite://./herald-dev.sqlite"
            }
            let store = try await databaseOptions.openStore(logger: logger)
            var configuration = ServerConfiguration()
            configuration.port = port
            configuration.workflowsDirectory = workflows
            configuration.api.console = console == .on
            // The retry budget as `serve` reads it, so a dead letter can be made in seconds (the browser test does).
            if let attempts = ProcessInfo.processInfo.environment["HERALD_RETRY_MAX_ATTEMPTS"].flatMap(Int.init), attempts >= 1 {
                configuration.engine.retryPolicy.maximumAttempts = attempts
            }
            configuration.initialAPIKey = ProcessInfo.processInfo.environment["HERALD_API_KEY"] ?? Self.defaultKey
            configuration.pollInterval = .milliseconds(50)
            // Unsubscribe links point at this server, so the dev loop shows them working end to end.
            if port != 0 { configuration.engine.publicURL = "http://127.0.0.1:\(port)" }
            // The emulators listen on loopback.
            configuration.allowPrivateNetwork = ["127.0.0.1", "::1"]
            let key = configuration.initialAPIKey!
            let policy = try OutboundURLPolicy(allowing: configuration.allowPrivateNetwork)
            let transport = HTTPTransport(caFile: caFile, policy: policy)
            let application = buildApplication(
                configuration: configuration, store: store,
                providers: StandardProviderFactory(transport: transport, clock: store.clock, publicURL: configuration.engine.publicURL),
                policy: policy,
                logger: logger,
                onServerRunning: { port in
                    // Set up once the server answers (this callback runs before it accepts connections).
                    Task {
                        do {
                            try await Dev.configure(
                                herald: "http://127.0.0.1:\(port)", key: key, simulator: simulator, endpoints: endpoints)
                        } catch {
                            Dev.write("herald dev: setting up the development environment failed: \(error)")
                        }
                    }
                })
            do {
                try await application.runService()
            } catch {
                await transport.shutdown()
                throw error
            }
            await transport.shutdown()
        }
    }

    /// Creates the integrations and the demo subscriber through Herald's own API (idempotent: a second start finds
    /// them), then prints how to use them.
    static func configure(herald: String, key: String, simulator: Simulator, endpoints: SimulatorEndpoints) async throws {
        // Herald's own API and the simulator's control routes, both on loopback.
        let client = HTTPTransport(policy: try OutboundURLPolicy(allowing: ["127.0.0.1", "::1"]))
        do {
            try await configure(client: client, herald: herald, key: key, simulator: simulator, endpoints: endpoints)
        } catch {
            await client.shutdown()
            throw error
        }
        await client.shutdown()
    }

    static func configure(
        client: HTTPTransport, herald: String, key: String, simulator: Simulator, endpoints: SimulatorEndpoints
    )
        async throws
    {
        @discardableResult
        func call(_ method: HTTPMethod, _ path: String, _ body: JSONValue? = nil) async throws -> (Int, JSONValue) {
            let response = try await client.send(
                method, herald + path, headers: [("authorization", "ApiKey \(key)"), ("content-type", "application/json")],
                body: body.map { ByteBuffer(string: $0.jsonString()) })
            return (response.status, (try? JSONValue.parse(response.text)) ?? .null)
        }
        let (_, existing) = try await call(.GET, "/v1/integrations")
        var ids: [String: String] = [:]
        for integration in existing.objectValue?["data"]?.arrayValue ?? [] {
            if let object = integration.objectValue, let identifier = object["identifier"]?.stringValue, let id = object["_id"]?.stringValue
            {
                ids[identifier] = id
            }
        }
        for (providerId, identifier, credentials) in DevAccounts.pushIntegrations(tlsBase: endpoints.tls) {
            if let id = ids[identifier] {
                // From an earlier run: point it at this run's simulator ports.
                try await call(.PUT, "/v1/integrations/\(id)", ["credentials": credentials, "active": true])
            } else {
                let body: JSONValue = [
                    "providerId": .string(providerId), "channel": "push", "identifier": .string(identifier), "name": .string(identifier),
                    "active": true, "credentials": credentials,
                ]
                try await call(.POST, "/v1/integrations", body)
            }
        }
        // One integration per chat and SMS provider, pointed at the simulator's emulators.
        let plain = endpoints.plain
        var others: [(String, String, String, JSONValue)] = [
            ("slack", "chat", "dev-slack", [:]), ("discord", "chat", "dev-discord", [:]), ("msteams", "chat", "dev-msteams", [:]),
            ("mattermost", "chat", "dev-mattermost", [:]),
            (
                "telegram", "chat", "dev-telegram",
                ["apiToken": .string(DevAccounts.telegramBotToken), "baseUrl": .string("\(plain)/telegram")]
            ),
            (
                "twilio", "sms", "dev-twilio",
                [
                    "accountSid": .string(DevAccounts.twilioAccountSid), "token": .string(DevAccounts.twilioToken), "from": "+15005550006",
                    "baseUrl": .string("\(plain)/twilio"),
                ]
            ),
            (
                "nexmo", "sms", "dev-vonage",
                [
                    "apiKey": .string(DevAccounts.vonageKey), "secretKey": .string(DevAccounts.vonageSecret), "from": "Herald",
                    "baseUrl": .string("\(plain)/vonage"),
                ]
            ),
        ]
        // SendGrid signs its events with the account's ECDSA key: a fresh pair each start, the public half for Herald.
        let sendGridKey = ReceiptPoster.sendGridKeyPair()
        var receiptSecrets = DevAccounts.receiptSecrets
        receiptSecrets["sendgrid"] = sendGridKey.secret
        for provider in ["sendgrid", "mailgun", "postmark", "resend"] {
            var credentials: [String: JSONValue] = [
                "apiKey": .string(DevAccounts.emailKeys[provider]!), "from": "hello@herald.local", "senderName": "Herald Dev",
                "baseUrl": .string("\(plain)/\(provider)"),
            ]
            if provider == "mailgun" { credentials["domain"] = .string(DevAccounts.mailgunDomain) }
            if let secret = DevAccounts.receiptSecrets[provider] { credentials["inboundWebhookSigningKey"] = .string(secret) }
            if provider == "sendgrid" {
                credentials["inboundWebhookSigningKey"] = .string(sendGridKey.verificationKey)
            }
            others.append((provider, "email", "dev-\(provider)", .object(credentials)))
        }
        others.append(
            (
                "nodemailer", "email", "dev-smtp",
                [
                    "host": "127.0.0.1", "port": .number(Double(endpoints.smtpPort)), "user": .string(DevAccounts.smtpUser),
                    "password": .string(DevAccounts.smtpPassword), "from": "hello@herald.local", "senderName": "Herald Dev",
                ]
            ))
        for (providerId, channel, identifier, credentials) in others {
            if let id = ids[identifier] {
                try await call(.PUT, "/v1/integrations/\(id)", ["credentials": credentials, "active": true])
            } else {
                let body: JSONValue = [
                    "providerId": .string(providerId), "channel": .string(channel), "identifier": .string(identifier),
                    "name": .string(identifier), "active": true, "credentials": credentials,
                ]
                let (_, created) = try await call(.POST, "/v1/integrations", body)
                if ["dev-twilio", "dev-smtp"].contains(identifier),
                    let id = created.objectValue?["data"]?.objectValue?["_id"]?.stringValue
                {
                    try await call(.POST, "/v1/integrations/\(id)/set-primary")
                }
            }
        }
        // Each email emulator posts its signed webhook events to Herald's receipt route of its integration.
        let (_, listed) = try await call(.GET, "/v1/integrations")
        for item in listed.objectValue?["data"]?.arrayValue ?? [] {
            guard let object = item.objectValue, let provider = object["providerId"]?.stringValue,
                let secret = receiptSecrets[provider], object["identifier"]?.stringValue == "dev-\(provider)",
                let id = object["_id"]?.stringValue, let environmentId = object["_environmentId"]?.stringValue
            else { continue }
            simulator.email.receipts.configure(
                provider: provider, url: "\(herald)/v2/inbound-webhooks/delivery-providers/\(environmentId)/\(id)", secret: secret)
        }
        try await call(
            .POST, "/v1/subscribers", ["subscriberId": "demo", "firstName": "Demo", "email": "demo@herald.local", "phone": "+15555550100"])
        let chatCredentials: [(String, JSONValue)] = [
            ("slack", ["webhookUrl": .string("\(plain)/slack/services/TDEV/BDEV/demo")]),
            ("discord", ["webhookUrl": .string("\(plain)/discord/api/webhooks/1/demo")]),
            ("msteams", ["webhookUrl": .string("\(plain)/teams/demo")]),
            ("mattermost", ["webhookUrl": .string("\(plain)/mattermost/hooks/demo")]), ("telegram", ["chatId": "1001"]),
        ]
        for (providerId, credentials) in chatCredentials {
            try await call(
                .PUT, "/v1/subscribers/demo/credentials",
                ["providerId": .string(providerId), "integrationIdentifier": .string("dev-\(providerId)"), "credentials": credentials])
        }
        let webPush = simulator.push.makeWebPushSubscription(
            baseURL: endpoints.tls, applicationServerKey: DevAccounts.vapidPublicKey, id: "demo-browser")
        let devices: [(String, String)] = [
            ("fcm", "fcm-demo-device"), ("apns", String(repeating: "d0", count: 32)), ("web-push", webPush),
            ("expo", "ExponentPushToken[demo]"), ("hms", "hms-demo-device"), ("one-signal", "8d5b2f8e-1c1d-4f51-9d2c-3b9f0d7c1e11"),
            ("pusher-beams", "demo"), ("pushpad", "demo"),
        ]
        for (providerId, token) in devices {
            try await call(
                .PUT, "/v1/subscribers/demo/credentials",
                [
                    "providerId": .string(providerId), "integrationIdentifier": .string("dev-\(providerId)"),
                    "credentials": ["deviceTokens": [.string(token)]],
                ])
        }
        write(
            """

            Herald dev is running.
              API         \(herald)   (Novu API under /v1, Centrifugo API under /api)
              API key     \(key)
              Console     \(herald)/console (sign in with the API key; off with --console off)
              Simulator   \(endpoints.plain) and \(endpoints.tls) (push emulators over HTTP/2 + TLS)
              SMTP        127.0.0.1:\(endpoints.smtpPort) (STARTTLS) and :\(endpoints.smtpsPort) (TLS), user \(DevAccounts.smtpUser)
              Workflows   \(ProcessInfo.processInfo.environment["HERALD_WORKFLOWS"] ?? "./workflows") (edit and save: reloaded)

            Integrations: the 8 push providers, Slack, Discord, Teams, Mattermost and Telegram (the demo subscriber's
            webhooks and chat id point at the simulator), Twilio (primary) and Vonage for SMS, SMTP (primary, the
            simulator's SMTP server over STARTTLS), SendGrid, Mailgun, Postmark and Resend for email.

            Try the example workflows on the demo subscriber:

            1. order-shipped: a push to each of the 8 devices (its SMS step runs only when no device got the push).

              curl -s -X POST \(herald)/v1/events/trigger \\
                -H 'Authorization: ApiKey \(key)' -H 'Content-Type: application/json' \\
                -d '{"name":"order-shipped","to":"demo","payload":{"orderId":"A-1001","eta":"2026-12-01T10:00:00Z"}}'

            2. password-reset: an email (SMTP, the primary) and an SMS (Twilio, the primary) at the same time.

              curl -s -X POST \(herald)/v1/events/trigger \\
                -H 'Authorization: ApiKey \(key)' -H 'Content-Type: application/json' \\
                -d '{"name":"password-reset","to":"demo","payload":{"resetUrl":"https://example.com/reset/abc","code":"123456"}}'

            3. incident-alert: a message on each of the 5 chat providers; its `log` step wants an `ops-log`
               integration, which does not exist, so it prints a `skip` line.

              curl -s -X POST \(herald)/v1/events/trigger \\
                -H 'Authorization: ApiKey \(key)' -H 'Content-Type: application/json' \\
                -d '{"name":"incident-alert","to":"demo","payload":{"service":"checkout","severity":"critical","summary":"p99 over 2 s"}}'

            Each push, chat message, SMS and email the simulator accepts is printed below, and each step skipped for want
            of an active integration. The activity: curl -s -H 'Authorization: ApiKey \(key)' \(herald)/v1/notifications

            """)
    }

    /// One line per message a simulator emulator accepted.
    static func arrival(_ channel: String, _ provider: String, _ target: String, _ title: String) {
        let shortTarget = target.count > 24 ? target.prefix(21) + "…" : Substring(target)
        write(
            "\(channel.padding(toLength: 5, withPad: " ", startingAt: 0)) \(provider.padding(toLength: 12, withPad: " ", startingAt: 0)) "
                + "\(shortTarget)  \"\(title.prefix(60))\"")
    }

    /// One line per step skipped because no integration of its channel is active (the engine's `warning`) or the
    /// subscriber's preferences turned it off (`info`).
    static func skipped(_ metadata: Logger.Metadata) {
        let channel = metadata["channel"].map { "\($0)" } ?? ""
        let step = "\(metadata["workflow"].map { "\($0)" } ?? "")/\(metadata["step"].map { "\($0)" } ?? "")"
        let reason = metadata["reason"].map { "\($0)" } ?? ""
        arrival(
            "skip", channel, step, reason == "preference_disabled" ? "turned off in the subscriber's preferences" : "no active integration")
    }

    static func write(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }
}
