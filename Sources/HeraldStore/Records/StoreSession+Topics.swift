import Foundation
import HeraldCore
import SQLKit

extension StoreSession {
    /// Creates a topic, or returns the existing one with that key (renaming it when `name` is given). Returns the
    /// topic and whether it was created.
    public func upsertTopic(environmentId: String, key: String, name: String?) async throws -> (topic: Topic, created: Bool) {
        guard Topic.isValidKey(key) else {
            throw HeraldError.invalidInput("topic keys are 1–256 characters of a-z A-Z 0-9 - _ : . @ +", context: ["field": "key"])
        }
        let now = nowMilliseconds
        let id = ids.next()
        let inserted = try await db.raw(
            """
            INSERT INTO topics (id, environment_id, key, name, created_at, updated_at)
            VALUES (\(bind: id), \(bind: environmentId), \(bind: key), \(bind: name), \(bind: now), \(bind: now))
            ON CONFLICT (environment_id, key) DO NOTHING RETURNING id
            """
        ).all()
        if inserted.isEmpty, let name {
            try await db.raw(
                "UPDATE topics SET name = \(bind: name), updated_at = \(bind: now) WHERE environment_id = \(bind: environmentId) AND key = \(bind: key)"
            ).run()
        }
        guard let topic = try await topic(environmentId: environmentId, key: key) else {
            throw HeraldError(.conflict, "topic '\(key)' was deleted while it was being created; retry")
        }
        return (topic, !inserted.isEmpty)
    }

    /// A topic by key.
    public func topic(environmentId: String, key: String) async throws -> Topic? {
        try await db.raw(
            "SELECT \(unsafeRaw: Self.topicColumns) FROM topics WHERE environment_id = \(bind: environmentId) AND key = \(bind: key)"
        ).first().map(Self.topic(from:))
    }

    static let topicColumns = "id, environment_id, key, name, created_at, updated_at"

    static func topic(from row: any SQLRow) throws -> Topic {
        Topic(
            id: try row.decode(column: "id", as: String.self), environmentId: try row.decode(column: "environment_id", as: String.self),
            key: try row.decode(column: "key", as: String.self), name: try row.optional("name"), createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at")
        )
    }

    /// Novu v2 topic listing: optional exact `key` and case-insensitive `name` substring, cursor-paginated.
    public func searchTopics(
        environmentId: String, key: String? = nil, name: String? = nil, page: CursorRequest
    ) async throws -> CursorPage<Topic> {
        var filter = SQLQueryString("environment_id = \(bind: environmentId)")
        if let key { filter += " AND key = \(bind: key)" }
        if let name {
            filter += " AND LOWER(name) LIKE \(bind: "%" + name.lowercased().replacingOccurrences(of: "%", with: "") + "%")"
        }
        return try await cursorPage(
            table: "topics", columns: Self.topicColumns, filter: filter, request: page, decode: Self.topic(from:), id: \.id)
    }

    /// Novu v1 topic listing: page `page` (0-based) of `pageSize`, oldest first, and the total.
    public func topics(environmentId: String, key: String?, page: Int, pageSize: Int) async throws -> (topics: [Topic], total: Int) {
        var filter = SQLQueryString("environment_id = \(bind: environmentId)")
        if let key { filter += " AND key = \(bind: key)" }
        let rows = try await db.raw(
            SQLQueryString("SELECT \(unsafeRaw: Self.topicColumns) FROM topics WHERE ") + filter
                + " ORDER BY id LIMIT \(bind: pageSize) OFFSET \(bind: page * pageSize)"
        ).all().map(Self.topic(from:))
        let total =
            try await db.raw(SQLQueryString("SELECT COUNT(*) AS n FROM topics WHERE ") + filter).first()?.decode(column: "n", as: Int.self)
            ?? 0
        return (rows, total)
    }

    /// Renames a topic; throws `notFound` when it does not exist.
    public func renameTopic(environmentId: String, key: String, name: String) async throws -> Topic {
        let rows = try await db.raw(
            """
            UPDATE topics SET name = \(bind: name), updated_at = \(bind: nowMilliseconds)
            WHERE environment_id = \(bind: environmentId) AND key = \(bind: key) RETURNING id
            """
        ).all()
        guard !rows.isEmpty, let topic = try await topic(environmentId: environmentId, key: key) else {
            throw HeraldError.notFound("Topic \(key) was not found", context: ["key": key])
        }
        return topic
    }

    /// A topic's subscriptions, cursor-paginated by subscription id, optionally for one subscriber.
    public func topicSubscriptions(
        environmentId: String, topicKey: String, subscriberId: String? = nil, page: CursorRequest
    ) async throws -> CursorPage<TopicSubscription> {
        var filter = SQLQueryString("environment_id = \(bind: environmentId) AND topic_key = \(bind: topicKey)")
        if let subscriberId { filter += " AND subscriber_id = \(bind: subscriberId)" }
        return try await cursorPage(
            table: "topic_subscriptions", columns: "id, environment_id, topic_key, subscriber_id, created_at", filter: filter,
            request: page,
            decode: { row in
                TopicSubscription(
                    id: try row.decode(column: "id", as: String.self),
                    environmentId: try row.decode(column: "environment_id", as: String.self),
                    topicKey: try row.decode(column: "topic_key", as: String.self),
                    subscriberId: try row.decode(column: "subscriber_id", as: String.self), createdAt: try row.date("created_at")
                )
            }, id: \.id
        )
    }

    /// The subscriptions of several subscribers to a topic, in one query; subscribers without one are left out.
    public func topicSubscriptions(
        environmentId: String, topicKey: String, subscriberIds: [String]
    ) async throws -> [String: TopicSubscription] {
        guard !subscriberIds.isEmpty else { return [:] }
        let rows = try await db.raw(
            """
            SELECT id, environment_id, topic_key, subscriber_id, created_at FROM topic_subscriptions
            WHERE environment_id = \(bind: environmentId) AND topic_key = \(bind: topicKey) AND subscriber_id IN (\(binds: subscriberIds))
            """
        ).all().map { row in
            TopicSubscription(
                id: try row.decode(column: "id", as: String.self), environmentId: try row.decode(column: "environment_id", as: String.self),
                topicKey: try row.decode(column: "topic_key", as: String.self),
                subscriberId: try row.decode(column: "subscriber_id", as: String.self), createdAt: try row.date("created_at")
            )
        }
        return Dictionary(rows.map { ($0.subscriberId, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// The subscription of one subscriber to a topic.
    public func topicSubscription(environmentId: String, topicKey: String, subscriberId: String) async throws -> TopicSubscription? {
        try await topicSubscriptions(
            environmentId: environmentId, topicKey: topicKey, subscriberId: subscriberId, page: CursorRequest(limit: 1)
        )
        .items.first
    }

    /// Subscribers by the app's ids (those that exist).
    public func subscribers(environmentId: String, subscriberIds: [String]) async throws -> [String: Subscriber] {
        guard !subscriberIds.isEmpty else { return [:] }
        let rows = try await db.raw(
            """
            SELECT \(unsafeRaw: Self.subscriberColumns) FROM subscribers
            WHERE environment_id = \(bind: environmentId) AND subscriber_id IN (\(binds: subscriberIds))
            """
        ).all().map(Self.subscriber(from:))
        return Dictionary(rows.map { ($0.subscriberId, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// Deletes a topic and its subscriptions; returns whether it existed.
    @discardableResult
    public func deleteTopic(environmentId: String, key: String) async throws -> Bool {
        let rows = try await db.raw("DELETE FROM topics WHERE environment_id = \(bind: environmentId) AND key = \(bind: key) RETURNING id")
            .all()
        try await db.raw("DELETE FROM topic_subscriptions WHERE environment_id = \(bind: environmentId) AND topic_key = \(bind: key)").run()
        return !rows.isEmpty
    }

    /// Subscribes subscribers (by the app's ids) to a topic in one multi-row statement; existing subscriptions are
    /// kept. Returns how many were added.
    @discardableResult
    public func subscribe(environmentId: String, topicKey: String, subscriberIds: [String]) async throws -> Int {
        var seen = Set<String>()
        let unique = subscriberIds.filter { seen.insert($0).inserted }
        guard !unique.isEmpty else { return 0 }
        let now = nowMilliseconds
        var added = 0
        // 6 binds a row: 100 rows stay far below SQLite's and PostgreSQL's bind limits.
        for chunk in stride(from: 0, to: unique.count, by: 100).map({ unique[$0..<min($0 + 100, unique.count)] }) {
            var query = SQLQueryString(
                "INSERT INTO topic_subscriptions (id, environment_id, topic_key, subscriber_id, created_at, updated_at) VALUES ")
            for (index, subscriberId) in chunk.enumerated() {
                if index > 0 { query += ", " }
                query +=
                    "(\(bind: ids.next()), \(bind: environmentId), \(bind: topicKey), \(bind: subscriberId), \(bind: now), \(bind: now))"
            }
            query += " ON CONFLICT (environment_id, topic_key, subscriber_id) DO NOTHING RETURNING id"
            added += try await db.raw(query).all().count
        }
        return added
    }

    /// A subscriber's first `limit` topic subscriptions in topic-key order, each with its topic, and how many it has in
    /// all: two queries however many topics (the subscriber index covers both).
    public func subscriberTopicSubscriptions(
        environmentId: String, subscriberId: String, limit: Int
    ) async throws -> (items: [(subscription: TopicSubscription, topic: Topic)], total: Int) {
        let rows = try await db.raw(
            """
            SELECT s.id AS s_id, s.created_at AS s_created_at, t.id, t.environment_id, t.key, t.name, t.created_at, t.updated_at
            FROM topic_subscriptions s JOIN topics t ON t.environment_id = s.environment_id AND t.key = s.topic_key
            WHERE s.environment_id = \(bind: environmentId) AND s.subscriber_id = \(bind: subscriberId)
            ORDER BY s.topic_key LIMIT \(bind: limit)
            """
        ).all()
        let items = try rows.map { row in
            let topic = try Self.topic(from: row)
            let subscription = TopicSubscription(
                id: try row.decode(column: "s_id", as: String.self), environmentId: environmentId, topicKey: topic.key,
                subscriberId: subscriberId, createdAt: try row.date("s_created_at"))
            return (subscription: subscription, topic: topic)
        }
        let total =
            try await db.raw(
                """
                SELECT COUNT(*) AS n FROM topic_subscriptions s JOIN topics t ON t.environment_id = s.environment_id AND t.key = s.topic_key
                WHERE s.environment_id = \(bind: environmentId) AND s.subscriber_id = \(bind: subscriberId)
                """
            ).first()?.decode(column: "n", as: Int.self) ?? 0
        return (items, total)
    }

    /// Removes subscriptions; returns how many existed.
    @discardableResult
    public func unsubscribe(environmentId: String, topicKey: String, subscriberIds: [String]) async throws -> Int {
        guard !subscriberIds.isEmpty else { return 0 }
        return try await db.raw(
            """
            DELETE FROM topic_subscriptions WHERE environment_id = \(bind: environmentId) AND topic_key = \(bind: topicKey)
            AND subscriber_id IN (\(binds: subscriberIds)) RETURNING id
            """
        ).all().count
    }

    /// A page of a topic's subscriber ids in id order, after `after` (keyset pagination over the unique index, so
    /// every page costs the same however large the topic).
    public func topicMembers(environmentId: String, topicKey: String, after: String? = nil, limit: Int) async throws -> Page<String> {
        var query = SQLQueryString(
            "SELECT subscriber_id FROM topic_subscriptions WHERE environment_id = \(bind: environmentId) AND topic_key = \(bind: topicKey)"
        )
        if let after { query += " AND subscriber_id > \(bind: after)" }
        query += " ORDER BY subscriber_id LIMIT \(bind: limit + 1)"
        let ids = try await db.raw(query).all().map { try $0.decode(column: "subscriber_id", as: String.self) }
        let items = Array(ids.prefix(limit))
        return Page(items: items, nextCursor: ids.count > limit ? items.last : nil)
    }

    /// The topic keys a subscriber belongs to.
    public func topicKeys(environmentId: String, subscriberId: String) async throws -> [String] {
        try await db.raw(
            """
            SELECT topic_key FROM topic_subscriptions WHERE environment_id = \(bind: environmentId) AND subscriber_id = \(bind: subscriberId)
            ORDER BY topic_key
            """
        ).all().map { try $0.decode(column: "topic_key", as: String.self) }
    }
}
