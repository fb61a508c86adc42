import Foundation
import HeraldCore
import SQLKit

extension StoreSession {
    private static let deviceColumns =
        "id, environment_id, provider, token, integration_id, platform, subscriber_id, tags, meta, timezone, locale, created_at, updated_at, last_success_at"

    /// Centrifugo re-registration with a stored device id: the device keeps its id and takes the (possibly rotated)
    /// token; another device that holds the new token gives it up. Throws `notFound` for an unknown id.
    public func reregisterDevice(environmentId: String, id: String, _ registration: DeviceRegistration) async throws -> Device {
        guard let current = try await device(environmentId: environmentId, id: id) else {
            throw HeraldError.notFound("device \(id) not found")
        }
        if current.provider != registration.provider || current.token != registration.token {
            try await db.raw(
                """
                DELETE FROM devices WHERE environment_id = \(bind: environmentId) AND provider = \(bind: registration.provider)
                AND token = \(bind: registration.token.revealed) AND id <> \(bind: id)
                """
            ).run()
            try await db.raw(
                """
                UPDATE devices SET provider = \(bind: registration.provider), token = \(bind: registration.token.revealed),
                    updated_at = \(bind: nowMilliseconds) WHERE id = \(bind: id)
                """
            ).run()
        }
        return try await registerDevice(environmentId: environmentId, registration)
    }

    /// Registers a push token, or updates the device that already has it (tokens are unique per environment and
    /// provider). Registering a token for another subscriber moves the device to that subscriber and clears what
    /// the previous owner attached to it (see ``DeviceRegistration``). Run it inside a transaction.
    public func registerDevice(environmentId: String, _ registration: DeviceRegistration) async throws -> Device {
        let token = registration.token.revealed
        guard !token.isEmpty, token.utf8.count <= DeviceRegistration.maxTokenLength else {
            throw HeraldError.invalidInput(
                "device tokens must be 1–\(DeviceRegistration.maxTokenLength) bytes", context: ["field": "token"])
        }
        let now = nowMilliseconds
        let newId = ids.next()
        let inserted = try await db.raw(
            """
            INSERT INTO devices (id, environment_id, provider, token, integration_id, platform, subscriber_id, tags, meta, timezone, locale,
                created_at, updated_at)
            VALUES (\(bind: newId), \(bind: environmentId), \(bind: registration.provider), \(bind: token), \(bind: registration.integrationId),
                \(bind: registration.platform), \(bind: registration.subscriberId), \(bind: (registration.tags ?? [:]).jsonString),
                \(bind: (registration.meta ?? [:]).jsonString), \(bind: registration.timezone), \(bind: registration.locale), \(bind: now), \(bind: now))
            ON CONFLICT (environment_id, provider, token) DO NOTHING
            RETURNING id
            """
        ).all()
        if !inserted.isEmpty {
            try await replaceDeviceTopics(environmentId: environmentId, deviceId: newId, topics: registration.topics ?? [])
            return try await device(environmentId: environmentId, id: newId)!
        }
        guard
            let existing = try await db.raw(
                """
                SELECT \(unsafeRaw: Self.deviceColumns) FROM devices
                WHERE environment_id = \(bind: environmentId) AND provider = \(bind: registration.provider) AND token = \(bind: token)
                """
            ).first().map(Self.device(from:))
        else {
            throw HeraldError(.conflict, "the device was removed while it was being registered; retry")
        }
        let moved = existing.subscriberId != registration.subscriberId || registration.replacesAll
        let tags = registration.tags ?? (moved ? [:] : existing.tags)
        let meta = registration.meta ?? (moved ? [:] : existing.meta)
        try await db.raw(
            """
            UPDATE devices SET integration_id = \(bind: registration.integrationId ?? existing.integrationId),
                platform = \(bind: registration.platform ?? existing.platform), subscriber_id = \(bind: registration.subscriberId),
                tags = \(bind: tags.jsonString), meta = \(bind: meta.jsonString),
                timezone = \(bind: registration.timezone ?? (moved ? nil : existing.timezone)),
                locale = \(bind: registration.locale ?? (moved ? nil : existing.locale)), updated_at = \(bind: now)
            WHERE id = \(bind: existing.id)
            """
        ).run()
        if let topics = registration.topics {
            try await replaceDeviceTopics(environmentId: environmentId, deviceId: existing.id, topics: topics)
        } else if moved {
            try await replaceDeviceTopics(environmentId: environmentId, deviceId: existing.id, topics: [])
        }
        return try await device(environmentId: environmentId, id: existing.id)!
    }

    /// One device with its topics.
    public func device(environmentId: String, id: String) async throws -> Device? {
        let row = try await db.raw(
            "SELECT \(unsafeRaw: Self.deviceColumns) FROM devices WHERE environment_id = \(bind: environmentId) AND id = \(bind: id)"
        ).first()
        guard var device = try row.map(Self.device(from:)) else { return nil }
        device.topics = try await deviceTopics(deviceIds: [id])[id] ?? []
        return device
    }

    /// Devices by id with their topics, in two queries whatever the count; unknown ids are left out.
    public func devices(environmentId: String, ids: [String], topics withTopics: Bool = true) async throws -> [String: Device] {
        guard !ids.isEmpty else { return [:] }
        var devices = try await db.raw(
            "SELECT \(unsafeRaw: Self.deviceColumns) FROM devices WHERE environment_id = \(bind: environmentId) AND id IN (\(binds: ids))"
        ).all().map(Self.device(from:))
        guard withTopics else { return Dictionary(devices.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first }) }
        let topics = try await deviceTopics(deviceIds: devices.map(\.id))
        let userTopics = try await userTopics(environmentId: environmentId, subscriberIds: devices.compactMap(\.subscriberId))
        for index in devices.indices {
            devices[index].topics = topics[devices[index].id] ?? []
            devices[index].userTopics = devices[index].subscriberId.flatMap { userTopics[$0] } ?? []
        }
        return Dictionary(devices.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// The devices of a subscriber, optionally of one integration, oldest first, with their topics.
    public func devices(environmentId: String, subscriberId: String, integrationId: String? = nil) async throws -> [Device] {
        var query = SQLQueryString(
            "SELECT \(unsafeRaw: Self.deviceColumns) FROM devices WHERE environment_id = \(bind: environmentId) AND subscriber_id = \(bind: subscriberId)"
        )
        if let integrationId { query += " AND integration_id = \(bind: integrationId)" }
        // Sorted here, not in SQL: `ORDER BY id` makes SQLite walk the environment's id index instead of the subscriber's.
        var devices = try await db.raw(query).all().map(Self.device(from:)).sorted { $0.id < $1.id }
        let topics = try await deviceTopics(deviceIds: devices.map(\.id))
        let userTopics = try await userTopics(environmentId: environmentId, subscriberIds: [subscriberId])[subscriberId] ?? []
        for index in devices.indices {
            devices[index].topics = topics[devices[index].id] ?? []
            devices[index].userTopics = userTopics
        }
        return devices
    }

    /// A page of the devices matching `filter`, in id order after `after`, without their topics (the raw-send
    /// fan-out reads devices this way: keyset pages, so memory does not grow with the audience).
    public func devicePage(environmentId: String, filter: DeviceFilter, after: String?, limit: Int) async throws -> Page<Device> {
        var query = SQLQueryString("SELECT \(unsafeRaw: Self.deviceColumns) FROM devices WHERE ") + filter.sql(environmentId: environmentId)
        if let after { query += " AND id > \(bind: after)" }
        query += " ORDER BY id LIMIT \(bind: limit + 1)"
        var devices = try await db.raw(query).all().map(Self.device(from:))
        let more = devices.count > limit
        if more { devices.removeLast() }
        return Page(items: devices, nextCursor: more ? devices.last?.id : nil)
    }

    /// Removes the devices registered with these tokens of one provider; returns how many existed.
    @discardableResult
    public func removeDevices(environmentId: String, provider: String, tokens: [String]) async throws -> Int {
        guard !tokens.isEmpty else { return 0 }
        return try await db.raw(
            "DELETE FROM devices WHERE environment_id = \(bind: environmentId) AND provider = \(bind: provider) AND token IN (\(binds: tokens)) RETURNING id"
        ).all().count
    }

    /// Removes devices by id; returns how many existed.
    @discardableResult
    public func removeDevices(environmentId: String, ids: [String]) async throws -> Int {
        guard !ids.isEmpty else { return 0 }
        let rows = try await db.raw(
            "DELETE FROM devices WHERE environment_id = \(bind: environmentId) AND id IN (\(binds: ids)) RETURNING id"
        ).all()
        return rows.count
    }

    /// Replaces the topics a device is subscribed to directly.
    public func replaceDeviceTopics(environmentId: String, deviceId: String, topics: [String]) async throws {
        try await db.raw("DELETE FROM device_topics WHERE device_id = \(bind: deviceId)").run()
        try await addDeviceTopics(environmentId: environmentId, deviceId: deviceId, topics: topics)
    }

    /// Subscribes a device to topics directly (Centrifugo device topics); existing memberships are kept.
    public func addDeviceTopics(environmentId: String, deviceId: String, topics: [String]) async throws {
        for topic in Set(topics) {
            guard Topic.isValidKey(topic) else {
                throw HeraldError.invalidInput("invalid topic '\(topic)'", context: ["field": "topics"])
            }
            try await db.raw(
                """
                INSERT INTO device_topics (device_id, environment_id, topic, created_at)
                VALUES (\(bind: deviceId), \(bind: environmentId), \(bind: topic), \(bind: nowMilliseconds))
                ON CONFLICT (device_id, topic) DO NOTHING
                """
            ).run()
        }
    }

    /// A page of the ids of devices subscribed directly to `topic`, in id order, after `after`.
    public func deviceTopicMembers(environmentId: String, topic: String, after: String? = nil, limit: Int) async throws -> Page<String> {
        var query = SQLQueryString(
            "SELECT device_id FROM device_topics WHERE environment_id = \(bind: environmentId) AND topic = \(bind: topic)"
        )
        if let after { query += " AND device_id > \(bind: after)" }
        query += " ORDER BY device_id LIMIT \(bind: limit + 1)"
        let ids = try await db.raw(query).all().map { try $0.decode(column: "device_id", as: String.self) }
        let items = Array(ids.prefix(limit))
        return Page(items: items, nextCursor: ids.count > limit ? items.last : nil)
    }

    /// The topic keys of users (subscribers), by user, sorted: one query per 500 users.
    func userTopics(environmentId: String, subscriberIds: [String]) async throws -> [String: [String]] {
        let users = Array(Set(subscriberIds))
        var result: [String: [String]] = [:]
        for start in stride(from: 0, to: users.count, by: 500) {
            let chunk = Array(users[start..<min(start + 500, users.count)])
            for row in try await db.raw(
                """
                SELECT subscriber_id, topic_key FROM topic_subscriptions
                WHERE environment_id = \(bind: environmentId) AND subscriber_id IN (\(binds: chunk)) ORDER BY topic_key
                """
            ).all() {
                result[try row.decode(column: "subscriber_id", as: String.self), default: []].append(
                    try row.decode(column: "topic_key", as: String.self))
            }
        }
        return result
    }

    private func deviceTopics(deviceIds: [String]) async throws -> [String: [String]] {
        guard !deviceIds.isEmpty else { return [:] }
        var result: [String: [String]] = [:]
        for row in try await db.raw("SELECT device_id, topic FROM device_topics WHERE device_id IN (\(binds: deviceIds)) ORDER BY topic")
            .all()
        {
            result[try row.decode(column: "device_id", as: String.self), default: []].append(
                try row.decode(column: "topic", as: String.self))
        }
        return result
    }

    private static func device(from row: any SQLRow) throws -> Device {
        Device(
            id: try row.decode(column: "id", as: String.self), environmentId: try row.decode(column: "environment_id", as: String.self),
            provider: try row.decode(column: "provider", as: String.self), token: Secret(try row.decode(column: "token", as: String.self)),
            integrationId: try row.optional("integration_id"), platform: try row.optional("platform"),
            subscriberId: try row.optional("subscriber_id"), tags: try row.stringMap("tags"), meta: try row.stringMap("meta"),
            timezone: try row.optional("timezone"), locale: try row.optional("locale"), createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at"), lastSuccessAt: try row.optionalDate("last_success_at")
        )
    }
}
