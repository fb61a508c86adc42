import Foundation
import HeraldCore
import SQLKit

extension StoreSession {
    static let subscriberColumns =
        "id, environment_id, subscriber_id, first_name, last_name, email, phone, avatar, locale, timezone, data, is_online, last_online_at, created_at, updated_at"

    /// Longest subscriber id accepted.
    public static let maxSubscriberIdLength = 256

    /// Creates a subscriber, or updates the existing one with `patch` (Novu's "identify" upsert). Returns the
    /// subscriber and whether it was created. With `failIfExists`, an existing subscriber is a `conflict` instead.
    public func upsertSubscriber(
        environmentId: String, subscriberId: String, patch: SubscriberProfilePatch, failIfExists: Bool = false
    ) async throws -> (subscriber: Subscriber, created: Bool) {
        guard !subscriberId.isEmpty, subscriberId.utf8.count <= Self.maxSubscriberIdLength else {
            throw HeraldError.invalidInput(
                "subscriberId must be 1–\(Self.maxSubscriberIdLength) characters", context: ["field": "subscriberId"])
        }
        if let existing = try await subscriber(environmentId: environmentId, subscriberId: subscriberId) {
            if failIfExists {
                throw HeraldError.conflict("Subscriber: \(subscriberId) already exists", context: ["subscriberId": subscriberId])
            }
            return (try await update(existing, with: patch), false)
        }
        let now = nowMilliseconds
        let subscriber = Subscriber(
            id: ids.next(), environmentId: environmentId, subscriberId: subscriberId, profile: patch.applied(to: SubscriberProfile()),
            createdAt: Date(millisecondsSince1970: now), updatedAt: Date(millisecondsSince1970: now)
        )
        let p = subscriber.profile
        // ON CONFLICT rather than catching the violation: on PostgreSQL a failed statement aborts the whole transaction.
        let inserted = try await db.raw(
            """
            INSERT INTO subscribers (id, environment_id, subscriber_id, first_name, last_name, email, phone, avatar, locale, timezone, data,
                created_at, updated_at)
            VALUES (\(bind: subscriber.id), \(bind: environmentId), \(bind: subscriberId), \(bind: p.firstName), \(bind: p.lastName),
                \(bind: p.email), \(bind: p.phone), \(bind: p.avatar), \(bind: p.locale), \(bind: p.timezone),
                \(bind: p.data?.jsonString()), \(bind: now), \(bind: now))
            ON CONFLICT (environment_id, subscriber_id) DO NOTHING RETURNING id
            """
        ).all()
        if inserted.isEmpty {
            // A concurrent request created it first: apply this one as an update.
            guard !failIfExists, let existing = try await self.subscriber(environmentId: environmentId, subscriberId: subscriberId) else {
                throw HeraldError.conflict("Subscriber: \(subscriberId) already exists", context: ["subscriberId": subscriberId])
            }
            return (try await update(existing, with: patch), false)
        }
        return (subscriber, true)
    }

    /// Applies a PATCH to a subscriber; throws `notFound` when it does not exist.
    public func patchSubscriber(environmentId: String, subscriberId: String, patch: SubscriberProfilePatch) async throws -> Subscriber {
        guard let existing = try await subscriber(environmentId: environmentId, subscriberId: subscriberId) else {
            throw HeraldError.notFound("Subscriber: \(subscriberId) was not found", context: ["subscriberId": subscriberId])
        }
        return try await update(existing, with: patch)
    }

    private func update(_ existing: Subscriber, with patch: SubscriberProfilePatch) async throws -> Subscriber {
        var updated = existing
        updated.profile = patch.applied(to: existing.profile)
        guard updated.profile != existing.profile else { return existing }
        updated.updatedAt = Date(millisecondsSince1970: nowMilliseconds)
        let p = updated.profile
        try await db.raw(
            """
            UPDATE subscribers SET first_name = \(bind: p.firstName), last_name = \(bind: p.lastName), email = \(bind: p.email),
                phone = \(bind: p.phone), avatar = \(bind: p.avatar), locale = \(bind: p.locale), timezone = \(bind: p.timezone),
                data = \(bind: p.data?.jsonString()), updated_at = \(bind: nowMilliseconds)
            WHERE id = \(bind: existing.id)
            """
        ).run()
        return updated
    }

    /// A subscriber by the app's id.
    public func subscriber(environmentId: String, subscriberId: String) async throws -> Subscriber? {
        try await db.raw(
            """
            SELECT \(unsafeRaw: Self.subscriberColumns) FROM subscribers
            WHERE environment_id = \(bind: environmentId) AND subscriber_id = \(bind: subscriberId)
            """
        ).first().map(Self.subscriber(from:))
    }

    /// Novu v2 subscriber search: optional exact `email`, `phone` and `subscriberId`, and `name` matching the first
    /// or last name (case-insensitive substring), cursor-paginated.
    public func searchSubscribers(
        environmentId: String, email: String? = nil, phone: String? = nil, subscriberId: String? = nil, name: String? = nil,
        page: CursorRequest
    ) async throws -> CursorPage<Subscriber> {
        var filter = SQLQueryString("environment_id = \(bind: environmentId)")
        if let email { filter += " AND email = \(bind: email)" }
        if let phone { filter += " AND phone = \(bind: phone)" }
        if let subscriberId { filter += " AND subscriber_id = \(bind: subscriberId)" }
        if let name {
            let pattern = "%" + name.lowercased().replacingOccurrences(of: "%", with: "").replacingOccurrences(of: "_", with: "") + "%"
            filter += " AND (LOWER(first_name) LIKE \(bind: pattern) OR LOWER(last_name) LIKE \(bind: pattern)"
            filter += " OR LOWER(COALESCE(first_name, '') || ' ' || COALESCE(last_name, '')) LIKE \(bind: pattern))"
        }
        return try await cursorPage(
            table: "subscribers", columns: Self.subscriberColumns, filter: filter, request: page, decode: Self.subscriber(from:), id: \.id
        )
    }

    /// Novu v1 offset pagination: page `page` (0-based) of `limit` subscribers, oldest first.
    public func subscribers(environmentId: String, page: Int, limit: Int) async throws -> [Subscriber] {
        try await db.raw(
            """
            SELECT \(unsafeRaw: Self.subscriberColumns) FROM subscribers WHERE environment_id = \(bind: environmentId)
            ORDER BY id LIMIT \(bind: limit) OFFSET \(bind: page * limit)
            """
        ).all().map(Self.subscriber(from:))
    }

    /// Sets the online flag (Novu `online-status`).
    public func setSubscriberOnline(environmentId: String, subscriberId: String, isOnline: Bool) async throws -> Subscriber {
        let now = nowMilliseconds
        let rows = try await db.raw(
            """
            UPDATE subscribers SET is_online = \(bind: isOnline), last_online_at = \(bind: now), updated_at = \(bind: now)
            WHERE environment_id = \(bind: environmentId) AND subscriber_id = \(bind: subscriberId) RETURNING id
            """
        ).all()
        guard !rows.isEmpty, let subscriber = try await subscriber(environmentId: environmentId, subscriberId: subscriberId) else {
            throw HeraldError.notFound("Subscriber: \(subscriberId) was not found", context: ["subscriberId": subscriberId])
        }
        return subscriber
    }

    /// A page of subscribers in creation order, after the subscriber whose record id is `after`.
    public func subscribers(environmentId: String, after: String? = nil, limit: Int) async throws -> Page<Subscriber> {
        var query = SQLQueryString(
            "SELECT \(unsafeRaw: Self.subscriberColumns) FROM subscribers WHERE environment_id = \(bind: environmentId)")
        if let after { query += " AND id > \(bind: after)" }
        query += " ORDER BY id LIMIT \(bind: limit + 1)"
        let rows = try await db.raw(query).all().map(Self.subscriber(from:))
        let items = Array(rows.prefix(limit))
        return Page(items: items, nextCursor: rows.count > limit ? items.last?.id : nil)
    }

    /// A page of the environment's subscriber ids in id order after `after` (broadcast expansion: keyset pagination
    /// over the unique index, so every page costs the same).
    public func subscriberIds(environmentId: String, after: String? = nil, limit: Int) async throws -> Page<String> {
        var query = SQLQueryString("SELECT subscriber_id FROM subscribers WHERE environment_id = \(bind: environmentId)")
        if let after { query += " AND subscriber_id > \(bind: after)" }
        query += " ORDER BY subscriber_id LIMIT \(bind: limit + 1)"
        let ids = try await db.raw(query).all().map { try $0.decode(column: "subscriber_id", as: String.self) }
        let items = Array(ids.prefix(limit))
        return Page(items: items, nextCursor: ids.count > limit ? items.last : nil)
    }

    /// Deletes a subscriber with everything that delivers to it: its devices, channel credentials and topic
    /// subscriptions. Returns whether it existed.
    @discardableResult
    public func deleteSubscriber(environmentId: String, subscriberId: String) async throws -> Bool {
        let rows = try await db.raw(
            "DELETE FROM subscribers WHERE environment_id = \(bind: environmentId) AND subscriber_id = \(bind: subscriberId) RETURNING id"
        ).all()
        for table in [
            "devices", "subscriber_channels", "topic_subscriptions", "subscriber_preferences", "preference_changes",
        ] {
            try await db.raw(
                "DELETE FROM \(ident: table) WHERE environment_id = \(bind: environmentId) AND subscriber_id = \(bind: subscriberId)"
            ).run()
        }
        return !rows.isEmpty
    }

    static func subscriber(from row: any SQLRow) throws -> Subscriber {
        Subscriber(
            id: try row.decode(column: "id", as: String.self), environmentId: try row.decode(column: "environment_id", as: String.self),
            subscriberId: try row.decode(column: "subscriber_id", as: String.self),
            profile: SubscriberProfile(
                firstName: try row.optional("first_name"), lastName: try row.optional("last_name"), email: try row.optional("email"),
                phone: try row.optional("phone"), avatar: try row.optional("avatar"), locale: try row.optional("locale"),
                timezone: try row.optional("timezone"), data: try row.optional("data", as: String.self).map { try JSONValue.parse($0) }
            ),
            isOnline: try row.optional("is_online"), lastOnlineAt: try row.optionalDate("last_online_at"),
            createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at")
        )
    }
}
