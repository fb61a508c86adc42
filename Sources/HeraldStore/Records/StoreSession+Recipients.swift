import Foundation
import HeraldCore
import SQLKit

/// What the engine needs to address one subscriber on every channel, loaded for a whole page of subscribers at once.
public struct RecipientChannels: Sendable {
    /// Push devices of the subscriber (without topics).
    public var devices: [Device] = []
    /// Non-push credentials per integration id (chat `webhookUrl`, …), active entries only.
    public var credentials: [String: [String: JSONValue]] = [:]
    public init() {}
}

extension StoreSession {
    /// Devices and channel credentials of many subscribers, in two queries per 500 subscribers.
    public func recipientChannels(environmentId: String, subscriberIds: [String]) async throws -> [String: RecipientChannels] {
        var result: [String: RecipientChannels] = [:]
        for start in stride(from: 0, to: subscriberIds.count, by: 500) {
            let chunk = Array(subscriberIds[start..<min(start + 500, subscriberIds.count)])
            for row in try await db.raw(
                """
                SELECT id, environment_id, provider, token, integration_id, platform, subscriber_id, tags, meta, timezone, locale, created_at,
                    updated_at, last_success_at
                FROM devices WHERE environment_id = \(bind: environmentId) AND subscriber_id IN (\(binds: chunk))
                """
            ).all() {
                let device = Device(
                    id: try row.decode(column: "id", as: String.self), environmentId: environmentId,
                    provider: try row.decode(column: "provider", as: String.self),
                    token: Secret(try row.decode(column: "token", as: String.self)),
                    integrationId: try row.optional("integration_id"), platform: try row.optional("platform"),
                    subscriberId: try row.optional("subscriber_id"), createdAt: try row.date("created_at"),
                    updatedAt: try row.date("updated_at"),
                    lastSuccessAt: try row.optionalDate("last_success_at"))
                result[device.subscriberId ?? "", default: RecipientChannels()].devices.append(device)
            }
            // No `ORDER BY` in SQL: it would make SQLite walk the environment's id index instead of the subscriber index
            // (one full scan of the registry per page of a fan-out).
            for key in chunk { result[key]?.devices.sort { $0.id < $1.id } }
            for row in try await db.raw(
                """
                SELECT subscriber_id, integration_id, credentials FROM subscriber_channels
                WHERE environment_id = \(bind: environmentId) AND subscriber_id IN (\(binds: chunk)) AND active = \(bind: true)
                """
            ).all() {
                let subscriberId = try row.decode(column: "subscriber_id", as: String.self)
                let credentials = try JSONValue.parse(try row.decode(column: "credentials", as: String.self)).objectValue ?? [:]
                result[subscriberId, default: RecipientChannels()].credentials[try row.decode(column: "integration_id", as: String.self)] =
                    credentials
            }
        }
        return result
    }

    /// How many devices an integration can reach (its own tokens and tokens of its provider bound to no integration),
    /// for the invalid-token guard.
    public func integrationTokenCount(environmentId: String, integrationId: String, providerId: String) async throws -> Int {
        try await db.raw(
            """
            SELECT (SELECT COUNT(*) FROM devices WHERE integration_id = \(bind: integrationId))
                + (SELECT COUNT(*) FROM devices WHERE environment_id = \(bind: environmentId) AND provider = \(bind: providerId)
                   AND integration_id IS NULL) AS n
            """
        ).first()?.decode(column: "n", as: Int.self) ?? 0
    }

    /// Stamps devices that just received a message (token hygiene: inactivity is measured from here, in days). A
    /// stamp less than an hour old is left as it is, so a device that gets many messages is not rewritten for each.
    public func markDevicesReached(ids: [String]) async throws {
        guard !ids.isEmpty else { return }
        let now = nowMilliseconds
        try await db.raw(
            """
            UPDATE devices SET last_success_at = \(bind: now) WHERE id IN (\(binds: ids))
            AND (last_success_at IS NULL OR last_success_at < \(bind: now - 3_600_000))
            """
        ).run()
    }

    /// Removes up to `limit` devices (of every environment) that neither had a successful delivery nor were
    /// registered again since `cutoff` (the `--device-ttl` inactivity rule); returns how many were removed.
    public func removeInactiveDevices(before cutoff: Date, limit: Int) async throws -> Int {
        let milliseconds = Int64((cutoff.timeIntervalSince1970 * 1000).rounded(.down))
        let rows = try await db.raw(
            """
            DELETE FROM devices WHERE id IN (
                SELECT id FROM devices WHERE updated_at < \(bind: milliseconds)
                AND (last_success_at IS NULL OR last_success_at < \(bind: milliseconds)) LIMIT \(bind: limit))
            RETURNING id
            """
        ).all()
        return rows.count
    }

    /// Deactivates a subscriber's chat credential for an integration (its webhook answered gone).
    public func deactivateChannel(environmentId: String, subscriberId: String, integrationId: String) async throws {
        try await db.raw(
            """
            UPDATE subscriber_channels SET active = \(bind: false), updated_at = \(bind: nowMilliseconds)
            WHERE environment_id = \(bind: environmentId) AND subscriber_id = \(bind: subscriberId) AND integration_id = \(bind: integrationId)
            """
        ).run()
    }

    /// The oldest due, unclaimed job's age: how far the queue lags behind.
    public func queueLag() async throws -> Duration {
        let now = nowMilliseconds
        let oldest = try await db.raw(
            "SELECT MIN(run_at) AS oldest FROM jobs WHERE run_at <= \(bind: now) AND lease_token IS NULL"
        ).first()?.decode(column: "oldest", as: Int64?.self)
        return .milliseconds(oldest.map { max(0, now - $0) } ?? 0)
    }
}
