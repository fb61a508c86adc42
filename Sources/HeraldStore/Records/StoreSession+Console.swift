import Foundation
import HeraldCore
import SQLKit

/// A signed-in console user: what a valid session cookie resolves to (`migrations/*/0013_console.sql`).
public struct ConsoleSession: Sendable, Hashable {
    public var id: String
    public var environment: Environment
    public var apiKeyId: String
    /// The token every state-changing console request must carry (a hidden form field).
    public var csrfToken: String
    public var expiresAt: Date
}

/// One per-minute counter of the console's overview.
public struct ConsoleStat: Sendable, Hashable {
    public var minute: Int64
    public var metric: String
    public var label: String
    public var count: Int
}

/// A raw Centrifugo send as the console lists it.
public struct PushSummary: Sendable, Hashable {
    public var id: String
    public var uid: String
    public var status: String
    public var createdAt: Date
    /// The send request as received (Centrifugo's `send_push_notification` params).
    public var request: String
}

/// Console sessions, the overview counters, and the keyset listings the console pages read.
extension StoreSession {
    // MARK: Sessions

    /// The environment and key id of an active API key.
    public func authenticateKey(_ apiKey: String) async throws -> (environment: Environment, keyId: String)? {
        guard !apiKey.isEmpty, apiKey.utf8.count <= APIKeyFormat.maxLength else { return nil }
        let row = try await db.raw(
            """
            SELECT e.id, e.name, e.created_at, k.id AS key_id FROM api_keys k JOIN environments e ON e.id = k.environment_id
            WHERE k.key_hash = \(bind: APIKeyFormat.hash(apiKey)) AND k.revoked_at IS NULL
            """
        ).first()
        guard let row else { return nil }
        return (
            Environment(
                id: try row.decode(column: "id", as: String.self), name: try row.decode(column: "name", as: String.self),
                createdAt: try row.date("created_at")),
            try row.decode(column: "key_id", as: String.self)
        )
    }

    /// Opens a session for a key; `id` and `csrfToken` are random and never derived from the key.
    public func createConsoleSession(
        environment: Environment, apiKeyId: String, id: String, csrfToken: String, lifetime: TimeInterval
    ) async throws -> ConsoleSession {
        let expires = nowMilliseconds + Int64(lifetime * 1000)
        try await db.raw(
            """
            INSERT INTO console_sessions (id, environment_id, api_key_id, csrf_token, created_at, expires_at)
            VALUES (\(bind: id), \(bind: environment.id), \(bind: apiKeyId), \(bind: csrfToken), \(bind: nowMilliseconds), \(bind: expires))
            """
        ).run()
        return ConsoleSession(
            id: id, environment: environment, apiKeyId: apiKeyId, csrfToken: csrfToken, expiresAt: Date(millisecondsSince1970: expires))
    }

    /// A live session: not signed out, not expired, and its key not revoked.
    public func consoleSession(id: String) async throws -> ConsoleSession? {
        let row = try await db.raw(
            """
            SELECT s.id AS session_id, s.api_key_id, s.csrf_token, s.expires_at, e.id, e.name, e.created_at
            FROM console_sessions s JOIN api_keys k ON k.id = s.api_key_id JOIN environments e ON e.id = s.environment_id
            WHERE s.id = \(bind: id) AND s.revoked_at IS NULL AND s.expires_at > \(bind: nowMilliseconds) AND k.revoked_at IS NULL
            """
        ).first()
        guard let row else { return nil }
        return ConsoleSession(
            id: try row.decode(column: "session_id", as: String.self),
            environment: Environment(
                id: try row.decode(column: "id", as: String.self), name: try row.decode(column: "name", as: String.self),
                createdAt: try row.date("created_at")),
            apiKeyId: try row.decode(column: "api_key_id", as: String.self),
            csrfToken: try row.decode(column: "csrf_token", as: String.self),
            expiresAt: try row.date("expires_at"))
    }

    /// Signs a session out.
    public func revokeConsoleSession(id: String) async throws {
        try await db.raw("UPDATE console_sessions SET revoked_at = \(bind: nowMilliseconds) WHERE id = \(bind: id)").run()
    }

    /// Deletes sessions that expired before `before`; returns how many.
    public func purgeConsoleSessions(before: Date) async throws -> Int {
        try await db.raw(
            "DELETE FROM console_sessions WHERE expires_at < \(bind: before.millisecondsSince1970) RETURNING id"
        ).all().count
    }

    // MARK: Overview counters

    /// Adds to per-minute counters (`environmentId`, metric, label → count) at the current minute: one upsert. The
    /// shard spreads concurrent writers over rows (PostgreSQL row locks); readers sum over shards.
    func countConsoleStats(_ counts: [String: [String: [String: Int]]]) async throws {
        guard let insert = consoleStatsUpsert(counts) else { return }
        _ = try await run(insert)
    }

    /// The upsert behind ``countConsoleStats(_:)`` (nil when there is nothing to count), for statements that fold it
    /// in with other writes.
    func consoleStatsUpsert(_ counts: [String: [String: [String: Int]]]) -> RowInsert? {
        guard !counts.isEmpty else { return nil }
        let minute = nowMilliseconds / 60_000
        let shard = Int64.random(in: 0..<8)
        var insert = RowInsert(into: "console_stats", columns: ["environment_id", "minute", "metric", "label", "shard", "count"])
        insert.suffix =
            "ON CONFLICT (environment_id, minute, metric, label, shard) DO UPDATE SET count = console_stats.count + excluded.count"
        for (environmentId, metrics) in counts.sorted(by: { $0.key < $1.key }) {
            for (metric, labels) in metrics.sorted(by: { $0.key < $1.key }) {
                for (label, count) in labels.sorted(by: { $0.key < $1.key }) {
                    insert.row(environmentId, minute, metric, label, shard, Int64(count))
                }
            }
        }
        return insert
    }

    /// The environment id under which instance-wide samples (the queue, shared by every environment) are kept.
    public static let instanceStats = "*"

    /// Records this minute's queue sample (gauges: the last write of a minute wins).
    public func recordQueueSample(ready: Int, running: Int, scheduled: Int, lagMilliseconds: Int) async throws {
        var insert = RowInsert(into: "console_stats", columns: ["environment_id", "minute", "metric", "label", "shard", "count"])
        insert.suffix = "ON CONFLICT (environment_id, minute, metric, label, shard) DO UPDATE SET count = excluded.count"
        let minute = nowMilliseconds / 60_000
        for (label, value) in [("ready", ready), ("running", running), ("scheduled", scheduled), ("lag_ms", lagMilliseconds)] {
            insert.row(Self.instanceStats, minute, "queue", label, Int64(0), Int64(value))
        }
        _ = try await run(insert)
    }

    /// The counters of an environment from `since` on, summed over shards, and the instance's queue samples, oldest
    /// first.
    public func consoleStats(environmentId: String, since: Date) async throws -> [ConsoleStat] {
        try await db.raw(
            """
            SELECT minute, metric, label, CAST(SUM(count) AS BIGINT) AS total FROM console_stats
            WHERE environment_id IN (\(bind: environmentId), \(bind: Self.instanceStats)) AND minute >= \(bind: since.millisecondsSince1970 / 60_000)
            GROUP BY minute, metric, label ORDER BY minute
            """
        ).all().map { row in
            ConsoleStat(
                minute: try row.decode(column: "minute", as: Int64.self), metric: try row.decode(column: "metric", as: String.self),
                label: try row.decode(column: "label", as: String.self), count: Int(try row.decode(column: "total", as: Int64.self)))
        }
    }

    /// Deletes counters older than `before`; returns how many rows.
    public func purgeConsoleStats(before: Date) async throws -> Int {
        try await db.raw(
            "DELETE FROM console_stats WHERE minute < \(bind: before.millisecondsSince1970 / 60_000) RETURNING minute"
        ).all().count
    }

    // MARK: Listings

    /// Notifications newest first, after the keyset cursor `before` (an id): the console's Activity page. Every filter
    /// is served by an index that starts with the environment (`notifications_recent`, `_subscriber`, `_transaction`).
    public func consoleNotifications(
        environmentId: String, filter: NotificationFilter, status: NotificationStatus?, before: String?, limit: Int
    ) async throws -> [NotificationRecord] {
        var query = SQLQueryString(
            "SELECT \(unsafeRaw: Self.notificationColumns) FROM notifications WHERE environment_id = \(bind: environmentId)")
        if !filter.workflowIds.isEmpty { query += " AND workflow_id IN (\(binds: filter.workflowIds))" }
        if !filter.subscriberIds.isEmpty { query += " AND subscriber_id IN (\(binds: filter.subscriberIds))" }
        if let transactionId = filter.transactionId { query += " AND transaction_id = \(bind: transactionId)" }
        if let after = filter.after { query += " AND created_at >= \(bind: after.millisecondsSince1970)" }
        if let beforeDate = filter.before { query += " AND created_at <= \(bind: beforeDate.millisecondsSince1970)" }
        if let status { query += " AND status = \(bind: status.rawValue)" }
        if let before { query += " AND id < \(bind: before)" }
        query += " ORDER BY id DESC LIMIT \(bind: limit)"
        return try await db.raw(query).all().map(Self.notification(from:))
    }

    /// The deliveries of messages, in id order.
    public func deliveries(messageIds: [String]) async throws -> [DeliveryRecord] {
        guard !messageIds.isEmpty else { return [] }
        var result: [DeliveryRecord] = []
        for start in stride(from: 0, to: messageIds.count, by: 500) {
            let chunk = Array(messageIds[start..<min(start + 500, messageIds.count)])
            result += try await db.raw(
                "SELECT \(unsafeRaw: Self.deliveryColumns) FROM deliveries WHERE message_id IN (\(binds: chunk)) ORDER BY id LIMIT 1000"
            ).all().map(Self.delivery(from:))
        }
        return result
    }

    /// The latest failed or dead deliveries of an integration (its last errors), newest first.
    public func lastErrors(environmentId: String, integrationId: String, providerId: String, limit: Int) async throws -> [DeliveryRecord] {
        try await db.raw(
            """
            SELECT \(unsafeRaw: Self.deliveryColumns) FROM deliveries
            WHERE environment_id = \(bind: environmentId) AND provider_id = \(bind: providerId) AND status IN ('failed', 'dead', 'retrying', 'invalid')
            AND integration_id = \(bind: integrationId) ORDER BY id DESC LIMIT \(bind: limit)
            """
        ).all().map(Self.delivery(from:))
    }

    /// Deliveries in one final status newest first (dead letters), by provider and error code, after the keyset
    /// cursor `before`: the `deliveries_status` index serves it in order.
    public func consoleDeliveries(
        environmentId: String, status: DeliveryStatus, providerId: String?, errorCode: String?, before: String?, limit: Int
    ) async throws -> [DeliveryRecord] {
        var query = SQLQueryString(
            "SELECT \(unsafeRaw: Self.deliveryColumns) FROM deliveries WHERE environment_id = \(bind: environmentId) AND status = \(bind: status.rawValue)"
        )
        if let providerId { query += " AND provider_id = \(bind: providerId)" }
        if let errorCode { query += " AND error_code = \(bind: errorCode)" }
        if let before { query += " AND id < \(bind: before)" }
        query += " ORDER BY id DESC LIMIT \(bind: limit)"
        return try await db.raw(query).all().map(Self.delivery(from:))
    }

    /// How many deliveries are in `status`, counted up to `cap` (the overview says "10,000+" beyond).
    public func countDeliveries(environmentId: String, status: DeliveryStatus, cap: Int) async throws -> Int {
        try await db.raw(
            """
            SELECT COUNT(*) AS n FROM (SELECT 1 FROM deliveries WHERE environment_id = \(bind: environmentId)
            AND status = \(bind: status.rawValue) LIMIT \(bind: cap)) capped
            """
        ).first()?.decode(column: "n", as: Int.self) ?? 0
    }

    /// Raw sends newest first, after the keyset cursor `before`.
    public func listPushes(environmentId: String, before: String?, limit: Int) async throws -> [PushSummary] {
        var query = SQLQueryString(
            "SELECT id, uid, status, created_at, request FROM pushes WHERE environment_id = \(bind: environmentId)")
        if let before { query += " AND id < \(bind: before)" }
        query += " ORDER BY id DESC LIMIT \(bind: limit)"
        return try await db.raw(query).all().map { row in
            PushSummary(
                id: try row.decode(column: "id", as: String.self), uid: try row.decode(column: "uid", as: String.self),
                status: try row.decode(column: "status", as: String.self), createdAt: try row.date("created_at"),
                request: try row.decode(column: "request", as: String.self))
        }
    }
}

/// Workflow throttle counters (`migrations/*/0015_throttle_counters.sql`).
extension StoreSession {
    /// Counts one run against a throttle key in its window and returns the window's count including it: one upsert,
    /// atomic across processes (the row is locked until the transaction ends on PostgreSQL).
    public func countThrottle(
        environmentId: String, workflowId: String, stepId: String, key: String, windowStart: Int64, windowMilliseconds: Int64
    ) async throws -> Int {
        try await db.raw(
            """
            INSERT INTO throttle_counters (environment_id, workflow_id, step_id, key, window_start, window_ms, count)
            VALUES (\(bind: environmentId), \(bind: workflowId), \(bind: stepId), \(bind: key), \(bind: windowStart), \(bind: windowMilliseconds), 1)
            ON CONFLICT (environment_id, workflow_id, step_id, key, window_start) DO UPDATE SET count = throttle_counters.count + 1
            RETURNING count
            """
        ).first()?.decode(column: "count", as: Int.self) ?? 1
    }

    /// Deletes throttle counters of windows that ended before `before`; returns how many.
    public func purgeThrottleCounters(before: Date) async throws -> Int {
        try await db.raw(
            "DELETE FROM throttle_counters WHERE window_start + window_ms < \(bind: before.millisecondsSince1970) RETURNING key"
        ).all().count
    }
}
