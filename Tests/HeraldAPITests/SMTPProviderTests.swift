import Foundation
import HeraldCore
import HeraldEngine
import HeraldSimulator
import HeraldStore
import HeraldTestSupport
import Testing

/// `nodemailer` end to end: the engine's email step → Herald's SMTP client on SwiftNIO → the simulator's SMTP server,
/// over STARTTLS or implicit TLS with the simulator's CA, with AUTH, and the received MIME parsed independently.
@Suite("SMTP (nodemailer) end to end")
struct SMTPProviderTests {
    static let workflow = """
        workflow: welcome
        name: Welcome
        steps:
          - id: email
            type: email
            subject: "Bienvenue, {{subscriber.firstName}} — votre compte est prêt"
            body: |
              <p>Hello {{subscriber.firstName}} &amp; welcome.</p>
              .a line that starts with a dot
              <p>{{payload.long}}</p>
            text: |
              Hello {{subscriber.firstName}} & welcome.
              .a line that starts with a dot
              {{payload.long}}
        """

    static let long = String(repeating: "Zürich = ok; ", count: 20)

    @discardableResult
    static func integration(
        _ herald: EngineHarness, identifier: String = "smtp", implicitTLS: Bool = false, password: String = DevAccounts.smtpPassword,
        extra: [String: JSONValue] = [:], primary: Bool = true
    ) async throws -> String {
        var credentials: [String: JSONValue] = [
            "host": "127.0.0.1", "port": .number(Double(implicitTLS ? herald.smtpsPort : herald.smtpPort)), "secure": .bool(implicitTLS),
            "user": .string(DevAccounts.smtpUser), "password": .string(password), "from": "hello@herald.local",
            "senderName": "Herald Équipe",
        ]
        for (key, value) in extra { credentials[key] = value }
        return try await herald.integration(
            "nodemailer", channel: "email", identifier: identifier, credentials: .object(credentials), primary: primary)
    }

    static func deliveries(_ herald: EngineHarness, _ statuses: [DeliveryStatus]) async throws -> [DeliveryRecord] {
        try await herald.store.read {
            try await $0.listDeliveries(
                environmentId: herald.environment.id, statuses: statuses, providerId: "nodemailer", after: nil, limit: 50)
        }.items
    }

    @Test(
        "STARTTLS + AUTH, pipelined envelope, MIME checked header by header and part by part, connections reused",
        arguments: Backend.available)
    func startTLSDelivery(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: [Self.workflow]) { herald in
            try await Self.integration(herald)
            let smtp = herald.smtp
            let names = ["Ann", "Bob", "Cléo"]
            try await herald.trigger([
                "name": "welcome", "payload": ["long": .string(Self.long)],
                "to": .array(
                    names.enumerated().map { index, name in
                        ["subscriberId": .string("s\(index)"), "firstName": .string(name), "email": .string("user\(index)@example.com")]
                    }),
            ])
            try await herald.eventually("three messages") { smtp.messages().count == 3 }
            try await herald.settle()
            for (index, name) in names.enumerated() {
                let record = try #require(smtp.messages().first { $0.recipients == ["user\(index)@example.com"] })
                #expect(record.envelopeFrom == "hello@herald.local" && record.encrypted && record.user == DevAccounts.smtpUser)
                #expect(record.pipelined, "the server offers PIPELINING: MAIL, RCPT and DATA go in one write")
                #expect(record.declaredSize == record.raw.count, "SIZE= is the exact message size")
                #expect(record.reply.hasPrefix("250 "))
                let mail = record.mail
                #expect(mail.violations.isEmpty, "\(mail.violations)")
                #expect(mail.header("Subject") == "Bienvenue, \(name) — votre compte est prêt")
                #expect(mail.rawHeader("Subject")?.hasPrefix("=?UTF-8?B?") == true, "non-ASCII header text is RFC 2047 encoded")
                #expect(mail.header("From") == "Herald Équipe <hello@herald.local>")
                #expect(mail.header("To") == "<user\(index)@example.com>")
                #expect(mail.header("MIME-Version") == "1.0")
                #expect(mail.header("Content-Type")?.hasPrefix("multipart/alternative; boundary=") == true)
                #expect(mail.header("Date")?.hasSuffix("+0000") == true)
                #expect(mail.header("Message-ID")?.hasSuffix("@herald.local>") == true)
                #expect(mail.parts.map(\.contentType) == ["text/plain", "text/html"])
                #expect(mail.parts.allSatisfy { $0.charset == "utf-8" && $0.transferEncoding == "quoted-printable" })
                // Line breaks arrive as CRLF; the trailing space of `long` before a line break survives (encoded `=20`).
                #expect(
                    mail.text?.trimmingCharacters(in: .newlines)
                        == "Hello \(name) & welcome.\r\n.a line that starts with a dot\r\n\(Self.long)")
                #expect(
                    mail.html?.trimmingCharacters(in: .newlines)
                        == "<p>Hello \(name) &amp; welcome.</p>\r\n.a line that starts with a dot\r\n<p>\(Self.long)</p>")
            }
            let delivered = try await Self.deliveries(herald, [.delivered])
            #expect(delivered.count == 3 && delivered.allSatisfy { $0.providerMessageId?.isEmpty == false })
            let messageIds = Set(smtp.messages().compactMap { $0.mail.header("Message-ID") })
            #expect(messageIds == Set(delivered.map { "<\($0.id)@herald.local>" }), "Message-ID carries the delivery id")

            // Later messages ride the pooled connections: no new connection is opened.
            let connections = smtp.connectionCount
            for index in 3..<6 {
                try await herald.trigger([
                    "name": "welcome", "payload": ["long": "x"],
                    "to": ["subscriberId": .string("s\(index)"), "firstName": "Dee", "email": .string("user\(index)@example.com")],
                ])
                try await herald.eventually("message \(index)") { smtp.messages().count == index + 1 }
            }
            #expect(smtp.connectionCount == connections, "pooled connections reused")
            #expect(smtp.messages().contains { $0.sequence > 1 })
        }
    }

    @Test(
        "implicit TLS (465) with a server offering only AUTH LOGIN; a missing text part is derived from the HTML",
        arguments: Backend.available)
    func implicitTLS(_ backend: Backend) async throws {
        let workflow = """
            workflow: receipt
            name: Receipt
            steps:
              - id: email
                type: email
                subject: "Receipt"
                body: "<h1>Thanks</h1><p>Total: <b>42&nbsp;€</b><br>See <a href=\\"https://example.com/r\\">your receipt</a></p>"
            """
        try await withEngine(backend, workflows: [workflow]) { herald in
            herald.smtp.offerMechanisms(["LOGIN"])
            try await Self.integration(herald, implicitTLS: true)
            try await herald.trigger(["name": "receipt", "to": ["subscriberId": "r", "email": "r@example.com"]])
            try await herald.eventually("the receipt") { herald.smtp.messages().count == 1 }
            let record = try #require(herald.smtp.messages().first)
            // The user is recorded only after a successful AUTH, and only LOGIN was offered.
            #expect(record.encrypted && record.user == DevAccounts.smtpUser && record.mail.violations.isEmpty)
            #expect(record.mail.text == "Thanks\r\nTotal: 42 €\r\nSee your receipt (https://example.com/r)")
            #expect(record.mail.html?.contains("<h1>Thanks</h1>") == true)
        }
    }

    @Test(
        "reply classes: 5.1.1 marks the address, 4xx and a lost connection retry, 5.7.1 content refusal fails, bad credentials fail over",
        arguments: Backend.available)
    func errorClasses(_ backend: Backend) async throws {
        try await withEngine(
            backend, workflows: [Self.workflow],
            configure: {
                $0.retryPolicy.base = .milliseconds(10)
                $0.retryPolicy.maximumAttempts = 4
            }
        ) { herald in
            try await Self.integration(herald)
            try await EmailProviderTests.integration(herald, "resend")
            let smtp = herald.smtp
            smtp.addFault(
                SMTPFault(
                    stage: .rcpt, to: "gone@example.com", reply: "550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown"))
            smtp.addFault(SMTPFault(stage: .rcpt, to: "busy@example.com", reply: "452 4.2.2 Mailbox full, try later", times: 1))
            smtp.addFault(SMTPFault(stage: .data, to: "spam@example.com", reply: "554 5.7.1 Message rejected as spam"))
            smtp.addFault(SMTPFault(stage: .disconnect, to: "cut@example.com", times: 1))
            let addresses = ["gone", "busy", "spam", "cut", "fine"]
            try await herald.trigger([
                "name": "welcome", "payload": ["long": "x"],
                "to": .array(addresses.map { ["subscriberId": .string($0), "firstName": "X", "email": .string("\($0)@example.com")] }),
            ])
            try await herald.eventually("every delivery final") {
                let open = try await Self.deliveries(herald, [.pending, .retrying])
                let final = try await Self.deliveries(herald, [.delivered, .invalid, .failed, .dead])
                return open.isEmpty && final.count == 5
            }
            func status(_ address: String) async throws -> DeliveryRecord? {
                try await Self.deliveries(herald, DeliveryStatus.allCases).first { $0.target.revealed == "\(address)@example.com" }
            }
            let gone = try #require(try await status("gone"))
            #expect(gone.status == .invalid && gone.errorCode == "invalid_address" && gone.attempts == 1)
            let busy = try #require(try await status("busy"))
            #expect(busy.status == .delivered && busy.attempts == 2)
            let spam = try #require(try await status("spam"))
            #expect(spam.status == .failed && spam.attempts == 1 && spam.errorText?.contains("5.7.1") == true)
            let cut = try #require(try await status("cut"))
            #expect(cut.status == .delivered && cut.attempts == 2)
            // The cut message reached the server twice with one Message-ID: a bounded, recognisable duplicate.
            let cutCopies = smtp.messages().filter { $0.recipients == ["cut@example.com"] }
            #expect(cutCopies.count == 2 && Set(cutCopies.compactMap { $0.mail.header("Message-ID") }).count == 1)
            #expect((try await status("fine"))?.status == .delivered)
            // An invalid address and a refused message do not fail over: the other email integration got nothing.
            #expect(herald.simulatorEmail.messages(provider: "resend").isEmpty)
        }
        try await withEngine(backend, workflows: [Self.workflow]) { herald in
            // Wrong password → 535 → authConfig → the next active email integration sends it.
            try await Self.integration(herald, password: "wrong")
            try await EmailProviderTests.integration(herald, "resend")
            try await herald.trigger([
                "name": "welcome", "payload": ["long": "x"], "to": ["subscriberId": "f", "firstName": "F", "email": "f@example.com"],
            ])
            try await herald.eventually("the failover") { herald.simulatorEmail.messages(provider: "resend").count == 1 }
            #expect(herald.smtp.messages().isEmpty)
            let failed = try await Self.deliveries(herald, [.failed])
            #expect(failed.first?.errorText?.contains("535 5.7.8") == true)
            #expect(failed.first?.errorText?.contains(DevAccounts.smtpPassword) == false)
        }
        try await withEngine(backend, workflows: [Self.workflow]) { herald in
            // ignoreTls would send AUTH in clear: this server (like Postfix with smtpd_tls_auth_only) offers no AUTH before
            // TLS, so the delivery fails as a configuration problem and nothing is sent.
            try await Self.integration(herald, extra: ["ignoreTls": true])
            try await herald.trigger([
                "name": "welcome", "payload": ["long": "x"], "to": ["subscriberId": "g", "firstName": "G", "email": "g@example.com"],
            ])
            try await herald.eventually("the refusal") { try await Self.deliveries(herald, [.failed]).count == 1 }
            let refused = try await Self.deliveries(herald, [.failed]).first?.errorText
            #expect(
                refused?.contains("no AUTH mechanism Herald speaks (PLAIN, LOGIN) on an unencrypted connection") == true, "\(refused ?? "")"
            )
            #expect(herald.smtp.messages().isEmpty)
        }
    }

    @Test("SMTP hosts pass the SSRF guard when stored", arguments: Backend.available)
    func hostGuard(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: []) { herald in
            for host in [
                "localhost", "10.0.0.5", "169.254.169.254", "0x7f.0.0.2", "[::ffff:127.0.0.2]", "smtp.example.com/x", "u@smtp.example.com",
            ] {
                let body: JSONValue = [
                    "providerId": "nodemailer", "channel": "email", "identifier": "bad", "name": "bad", "active": true,
                    "credentials": ["host": .string(host), "port": 587, "from": "a@example.com"],
                ]
                let response = try await herald.call(.post, "/v1/integrations", body.jsonString())
                #expect(response.status.code >= 400 && response.status.code < 500, "\(host)")
                #expect(String(buffer: response.body).contains("credentials.host"), "\(host): \(String(buffer: response.body))")
            }
        }
    }
}
