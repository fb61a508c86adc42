import Foundation
import HeraldCore
import HeraldStore
import HeraldTestSupport
import SQLKit
import Testing

@testable import HeraldEngine

/// Staging status-webhook events inside a recording transaction (docs/webhooks.md §Events).
@Suite("Status webhook outbox")
struct WebhookOutboxTests {
    @Test(
        "events are staged for accepting endpoints with one job each; an endpoint deleted while cached gets none and fails nothing",
        arguments: Backend.available)
    func staging(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            let outbox = WebhookOutbox()
            let now = Date()
            let (environment, kept, deleted) = try await store.transaction { session in
                let environment = try await session.createEnvironment(named: "outbox")
                func endpoint(_ types: [String]) -> WebhookEndpoint {
                    WebhookEndpoint(
                        id: session.newId(), environmentId: environment.id, url: "https://hooks.example.com/h", eventTypes: types,
                        secret: Secret(WebhookSigner.newSecret()), createdAt: now, updatedAt: now)
                }
                let kept = endpoint(["message.*"])
                let deleted = endpoint(["*"])
                try await session.createWebhookEndpoint(kept)
                try await session.createWebhookEndpoint(deleted)
                return (environment, kept, deleted)
            }
            // The process caches the two endpoints, then one is deleted (through another process: no invalidation).
            _ = try await store.read { try await outbox.endpoints(environment.id, session: $0) }
            _ = try await store.transaction { try await $0.deleteWebhookEndpoint(environmentId: environment.id, id: deleted.id) }
            let events = [
                DomainEvent(.messageSent, workflowId: "w", messageId: "m1", channel: .push),
                DomainEvent(.notificationCompleted, workflowId: "w"),
            ]
            try await store.transaction { try await outbox.stage(events, environmentId: environment.id, session: $0) }
            let rows = try await store.read {
                try await $0.db.raw("SELECT endpoint_id, event_type FROM webhook_messages").all().map {
                    [try $0.decode(column: "endpoint_id", as: String.self), try $0.decode(column: "event_type", as: String.self)]
                }
            }
            #expect(rows == [[kept.id, "message.sent"]], "message.sent for the message.* endpoint; nothing for the deleted one")
            let jobs = try await store.read {
                try await $0.db.raw("SELECT payload FROM jobs WHERE kind = 'webhook'").all().map {
                    try $0.decode(column: "payload", as: String.self)
                }
            }
            #expect(jobs.count == 1 && jobs[0].contains(kept.id))
        }
    }
}
