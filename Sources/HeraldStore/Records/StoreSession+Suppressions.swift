import Foundation
import HeraldCore
import SQLKit

/// The suppression list (`migrations/*/0010_suppressions.sql`, docs/webhooks.md §Suppression list).
extension StoreSession {
    /// Adds addresses (an existing entry keeps its first reason).
    public func insertSuppressions(_ suppressions: [Suppression]) async throws {
        for start in stride(from: 0, to: suppressions.count, by: 200) {
            var insert = RowInsert(
                into: "suppressions", columns: ["environment_id", "channel", "address", "reason", "provider_id", "created_at"])
            insert.suffix = "ON CONFLICT (environment_id, channel, address) DO NOTHING"
            for entry in suppressions[start..<min(start + 200, suppressions.count)] {
                insert.row(
                    entry.environmentId, entry.channel.rawValue, entry.address, entry.reason, entry.providerId,
                    entry.createdAt.millisecondsSince1970)
            }
            _ = try await run(insert)
        }
    }

    /// The entries among `addresses` of one channel (normalised first), by stored address: one query.
    public func suppressions(environmentId: String, channel: Channel, addresses: [String]) async throws -> [String: Suppression] {
        let normalised = Array(Set(addresses.map { Suppression.normalised($0, channel: channel) }))
        var result: [String: Suppression] = [:]
        for start in stride(from: 0, to: normalised.count, by: 500) {
            let chunk = Array(normalised[start..<min(start + 500, normalised.count)])
            for row in try await db.raw(
                """
                SELECT environment_id, channel, address, reason, provider_id, created_at FROM suppressions
                WHERE environment_id = \(bind: environmentId) AND channel = \(bind: channel.rawValue) AND address IN (\(binds: chunk))
                """
            ).all() {
                let entry = try Self.suppression(from: row)
                result[entry.address] = entry
            }
        }
        return result
    }

    /// A page of an environment's entries in (channel, address) order, after `after` (`<channel>:<address>`).
    public func listSuppressions(
        environmentId: String, channel: Channel?, address: String?, after: (channel: String, address: String)?, limit: Int
    ) async throws -> [Suppression] {
        var query = SQLQueryString(
            "SELECT environment_id, channel, address, reason, provider_id, created_at FROM suppressions WHERE environment_id = \(bind: environmentId)"
        )
        if let channel { query += " AND channel = \(bind: channel.rawValue)" }
        if let address, let channel { query += " AND address = \(bind: Suppression.normalised(address, channel: channel))" }
        if let after {
            query += " AND (channel > \(bind: after.channel) OR (channel = \(bind: after.channel) AND address > \(bind: after.address)))"
        }
        query += " ORDER BY channel, address LIMIT \(bind: limit)"
        return try await db.raw(query).all().map(Self.suppression(from:))
    }

    /// Lifts an entry; false when there was none.
    public func deleteSuppression(environmentId: String, channel: Channel, address: String) async throws -> Bool {
        try await !db.raw(
            """
            DELETE FROM suppressions WHERE environment_id = \(bind: environmentId) AND channel = \(bind: channel.rawValue)
            AND address = \(bind: Suppression.normalised(address, channel: channel)) RETURNING address
            """
        ).all().isEmpty
    }

    private static func suppression(from row: any SQLRow) throws -> Suppression {
        Suppression(
            environmentId: try row.decode(column: "environment_id", as: String.self),
            channel: Channel(rawValue: try row.decode(column: "channel", as: String.self)) ?? .email,
            address: try row.decode(column: "address", as: String.self), reason: try row.decode(column: "reason", as: String.self),
            providerId: try row.optional("provider_id"), createdAt: try row.date("created_at"))
    }
}
