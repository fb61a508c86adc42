import Foundation
import HeraldCore
import HeraldEngine
import HeraldSimulator
import HeraldStore
import HeraldTestSupport
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
