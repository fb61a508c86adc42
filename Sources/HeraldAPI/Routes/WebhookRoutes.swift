import Foundation
import HeraldCore
import HeraldEngine
import HeraldStore
import Hummingbird

/// Status-webhook endpoints (README §Status webhooks, `docs/webhooks.md`), scoped to the caller's environment. The
/// signing secret is answered only by create and rotate; every URL passes the outbound guard when stored (and again
/// at every call).
struct WebhookRoutes {
    let store: SQLStore
    let engine: Engine
    let policy: OutboundURLPolicy

    /// Most endpoints per environment.
    static let maxEndpoints = 50
    /// How long a rotated-out secret keeps signing beside the new one.
    static let rotationOverlap: TimeInterval = 86400
    /// Most events one replay queues.
    static let maxReplay = 100_000

    struct Body: Decodable {
        var url: String?
        var description: String?
        var eventTypes: [String]?
        var workflowIds: [String]?
        var disabled: Bool?
        var includeContent: Bool?
    }

    struct ReplayBody: Decodable {
        var since: String?
    }

    func register(on group: RouterGroup<HeraldRequestContext>) {
        group.get("/v1/webhooks") { _, context in
            let environment = try context.requireEnvironment()
            let endpoints = try await store.read { try await $0.webhookEndpoints(environmentId: environment.id) }
            return JSONResponse.data(.array(endpoints.map { Self.json($0) }))
        }
        group.post("/v1/webhooks") { request, context in
            let environment = try context.requireEnvironment()
            let body = try await request.decodeJSON(Body.self, context: context)
            guard let url = body.url, !url.isEmpty else { throw APIError.invalidField("url", "url should not be empty") }
            let now = store.clock.now()
            var endpoint = WebhookEndpoint(
                id: "", environmentId: environment.id, url: url, eventTypes: ["*"], secret: Secret(WebhookSigner.newSecret()),
                createdAt: now, updatedAt: now)
            try apply(body, to: &endpoint)
            let draft = endpoint
            let created = try await store.transaction { session in
                guard try await session.webhookEndpoints(environmentId: environment.id).count < Self.maxEndpoints else {
                    throw APIError(.conflict, "an environment has at most \(Self.maxEndpoints) webhook endpoints")
                }
                var created = draft
                created.id = session.newId()
                try await session.createWebhookEndpoint(created)
                return created
            }
            engine.webhookEndpointsChanged(environmentId: environment.id)
            return JSONResponse.data(Self.json(created, secret: true), status: .created)
        }
        group.get("/v1/webhooks/{endpointId}") { _, context in
            JSONResponse.data(Self.json(try await requireEndpoint(context)))
        }
        group.patch("/v1/webhooks/{endpointId}") { request, context in
            let environment = try context.requireEnvironment()
            let id = try context.parameters.require("endpointId")
            let body = try await request.decodeJSON(Body.self, context: context)
            // Read, change and write in one transaction, the row locked: a concurrent change (the engine disabling
            // the endpoint, a rotation) is never overwritten with what was read before it.
            let updated = try await store.transaction { session in
                guard var endpoint = try await session.webhookEndpoint(environmentId: environment.id, id: id, lock: true) else {
                    throw APIError(.notFound, "Webhook endpoint \(id) was not found")
                }
                try apply(body, to: &endpoint)
                endpoint.updatedAt = session.now
                try await session.updateWebhookEndpoint(endpoint)
                return endpoint
            }
            engine.webhookEndpointsChanged(environmentId: environment.id)
            return JSONResponse.data(Self.json(updated))
        }
        group.delete("/v1/webhooks/{endpointId}") { _, context in
            let environment = try context.requireEnvironment()
            let id = try context.parameters.require("endpointId")
            guard try await store.transaction({ try await $0.deleteWebhookEndpoint(environmentId: environment.id, id: id) }) else {
                throw APIError(.notFound, "Webhook endpoint \(id) was not found")
            }
            engine.webhookEndpointsChanged(environmentId: environment.id)
            return JSONResponse.data(["acknowledged": true])
        }
        group.post("/v1/webhooks/{endpointId}/rotate-secret") { _, context in
            let environment = try context.requireEnvironment()
            let id = try context.parameters.require("endpointId")
            let rotated = try await store.transaction { session in
                guard var endpoint = try await session.webhookEndpoint(environmentId: environment.id, id: id, lock: true) else {
                    throw APIError(.notFound, "Webhook endpoint \(id) was not found")
                }
                // The old secret keeps signing beside the new one for a day (docs/webhooks.md §Signature), so receivers
                // switch without rejecting events; a second rotation within the day replaces the old one.
                endpoint.previousSecret = endpoint.secret
                endpoint.previousSecretExpiresAt = session.now.addingTimeInterval(Self.rotationOverlap)
                endpoint.secret = Secret(WebhookSigner.newSecret())
                endpoint.updatedAt = session.now
                try await session.updateWebhookEndpoint(endpoint)
                return endpoint
            }
            return JSONResponse.data(Self.json(rotated, secret: true))
        }
        group.get("/v1/webhooks/{endpointId}/deliveries") { request, context in
            let endpoint = try await requireEndpoint(context)
            let query = NovuQuery(request)
            let limit = try query.integer("limit", default: 50, range: 1...500)
            let status = try query.string("status").map { text in
                guard let status = WebhookMessageStatus(rawValue: text) else {
                    throw APIError.invalidField("status", "status must be one of the following values: pending, delivered, dead")
                }
                return status
            }
            let before = query.string("before")
            let messages = try await store.read {
                try await $0.webhookMessages(
                    environmentId: endpoint.environmentId, endpointId: endpoint.id, status: status, before: before, limit: limit + 1)
            }
            let page = messages.prefix(limit)
            return JSONResponse.make([
                "data": .array(page.map(Self.json)),
                "next": messages.count > limit ? page.last.map { .string($0.id) } ?? .null : .null,
            ])
        }
        group.post("/v1/webhooks/{endpointId}/replay") { request, context in
            let endpoint = try await requireEndpoint(context)
            let body = try await request.decodeJSON(ReplayBody.self, context: context)
            guard let text = body.since, let since = Self.date(text) else {
                throw APIError.invalidField("since", "since must be an ISO 8601 date-time (2026-12-04T10:00:00Z)")
            }
            guard !endpoint.disabled else {
                throw APIError(.conflict, "Webhook endpoint \(endpoint.id) is disabled; enable it (PATCH disabled: false) first")
            }
            let queued = try await engine.replayWebhooks(
                environmentId: endpoint.environmentId, endpointId: endpoint.id, since: since, limit: Self.maxReplay)
            return JSONResponse.data(["queued": .number(Double(queued))], status: .accepted)
        }
    }

    func requireEndpoint(_ context: HeraldRequestContext) async throws -> WebhookEndpoint {
        let environment = try context.requireEnvironment()
        let id = try context.parameters.require("endpointId")
        guard let endpoint = try await store.read({ try await $0.webhookEndpoint(environmentId: environment.id, id: id) }) else {
            throw APIError(.notFound, "Webhook endpoint \(id) was not found")
        }
        return endpoint
    }

    /// Applies a create or update body, checking each field.
    func apply(_ body: Body, to endpoint: inout WebhookEndpoint) throws {
        if let includeContent = body.includeContent { endpoint.includeContent = includeContent }
        if let url = body.url {
            do { _ = try policy.check(url) } catch let refusal as OutboundURLRefusal {
                throw APIError.invalidField("url", "url is refused: \(refusal.reason)", value: .string(url))
            }
            endpoint.url = url
        }
        if let description = body.description {
            guard description.unicodeScalars.count <= 1000 else {
                throw APIError.invalidField("description", "description is longer than 1000 characters")
            }
            endpoint.description = description
        }
        if let types = body.eventTypes {
            guard !types.isEmpty, types.count <= 50 else {
                throw APIError.invalidField("eventTypes", "eventTypes must list 1–50 event types")
            }
            for (index, type) in types.enumerated() where !WebhookEndpoint.isValidPattern(type) {
                throw APIError.invalidField(
                    "eventTypes[\(index)]",
                    "unknown event type '\(type)'; one of \(WebhookEndpoint.eventTypes.joined(separator: ", ")), a prefix with .* or *",
                    value: .string(type))
            }
            endpoint.eventTypes = types
        }
        if let workflowIds = body.workflowIds {
            guard workflowIds.count <= 100, workflowIds.allSatisfy({ (1...256).contains($0.unicodeScalars.count) }) else {
                throw APIError.invalidField("workflowIds", "workflowIds must list at most 100 workflow identifiers")
            }
            endpoint.workflowIds = workflowIds.isEmpty ? nil : workflowIds
        }
        if let disabled = body.disabled {
            endpoint.disabled = disabled
            endpoint.disabledReason = disabled ? "api" : nil
            if !disabled { endpoint.failingSince = nil }
        }
    }

    /// An RFC 3339 date-time (`T` and `Z` in either case, any number of fractional digits).
    static func date(_ text: String) -> Date? {
        var text = text.uppercased()
        // ISO8601DateFormatter reads at most millisecond fractions: drop the digits beyond.
        if let dot = text.firstIndex(of: "."), let end = text[dot...].dropFirst().firstIndex(where: { !$0.isNumber }) {
            let digits = text[text.index(after: dot)..<end]
            if digits.count > 3 { text.replaceSubrange(text.index(dot, offsetBy: 4)..<end, with: "") }
        }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)
    }

    static func json(_ endpoint: WebhookEndpoint, secret: Bool = false) -> JSONValue {
        var object: [String: JSONValue] = [
            "_id": .string(endpoint.id), "url": .string(endpoint.url), "description": endpoint.description.map(JSONValue.string) ?? .null,
            "eventTypes": .array(endpoint.eventTypes.map(JSONValue.string)),
            "workflowIds": endpoint.workflowIds.map { .array($0.map(JSONValue.string)) } ?? .null, "disabled": .bool(endpoint.disabled),
            "disabledReason": endpoint.disabledReason.map(JSONValue.string) ?? .null,
            "failingSince": endpoint.failingSince.map { .string($0.iso8601Milliseconds) } ?? .null,
            "previousSecretExpiresAt": endpoint.previousSecretExpiresAt.map { .string($0.iso8601Milliseconds) } ?? .null,
            "createdAt": .string(endpoint.createdAt.iso8601Milliseconds), "updatedAt": .string(endpoint.updatedAt.iso8601Milliseconds),
            "includeContent": .bool(endpoint.includeContent),
        ]
        if secret { object["secret"] = .string(endpoint.secret.revealed) }
        return .object(object)
    }

    static func json(_ message: WebhookMessage) -> JSONValue {
        [
            "_id": .string(message.id), "eventType": .string(message.eventType), "status": .string(message.status.rawValue),
            "attempts": .number(Double(message.attempts)), "lastStatus": message.lastStatus.map { .number(Double($0)) } ?? .null,
            "lastError": message.lastError.map(JSONValue.string) ?? .null, "payload": (try? JSONValue.parse(message.payload)) ?? .null,
            "createdAt": .string(message.createdAt.iso8601Milliseconds), "updatedAt": .string(message.updatedAt.iso8601Milliseconds),
        ]
    }
}
