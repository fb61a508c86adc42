import Foundation
import HeraldCore
import SQLKit

/// Which devices a Centrifugo call addresses (`DeviceFilter`): every non-empty list narrows the set.
public struct DeviceFilter: Sendable, Equatable {
    public var ids: [String] = []
    public var users: [String] = []
    /// Devices subscribed to any of these topics, directly or through their user.
    public var topics: [String] = []
    public var providers: [String] = []
    public var platforms: [String] = []

    public init(ids: [String] = [], users: [String] = [], topics: [String] = [], providers: [String] = [], platforms: [String] = []) {
        self.ids = ids
        self.users = users
        self.topics = topics
        self.providers = providers
        self.platforms = platforms
    }

    public var isEmpty: Bool { ids.isEmpty && users.isEmpty && topics.isEmpty && providers.isEmpty && platforms.isEmpty }

    func sql(environmentId: String) -> SQLQueryString {
        var filter = SQLQueryString("environment_id = \(bind: environmentId)")
        if !ids.isEmpty { filter += " AND id IN (\(binds: ids))" }
        if !users.isEmpty { filter += " AND subscriber_id IN (\(binds: users))" }
        if !providers.isEmpty { filter += " AND provider IN (\(binds: providers))" }
        if !platforms.isEmpty { filter += " AND platform IN (\(binds: platforms))" }
        if !topics.isEmpty {
            filter +=
                " AND (id IN (SELECT device_id FROM device_topics WHERE environment_id = \(bind: environmentId) AND topic IN (\(binds: topics)))"
            filter += " OR subscriber_id IN (SELECT subscriber_id FROM topic_subscriptions WHERE environment_id = \(bind: environmentId)"
            filter += " AND topic_key IN (\(binds: topics))))"
        }
        return filter
    }
}

/// A device's direct subscription to a topic.
public struct DeviceTopicEntry: Sendable, Equatable {
    public var deviceId: String
    public var topic: String
    /// Stable id of the entry, also its cursor: `<device id>:<topic>`.
    public var id: String { "\(deviceId):\(topic)" }
}

extension StoreSession {
    /// A page of devices matching `filter`, in id order after `cursor`, with their direct topics.
    public func listDevices(
        environmentId: String, filter: DeviceFilter, cursor: String?, limit: Int, countTotal: Bool
    ) async throws -> (
        devices: [Device], nextCursor: String?, total: Int?
    ) {
        var query = SQLQueryString("SELECT id FROM devices WHERE ") + filter.sql(environmentId: environmentId)
        if let cursor, !cursor.isEmpty { query += " AND id > \(bind: cursor)" }
        query += " ORDER BY id LIMIT \(bind: limit + 1)"
        let ids = try await db.raw(query).all().map { try $0.decode(column: "id", as: String.self) }
        let loaded = try await devices(environmentId: environmentId, ids: ids)
        var devices = ids.compactMap { loaded[$0] }
        let more = devices.count > limit
        devices = Array(devices.prefix(limit))
        var total: Int? = nil
        if countTotal {
            total = try await db.raw(SQLQueryString("SELECT COUNT(*) AS n FROM devices WHERE ") + filter.sql(environmentId: environmentId))
                .first()?
                .decode(column: "n", as: Int.self)
        }
        return (devices, more ? devices.last?.id : nil, total)
    }

    /// The ids of devices matching `filter`.
    public func deviceIds(environmentId: String, filter: DeviceFilter) async throws -> [String] {
        try await db.raw(SQLQueryString("SELECT id FROM devices WHERE ") + filter.sql(environmentId: environmentId) + " ORDER BY id").all()
            .map { try $0.decode(column: "id", as: String.self) }
    }

    /// Updates fields of a device (Centrifugo `device_update`): nil leaves a field as it is.
    public func updateDevice(
        environmentId: String, id: String, user: FieldUpdate<String>, meta: [String: String]?, timezone: String?, locale: String?
    ) async throws {
        var assignments: [SQLQueryString] = ["updated_at = \(bind: nowMilliseconds)"]
        switch user {
        case .keep: break
        case .clear: assignments.append("subscriber_id = NULL")
        case .set(let value): assignments.append("subscriber_id = \(bind: value)")
        }
        if let meta { assignments.append("meta = \(bind: meta.jsonString)") }
        if let timezone { assignments.append("timezone = \(bind: timezone)") }
        if let locale { assignments.append("locale = \(bind: locale)") }
        try await db.raw(
            "UPDATE devices SET \(assignments.joined(separator: ", ")) WHERE environment_id = \(bind: environmentId) AND id = \(bind: id)"
        ).run()
    }

    /// Removes direct topic subscriptions of a device.
    public func removeDeviceTopics(deviceId: String, topics: [String]) async throws {
        guard !topics.isEmpty else { return }
        try await db.raw("DELETE FROM device_topics WHERE device_id = \(bind: deviceId) AND topic IN (\(binds: topics))").run()
    }

    /// A page of device-topic subscriptions (Centrifugo `device_topic_list`): a device's own topics and, attached
    /// to it, its user's (`topic_subscriptions` of the device's subscriber), in (device, topic) order; a topic that
    /// is both is listed once.
    public func listDeviceTopics(
        environmentId: String, deviceIds: [String], providers: [String], platforms: [String], users: [String], topics: [String],
        topicPrefix: String?, cursor: String?, limit: Int, countTotal: Bool
    ) async throws -> (entries: [DeviceTopicEntry], nextCursor: String?, total: Int?) {
        func filter(topic column: String) -> SQLQueryString {
            var filter = SQLQueryString("d.environment_id = \(bind: environmentId)")
            if !deviceIds.isEmpty { filter += " AND d.id IN (\(binds: deviceIds))" }
            if !topics.isEmpty { filter += " AND \(unsafeRaw: column) IN (\(binds: topics))" }
            if let topicPrefix, !topicPrefix.isEmpty {
                filter += " AND \(unsafeRaw: column) LIKE \(bind: Self.likePrefix(topicPrefix)) ESCAPE '\\'"
            }
            if !providers.isEmpty { filter += " AND d.provider IN (\(binds: providers))" }
            if !platforms.isEmpty { filter += " AND d.platform IN (\(binds: platforms))" }
            if !users.isEmpty { filter += " AND d.subscriber_id IN (\(binds: users))" }
            return filter
        }
        let union =
            SQLQueryString(
                "SELECT t.device_id AS device_id, t.topic AS topic FROM device_topics t JOIN devices d ON d.id = t.device_id WHERE ")
            + filter(topic: "t.topic")
            + SQLQueryString(
                " UNION SELECT d.id AS device_id, s.topic_key AS topic FROM devices d JOIN topic_subscriptions s ON s.environment_id = d.environment_id AND s.subscriber_id = d.subscriber_id WHERE "
            ) + filter(topic: "s.topic_key")
        var query = SQLQueryString("SELECT device_id, topic FROM (") + union + SQLQueryString(") entries")
        if let cursor, let separator = cursor.firstIndex(of: ":") {
            let device = String(cursor[..<separator])
            let topic = String(cursor[cursor.index(after: separator)...])
            query += " WHERE (device_id > \(bind: device) OR (device_id = \(bind: device) AND topic > \(bind: topic)))"
        }
        query += " ORDER BY device_id, topic LIMIT \(bind: limit + 1)"
        let rows = try await db.raw(query).all().map {
            DeviceTopicEntry(
                deviceId: try $0.decode(column: "device_id", as: String.self), topic: try $0.decode(column: "topic", as: String.self))
        }
        let entries = Array(rows.prefix(limit))
        var total: Int? = nil
        if countTotal {
            total = try await db.raw(SQLQueryString("SELECT COUNT(*) AS n FROM (") + union + SQLQueryString(") entries")).first()?
                .decode(column: "n", as: Int.self)
        }
        return (entries, rows.count > limit ? entries.last?.id : nil, total)
    }

    /// A page of user topic subscriptions (Centrifugo `user_topic_list`; the same records as Novu topic subscriptions).
    public func listUserTopics(
        environmentId: String, users: [String], topics: [String], topicPrefix: String?, cursor: String?, limit: Int, countTotal: Bool
    ) async throws -> (items: [TopicSubscription], nextCursor: String?, total: Int?) {
        var filter = SQLQueryString("environment_id = \(bind: environmentId)")
        if !users.isEmpty { filter += " AND subscriber_id IN (\(binds: users))" }
        if !topics.isEmpty { filter += " AND topic_key IN (\(binds: topics))" }
        if let topicPrefix, !topicPrefix.isEmpty { filter += " AND topic_key LIKE \(bind: Self.likePrefix(topicPrefix)) ESCAPE '\\'" }
        var query =
            SQLQueryString("SELECT id, environment_id, topic_key, subscriber_id, created_at FROM topic_subscriptions WHERE ") + filter
        if let cursor, !cursor.isEmpty { query += " AND id > \(bind: cursor)" }
        query += " ORDER BY id LIMIT \(bind: limit + 1)"
        let rows = try await db.raw(query).all().map { row in
            TopicSubscription(
                id: try row.decode(column: "id", as: String.self), environmentId: try row.decode(column: "environment_id", as: String.self),
                topicKey: try row.decode(column: "topic_key", as: String.self),
                subscriberId: try row.decode(column: "subscriber_id", as: String.self),
                createdAt: try row.date("created_at")
            )
        }
        let items = Array(rows.prefix(limit))
        var total: Int? = nil
        if countTotal {
            total = try await db.raw(SQLQueryString("SELECT COUNT(*) AS n FROM topic_subscriptions WHERE ") + filter).first()?
                .decode(column: "n", as: Int.self)
        }
        return (items, rows.count > limit ? items.last?.id : nil, total)
    }

    static func likePrefix(_ prefix: String) -> String {
        prefix.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(
            of: "_", with: "\\_") + "%"
    }
}
