import HeraldCore
import HeraldStore
import Hummingbird

/// Novu v2 subscribers: create, retrieve, delete (`reference/novu-api.md` §1.2).
struct SubscriberRoutes {
    let store: SQLStore

    func register(on group: RouterGroup<HeraldRequestContext>) {
        group.post("/v2/subscribers") { request, context in
            let environment = try context.requireEnvironment()
            let body = try await request.decodeJSON(NovuSubscriberBody.self, context: context)
            guard let subscriberId = body.subscriberId, !subscriberId.isEmpty else {
                throw APIError(
                    .unprocessableContent, "subscriberId should not be empty",
                    fieldErrors: ["subscriberId": .init(messages: ["subscriberId should not be empty"])]
                )
            }
            let failIfExists = request.uri.queryParameters["failIfExists"] == "true"
            let (subscriber, _) = try await store.transaction { session in
                try await session.upsertSubscriber(
                    environmentId: environment.id, subscriberId: subscriberId, patch: body.patch, failIfExists: failIfExists
                )
            }
            return JSONResponse.data(subscriber.novuJSON, status: .created)
        }
        group.get("/v2/subscribers/{subscriberId}") { _, context in
            let environment = try context.requireEnvironment()
            let subscriberId = try context.parameters.require("subscriberId")
            guard
                let subscriber = try await store.read({ try await $0.subscriber(environmentId: environment.id, subscriberId: subscriberId) }
                )
            else {
                throw APIError(.notFound, "Subscriber: \(subscriberId) was not found")
            }
            return JSONResponse.data(subscriber.novuJSON)
        }
        group.delete("/v2/subscribers/{subscriberId}") { _, context in
            let environment = try context.requireEnvironment()
            let subscriberId = try context.parameters.require("subscriberId")
            let existed = try await store.transaction {
                try await $0.deleteSubscriber(environmentId: environment.id, subscriberId: subscriberId)
            }
            guard existed else { throw APIError(.notFound, "Subscriber: \(subscriberId) was not found") }
            return JSONResponse.data(["acknowledged": true, "status": "deleted"])
        }
    }
}
