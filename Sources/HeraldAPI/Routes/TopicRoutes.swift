import Foundation
import HeraldCore
import HeraldStore
import Hummingbird

/// Novu topics, v2 and legacy v1 (`docs/wire-compatibility.md` §Novu topics). Memberships are the subscriber-level topic
/// subscriptions that topic triggers fan out over (and Centrifugo's user topics).
struct TopicRoutes {
    let store: SQLStore

    /// Most subscribers one subscription request may name.
    static let maxSubscriptionsPerRequest = 100

    struct TopicBody: Decodable {
        var key: String?
        var name: String?
    }

    /// `subscriptions` entries are either subscriber ids or `{identifier, subscriberId, name}`.
    struct SubscriptionsBody: Decodable {
        var subscriberIds: [String]?
        var subscriptions: [Entry]?
        var subscribers: [String]?

        struct Entry: Decodable {
            var subscriberId: String?
            init(from decoder: any Decoder) throws {
                if let id = try? decoder.singleValueContainer().decode(String.self) {
                    subscriberId = id
                    return
                }
                let container = try decoder.container(keyedBy: CodingKeys.self)
                subscriberId = try container.decodeIfPresent(String.self, forKey: .subscriberId)
            }
            enum CodingKeys: String, CodingKey { case subscriberId }
        }

        var allIds: [String] {
            var ids: [String] = []
            for id in (subscriberIds ?? []) + (subscriptions ?? []).compactMap(\.subscriberId) + (subscribers ?? []) where !ids.contains(id)
            {
                ids.append(id)
            }
            return ids
        }
    }

    func register(on group: RouterGroup<HeraldRequestContext>) {
        // MARK: v2
        group.get("/v2/topics") { request, context in
            let environment = try context.requireEnvironment()
            let query = NovuQuery(request)
            let page = try query.cursor()
            let result = try await store.read {
                try await $0.searchTopics(environmentId: environment.id, key: query.string("key"), name: query.string("name"), page: page)
            }
            return JSONResponse.make(result.novuJSON(Self.json))
        }
        group.post("/v2/topics") { request, context in
            let environment = try context.requireEnvironment()
            let body = try await request.decodeJSON(TopicBody.self, context: context)
            let key = try Self.requireKey(body.key)
            let failIfExists = try NovuQuery(request).bool("failIfExists") ?? false
            let (topic, created) = try await store.transaction { session in
                if failIfExists, let existing = try await session.topic(environmentId: environment.id, key: key) {
                    // The SDK parses this 409 as a TopicResponseDto: send the existing topic beside the error fields.
                    var conflict = APIError(.conflict, "Topic with key \(key) already exists")
                    conflict.extraFields = Self.json(existing).objectValue ?? [:]
                    throw conflict
                }
                return try await session.upsertTopic(environmentId: environment.id, key: key, name: body.name)
            }
            return JSONResponse.data(Self.json(topic), status: created ? .created : .ok)
        }
        group.get("/v2/topics/{topicKey}") { _, context in
            JSONResponse.data(Self.json(try await requireTopic(context)))
        }
        group.patch("/v2/topics/{topicKey}") { request, context in
            let environment = try context.requireEnvironment()
            let key = try context.parameters.require("topicKey")
            let body = try await request.decodeJSON(TopicBody.self, context: context)
            guard let name = body.name else { throw APIError.invalidField("name", "name should not be empty") }
            let topic = try await store.transaction { try await $0.renameTopic(environmentId: environment.id, key: key, name: name) }
            return JSONResponse.data(Self.json(topic))
        }
        group.delete("/v2/topics/{topicKey}") { _, context in
            let environment = try context.requireEnvironment()
            let key = try context.parameters.require("topicKey")
            guard try await store.transaction({ try await $0.deleteTopic(environmentId: environment.id, key: key) }) else {
                throw APIError(.notFound, "Topic \(key) was not found")
            }
            return JSONResponse.data(["acknowledged": true])
        }
        group.post("/v2/topics/{topicKey}/subscriptions") { request, context in
            let environment = try context.requireEnvironment()
            let key = try Self.requireKey(try context.parameters.require("topicKey"))
            let body = try await request.decodeJSON(SubscriptionsBody.self, context: context)
            let ids = body.allIds
            try Self.checkCount(ids)
            let (topic, found) = try await store.transaction { session in
                let (topic, _) = try await session.upsertTopic(environmentId: environment.id, key: key, name: nil)
                let found = try await session.subscribers(environmentId: environment.id, subscriberIds: ids)
                try await session.subscribe(environmentId: environment.id, topicKey: key, subscriberIds: ids.filter { found[$0] != nil })
                return (topic, found)
            }
            return try await subscriptionResult(topic: topic, ids: ids, found: found, environmentId: environment.id, status: .created)
        }
        group.delete("/v2/topics/{topicKey}/subscriptions") { request, context in
            let environment = try context.requireEnvironment()
            let topic = try await requireTopic(context)
            let body = try await request.decodeJSON(SubscriptionsBody.self, context: context)
            let ids = body.allIds
            try Self.checkCount(ids)
            let existing = try await store.read {
                try await $0.topicSubscriptions(environmentId: environment.id, topicKey: topic.key, subscriberIds: ids)
            }
            let removed = ids.compactMap { existing[$0] }
            _ = try await store.transaction {
                try await $0.unsubscribe(environmentId: environment.id, topicKey: topic.key, subscriberIds: ids)
            }
            let subscribers = try await store.read { try await $0.subscribers(environmentId: environment.id, subscriberIds: ids) }
            let missing = ids.filter { id in !removed.contains { $0.subscriberId == id } }
            var object: [String: JSONValue] = [
                "data": .array(removed.map { Self.subscriptionJSON($0, topic: topic, subscriber: subscribers[$0.subscriberId]) }),
                "meta": [
                    "totalCount": .number(Double(ids.count)), "successful": .number(Double(removed.count)),
                    "failed": .number(Double(missing.count)),
                ],
            ]
            if !missing.isEmpty { object["errors"] = .array(missing.map(Self.notFoundError)) }
            return JSONResponse.make(.object(object))
        }
        group.get("/v2/topics/{topicKey}/subscriptions") { request, context in
            let environment = try context.requireEnvironment()
            let topic = try await requireTopic(context)
            let query = NovuQuery(request)
            let page = try query.cursor()
            let result = try await store.read { session in
                let page = try await session.topicSubscriptions(
                    environmentId: environment.id, topicKey: topic.key, subscriberId: query.string("subscriberId"), page: page
                )
                return (page, try await session.subscribers(environmentId: environment.id, subscriberIds: page.items.map(\.subscriberId)))
            }
            return JSONResponse.make(result.0.novuJSON { Self.subscriptionJSON($0, topic: topic, subscriber: result.1[$0.subscriberId]) })
        }
        group.get("/v2/topics/{topicKey}/subscriptions/{identifier}") { _, context in
            let environment = try context.requireEnvironment()
            let topic = try await requireTopic(context)
            let identifier = try context.parameters.require("identifier")
            let prefix = "tk_\(topic.key):"
            let subscriberId = identifier.hasPrefix(prefix) ? String(identifier.dropFirst(prefix.count)) : identifier
            let (subscription, subscriber) = try await store.read { session in
                (
                    try await session.topicSubscription(environmentId: environment.id, topicKey: topic.key, subscriberId: subscriberId),
                    try await session.subscriber(environmentId: environment.id, subscriberId: subscriberId)
                )
            }
            guard let subscription else { throw APIError(.notFound, "Subscription \(identifier) was not found") }
            // SubscriptionDetailsResponseDto: `id` (no underscore), `identifier`, `preferences`; the subscription fields ride along.
            var details = Self.subscriptionJSON(subscription, topic: topic, subscriber: subscriber).objectValue ?? [:]
            details["id"] = .string(subscription.id)
            details["preferences"] = []
            return JSONResponse.data(.object(details))
        }
        group.get("/v2/subscribers/{subscriberId}/subscriptions") { request, context in
            let environment = try context.requireEnvironment()
            let subscriberId = try context.parameters.require("subscriberId")
            let limit = try NovuQuery(request).integer("limit", default: 10, range: 1...100)
            let (subscriber, page) = try await store.read { session in
                (
                    try await session.subscriber(environmentId: environment.id, subscriberId: subscriberId),
                    try await session.subscriberTopicSubscriptions(environmentId: environment.id, subscriberId: subscriberId, limit: limit)
                )
            }
            guard subscriber != nil else { throw APIError(.notFound, "Subscriber: \(subscriberId) was not found") }
            return JSONResponse.make([
                "data": .array(page.items.map { Self.subscriptionJSON($0.subscription, topic: $0.topic, subscriber: subscriber) }),
                "next": .null, "previous": .null, "totalCount": .number(Double(page.total)), "totalCountCapped": false,
            ])
        }

        // MARK: v1 legacy
        group.post("/v1/topics") { request, context in
            let environment = try context.requireEnvironment()
            let body = try await request.decodeJSON(TopicBody.self, context: context)
            let key = try Self.requireKey(body.key)
            guard let name = body.name, !name.isEmpty else { throw APIError.invalidField("name", "name should not be empty") }
            let (topic, _) = try await store.transaction { try await $0.upsertTopic(environmentId: environment.id, key: key, name: name) }
            return JSONResponse.data(["_id": .string(topic.id), "key": .string(topic.key)], status: .created)
        }
        group.get("/v1/topics") { request, context in
            let environment = try context.requireEnvironment()
            let query = NovuQuery(request)
            let page = try query.integer("page", default: 0, range: 0...100_000)
            let pageSize = try query.integer("pageSize", default: 10, range: 1...100)
            let (topics, total) = try await store.read {
                try await $0.topics(environmentId: environment.id, key: query.string("key"), page: page, pageSize: pageSize)
            }
            var data: [JSONValue] = []
            for topic in topics { data.append(try await legacyJSON(topic)) }
            return JSONResponse.make([
                "data": .array(data), "page": .number(Double(page)), "pageSize": .number(Double(pageSize)),
                "totalCount": .number(Double(total)),
            ])
        }
        group.get("/v1/topics/{topicKey}") { _, context in
            JSONResponse.data(try await legacyJSON(try await requireTopic(context)))
        }
        group.patch("/v1/topics/{topicKey}") { request, context in
            let environment = try context.requireEnvironment()
            let key = try context.parameters.require("topicKey")
            let body = try await request.decodeJSON(TopicBody.self, context: context)
            guard let name = body.name else { throw APIError.invalidField("name", "name should not be empty") }
            let topic = try await store.transaction { try await $0.renameTopic(environmentId: environment.id, key: key, name: name) }
            return JSONResponse.data(try await legacyJSON(topic))
        }
        group.delete("/v1/topics/{topicKey}") { _, context in
            let environment = try context.requireEnvironment()
            let key = try context.parameters.require("topicKey")
            guard try await store.transaction({ try await $0.deleteTopic(environmentId: environment.id, key: key) }) else {
                throw APIError(.notFound, "Topic \(key) was not found")
            }
            return Response(status: .noContent)
        }
        group.post("/v1/topics/{topicKey}/subscribers") { request, context in
            let environment = try context.requireEnvironment()
            let topic = try await requireTopic(context)
            let ids = try await request.decodeJSON(SubscriptionsBody.self, context: context).allIds
            try Self.checkCount(ids)
            let found = try await store.transaction { session in
                let found = try await session.subscribers(environmentId: environment.id, subscriberIds: ids)
                try await session.subscribe(
                    environmentId: environment.id, topicKey: topic.key, subscriberIds: ids.filter { found[$0] != nil })
                return found
            }
            var result: [String: JSONValue] = ["succeeded": .array(ids.filter { found[$0] != nil }.map(JSONValue.string))]
            let missing = ids.filter { found[$0] == nil }
            if !missing.isEmpty { result["failed"] = ["notFound": .array(missing.map(JSONValue.string))] }
            return JSONResponse.data(.object(result))
        }
        group.post("/v1/topics/{topicKey}/subscribers/removal") { request, context in
            let environment = try context.requireEnvironment()
            let topic = try await requireTopic(context)
            let ids = try await request.decodeJSON(SubscriptionsBody.self, context: context).allIds
            try Self.checkCount(ids)
            _ = try await store.transaction {
                try await $0.unsubscribe(environmentId: environment.id, topicKey: topic.key, subscriberIds: ids)
            }
            return Response(status: .noContent)
        }
        group.get("/v1/topics/{topicKey}/subscribers/{externalSubscriberId}") { _, context in
            let environment = try context.requireEnvironment()
            let topic = try await requireTopic(context)
            let subscriberId = try context.parameters.require("externalSubscriberId")
            let (subscription, subscriber) = try await store.read { session in
                (
                    try await session.topicSubscription(environmentId: environment.id, topicKey: topic.key, subscriberId: subscriberId),
                    try await session.subscriber(environmentId: environment.id, subscriberId: subscriberId)
                )
            }
            guard subscription != nil, let subscriber else {
                throw APIError(.notFound, "Subscriber \(subscriberId) is not subscribed to topic \(topic.key)")
            }
            return JSONResponse.data([
                "_organizationId": .string(novuOrganizationId), "_environmentId": .string(environment.id),
                "_subscriberId": .string(subscriber.id),
                "_topicId": .string(topic.id), "topicKey": .string(topic.key), "externalSubscriberId": .string(subscriberId),
            ])
        }
    }

    func requireTopic(_ context: HeraldRequestContext) async throws -> Topic {
        let environment = try context.requireEnvironment()
        let key = try context.parameters.require("topicKey")
        guard let topic = try await store.read({ try await $0.topic(environmentId: environment.id, key: key) }) else {
            throw APIError(.notFound, "Topic \(key) was not found")
        }
        return topic
    }

    /// The legacy `TopicDto`. Its `subscribers` lists at most the first 100 members: the legacy shape has no
    /// pagination, and a topic may have millions (use `GET /v2/topics/{key}/subscriptions` to page through them).
    func legacyJSON(_ topic: Topic) async throws -> JSONValue {
        let members = try await store.read {
            try await $0.topicMembers(environmentId: topic.environmentId, topicKey: topic.key, limit: 100)
        }
        return [
            "_id": .string(topic.id), "_organizationId": .string(novuOrganizationId), "_environmentId": .string(topic.environmentId),
            "key": .string(topic.key), "name": topic.name.map(JSONValue.string) ?? .null,
            "subscribers": .array(members.items.map(JSONValue.string)),
        ]
    }

    func subscriptionResult(
        topic: Topic, ids: [String], found: [String: Subscriber], environmentId: String, status: HTTPResponse.Status
    ) async throws -> Response {
        let subscriptions = try await store.read {
            try await $0.topicSubscriptions(
                environmentId: environmentId, topicKey: topic.key, subscriberIds: ids.filter { found[$0] != nil })
        }
        let data = ids.compactMap { id in subscriptions[id].map { Self.subscriptionJSON($0, topic: topic, subscriber: found[id]) } }
        let missing = ids.filter { found[$0] == nil }
        var object: [String: JSONValue] = [
            "data": .array(data),
            "meta": [
                "totalCount": .number(Double(ids.count)), "successful": .number(Double(data.count)),
                "failed": .number(Double(missing.count)),
            ],
        ]
        if !missing.isEmpty { object["errors"] = .array(missing.map(Self.notFoundError)) }
        return JSONResponse.make(.object(object), status: status)
    }

    static func notFoundError(_ subscriberId: String) -> JSONValue {
        [
            "subscriberId": .string(subscriberId), "code": "SUBSCRIBER_NOT_FOUND",
            "message": .string("Subscriber with id \(subscriberId) not found"),
        ]
    }

    static func requireKey(_ key: String?) throws -> String {
        guard let key, !key.isEmpty else { throw APIError.invalidField("key", "key should not be empty") }
        guard Topic.isValidKey(key) else {
            throw APIError.invalidField("key", "key must be 1–256 characters of a-z A-Z 0-9 - _ : . @ +", value: .string(key))
        }
        return key
    }

    static func checkCount(_ ids: [String]) throws {
        guard !ids.isEmpty else { throw APIError.invalidField("subscriberIds", "name at least one subscriber") }
        guard ids.count <= maxSubscriptionsPerRequest else {
            throw APIError.invalidField("subscriberIds", "subscriberIds must contain no more than \(maxSubscriptionsPerRequest) elements")
        }
    }

    /// Novu `TopicResponseDto`.
    static func json(_ topic: Topic) -> JSONValue {
        var object: [String: JSONValue] = [
            "_id": .string(topic.id), "key": .string(topic.key), "createdAt": .string(topic.createdAt.iso8601Milliseconds),
            "updatedAt": .string(topic.updatedAt.iso8601Milliseconds),
        ]
        if let name = topic.name { object["name"] = .string(name) }
        return .object(object)
    }

    /// Novu `SubscriptionResponseDto`.
    static func subscriptionJSON(_ subscription: TopicSubscription, topic: Topic, subscriber: Subscriber?) -> JSONValue {
        var topicObject: [String: JSONValue] = ["_id": .string(topic.id), "key": .string(topic.key)]
        if let name = topic.name { topicObject["name"] = .string(name) }
        var subscriberValue: JSONValue = .null
        if let subscriber {
            var object: [String: JSONValue] = ["_id": .string(subscriber.id), "subscriberId": .string(subscriber.subscriberId)]
            for (key, value) in [
                ("firstName", subscriber.profile.firstName), ("lastName", subscriber.profile.lastName), ("email", subscriber.profile.email),
                ("avatar", subscriber.profile.avatar),
            ] {
                if let value { object[key] = .string(value) }
            }
            subscriberValue = .object(object)
        }
        return [
            "_id": .string(subscription.id), "identifier": .string("tk_\(topic.key):\(subscription.subscriberId)"),
            "topic": .object(topicObject),
            "subscriber": subscriberValue, "createdAt": .string(subscription.createdAt.iso8601Milliseconds),
            "updatedAt": .string(subscription.createdAt.iso8601Milliseconds),
        ]
    }
}
