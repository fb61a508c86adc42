import Foundation
import HeraldCore
import SQLKit

extension StoreSession {
    private static let integrationColumns =
        "id, environment_id, provider_id, channel, name, identifier, active, is_primary, credentials, conditions, configurations, created_at, updated_at"

    /// Stores a new integration, sealing its credentials. Throws `conflict` when the identifier is taken.
    public func createIntegration(_ integration: Integration) async throws -> Integration {
        let sealed = try cipher.sealAll(integration.credentials, environmentId: integration.environmentId, integrationId: integration.id)
        do {
            try await db.raw(
                """
                INSERT INTO integrations (\(unsafeRaw: Self.integrationColumns))
                VALUES (\(bind: integration.id), \(bind: integration.environmentId), \(bind: integration.providerId),
                        \(bind: integration.channel.rawValue), \(bind: integration.name), \(bind: integration.identifier),
                        \(bind: integration.active), \(bind: integration.primary), \(bind: sealed), \(bind: integration.conditions),
                        \(bind: integration.configurations), \(bind: integration.createdAt.millisecondsSince1970),
                        \(bind: integration.updatedAt.millisecondsSince1970))
                """
            ).run()
        } catch  where isUniqueViolation(error) {
            throw HeraldError.conflict(
                "an integration with identifier '\(integration.identifier)' already exists", context: ["identifier": integration.identifier]
            )
        }
        return integration
    }

    /// Replaces the mutable fields of an integration (name, active, primary, credentials, conditions,
    /// configurations); `providerId`, `channel` and `identifier` never change.
    public func updateIntegration(_ integration: Integration) async throws -> Integration {
        let sealed = try cipher.sealAll(integration.credentials, environmentId: integration.environmentId, integrationId: integration.id)
        var updated = integration
        updated.updatedAt = Date(millisecondsSince1970: nowMilliseconds)
        let rows = try await db.raw(
            """
            UPDATE integrations SET name = \(bind: integration.name), active = \(bind: integration.active),
                is_primary = \(bind: integration.primary), credentials = \(bind: sealed), conditions = \(bind: integration.conditions),
                configurations = \(bind: integration.configurations), updated_at = \(bind: nowMilliseconds)
            WHERE id = \(bind: integration.id) AND environment_id = \(bind: integration.environmentId)
            RETURNING id
            """
        ).all()
        guard !rows.isEmpty else { throw HeraldError.notFound("integration \(integration.id) not found") }
        return updated
    }

    /// One integration of an environment, credentials decrypted.
    public func integration(environmentId: String, id: String) async throws -> Integration? {
        try await db.raw(
            "SELECT \(unsafeRaw: Self.integrationColumns) FROM integrations WHERE environment_id = \(bind: environmentId) AND id = \(bind: id)"
        ).first().map(integration(from:))
    }

    /// The integrations of an environment, oldest first, optionally of one channel and only active ones.
    public func integrations(environmentId: String, channel: Channel? = nil, activeOnly: Bool = false) async throws -> [Integration] {
        var query = SQLQueryString(
            "SELECT \(unsafeRaw: Self.integrationColumns) FROM integrations WHERE environment_id = \(bind: environmentId)")
        if let channel { query += " AND channel = \(bind: channel.rawValue)" }
        if activeOnly { query += " AND active = \(bind: true)" }
        query += " ORDER BY id"
        return try await db.raw(query).all().map(integration(from:))
    }

    /// Deletes an integration; returns whether it existed.
    @discardableResult
    public func deleteIntegration(environmentId: String, id: String) async throws -> Bool {
        let rows = try await db.raw(
            "DELETE FROM integrations WHERE environment_id = \(bind: environmentId) AND id = \(bind: id) RETURNING id"
        ).all()
        return !rows.isEmpty
    }

    private func integration(from row: any SQLRow) throws -> Integration {
        let id = try row.decode(column: "id", as: String.self)
        let environmentId = try row.decode(column: "environment_id", as: String.self)
        let channelName = try row.decode(column: "channel", as: String.self)
        guard let channel = Channel(rawValue: channelName) else {
            throw HeraldError(.internal, "integration \(id) has an unknown channel '\(channelName)'")
        }
        return Integration(
            id: id, environmentId: environmentId, providerId: try row.decode(column: "provider_id", as: String.self), channel: channel,
            name: try row.decode(column: "name", as: String.self), identifier: try row.decode(column: "identifier", as: String.self),
            active: try row.decode(column: "active", as: Bool.self), primary: try row.decode(column: "is_primary", as: Bool.self),
            credentials: try cipher.openAll(
                try row.decode(column: "credentials", as: String.self), environmentId: environmentId, integrationId: id),
            conditions: try row.decode(column: "conditions", as: String.self),
            configurations: try row.decode(column: "configurations", as: String.self), createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at")
        )
    }
}
