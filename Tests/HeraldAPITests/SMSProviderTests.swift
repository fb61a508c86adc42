import Foundation
import HeraldCore
import HeraldEngine
import HeraldSimulator
import HeraldStore
import HeraldTestSupport
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
