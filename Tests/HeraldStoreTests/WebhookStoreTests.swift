import Foundation
import HeraldCore
import HeraldStore
import HeraldTestSupport
import Testing

/// Status-webhook storage (docs/webhooks.md): sealed secrets and the housekeeping purge.
@Suite("Status webhook storage")
struct WebhookStoreTests {
    @Test(
        "secrets are sealed at rest; delivered and dead events are purged after the retention, pending ones kept",
        arguments: Backend.available)
    func storage(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            let now = Date()
            let (environment, endpoint) = try await store.transaction { session in
                let environment = try await session.createEnvironment(named: "hooks")
                let endpoint = WebhookEndpoint(
                    id: session.newId(), environmentId: environment.id, url: "https://hooks.example.com/h", eventTypes: ["*"],
                    secret: Secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), previousSecret: Secret("whsec_old"),
                    previousSecretExpiresAt: now.addingTimeInterval(60), createdAt: now, updatedAt: now)
                try await session.createWebhookEndpoint(endpoint)
                return (environment, endpoint)
            }
            let raw = try await store.read { try await $0.db.raw("SELECT secret, previous_secret FROM webhook_endpoints").all() }
            let stored = try raw.map {
                [try $0.decode(column: "secret", as: String.self), try $0.decode(column: "previous_secret", as: String.self)]
            }
            #expect(stored.count == 1 && !stored[0].contains { $0.contains("whsec_") }, "no secret in clear at rest")
            let read = try await store.read { try await $0.webhookEndpoint(environmentId: environment.id, id: endpoint.id) }
            #expect(read?.secret.revealed == endpoint.secret.revealed && read?.previousSecret?.revealed == "whsec_old")

            var generator = SystemRandomNumberGenerator()
            func message(daysAgo: Double, _ status: WebhookMessageStatus) -> WebhookMessage {
                let time = now.addingTimeInterval(-daysAgo * 86400)
                let id = "msg_" + ObjectIDGenerator.make(seconds: UInt32(time.timeIntervalSince1970), using: &generator)
                return WebhookMessage(
                    id: id, environmentId: environment.id, endpointId: endpoint.id, eventType: "message.sent", payload: "{}",
                    status: status,
                    createdAt: time, updatedAt: time)
            }
            let old = [message(daysAgo: 9, .delivered), message(daysAgo: 8, .dead), message(daysAgo: 8, .pending)]
            let recent = [message(daysAgo: 1, .delivered), message(daysAgo: 0, .pending)]
            try await store.transaction { try await $0.insertWebhookMessages(old + recent) }
            let purged = try await store.transaction {
                try await $0.purgeWebhookMessages(before: now.addingTimeInterval(-7 * 86400), limit: 1000)
            }
            #expect(purged == 2)
            let left = try await store.read { try await $0.webhookMessages(ids: (old + recent).map(\.id)) }
            #expect(Set(left.map(\.id)) == Set([old[2].id] + recent.map(\.id)))
        }
    }
}
