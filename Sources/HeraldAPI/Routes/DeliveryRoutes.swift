import Foundation
import HeraldCore
import HeraldEngine
import HeraldStore
import Hummingbird

/// Herald's own delivery API: list deliveries by status (dead letters, failures, retries in flight) and re-drive
/// them. A re-driven delivery starts a fresh retry window and goes through the same machinery as the first send.
/// `GET /v1/push-stats?uid=` reports a raw send's outcomes per provider and platform.
struct DeliveryRoutes {
    let store: SQLStore
    let engine: Engine
    let pushes: PushIntake

    struct RetryBody: Decodable {
        var ids: [String]?
        var status: String?
        var providerId: String?
        var limit: Int?
    }

    func register(on group: RouterGroup<HeraldRequestContext>) {
        group.get("/v1/deliveries") { request, context in
            let environment = try context.requireEnvironment()
            let query = NovuQuery(request)
            let statuses = try Self.statuses(query.strings("status"))
            let limit = try query.integer("limit", default: 50, range: 1...500)
            let page = try await store.read { session in
                try await session.listDeliveries(
                    environmentId: environment.id, statuses: statuses, providerId: query.string("providerId"), after: query.string("after"),
                    limit: limit)
            }
            return JSONResponse.make(["data": .array(page.items.map(Self.json)), "next": page.nextCursor.map(JSONValue.string) ?? .null])
        }
        group.get("/v1/push-stats") { request, context in
            let environment = try context.requireEnvironment()
            guard let uid = NovuQuery(request).string("uid"), !uid.isEmpty else {
                throw APIError.invalidField("uid", "uid is required (the uid of a send_push_notification)")
            }
            return JSONResponse.data(try await pushes.stats(environmentId: environment.id, uid: uid))
        }
        group.post("/v1/deliveries/:deliveryId/retry") { _, context in
            let environment = try context.requireEnvironment()
            let id = try context.parameters.require("deliveryId")
            let redriven = try await engine.redrive(environmentId: environment.id, deliveryIds: [id])
            guard let delivery = redriven.first else {
                throw APIError(.notFound, "Delivery \(id) not found or not in a final failed state (dead, failed)")
            }
            return JSONResponse.data(Self.json(delivery), status: .created)
        }
        group.post("/v1/deliveries/retry") { request, context in
            let environment = try context.requireEnvironment()
            let body = try await request.decodeJSON(RetryBody.self, context: context)
            var ids = body.ids ?? []
            if ids.isEmpty {
                let statuses = try Self.statuses(body.status.map { [$0] } ?? ["dead"])
                let limit = min(max(body.limit ?? 1000, 1), 10_000)
                ids = try await store.read { session in
                    try await session.listDeliveries(
                        environmentId: environment.id, statuses: statuses, providerId: body.providerId, after: nil, limit: limit
                    ).items.map(\.id)
                }
            }
            guard ids.count <= 10_000 else { throw APIError.invalidField("ids", "at most 10000 deliveries per request") }
            let redriven = try await engine.redrive(environmentId: environment.id, deliveryIds: ids)
            return JSONResponse.data(
                ["retried": .number(Double(redriven.count)), "ids": .array(redriven.map { .string($0.id) })], status: .created)
        }
    }

    static func statuses(_ names: [String]) throws -> [DeliveryStatus] {
        try names.flatMap { $0.split(separator: ",").map(String.init) }.map { name in
            guard let status = DeliveryStatus(rawValue: name) else {
                throw APIError.invalidField(
                    "status", "status must be one of \(DeliveryStatus.allCases.map(\.rawValue).joined(separator: ", "))",
                    value: .string(name))
            }
            return status
        }
    }

    static func json(_ delivery: DeliveryRecord) -> JSONValue {
        var object: [String: JSONValue] = [
            "_id": .string(delivery.id), "status": .string(delivery.status.rawValue), "providerId": .string(delivery.providerId),
            "attempts": .number(Double(delivery.attempts)), "createdAt": .string(delivery.createdAt.iso8601Milliseconds),
            "updatedAt": .string(delivery.updatedAt.iso8601Milliseconds), "target": .string(Secret.redact(delivery.target.revealed)),
        ]
        for (key, value) in [
            ("_messageId", delivery.messageId), ("_pushId", delivery.pushId), ("platform", delivery.platform),
            ("_deviceId", delivery.deviceId), ("_integrationId", delivery.integrationId),
            ("outcome", delivery.outcome), ("providerMessageId", delivery.providerMessageId), ("errorCode", delivery.errorCode),
            ("errorText", delivery.errorText), ("nextAttemptAt", delivery.nextAttemptAt?.iso8601Milliseconds),
        ] {
            if let value { object[key] = .string(value) }
        }
        return .object(object)
    }
}

/// `GET /metrics`: Prometheus text exposition.
struct MetricsRoutes {
    let store: SQLStore
    let metrics: EngineMetrics

    func register(on router: Router<HeraldRequestContext>) {
        router.get("/metrics") { _, _ in
            let (queue, lag) = try await store.read { session in (try await session.jobCounts(), try await session.queueLag()) }
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: metrics.render(queue: queue, lag: lag))))
        }
    }
}
