import Foundation
import HeraldCore
import HeraldEngine
import HeraldSimulator
import HeraldTestSupport
import Testing

/// Status webhooks end to end on both databases (docs/webhooks.md): the events of a trigger reach a subscribed endpoint,
/// one each, signed, retried under the same `webhook-id`; a disabled endpoint's events wait and arrive on replay.
/// `Tests/compat/webhooks_test.py` verifies the signatures with the specification's reference library.
@Suite("Status webhooks")
struct StatusWebhookTests {
    @Test(
        "a trigger's events reach the endpoint once each, signed, retried under one id; disabled ones wait for a replay",
        arguments: Backend.available)
    func endToEnd(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: [EngineTests.pushWorkflow], configure: { $0.webhookRetry.delays = [0.2] }) { herald in
            try await herald.webhookIntegration("push-webhook", channel: "push", identifier: "hook")
            let created = try await herald.call(
                .post, "/v1/webhooks", #"{"url":"\#(herald.simulatorURL)/hooks/status","eventTypes":["message.*"]}"#)
            #expect(created.status == .created)
            let endpoint = try created.json().objectValue?["data"]?.objectValue ?? [:]
            let secret = endpoint["secret"]?.stringValue ?? ""
            let endpointId = endpoint["_id"]?.stringValue ?? ""
            #expect(secret.hasPrefix("whsec_"))
            herald.emulator.addFault(Fault(path: "/hooks/status", status: 503, times: 3))

            func recipients(_ range: Range<Int>) -> JSONValue {
                .array(
                    range.map { i in
                        [
                            "subscriberId": .string("s\(i)"),
                            "channels": [
                                [
                                    "providerId": "push-webhook", "integrationIdentifier": "hook",
                                    "credentials": ["deviceTokens": [.string("tok-\(i)")]],
                                ]
                            ],
                        ]
                    })
            }
            @Sendable func deliveredIds() -> Set<String> {
                Set(
                    herald.emulator.requests(hook: "status").filter { (200..<300).contains($0.status) }.compactMap {
                        $0.headers["webhook-id"]
                    })
            }
            try await herald.trigger([
                "name": "order-shipped", "payload": ["orderId": "W-1"], "transactionId": "tx-wh", "to": recipients(0..<20),
            ])
            try await herald.eventually("20 events delivered") { deliveredIds().count == 20 }
            try await herald.settle()
            let requests = herald.emulator.requests(hook: "status")
            #expect(requests.count == 23, "20 events, 3 of them answered 503 first")
            let retried = Set(requests.filter { $0.status == 503 }.compactMap { $0.headers["webhook-id"] })
            #expect(retried.count == 3 && retried.isSubset(of: deliveredIds()), "a retry keeps the webhook-id")
            for request in requests {
                let id = request.headers["webhook-id"] ?? ""
                let timestamp = Int64(request.headers["webhook-timestamp"] ?? "") ?? 0
                let signature = WebhookSigner.signature(
                    secret: secret, id: id, timestamp: timestamp, body: Array(request.body.jsonString().utf8))
                #expect(request.headers["webhook-signature"] == signature)
                #expect(request.body.objectValue?["type"] == "message.sent")
                #expect(request.body.objectValue?["data"]?.objectValue?["transactionId"] == "tx-wh")
            }
            let subscribers = Set(requests.compactMap { $0.body.objectValue?["data"]?.objectValue?["subscriberId"]?.stringValue })
            #expect(subscribers == Set((0..<20).map { "s\($0)" }))
            var listed = try await herald.call(.get, "/v1/webhooks/\(endpointId)/deliveries?status=delivered&limit=500").json()
            #expect(listed.objectValue?["data"]?.arrayItems.count == 20)

            // Disabled: events are recorded, not sent; enabled and replayed, they arrive.
            #expect(try await herald.call(.patch, "/v1/webhooks/\(endpointId)", #"{"disabled":true}"#).status == .ok)
            try await herald.trigger([
                "name": "order-shipped", "payload": ["orderId": "W-2"], "transactionId": "tx-wh-2", "to": recipients(20..<22),
            ])
            try await herald.settle()
            listed = try await herald.call(.get, "/v1/webhooks/\(endpointId)/deliveries?status=pending").json()
            #expect(listed.objectValue?["data"]?.arrayItems.count == 2)
            #expect(deliveredIds().count == 20)
            #expect(try await herald.call(.patch, "/v1/webhooks/\(endpointId)", #"{"disabled":false}"#).status == .ok)
            let replay = try await herald.call(.post, "/v1/webhooks/\(endpointId)/replay", #"{"since":"2000-01-01T00:00:00Z"}"#)
            #expect(replay.status == .accepted)
            #expect(try replay.json().objectValue?["data"] == ["queued": 2])
            try await herald.eventually("the replayed events delivered") { deliveredIds().count == 22 }
        }
    }

    @Test("a 429 with Retry-After is retried no sooner than it asks, under the same webhook-id", arguments: Backend.available)
    func retryAfter(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: [EngineTests.pushWorkflow], configure: { $0.webhookRetry.delays = [0.1] }) { herald in
            try await herald.webhookIntegration("push-webhook", channel: "push", identifier: "hook")
            _ = try await herald.call(.post, "/v1/webhooks", #"{"url":"\#(herald.simulatorURL)/hooks/slow","eventTypes":["message.sent"]}"#)
            herald.emulator.addFault(Fault(path: "/hooks/slow", status: 429, retryAfter: "2", times: 1))
            try await herald.trigger("order-shipped", toDeviceOf: "ra", payload: ["orderId": "R-1"])
            try await herald.eventually("the retried event delivered", timeout: .seconds(30)) {
                herald.emulator.requests(hook: "slow").contains { (200..<300).contains($0.status) }
            }
            let attempts = herald.emulator.requests(hook: "slow")
            try #require(attempts.count == 2, "one 429, then the delivery: \(attempts.map(\.status))")
            #expect(attempts[0].status == 429 && (200..<300).contains(attempts[1].status))
            #expect(attempts[0].headers["webhook-id"] == attempts[1].headers["webhook-id"])
            let waited = attempts[1].receivedAt.timeIntervalSince(attempts[0].receivedAt)
            #expect(waited >= 1.9, "Retry-After: 2 was honoured (the backoff alone would have been 0.1 s); waited \(waited) s")
        }
    }

    @Test("an endpoint that opts in gets the message content; the others get ids only", arguments: Backend.available)
    func contentOptIn(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: [EngineTests.pushWorkflow]) { herald in
            try await herald.webhookIntegration("push-webhook", channel: "push", identifier: "hook")
            let withContent = try await herald.call(
                .post, "/v1/webhooks", #"{"url":"\#(herald.simulatorURL)/hooks/full","eventTypes":["message.sent"],"includeContent":true}"#)
            #expect(try withContent.json().objectValue?["data"]?.objectValue?["includeContent"] == true)
            _ = try await herald.call(.post, "/v1/webhooks", #"{"url":"\#(herald.simulatorURL)/hooks/ids","eventTypes":["message.sent"]}"#)
            try await herald.trigger(
                "order-shipped", toDeviceOf: "cy", payload: ["orderId": "C-9"], transactionId: "tx-content")
            try await herald.eventually("both endpoints got the event") {
                herald.emulator.requests(hook: "full").count == 1 && herald.emulator.requests(hook: "ids").count == 1
            }
            let full = herald.emulator.requests(hook: "full")[0].body.objectValue?["data"]?.objectValue
            let content = full?["content"]?.objectValue
            #expect(content?["title"]?.stringValue?.contains("C-9") == true, "\(String(describing: full))")
            #expect(content?["body"] != nil)
            #expect(herald.emulator.requests(hook: "ids")[0].body.objectValue?["data"]?.objectValue?["content"] == nil)
        }
    }

    @Test("an endpoint failing past the limit is disabled; its events stay pending", arguments: Backend.available)
    func disabling(_ backend: Backend) async throws {
        try await withEngine(
            backend, workflows: [EngineTests.pushWorkflow],
            configure: {
                $0.webhookRetry.delays = [0.1]
                $0.webhookRetry.disableAfter = 0.5
                $0.webhookRetry.maxAge = 60
            }
        ) { herald in
            let endpointId = try await Self.failingEndpoint(herald, status: 500, body: #"{"url":"\#(herald.simulatorURL)/hooks/down"}"#)
            try await herald.eventually("the endpoint disabled") {
                let endpoint = try await herald.call(.get, "/v1/webhooks/\(endpointId)").json().objectValue?["data"]?.objectValue
                return endpoint?["disabled"] == true && endpoint?["disabledReason"] == "failing"
            }
            let listed = try await herald.call(.get, "/v1/webhooks/\(endpointId)/deliveries?status=pending").json()
            let events = listed.objectValue?["data"]?.arrayItems ?? []
            #expect(
                !events.isEmpty && events.allSatisfy { $0.objectValue?["lastStatus"] == 500 && $0.objectValue?["lastError"] == "http 500" })
        }
    }

    @Test("an event not delivered within the maximum age is dead", arguments: Backend.available)
    func dying(_ backend: Backend) async throws {
        try await withEngine(
            backend, workflows: [EngineTests.pushWorkflow],
            configure: {
                $0.webhookRetry.delays = [0.1]
                $0.webhookRetry.maxAge = 0.3
            }
        ) { herald in
            let endpointId = try await Self.failingEndpoint(
                herald, status: 503, body: #"{"url":"\#(herald.simulatorURL)/hooks/down","eventTypes":["message.sent"]}"#)
            try await herald.eventually("the event dead") {
                let listed = try await herald.call(.get, "/v1/webhooks/\(endpointId)/deliveries?status=dead").json()
                return listed.objectValue?["data"]?.arrayItems.count == 1
            }
            try await herald.settle()
            let attempts = herald.emulator.requests(hook: "down").count
            try await Task.sleep(for: .milliseconds(500))
            #expect(herald.emulator.requests(hook: "down").count == attempts, "a dead event is not attempted again")
            let endpoint = try await herald.call(.get, "/v1/webhooks/\(endpointId)").json().objectValue?["data"]?.objectValue
            #expect(endpoint?["disabled"] == false)
        }
    }

    /// Creates an endpoint from `body` whose receiver (`/hooks/down`) answers `status` to everything, and triggers one
    /// push so that it has an event to fail with. Returns the endpoint id.
    static func failingEndpoint(_ herald: EngineHarness, status: Int, body: String) async throws -> String {
        try await herald.webhookIntegration("push-webhook", channel: "push", identifier: "hook")
        let created = try await herald.call(.post, "/v1/webhooks", body)
        herald.emulator.addFault(Fault(path: "/hooks/down", status: status))
        try await herald.trigger([
            "name": "order-shipped", "payload": ["orderId": "D-1"],
            "to": ["subscriberId": "d", "channels": [["providerId": "push-webhook", "credentials": ["deviceTokens": ["tok-d"]]]]],
        ])
        return try created.json().objectValue?["data"]?.objectValue?["_id"]?.stringValue ?? ""
    }
}
