import Foundation
import HeraldCore
import HeraldEngine
import HeraldSimulator
import HeraldStore
import HeraldTestSupport
import Testing

/// Dead letters and re-drive, the invalid-token guard, email failover and metrics, end to end.
@Suite("Delivery machinery end to end")
struct DeliveryMachineryTests {
    static let workflows = [
        """
        workflow: ping
        steps:
          - id: push
            type: push
            title: "Ping"
            body: "pong"
        """,
        """
        workflow: receipt
        steps:
          - id: mail
            type: email
            subject: "Receipt {{payload.n}}"
            body: "<p>Thanks, {{subscriber.firstName}}</p>"
        """,
    ]

    @Test("exhausted retries are dead, listed, re-driven and counted in /metrics", arguments: Backend.available)
    func deadLetters(_ backend: Backend) async throws {
        try await withEngine(
            backend, workflows: Self.workflows,
            configure: {
                $0.retryPolicy.maximumAttempts = 2
                $0.retryPolicy.base = .milliseconds(10)
            }
        ) { herald in
            try await herald.webhookIntegration("push-webhook", channel: "push", identifier: "hook")
            herald.emulator.addFault(Fault(path: "/hooks/hook", status: 503, times: 2))
            try await herald.trigger([
                "name": "ping", "transactionId": "tx-dead",
                "to": ["subscriberId": "ida", "channels": [["providerId": "push-webhook", "credentials": ["deviceTokens": ["tok-ida"]]]]],
            ])
            try await herald.eventually("the delivery to die") {
                let page = try await herald.call(.get, "/v1/deliveries?status=dead").json()
                return page.objectValue?["data"]?.arrayValue?.count == 1
            }
            let page = try await herald.call(.get, "/v1/deliveries?status=dead").json()
            let dead = page.objectValue?["data"]?.arrayValue?.first?.objectValue ?? [:]
            #expect(dead["attempts"] == 2)
            #expect(dead["target"]?.stringValue?.contains("tok-ida") == false)
            let messages = try await herald.call(.get, "/v1/messages?transactionId=tx-dead").json()
            #expect(messages.objectValue?["data"]?.arrayValue?.first?.objectValue?["status"] == "error")

            let id = dead["_id"]?.stringValue ?? ""
            let retried = try await herald.call(.post, "/v1/deliveries/\(id)/retry")
            #expect(retried.status == .created)
            try await herald.eventually("the re-driven delivery") { herald.emulator.deliveries(to: "tok-ida") == 1 }
            try await herald.settle()
            let after = try await herald.call(.get, "/v1/messages?transactionId=tx-dead").json()
            #expect(after.objectValue?["data"]?.arrayValue?.first?.objectValue?["status"] == "sent")
            let missing = try await herald.call(.post, "/v1/deliveries/\(id)/retry")
            #expect(missing.status == .notFound)

            let metrics = String(buffer: try await herald.client.execute(uri: "/metrics", method: .get).body)
            #expect(metrics.contains(#"herald_deliveries_dead_total{provider="push-webhook"} 1"#))
            #expect(metrics.contains(#"herald_deliveries_total{provider="push-webhook",outcome="delivered"} 1"#))
            #expect(metrics.contains(#"herald_deliveries_total{provider="push-webhook",outcome="retryLater"} 2"#))
            #expect(metrics.contains("herald_triggers_accepted_total 1"))
        }
    }

    @Test("the guard withholds removal when a whole batch fails as invalid", arguments: Backend.available)
    func invalidTokenGuard(_ backend: Backend) async throws {
        try await withEngine(
            backend, workflows: Self.workflows,
            configure: { $0.invalidTokenGuard = InvalidTokenGuard(maximumShare: 0.5, minimumBatch: 3) }
        ) { herald in
            try await herald.webhookIntegration("push-webhook", channel: "push", identifier: "hook")
            herald.emulator.addFault(Fault(path: "/hooks/hook", status: 410))
            try await herald.trigger([
                "name": "ping", "transactionId": "tx-guard",
                "to": [
                    "subscriberId": "jay",
                    "channels": [["providerId": "push-webhook", "credentials": ["deviceTokens": ["g1", "g2", "g3", "g4"]]]],
                ],
            ])
            try await herald.settle()
            let devices = try await herald.store.read { try await $0.devices(environmentId: herald.environment.id, subscriberId: "jay") }
            #expect(devices.count == 4)
            let activity = try await herald.call(.get, "/v1/notifications?transactionId=tx-guard").json()
            let details =
                activity.objectValue?["data"]?.arrayValue?.first?.objectValue?["jobs"]?.arrayValue?.first?
                .objectValue?["executionDetails"]?.arrayValue ?? []
            #expect(details.filter { $0.objectValue?["detail"] == "invalid_token_removal_withheld" }.count == 4)
        }
    }

    @Test("email fails over from a primary with bad credentials to the next active integration", arguments: Backend.available)
    func emailFailover(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: Self.workflows) { herald in
            try await herald.webhookIntegration("email-webhook", channel: "email", identifier: "mail-primary", primary: true)
            try await herald.webhookIntegration("email-webhook", channel: "email", identifier: "mail-backup")
            herald.emulator.addFault(Fault(path: "/hooks/mail-primary", status: 401))
            try await herald.trigger([
                "name": "receipt", "payload": ["n": 7], "to": ["subscriberId": "kim", "firstName": "Kim", "email": "kim@example.com"],
            ])
            try await herald.eventually("the failover delivery") { herald.emulator.deliveries(to: "kim@example.com") == 1 }
            try await herald.settle()
            #expect(herald.emulator.requests(hook: "mail-primary").count == 2)  // the send and one resend after a refresh
            let backup = herald.emulator.requests(hook: "mail-backup")
            #expect(backup.count == 1)
            #expect(backup.first?.body.objectValue?["subject"] == "Receipt 7")
            #expect(backup.first?.body.objectValue?["html"] == "<p>Thanks, Kim</p>")
        }
    }
}
