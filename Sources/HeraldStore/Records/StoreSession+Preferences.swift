import Foundation
import HeraldCore
import SQLKit
import Synchronization

private let changeSequence = Atomic<UInt32>(0)

extension StoreSession {
    // MARK: Subscriber preferences (migrations/*/0008_preferences.sql, README §Preferences)

    /// The stored preferences of these subscribers (the app's ids), in one query per 500: the run batch of a
    /// fan-out page loads its recipients' preferences with this. Subscribers with none are absent.
    public func preferences(environmentId: String, subscriberIds: [String]) async throws -> [String: SubscriberPreferences] {
        var result: [String: SubscriberPreferences] = [:]
        for start in stride(from: 0, to: subscriberIds.count, by: 500) {
            let chunk = Array(subscriberIds[start..<min(start + 500, subscriberIds.count)])
            for row in try await db.raw(
                """
                SELECT subscriber_id, workflow_id, enabled, channels, updated_at FROM subscriber_preferences
                WHERE environment_id = \(bind: environmentId) AND subscriber_id IN (\(binds: chunk))
                """
            ).all() {
                let subscriberId = try row.decode(column: "subscriber_id", as: String.self)
                let layer = try Self.preference(from: row)
                if let workflowId = layer.workflowId {
                    result[subscriberId, default: .none].workflows[workflowId] = layer
                } else {
                    result[subscriberId, default: .none].global = layer
                }
            }
        }
        return result
    }

    /// One subscriber's stored preferences.
    public func preferences(environmentId: String, subscriberId: String) async throws -> SubscriberPreferences {
        try await preferences(environmentId: environmentId, subscriberIds: [subscriberId])[subscriberId] ?? .none
    }

    /// Applies `patch` to one layer of a subscriber's preferences (channels it names replace theirs, others stay) and
    /// records the change; returns the layer as stored. Runs inside a transaction: on PostgreSQL the row is locked
    /// between reading and writing, so concurrent patches of different channels both land.
    @discardableResult
    public func applyPreference(
        environmentId: String, subscriberId: String, patch: PreferencePatch, source: PreferenceChange.Source, actor: String
    ) async throws -> SubscriberPreference {
        let workflowKey = patch.workflowId ?? ""
        let now = nowMilliseconds
        try await db.raw(
            """
            INSERT INTO subscriber_preferences (environment_id, subscriber_id, workflow_id, enabled, channels, updated_at)
            VALUES (\(bind: environmentId), \(bind: subscriberId), \(bind: workflowKey), NULL, '{}', \(bind: now))
            ON CONFLICT (environment_id, subscriber_id, workflow_id) DO NOTHING
            """
        ).run()
        let lockSuffix = dialect == .postgres ? " FOR UPDATE" : ""
        guard
            let row = try await db.raw(
                """
                SELECT workflow_id, enabled, channels, updated_at FROM subscriber_preferences
                WHERE environment_id = \(bind: environmentId) AND subscriber_id = \(bind: subscriberId)
                AND workflow_id = \(bind: workflowKey)\(unsafeRaw: lockSuffix)
                """
            ).first()
        else { throw HeraldError(.internal, "the preference row just written is missing") }
        var layer = try Self.preference(from: row)
        if let enabled = patch.enabled { layer.enabled = enabled }
        layer.channels.merge(patch.channels) { _, new in new }
        layer.updatedAt = Date(millisecondsSince1970: now)
        try await db.raw(
            """
            UPDATE subscriber_preferences SET enabled = \(bind: layer.enabled), channels = \(bind: Self.channelsJSON(layer.channels)),
                updated_at = \(bind: now)
            WHERE environment_id = \(bind: environmentId) AND subscriber_id = \(bind: subscriberId) AND workflow_id = \(bind: workflowKey)
            """
        ).run()
        try await db.raw(
            """
            INSERT INTO preference_changes (id, environment_id, subscriber_id, workflow_id, enabled, channels, source, actor, created_at)
            VALUES (\(bind: Self.changeId(now)), \(bind: environmentId), \(bind: subscriberId), \(bind: workflowKey), \(bind: patch.enabled),
                \(bind: Self.channelsJSON(patch.channels)), \(bind: source.rawValue), \(bind: actor), \(bind: now))
            """
        ).run()
        return layer
    }

    /// A subscriber's preference changes, newest first, cursor-paginated.
    public func preferenceChanges(
        environmentId: String, subscriberId: String, request: CursorRequest
    ) async throws -> CursorPage<
        PreferenceChange
    > {
        try await cursorPage(
            table: "preference_changes",
            columns: "id, environment_id, subscriber_id, workflow_id, enabled, channels, source, actor, created_at",
            filter: "environment_id = \(bind: environmentId) AND subscriber_id = \(bind: subscriberId)", request: request,
            decode: { row in
                let workflowId = try row.decode(column: "workflow_id", as: String.self)
                return PreferenceChange(
                    id: try row.decode(column: "id", as: String.self), environmentId: environmentId, subscriberId: subscriberId,
                    workflowId: workflowId.isEmpty ? nil : workflowId, enabled: try row.optional("enabled", as: Bool.self),
                    channels: try Self.channels(try row.decode(column: "channels", as: String.self)),
                    source: try row.status("source", as: PreferenceChange.Source.self),
                    actor: try row.decode(column: "actor", as: String.self), createdAt: try row.date("created_at"))
            }, id: \.id)
    }

    /// The environment's key for one-click unsubscribe tokens (32 bytes), stored sealed like a credential; nil when
    /// the environment has none (created before migration 0008 and not given one yet: ``ensureUnsubscribeKeys()``).
    public func unsubscribeKey(environmentId: String) async throws -> Data? {
        guard
            let sealed = try await db.raw("SELECT unsubscribe_key FROM environments WHERE id = \(bind: environmentId)").first()?
                .optional("unsubscribe_key", as: String.self)
        else { return nil }
        let text = try cipher.open(sealed, environmentId: environmentId, integrationId: "environment", field: "unsubscribe_key")
        return Data(base64Encoded: text)
    }

    /// Gives every environment without an unsubscribe key one (start-up, after migrating); returns how many.
    @discardableResult
    public func ensureUnsubscribeKeys() async throws -> Int {
        let ids = try await db.raw("SELECT id FROM environments WHERE unsubscribe_key IS NULL").all().map {
            try $0.decode(column: "id", as: String.self)
        }
        for id in ids {
            // Another process may be doing the same: the first write wins.
            try await db.raw(
                """
                UPDATE environments SET unsubscribe_key = \(bind: try Self.sealedUnsubscribeKey(cipher: cipher, environmentId: id))
                WHERE id = \(bind: id) AND unsubscribe_key IS NULL
                """
            ).run()
        }
        return ids.count
    }

    static func sealedUnsubscribeKey(cipher: CredentialCipher, environmentId: String) throws -> String {
        try cipher.seal(
            CredentialCipher.Key.random().base64, environmentId: environmentId, integrationId: "environment", field: "unsubscribe_key")
    }

    /// The id of a recorded change: milliseconds, then a per-process sequence, then random bits (24 hex digits), so
    /// the history's keyset order is the order the changes were made in — ordinary record ids order only by second.
    static func changeId(_ milliseconds: Int64) -> String {
        let sequence = changeSequence.wrappingAdd(1, ordering: .relaxed).newValue
        var bytes: [UInt8] = []
        withUnsafeBytes(of: UInt64(milliseconds).bigEndian) { bytes.append(contentsOf: $0.suffix(6)) }
        withUnsafeBytes(of: sequence.bigEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt16.random(in: .min ... .max)) { bytes.append(contentsOf: $0) }
        return Hex.encode(bytes)
    }

    static func preference(from row: any SQLRow) throws -> SubscriberPreference {
        let workflowId = try row.decode(column: "workflow_id", as: String.self)
        return SubscriberPreference(
            workflowId: workflowId.isEmpty ? nil : workflowId, enabled: try row.optional("enabled", as: Bool.self),
            channels: try channels(try row.decode(column: "channels", as: String.self)), updatedAt: try row.date("updated_at"))
    }

    static func channels(_ text: String) throws -> [Channel: Bool] {
        guard case .object(let object) = try JSONValue.parse(text) else { return [:] }
        var result: [Channel: Bool] = [:]
        for (key, value) in object {
            if let channel = Channel(rawValue: key), let enabled = value.boolValue { result[channel] = enabled }
        }
        return result
    }

    static func channelsJSON(_ channels: [Channel: Bool]) -> String {
        JSONValue.object(Dictionary(uniqueKeysWithValues: channels.map { ($0.key.rawValue, JSONValue.bool($0.value)) })).jsonString()
    }
}
