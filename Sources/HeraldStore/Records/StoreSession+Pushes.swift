import Foundation
import HeraldCore
import SQLKit

/// What inserting a raw send found.
public enum PushInsertResult: Sendable {
    case inserted
    /// The environment already has a send with this uid.
    case existing(PushSend)
}

/// Delivery counts of a raw send for one provider and platform.
public struct PushStatsRow: Sendable, Equatable {
    public var provider: String
    public var platform: String
    /// By delivery status.
    public var statuses: [DeliveryStatus: Int] = [:]
    /// By reported push status (`delivered`, `interacted`).
    public var reported: [PushReport: Int] = [:]
}

extension StoreSession {
    private static let pushColumns =
        "id, environment_id, uid, analytics_uid, request, status, send_at, expire_at, cursor, created_at, updated_at"

    /// Inserts a send unless its uid is taken in the environment.
    public func insertPush(_ push: PushSend) async throws -> PushInsertResult {
        let inserted = try await db.insert(into: "pushes")
            .columns(
                "id", "environment_id", "uid", "analytics_uid", "request", "status", "send_at", "expire_at", "cursor", "created_at",
                "updated_at"
            )
            .values(
                [
                    push.id, push.environmentId, push.uid, push.analyticsUid, push.request.jsonString(), push.status.rawValue,
                    push.sendAt?.millisecondsSince1970, push.expireAt?.millisecondsSince1970, push.cursor,
                    push.createdAt.millisecondsSince1970, push.updatedAt.millisecondsSince1970,
                ] as [any Encodable & Sendable]
            )
            .ignoringConflicts(with: ["environment_id", "uid"])
            .returning("id").all()
        if !inserted.isEmpty { return .inserted }
        guard let existing = try await self.push(environmentId: push.environmentId, uid: push.uid) else {
            throw HeraldError(.internal, "push insert conflicted but no push has uid \(push.uid)")
        }
        return .existing(existing)
    }

    /// A send by its uid.
    public func push(environmentId: String, uid: String) async throws -> PushSend? {
        try await db.raw(
            "SELECT \(unsafeRaw: Self.pushColumns) FROM pushes WHERE environment_id = \(bind: environmentId) AND uid = \(bind: uid)"
        ).first().map(Self.push(from:))
    }

    /// Sends by id (locked on PostgreSQL when `lock`, so a cancel and a page do not interleave).
    public func pushes(ids: [String], lock: Bool = false) async throws -> [String: PushSend] {
        guard !ids.isEmpty else { return [:] }
        let rows = try await db.raw(
            "SELECT \(unsafeRaw: Self.pushColumns) FROM pushes WHERE id IN (\(binds: ids))\(unsafeRaw: lock && dialect == .postgres ? " FOR UPDATE" : "")"
        ).all().map(Self.push(from:))
        return Dictionary(rows.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// Saves a send's status and fan-out cursor.
    public func updatePush(id: String, status: PushSend.Status, cursor: String?) async throws {
        try await db.raw(
            "UPDATE pushes SET status = \(bind: status.rawValue), cursor = \(bind: cursor), updated_at = \(bind: nowMilliseconds) WHERE id = \(bind: id)"
        ).run()
    }

    /// Marks a send's unfinished deliveries cancelled; returns how many.
    public func cancelPushDeliveries(pushId: String) async throws -> Int {
        try await db.raw(
            """
            UPDATE deliveries SET status = 'canceled', updated_at = \(bind: nowMilliseconds)
            WHERE push_id = \(bind: pushId) AND status IN ('pending', 'retrying') RETURNING id
            """
        ).all().count
    }

    /// Records what the app reported for the deliveries of sends with this analytics uid to a device
    /// (`update_push_status`); `interacted` is never downgraded to `delivered`, and a repeated report changes nothing.
    /// Returns how many deliveries matched and how many changed (a repeated `interacted` report changes none: its status
    /// event is not sent twice).
    public func reportPushStatus(
        environmentId: String, analyticsUid: String, deviceId: String, status: PushReport
    ) async throws -> (matched: Int, changed: Int) {
        let pushIds = try await db.raw(
            "SELECT id FROM pushes WHERE environment_id = \(bind: environmentId) AND analytics_uid = \(bind: analyticsUid)"
        ).all().map { try $0.decode(column: "id", as: String.self) }
        guard !pushIds.isEmpty else { return (0, 0) }
        let query = SQLQueryString(
            "UPDATE deliveries SET push_status = \(bind: status.rawValue), push_status_at = \(bind: nowMilliseconds) WHERE push_id IN (\(binds: pushIds)) AND device_id = \(bind: deviceId)"
        )
        let guardClause =
            status == .delivered ? " AND push_status IS NULL" : " AND (push_status IS NULL OR push_status <> 'interacted')"
        let updated = try await db.raw(query + SQLQueryString(guardClause) + " RETURNING id").all().count
        if updated > 0 { return (updated, updated) }
        // Already reported (as this status or beyond): still a known delivery.
        let known =
            try await db.raw(
                "SELECT COUNT(*) AS n FROM deliveries WHERE push_id IN (\(binds: pushIds)) AND device_id = \(bind: deviceId)"
            ).first()?.decode(column: "n", as: Int.self) ?? 0
        return (known, 0)
    }

    /// A send's delivery counts per provider and platform.
    public func pushStats(pushId: String) async throws -> [PushStatsRow] {
        let rows = try await db.raw(
            """
            SELECT provider_id, COALESCE(platform, '') AS platform, status, COALESCE(push_status, '') AS push_status, COUNT(*) AS n
            FROM deliveries WHERE push_id = \(bind: pushId) GROUP BY provider_id, platform, status, push_status
            """
        ).all()
        var result: [[String]: PushStatsRow] = [:]
        for row in rows {
            let provider = try row.decode(column: "provider_id", as: String.self)
            let platform = try row.decode(column: "platform", as: String.self)
            let count = try row.decode(column: "n", as: Int.self)
            var entry = result[[provider, platform]] ?? PushStatsRow(provider: provider, platform: platform)
            entry.statuses[try row.status(as: DeliveryStatus.self), default: 0] += count
            if let reported = PushReport(rawValue: try row.decode(column: "push_status", as: String.self)) {
                entry.reported[reported, default: 0] += count
            }
            result[[provider, platform]] = entry
        }
        return result.values.sorted { ($0.provider, $0.platform) < ($1.provider, $1.platform) }
    }

    private static func push(from row: any SQLRow) throws -> PushSend {
        PushSend(
            id: try row.decode(column: "id", as: String.self), environmentId: try row.decode(column: "environment_id", as: String.self),
            uid: try row.decode(column: "uid", as: String.self),
            analyticsUid: try row.optional("analytics_uid") ?? row.decode(column: "uid", as: String.self),
            request: try JSONValue.parse(try row.decode(column: "request", as: String.self)),
            status: PushSend.Status(rawValue: try row.decode(column: "status", as: String.self)) ?? .queued,
            sendAt: try row.optionalDate("send_at"), expireAt: try row.optionalDate("expire_at"), cursor: try row.optional("cursor"),
            createdAt: try row.date("created_at"), updatedAt: try row.date("updated_at"))
    }
}

/// Centrifugo's rate-limit counters (`migrations/*/0014_push_rate_limits.sql`).
extension StoreSession {
    /// The counts of `keys` for windows of `intervals` starting at or after `since`, by key, interval and window
    /// start; on PostgreSQL the rows are locked until the transaction ends, so two processes fanning out at once
    /// count each other's pushes.
    public func pushRateCounts(
        environmentId: String, keys: [String], intervals: [Int64], since: Int64
    ) async throws -> [String: [Int64: [Int64: Int]]] {
        var result: [String: [Int64: [Int64: Int]]] = [:]
        let unique = Array(Set(keys)).sorted()
        guard !unique.isEmpty, !intervals.isEmpty else { return result }
        for start in stride(from: 0, to: unique.count, by: 500) {
            let chunk = Array(unique[start..<min(start + 500, unique.count)])
            for row in try await db.raw(
                """
                SELECT key, interval_ms, window_start, count FROM push_rate_counters
                WHERE environment_id = \(bind: environmentId) AND key IN (\(binds: chunk)) AND interval_ms IN (\(binds: intervals))
                AND window_start >= \(bind: since) ORDER BY key, interval_ms, window_start\(unsafeRaw: dialect == .postgres ? " FOR UPDATE" : "")
                """
            ).all() {
                let key = try row.decode(column: "key", as: String.self)
                let interval = try row.decode(column: "interval_ms", as: Int64.self)
                let window = try row.decode(column: "window_start", as: Int64.self)
                result[key, default: [:]][interval, default: [:]][window] = try row.decode(column: "count", as: Int.self)
            }
        }
        return result
    }

    /// Adds to counters (key, interval, window start → count to add): one upsert per 200.
    public func addPushRateCounts(
        environmentId: String, _ increments: [(key: String, interval: Int64, window: Int64, count: Int)]
    ) async throws {
        for start in stride(from: 0, to: increments.count, by: 200) {
            var insert = RowInsert(into: "push_rate_counters", columns: ["environment_id", "key", "interval_ms", "window_start", "count"])
            insert.suffix =
                "ON CONFLICT (environment_id, key, interval_ms, window_start) DO UPDATE SET count = push_rate_counters.count + excluded.count"
            for entry in increments[start..<min(start + 200, increments.count)] {
                insert.row(environmentId, entry.key, entry.interval, entry.window, Int64(entry.count))
            }
            _ = try await run(insert)
        }
    }

    /// Deletes counters of windows that ended before `before`; returns how many.
    public func purgePushRateCounts(before: Date) async throws -> Int {
        try await db.raw(
            "DELETE FROM push_rate_counters WHERE window_start + interval_ms < \(bind: before.millisecondsSince1970) RETURNING key"
        ).all().count
    }
}
