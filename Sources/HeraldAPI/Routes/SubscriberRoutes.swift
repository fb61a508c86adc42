import Foundation
import HTTPTypes
import HeraldCore
import HeraldStore
import Hummingbird

/// Novu subscribers (`docs/wire-compatibility.md` §Novu subscribers): v2 search/create/get/patch/delete, v1 legacy list/upsert/get/
/// put/delete, bulk create, online status, and channel credentials backed by the device registry.
struct SubscriberRoutes {
    let store: SQLStore
    let policy: OutboundURLPolicy

    func register(on group: RouterGroup<HeraldRequestContext>) {
        // MARK: v2
        group.get("/v2/subscribers") { request, context in
            let environment = try context.requireEnvironment()
            let query = NovuQuery(request)
            let page = try query.cursor()
            let result = try await store.read { session in
                try await session.searchSubscribers(
                    environmentId: environment.id, email: query.string("email"), phone: query.string("phone"),
                    subscriberId: query.string("subscriberId"), name: query.string("name"), page: page
                )
            }
            return JSONResponse.make(result.novuJSON(\.novuJSON))
        }
        group.post("/v2/subscribers") { request, context in
            let environment = try context.requireEnvironment()
            let body = try await request.decodeJSON(NovuSubscriberBody.self, context: context)
            let subscriberId = try Self.requireSubscriberId(body.subscriberId)
            let failIfExists = try NovuQuery(request).bool("failIfExists") ?? false
            let patch = try body.validatedPatch()
            do {
                let (subscriber, _) = try await store.transaction { session in
                    try await session.upsertSubscriber(
                        environmentId: environment.id, subscriberId: subscriberId, patch: patch, failIfExists: failIfExists)
                }
                return JSONResponse.data(subscriber.novuJSON, status: .created)
            } catch let error as HeraldError where error.code == .conflict {
                // The SDK parses this 409 as a SubscriberResponseDto: send the existing subscriber beside the error fields.
                var conflict = APIError(.conflict, error.message)
                if let existing = try await store.read({
                    try await $0.subscriber(environmentId: environment.id, subscriberId: subscriberId)
                }) {
                    conflict.extraFields = existing.novuJSON.objectValue ?? [:]
                }
                throw conflict
            }
        }
        group.get("/v2/subscribers/{subscriberId}") { _, context in
            try await respondWithSubscriber(context)
        }
        group.patch("/v2/subscribers/{subscriberId}") { request, context in
            try await updateSubscriber(request, context)
        }
        group.delete("/v2/subscribers/{subscriberId}") { _, context in
            try await deleteSubscriber(context)
        }

        // MARK: v1 legacy
        group.get("/v1/subscribers") { request, context in
            let environment = try context.requireEnvironment()
            let query = NovuQuery(request)
            let page = try query.integer("page", default: 0, range: 0...100_000)
            let limit = try query.integer("limit", default: 10, range: 1...100)
            let subscribers = try await store.read { try await $0.subscribers(environmentId: environment.id, page: page, limit: limit) }
            return JSONResponse.make([
                "data": .array(subscribers.map(\.novuJSON)), "page": .number(Double(page)), "pageSize": .number(Double(limit)),
                "hasMore": .bool(subscribers.count == limit),
            ])
        }
        group.post("/v1/subscribers") { request, context in
            let environment = try context.requireEnvironment()
            let body = try await request.decodeJSON(NovuSubscriberBody.self, context: context)
            let subscriberId = try Self.requireSubscriberId(body.subscriberId)
            let patch = try body.validatedPatch()
            try await store.transaction { [policy] session in
                _ = try await session.upsertSubscriber(environmentId: environment.id, subscriberId: subscriberId, patch: patch)
                for channel in body.channels ?? [] {
                    try await Self.applyCredentials(
                        channel, subscriberId: subscriberId, environmentId: environment.id, mode: .append, policy: policy, session: session)
                }
            }
            return try await respondWithSubscriber(context, subscriberId: subscriberId, status: .created)
        }
        group.get("/v1/subscribers/{subscriberId}") { _, context in
            try await respondWithSubscriber(context)
        }
        group.put("/v1/subscribers/{subscriberId}") { request, context in
            try await updateSubscriber(request, context)
        }
        group.delete("/v1/subscribers/{subscriberId}") { _, context in
            try await deleteSubscriber(context)
        }
        group.post("/v1/subscribers/bulk") { request, context in
            let environment = try context.requireEnvironment()
            let body = try await request.decodeJSON(NovuBulkSubscribers.self, context: context)
            guard body.subscribers.count <= 500 else {
                throw APIError.invalidField("subscribers", "subscribers must contain no more than 500 elements")
            }
            let (created, updated, failed) = try await store.transaction { session in
                var created: [JSONValue] = []
                var updated: [JSONValue] = []
                var failed: [JSONValue] = []
                for item in body.subscribers {
                    let reference: JSONValue = item.subscriberId.map(JSONValue.string) ?? .null
                    do {
                        let subscriberId = try Self.requireSubscriberId(item.subscriberId)
                        let result = try await session.upsertSubscriber(
                            environmentId: environment.id, subscriberId: subscriberId, patch: try item.validatedPatch()
                        )
                        if result.created {
                            created.append(["subscriberId": reference])
                        } else {
                            updated.append(["subscriberId": reference])
                        }
                    } catch let error as APIError {
                        failed.append(["subscriberId": reference, "message": .string(error.message)])
                    } catch let error as HeraldError where error.code == .invalidInput {
                        failed.append(["subscriberId": reference, "message": .string(error.message)])
                    }
                }
                return (created, updated, failed)
            }
            return JSONResponse.data(["created": .array(created), "updated": .array(updated), "failed": .array(failed)], status: .created)
        }
        group.patch("/v1/subscribers/{subscriberId}/online-status") { request, context in
            let environment = try context.requireEnvironment()
            let subscriberId = try context.parameters.require("subscriberId")
            let body = try await request.decodeJSON(NovuOnlineStatus.self, context: context)
            _ = try await store.transaction {
                try await $0.setSubscriberOnline(environmentId: environment.id, subscriberId: subscriberId, isOnline: body.isOnline)
            }
            return try await respondWithSubscriber(context)
        }

        // MARK: credentials
        for (method, mode) in [(HTTPRequest.Method.put, CredentialUpdateMode.replace), (.patch, .append)] {
            group.on("/v1/subscribers/{subscriberId}/credentials", method: method) { request, context in
                let environment = try context.requireEnvironment()
                let subscriberId = try context.parameters.require("subscriberId")
                let body = try await request.decodeJSON(NovuChannelCredentials.self, context: context)
                try await store.transaction { [policy] session in
                    guard try await session.subscriber(environmentId: environment.id, subscriberId: subscriberId) != nil else {
                        throw APIError(.badRequest, "Subscriber not found")
                    }
                    try await Self.applyCredentials(
                        body, subscriberId: subscriberId, environmentId: environment.id, mode: mode, policy: policy, session: session)
                }
                return try await respondWithSubscriber(context)
            }
        }
        group.delete("/v1/subscribers/{subscriberId}/credentials/{providerId}") { _, context in
            let environment = try context.requireEnvironment()
            let subscriberId = try context.parameters.require("subscriberId")
            let providerId = try context.parameters.require("providerId")
            try await store.transaction { session in
                guard try await session.subscriber(environmentId: environment.id, subscriberId: subscriberId) != nil else {
                    throw APIError(.notFound, "Subscriber: \(subscriberId) was not found")
                }
                try await session.deleteCredentials(environmentId: environment.id, subscriberId: subscriberId, providerId: providerId)
            }
            return Response(status: .noContent)
        }
    }

    static func requireSubscriberId(_ value: String?) throws -> String {
        guard let value, !value.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw APIError.invalidField("subscriberId", "subscriberId should not be empty")
        }
        return value
    }

    /// Resolves the integration of a credentials body and updates the subscriber's credentials for it.
    static func applyCredentials(
        _ body: NovuChannelCredentials, subscriberId: String, environmentId: String, mode: CredentialUpdateMode,
        policy: OutboundURLPolicy, session: StoreSession
    ) async throws {
        guard let channel = ProviderCatalog.channel(of: body.providerId), channel == .push || channel == .chat else {
            throw APIError.invalidField("providerId", "providerId must be a push or chat provider id", value: .string(body.providerId))
        }
        guard
            let integration = try await session.resolveIntegration(
                environmentId: environmentId, providerId: body.providerId, identifier: body.integrationIdentifier
            )
        else {
            throw APIError(.badRequest, "Subscribers environment (\(environmentId)) do not have active \(body.providerId) integration.")
        }
        var other = body.credentials
        let tokens = other.removeValue(forKey: "deviceTokens").flatMap { value -> [String]? in
            guard case .array(let items) = value else { return nil }
            return items.compactMap(\.stringValue)
        }
        if let webhook = other["webhookUrl"] {
            guard case .string(let url) = webhook else {
                throw APIError.invalidField("credentials.webhookUrl", "credentials.webhookUrl must be an https URL")
            }
            do { _ = try policy.check(url) } catch let refusal as OutboundURLRefusal {
                throw APIError.invalidField("credentials.webhookUrl", "credentials.webhookUrl is refused: \(refusal.reason)")
            }
        }
        try await session.updateCredentials(
            environmentId: environmentId, subscriberId: subscriberId, integration: integration, deviceTokens: tokens,
            otherCredentials: other,
            mode: mode
        )
    }

    func respondWithSubscriber(
        _ context: HeraldRequestContext, subscriberId: String? = nil, status: HTTPResponse.Status = .ok
    ) async throws -> Response {
        let environment = try context.requireEnvironment()
        let subscriberId = try subscriberId ?? context.parameters.require("subscriberId")
        let (subscriber, channels) = try await store.read { session in
            (
                try await session.subscriber(environmentId: environment.id, subscriberId: subscriberId),
                try await session.subscriberChannels(environmentId: environment.id, subscriberId: subscriberId)
            )
        }
        guard let subscriber else { throw APIError(.notFound, "Subscriber: \(subscriberId) was not found") }
        return JSONResponse.data(subscriber.novuJSON(channels: channels), status: status)
    }

    /// v2 PATCH and v1 PUT: profile fields with PATCH semantics (`null` clears, absent keeps).
    func updateSubscriber(_ request: Request, _ context: HeraldRequestContext) async throws -> Response {
        let environment = try context.requireEnvironment()
        let subscriberId = try context.parameters.require("subscriberId")
        let body = try await request.decodeJSON(NovuSubscriberBody.self, context: context)
        let patch = try body.validatedPatch()
        _ = try await store.transaction {
            try await $0.patchSubscriber(environmentId: environment.id, subscriberId: subscriberId, patch: patch)
        }
        return try await respondWithSubscriber(context)
    }

    func deleteSubscriber(_ context: HeraldRequestContext) async throws -> Response {
        let environment = try context.requireEnvironment()
        let subscriberId = try context.parameters.require("subscriberId")
        let existed = try await store.transaction {
            try await $0.deleteSubscriber(environmentId: environment.id, subscriberId: subscriberId)
        }
        guard existed else { throw APIError(.notFound, "Subscriber: \(subscriberId) was not found") }
        return JSONResponse.data(["acknowledged": true, "status": "deleted"])
    }
}
