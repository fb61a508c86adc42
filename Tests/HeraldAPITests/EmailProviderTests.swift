import Crypto
import Foundation
import HTTPTypes
import HeraldCore
import HeraldEngine
import HeraldProviders
import HeraldSimulator
import HeraldStore
import HeraldTestSupport
import HummingbirdTesting
import NIOCore
import Testing

/// SendGrid, Mailgun, Postmark and Resend end to end: the engine's email step → the real clients → the emulators.
@Suite("Email API providers end to end")
struct EmailProviderTests {
    static let workflow = """
        workflow: welcome
        name: Welcome
        steps:
          - id: email
            type: email
            subject: "Welcome, {{subscriber.firstName}}"
            body: "<p>Hello {{subscriber.firstName}}</p>"
            text: "Hello {{subscriber.firstName}}"
        """

    @discardableResult
    static func integration(_ herald: EngineHarness, _ provider: String, key: String? = nil, primary: Bool = false) async throws -> String {
        var credentials: [String: JSONValue] = [
            "apiKey": .string(key ?? DevAccounts.emailKeys[provider]!), "from": "hello@herald.local", "senderName": "Herald Team",
            "baseUrl": .string("\(herald.simulatorURL)/\(provider)"),
        ]
        if provider == "mailgun" { credentials["domain"] = .string(DevAccounts.mailgunDomain) }
        return try await herald.integration(
            provider, channel: "email", identifier: "mail-\(provider)", credentials: .object(credentials), primary: primary)
    }

    @Test("each API receives subject, both parts and the sender; Postmark's inactive recipient is final", arguments: Backend.available)
    func everyProvider(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: [Self.workflow]) { herald in
            let email = herald.simulatorEmail
            for (index, provider) in ["sendgrid", "mailgun", "postmark", "resend"].enumerated() {
                let id = try await Self.integration(herald, provider)
                _ = try await herald.call(.post, "/v1/integrations/\(id)/set-primary")
                try await herald.trigger([
                    "name": "welcome",
                    "to": ["subscriberId": .string("u\(index)"), "firstName": "Ann", "email": .string("ann\(index)@example.com")],
                ])
                try await herald.settle()
                let record = try #require(email.messages(provider: provider).first, "\(provider)")
                #expect(record.to == "ann\(index)@example.com" && record.subject == "Welcome, Ann", "\(provider)")
                #expect(record.html == "<p>Hello Ann</p>" && record.text == "Hello Ann", "\(provider)")
                #expect(
                    record.from == (provider == "sendgrid" ? "hello@herald.local" : "Herald Team <hello@herald.local>"),
                    "\(provider): \(record.from)")
            }
            #expect(
                email.messages(provider: "sendgrid").first?.request.objectValue?["from"] == [
                    "email": "hello@herald.local", "name": "Herald Team",
                ])
            // Postmark is primary now: a suppressed recipient ends the delivery as invalid, without retry or failover.
            herald.simulatorEmail.addFault(
                EmailFault(
                    provider: "postmark", to: "gone@example.com", status: 422,
                    body: #"{"ErrorCode":406,"Message":"You tried to send to recipient(s) that have been marked as inactive."}"#))
            let postmark = try await herald.store.read { try await $0.integrations(environmentId: herald.environment.id, channel: .email) }
                .first { $0.providerId == "postmark" }!
            _ = try await herald.call(.post, "/v1/integrations/\(postmark.id)/set-primary")
            try await herald.trigger(["name": "welcome", "to": ["subscriberId": "gone", "firstName": "G", "email": "gone@example.com"]])
            try await herald.settle()
            #expect(email.messages().filter { $0.to == "gone@example.com" }.map(\.provider) == ["postmark"])
            let invalid = try await herald.store.read {
                try await $0.listDeliveries(
                    environmentId: herald.environment.id, statuses: [.invalid], providerId: "postmark", after: nil, limit: 5)
            }
            #expect(invalid.items.first?.errorCode == "invalid_address")
        }
    }

    @Test("RFC 8058 headers reach each API in its own custom-header field", arguments: Backend.available)
    func unsubscribeHeaders(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: [Self.workflow], configure: { $0.publicURL = "https://herald.example.com" }) { herald in
            let email = herald.simulatorEmail
            for (index, provider) in ["sendgrid", "mailgun", "postmark", "resend"].enumerated() {
                let id = try await Self.integration(herald, provider)
                _ = try await herald.call(.post, "/v1/integrations/\(id)/set-primary")
                try await herald.trigger([
                    "name": "welcome", "to": ["subscriberId": .string("u\(index)"), "email": .string("u\(index)@example.com")],
                ])
                try await herald.settle()
                let request = try #require(email.messages(provider: provider).first?.request.objectValue, "\(provider)")
                let fields: [String: String]
                switch provider {
                case "mailgun":
                    fields = request.filter { $0.key.hasPrefix("h:") }.compactMapValues(\.stringValue)
                        .reduce(into: [:]) { $0[String($1.key.dropFirst(2))] = $1.value }
                case "postmark":
                    fields = (request["Headers"]?.arrayValue ?? []).reduce(into: [:]) { result, header in
                        if let name = header.objectValue?["Name"]?.stringValue { result[name] = header.objectValue?["Value"]?.stringValue }
                    }
                default:
                    fields = request["headers"]?.objectValue?.compactMapValues(\.stringValue) ?? [:]
                }
                #expect(fields["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click", "\(provider): \(request)")
                #expect(fields["List-Unsubscribe"]?.hasPrefix("<https://herald.example.com/v1/unsubscribe/") == true, "\(provider)")
                #expect(fields["List-Unsubscribe"]?.hasSuffix(">") == true, "\(provider)")
            }
        }
    }

    @Test(
        "SendGrid receipts: signed events find their delivery through herald_delivery; a bounce fails it and suppresses the address, opens and clicks are reported; forged or stale ones change nothing",
        arguments: Backend.available)
    func sendGridReceipts(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: [Self.workflow]) { herald in
            let signing = P256.Signing.PrivateKey()
            let integrationId = try await herald.integration(
                "sendgrid", channel: "email", identifier: "mail-sendgrid",
                credentials: [
                    "apiKey": .string(DevAccounts.emailKeys["sendgrid"]!), "from": "hello@herald.local",
                    "baseUrl": .string("\(herald.simulatorURL)/sendgrid"),
                    "inboundWebhookSigningKey": .string(signing.publicKey.derRepresentation.base64EncodedString()),
                ], primary: true)
            let endpoint = try await herald.call(
                .post, "/v1/webhooks", #"{"url":"\#(herald.simulatorURL)/hooks/status","eventTypes":["message.*"]}"#)
            #expect(endpoint.status == .created)
            try await herald.trigger([
                "name": "welcome",
                "to": [
                    ["subscriberId": "ann", "email": "Ann@Example.com", "firstName": "Ann"],
                    ["subscriberId": "bob", "email": "bob@example.com"],
                ],
            ])
            try await herald.eventually("both at SendGrid") { herald.simulatorEmail.messages(provider: "sendgrid").count == 2 }
            try await herald.settle()
            let requests = herald.simulatorEmail.messages(provider: "sendgrid").map(\.request)
            let ids = requests.compactMap { $0.objectValue?["custom_args"]?.objectValue?["herald_delivery"]?.stringValue }
            #expect(ids.count == 2, "each message names its delivery in custom_args")
            let deliveries = try await herald.store.read { try await $0.deliveries(ids: ids) }
            let ann = try #require(deliveries.first { $0.target.revealed == "Ann@Example.com" })
            let bob = try #require(deliveries.first { $0.target.revealed == "bob@example.com" })
            let path = "/v2/inbound-webhooks/delivery-providers/\(herald.environment.id)/\(integrationId)"
            func post(_ events: JSONValue, timestamp: Date = Date(), key: P256.Signing.PrivateKey? = nil) async throws -> TestResponse {
                let body = Array(events.jsonString().utf8)
                let stamp = String(Int(timestamp.timeIntervalSince1970))
                let signature = try (key ?? signing).signature(for: Array(stamp.utf8) + body).derRepresentation.base64EncodedString()
                return try await herald.client.execute(
                    uri: path, method: .post,
                    headers: [
                        .contentType: "application/json", HTTPField.Name("X-Twilio-Email-Event-Webhook-Signature")!: signature,
                        HTTPField.Name("X-Twilio-Email-Event-Webhook-Timestamp")!: stamp,
                    ], body: ByteBuffer(bytes: body))
            }
            let events: JSONValue = [
                ["event": "processed", "herald_delivery": .string(ann.id), "email": "ann@example.com"],
                ["event": "delivered", "herald_delivery": .string(ann.id), "email": "ann@example.com", "response": "250 OK"],
                ["event": "open", "herald_delivery": .string(ann.id)],
                ["event": "click", "herald_delivery": .string(ann.id), "url": "https://example.com/track"],
                [
                    "event": "bounce", "type": "bounce", "herald_delivery": .string(bob.id), "reason": "550 5.1.1 unknown user",
                    "status": "5.1.1",
                ],
                ["event": "delivered", "herald_delivery": "000000000000000000000000"],
            ]
            #expect(try await post(events, key: P256.Signing.PrivateKey()).status == .unauthorized, "another key's signature")
            #expect(try await post(events, timestamp: Date().addingTimeInterval(-3 * 86400)).status == .unauthorized, "stale")
            #expect(try await herald.store.read { try await $0.deliveries(ids: [bob.id]) }.first?.status == .delivered)
            let accepted = try await post(events)
            #expect(accepted.status == .ok)
            #expect(try accepted.json().arrayItems.count == 4, "delivered, open, click and bounce applied; processed and unknown ignored")
            try await herald.eventually("the receipts' status events") {
                Set(herald.emulator.requests(hook: "status").compactMap { $0.body.objectValue?["type"]?.stringValue }).isSuperset(
                    of: ["message.delivered", "message.opened", "message.clicked", "message.bounced"])
            }
            let clicked = herald.emulator.requests(hook: "status").first { $0.body.objectValue?["type"] == "message.clicked" }
            #expect(clicked?.body.objectValue?["data"]?.objectValue?["url"] == "https://example.com/track")
            #expect(try await herald.store.read { try await $0.deliveries(ids: [bob.id]) }.first?.status == .failed)
            let suppressed = try await herald.call(.get, "/v1/suppressions?channel=email").json()
            #expect(
                suppressed.objectValue?["data"]?.arrayItems.compactMap { $0.objectValue?["address"]?.stringValue } == ["bob@example.com"])
            // The suppressed address is skipped next time; Ann (delivered, opened) is not suppressed.
            try await herald.trigger(["name": "welcome", "to": ["ann", "bob"], "transactionId": "after-bounce"])
            try await herald.settle()
            #expect(herald.simulatorEmail.messages(provider: "sendgrid").count == 3)
        }
    }

    @Test(
        "Mailgun receipts: a signed permanent failure bounces and suppresses, a complaint suppresses, a forged or stale one changes nothing",
        arguments: Backend.available)
    func mailgunReceipts(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: [Self.workflow]) { herald in
            let integrationId = try await herald.integration(
                "mailgun", channel: "email", identifier: "mail-mailgun",
                credentials: [
                    "apiKey": .string(DevAccounts.emailKeys["mailgun"]!), "from": "hello@herald.local",
                    "domain": .string(DevAccounts.mailgunDomain), "baseUrl": .string("\(herald.simulatorURL)/mailgun"),
                    "inboundWebhookSigningKey": "mailgun-signing-key",
                ], primary: true)
            try await herald.trigger([
                "name": "welcome",
                "to": [["subscriberId": "ann", "email": "ann@example.com"], ["subscriberId": "bob", "email": "bob@example.com"]],
            ])
            try await herald.eventually("both at Mailgun") { herald.simulatorEmail.messages(provider: "mailgun").count == 2 }
            try await herald.settle()
            let records = herald.simulatorEmail.messages(provider: "mailgun")
            let ann = try #require(records.first { $0.to == "ann@example.com" }?.request.objectValue?["v:herald_delivery"]?.stringValue)
            let bob = try #require(records.first { $0.to == "bob@example.com" }?.request.objectValue?["v:herald_delivery"]?.stringValue)
            func post(
                _ event: JSONValue, key: String = "mailgun-signing-key", timestamp: Date = Date()
            ) async throws -> TestResponse {
                let stamp = String(Int(timestamp.timeIntervalSince1970))
                let token = UUID().uuidString.replacingOccurrences(of: "-", with: "")
                let body: JSONValue = [
                    "signature": [
                        "timestamp": .string(stamp), "token": .string(token),
                        "signature": .string(MailgunSignature.compute(signingKey: key, timestamp: stamp, token: token)),
                    ],
                    "event-data": event,
                ]
                return try await herald.client.execute(
                    uri: "/v2/inbound-webhooks/delivery-providers/\(herald.environment.id)/\(integrationId)", method: .post,
                    headers: [.contentType: "application/json"], body: ByteBuffer(string: body.jsonString()))
            }
            let bounce: JSONValue = [
                "event": "failed", "severity": "permanent", "reason": "bounce", "user-variables": ["herald_delivery": .string(bob)],
                "delivery-status": ["code": 550, "message": "5.1.1 mailbox unavailable"],
            ]
            #expect(try await post(bounce, key: "wrong-key").status == .unauthorized)
            #expect(try await post(bounce, timestamp: Date().addingTimeInterval(-86400)).status == .unauthorized)
            #expect(try await herald.store.read { try await $0.deliveries(ids: [bob]) }.first?.status == .delivered)
            #expect(try await post(bounce).status == .ok)
            #expect(try await post(["event": "complained", "user-variables": ["herald_delivery": .string(ann)]]).status == .ok)
            #expect(
                try await post(["event": "failed", "severity": "temporary", "user-variables": ["herald_delivery": .string(ann)]]).status
                    == .ok)
            #expect(try await herald.store.read { try await $0.deliveries(ids: [bob]) }.first?.status == .failed)
            #expect(try await herald.store.read { try await $0.deliveries(ids: [ann]) }.first?.status == .delivered)
            let suppressed = try await herald.call(.get, "/v1/suppressions?channel=email").json()
            #expect(
                Set(suppressed.objectValue?["data"]?.arrayItems.compactMap { $0.objectValue?["address"]?.stringValue } ?? [])
                    == ["ann@example.com", "bob@example.com"])
        }
    }

    @Test(
        "Postmark receipts: records with the webhook's basic-auth secret find their delivery through Metadata; a hard bounce suppresses; without the secret nothing changes",
        arguments: Backend.available)
    func postmarkReceipts(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: [Self.workflow]) { herald in
            let integrationId = try await herald.integration(
                "postmark", channel: "email", identifier: "mail-postmark",
                credentials: [
                    "apiKey": .string(DevAccounts.emailKeys["postmark"]!), "from": "hello@herald.local",
                    "baseUrl": .string("\(herald.simulatorURL)/postmark"), "inboundWebhookSigningKey": "herald:s3cret-pass",
                ], primary: true)
            try await herald.trigger(["name": "welcome", "to": [["subscriberId": "bob", "email": "bob@example.com"]]])
            try await herald.eventually("at Postmark") { herald.simulatorEmail.messages(provider: "postmark").count == 1 }
            try await herald.settle()
            let request = try #require(herald.simulatorEmail.messages(provider: "postmark").first?.request)
            let bob = try #require(request.objectValue?["Metadata"]?.objectValue?["herald_delivery"]?.stringValue)
            func post(_ record: JSONValue, authorization: String?) async throws -> TestResponse {
                var headers: HTTPFields = [.contentType: "application/json"]
                if let authorization { headers[.authorization] = authorization }
                return try await herald.client.execute(
                    uri: "/v2/inbound-webhooks/delivery-providers/\(herald.environment.id)/\(integrationId)", method: .post,
                    headers: headers, body: ByteBuffer(string: record.jsonString()))
            }
            let basic = "Basic " + Data("herald:s3cret-pass".utf8).base64EncodedString()
            let bounce: JSONValue = [
                "RecordType": "Bounce", "Type": "HardBounce", "TypeCode": 1, "Email": "bob@example.com",
                "Description": "The server was unable to deliver your message", "Metadata": ["herald_delivery": .string(bob)],
            ]
            #expect(try await post(bounce, authorization: nil).status == .unauthorized)
            #expect(
                try await post(bounce, authorization: "Basic " + Data("herald:guess".utf8).base64EncodedString()).status == .unauthorized)
            #expect(try await herald.store.read { try await $0.deliveries(ids: [bob]) }.first?.status == .delivered)
            #expect(try await post(bounce, authorization: basic).status == .ok)
            #expect(try await herald.store.read { try await $0.deliveries(ids: [bob]) }.first?.status == .failed)
            let suppressed = try await herald.call(.get, "/v1/suppressions?channel=email").json()
            #expect(
                suppressed.objectValue?["data"]?.arrayItems.compactMap { $0.objectValue?["address"]?.stringValue } == ["bob@example.com"])
        }
    }

    @Test(
        "Resend receipts: Svix-signed events find their delivery through the herald_delivery tag and its email id; a bounce suppresses; a bad or stale signature changes nothing",
        arguments: Backend.available)
    func resendReceipts(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: [Self.workflow]) { herald in
            let secret = "whsec_" + Data((0..<24).map { UInt8($0) }).base64EncodedString()
            let integrationId = try await herald.integration(
                "resend", channel: "email", identifier: "mail-resend",
                credentials: [
                    "apiKey": .string(DevAccounts.emailKeys["resend"]!), "from": "hello@herald.local",
                    "baseUrl": .string("\(herald.simulatorURL)/resend"), "inboundWebhookSigningKey": .string(secret),
                ], primary: true)
            try await herald.trigger(["name": "welcome", "to": [["subscriberId": "rae", "email": "rae@example.com"]]])
            try await herald.eventually("at Resend") { herald.simulatorEmail.messages(provider: "resend").count == 1 }
            try await herald.settle()
            let request = try #require(herald.simulatorEmail.messages(provider: "resend").first?.request)
            let tag = request.objectValue?["tags"]?.arrayItems.first?.objectValue
            #expect(tag?["name"] == "herald_delivery")
            let deliveryId = try #require(tag?["value"]?.stringValue)
            let emailId = try #require(try await herald.store.read { try await $0.deliveries(ids: [deliveryId]) }.first?.providerMessageId)
            func post(_ event: JSONValue, secret: String, age: TimeInterval = 0) async throws -> TestResponse {
                let body = Array(event.jsonString().utf8)
                let timestamp = Int64(Date().timeIntervalSince1970 - age)
                let id = "msg_\(UUID().uuidString)"
                let headers: HTTPFields = [
                    .contentType: "application/json", HTTPField.Name("svix-id")!: id, HTTPField.Name("svix-timestamp")!: "\(timestamp)",
                    HTTPField.Name("svix-signature")!: "v1,bogus "
                        + WebhookSigner.signature(secret: secret, id: id, timestamp: timestamp, body: body),
                ]
                return try await herald.client.execute(
                    uri: "/v2/inbound-webhooks/delivery-providers/\(herald.environment.id)/\(integrationId)", method: .post,
                    headers: headers, body: ByteBuffer(bytes: body))
            }
            func event(_ type: String, emailId: String, extra: [String: JSONValue] = [:]) -> JSONValue {
                var data: [String: JSONValue] = [
                    "email_id": .string(emailId), "to": ["rae@example.com"], "tags": ["herald_delivery": .string(deliveryId)],
                ]
                data.merge(extra, uniquingKeysWith: { $1 })
                return ["type": .string(type), "created_at": "2026-12-05T00:00:00Z", "data": .object(data)]
            }
            let bounce = event(
                "email.bounced", emailId: emailId,
                extra: ["bounce": ["type": "Permanent", "subType": "General", "message": "mailbox does not exist"]])
            let other = "whsec_" + Data((0..<24).map { UInt8(255 - $0) }).base64EncodedString()
            #expect(try await post(bounce, secret: other).status == .unauthorized)
            #expect(try await post(bounce, secret: secret, age: 600).status == .unauthorized)
            // A receipt naming another email id cannot move to this delivery.
            #expect(try await post(event("email.bounced", emailId: "someone-else"), secret: secret).status == .ok)
            #expect(try await herald.store.read { try await $0.deliveries(ids: [deliveryId]) }.first?.status == .delivered)
            #expect(try await post(bounce, secret: secret).status == .ok)
            #expect(try await herald.store.read { try await $0.deliveries(ids: [deliveryId]) }.first?.status == .failed)
            let suppressed = try await herald.call(.get, "/v1/suppressions?channel=email").json()
            #expect(
                suppressed.objectValue?["data"]?.arrayItems.compactMap { $0.objectValue?["address"]?.stringValue } == ["rae@example.com"])
        }
    }

    @Test("a rejected API key fails over to the next email integration", arguments: Backend.available)
    func failover(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: [Self.workflow]) { herald in
            try await Self.integration(herald, "sendgrid", key: "SG.revoked", primary: true)
            try await Self.integration(herald, "resend")
            try await herald.trigger(["name": "welcome", "to": ["subscriberId": "f", "firstName": "F", "email": "f@example.com"]])
            try await herald.settle()
            #expect(herald.simulatorEmail.messages(provider: "sendgrid").isEmpty)
            #expect(herald.simulatorEmail.messages(provider: "resend").map(\.to) == ["f@example.com"])
        }
    }
}
