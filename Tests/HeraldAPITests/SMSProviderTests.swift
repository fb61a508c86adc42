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

/// Twilio and Vonage end to end: the engine's SMS step → the real clients → the simulator's emulators.
@Suite("SMS providers end to end")
struct SMSProviderTests {
    static let workflow = """
        workflow: otp
        name: One-time code
        steps:
          - id: sms
            type: sms
            body: "Your code is {{payload.code}}"
        """

    static func integrations(_ herald: EngineHarness, twilioToken: String = DevAccounts.twilioToken) async throws {
        try await herald.integration(
            "twilio", channel: "sms", identifier: "twilio",
            credentials: [
                "accountSid": .string(DevAccounts.twilioAccountSid), "token": .string(twilioToken), "from": "+15005550006",
                "baseUrl": .string("\(herald.simulatorURL)/twilio"),
            ], primary: true)
        try await herald.integration(
            "nexmo", channel: "sms", identifier: "vonage",
            credentials: [
                "apiKey": .string(DevAccounts.vonageKey), "secretKey": .string(DevAccounts.vonageSecret), "from": "Herald",
                "baseUrl": .string("\(herald.simulatorURL)/vonage"),
            ])
    }

    @Test(
        "Twilio sends; an unsubscribed number is final (no retry, no failover); a refused account fails over to Vonage",
        arguments: Backend.available)
    func twilioAndFailover(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: [Self.workflow]) { herald in
            try await Self.integrations(herald)
            let sms = herald.simulatorSMS
            sms.addFault(SMSFault(provider: "twilio", to: "+15550000002", status: 400, code: 21610))
            try await herald.trigger([
                "name": "otp", "payload": ["code": "123456"],
                "to": [["subscriberId": "a", "phone": "+15550000001"], ["subscriberId": "b", "phone": "+15550000002"]],
            ])
            // Waited for at the emulator rather than by `settle()`, which returns while a retry is scheduled: under the
            // full parallel suite a first attempt can fail in transit and arrive on its retry.
            try await herald.eventually("both messages at Twilio") { sms.messages(provider: "twilio").count == 2 }
            try await herald.settle()
            let twilio = sms.messages(provider: "twilio")
            #expect(twilio.count == 2)
            let sent = try #require(twilio.first { $0.to == "+15550000001" })
            #expect(sent.from == "+15005550006" && sent.body == "Your code is 123456" && sent.status == 201)
            #expect(sms.messages(provider: "nexmo").isEmpty)
            let invalid = try await herald.store.read {
                try await $0.listDeliveries(
                    environmentId: herald.environment.id, statuses: [.invalid], providerId: "twilio", after: nil, limit: 5)
            }
            #expect(invalid.items.map(\.target.revealed) == ["+15550000002"] && invalid.items.first?.errorCode == "invalid_address")
        }
        try await withEngine(backend, workflows: [Self.workflow]) { herald in
            try await Self.integrations(herald, twilioToken: "revoked-token")
            try await herald.trigger(["name": "otp", "payload": ["code": "777"], "to": ["subscriberId": "c", "phone": "+447700900123"]])
            try await herald.settle()
            let vonage = try #require(herald.simulatorSMS.messages(provider: "nexmo").first)
            #expect(vonage.to == "+447700900123" && vonage.from == "Herald" && vonage.body == "Your code is 777")
            #expect(herald.simulatorSMS.messages(provider: "twilio").isEmpty)
        }
    }

    @Test(
        "a number the provider refused for good is suppressed: the next send is skipped before any provider, until lifted",
        arguments: Backend.available)
    func suppression(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: [Self.workflow]) { herald in
            try await Self.integrations(herald)
            let sms = herald.simulatorSMS
            sms.addFault(SMSFault(provider: "twilio", to: "+15550000002", status: 400, code: 21610, times: 1))
            let to: JSONValue = [["subscriberId": "a", "phone": "+15550000001"], ["subscriberId": "b", "phone": "+15550000002"]]
            try await herald.trigger(["name": "otp", "payload": ["code": "1"], "to": to])
            try await herald.eventually("both messages at Twilio") { sms.messages(provider: "twilio").count == 2 }
            try await herald.settle()
            var listed = try await herald.call(.get, "/v1/suppressions?channel=sms").json()
            let entries = listed.objectValue?["data"]?.arrayItems ?? []
            #expect(entries.count == 1)
            #expect(entries.first?.objectValue?["address"] == "+15550000002" && entries.first?.objectValue?["providerId"] == "twilio")

            // The next trigger reaches only the number that is not suppressed; the other step is skipped, with its reason.
            try await herald.trigger(["name": "otp", "payload": ["code": "2"], "to": to, "transactionId": "after-suppression"])
            try await herald.settle()
            #expect(sms.messages(provider: "twilio").count == 3)
            #expect(sms.messages(provider: "twilio").last?.to == "+15550000001")
            #expect(sms.messages(provider: "nexmo").isEmpty)
            let skipped = try await herald.call(.get, "/v1/notifications?transactionId=after-suppression").json()
            let traces = String(describing: skipped)
            #expect(traces.contains("suppressed"), "the skipped step's trail names the suppression")

            // Lifted, the number is tried again.
            #expect(try await herald.call(.delete, "/v1/suppressions/sms/%2B15550000002").status == .ok)
            #expect(try await herald.call(.delete, "/v1/suppressions/sms/%2B15550000002").status == .notFound)
            listed = try await herald.call(.get, "/v1/suppressions").json()
            #expect(listed.objectValue?["data"]?.arrayItems.isEmpty == true)
            try await herald.trigger(["name": "otp", "payload": ["code": "3"], "to": to])
            try await herald.eventually("both numbers reached") {
                sms.messages(provider: "twilio").filter { $0.body == "Your code is 3" }.count == 2
            }
        }
    }

    @Test(
        "Twilio receipts: a signed 'delivered' emits message.delivered; 'undelivered' with a permanent code fails the message and suppresses the number; a forged one changes nothing",
        arguments: Backend.available)
    func twilioReceipts(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: [Self.workflow], configure: { $0.publicURL = "https://herald.example.com" }) { herald in
            try await Self.integrations(herald)
            let endpoint = try await herald.call(
                .post, "/v1/webhooks",
                #"{"url":"\#(herald.simulatorURL)/hooks/status","eventTypes":["message.delivered","message.failed"]}"#)
            #expect(endpoint.status == .created)
            let to: JSONValue = [["subscriberId": "a", "phone": "+15550000001"], ["subscriberId": "b", "phone": "+15550000002"]]
            try await herald.trigger(["name": "otp", "payload": ["code": "9"], "to": to])
            try await herald.eventually("both messages at Twilio") { herald.simulatorSMS.messages(provider: "twilio").count == 2 }
            try await herald.settle()
            let deliveries = try await herald.store.read {
                try await $0.listDeliveries(
                    environmentId: herald.environment.id, statuses: [.delivered], providerId: "twilio", after: nil, limit: 10)
            }.items
            let a = try #require(deliveries.first { $0.target.revealed == "+15550000001" })
            let b = try #require(deliveries.first { $0.target.revealed == "+15550000002" })
            let integrationId = try #require(a.integrationId)

            /// A status callback as Twilio posts it, signed with the account's token over the URL Herald gave it.
            func receipt(
                _ delivery: DeliveryRecord, _ status: String, error: String? = nil, signature: String? = nil
            ) async throws -> TestResponse {
                let path = "/v2/inbound-webhooks/delivery-providers/\(herald.environment.id)/\(integrationId)?delivery=\(delivery.id)"
                var fields = [
                    ("MessageSid", delivery.providerMessageId ?? ""), ("MessageStatus", status),
                    ("AccountSid", DevAccounts.twilioAccountSid), ("To", delivery.target.revealed),
                ]
                if let error { fields.append(("ErrorCode", error)) }
                let body = fields.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0.1)" }
                    .joined(separator: "&")
                let signed =
                    signature
                    ?? TwilioSignature.compute(token: DevAccounts.twilioToken, url: "https://herald.example.com" + path, parameters: fields)
                return try await herald.client.execute(
                    uri: path, method: .post,
                    headers: [.contentType: "application/x-www-form-urlencoded", HTTPField.Name("X-Twilio-Signature")!: signed],
                    body: ByteBuffer(string: body))
            }
            #expect(a.providerMessageId?.hasPrefix("SM") == true, "Twilio's sid is the provider message id")
            #expect(try await receipt(b, "undelivered", error: "30005", signature: "Zm9yZ2Vk").status == .unauthorized)
            #expect(
                try await herald.store.read { try await $0.deliveries(ids: [b.id]) }.first?.status == .delivered,
                "a forged receipt changes nothing")
            #expect(try await receipt(a, "delivered").status == .ok)
            #expect(try await receipt(b, "undelivered", error: "30005").status == .ok)
            #expect(try await receipt(a, "sent").status == .ok)
            try await herald.eventually("two status events") { herald.emulator.requests(hook: "status").count == 2 }
            try await herald.settle()
            let events = herald.emulator.requests(hook: "status").compactMap { $0.body.objectValue }
            #expect(Set(events.compactMap { $0["type"]?.stringValue }) == ["message.delivered", "message.failed"])
            #expect(events.allSatisfy { $0["data"]?.objectValue?["providerId"] == "twilio" })
            let failed = try await herald.store.read { try await $0.deliveries(ids: [b.id]) }.first
            #expect(failed?.status == .failed && failed?.errorCode == "undelivered")
            let suppressed = try await herald.call(.get, "/v1/suppressions?channel=sms").json()
            #expect(suppressed.objectValue?["data"]?.arrayItems.compactMap { $0.objectValue?["address"]?.stringValue } == ["+15550000002"])
            // A receipt for an unknown delivery is accepted and ignored; an unknown integration is a 404.
            var unknown = b
            unknown.id = "000000000000000000000000"
            #expect(try await receipt(unknown, "delivered").status == .ok)
            let missing = try await herald.client.execute(
                uri: "/v2/inbound-webhooks/delivery-providers/\(herald.environment.id)/000000000000000000000000", method: .post,
                headers: [:], body: nil)
            #expect(missing.status == .notFound)
        }
    }

    @Test("phone numbers are E.164 at the API", arguments: Backend.available)
    func e164(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: [Self.workflow]) { herald in
            let response = try await herald.call(
                .post, "/v1/events/trigger", #"{"name":"otp","payload":{"code":"1"},"to":{"subscriberId":"d","phone":"555-1234"}}"#)
            #expect(response.status == .badRequest || response.status == .unprocessableContent)
            #expect(String(buffer: response.body).contains("E.164"))
        }
    }
}
