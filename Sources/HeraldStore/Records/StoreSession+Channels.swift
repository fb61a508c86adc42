import Foundation
import HeraldCore
import SQLKit

/// A subscriber's channel settings for one integration, as Novu's `channels[]` shows them: push tokens come from
/// the device registry, other credentials (chat `webhookUrl`, `channel`, …) from `subscriber_channels`.
public struct SubscriberChannel: Sendable, Equatable {
    public var integrationId: String
    public var integrationIdentifier: String
    public var providerId: String
    public var credentials: [String: JSONValue]
    public var deviceTokens: [String]
}

/// How a credentials update treats existing device tokens (Novu: PUT replaces, PATCH appends).
public enum CredentialUpdateMode: Sendable {
    case replace
    case append
}

extension StoreSession {
    /// Most device tokens one subscriber may have for one integration.
    public static let maxTokensPerIntegration = 100

    /// The integration Novu resolves for a provider: the one with `identifier` if given, otherwise the most recently
    /// created active integration of `providerId`.
    public func resolveIntegration(environmentId: String, providerId: String, identifier: String?) async throws -> Integration? {
        try await integrations(environmentId: environmentId, activeOnly: true)
            .filter { $0.providerId == providerId && (identifier == nil || $0.identifier == identifier) }
            .max { $0.id < $1.id }
    }

    /// Updates a subscriber's credentials for one integration: device tokens go to the device registry (moved from
    /// any other subscriber that had them; with `.replace` the subscriber's other tokens for this integration are
    /// removed), other fields are merged into the stored channel credentials. Run it inside a transaction.
    public func updateCredentials(
        environmentId: String, subscriberId: String, integration: Integration, deviceTokens: [String]?,
        otherCredentials: [String: JSONValue],
        mode: CredentialUpdateMode
    ) async throws {
        if let deviceTokens {
            var unique: [String] = []
            for token in deviceTokens where !unique.contains(token) { unique.append(token) }
            for token in unique {
                if let problem = DeviceTokenRules.problem(provider: integration.providerId, token: token, policy: nil) {
                    throw HeraldError.invalidInput("credentials.deviceTokens: \(problem)", context: ["field": "credentials.deviceTokens"])
                }
            }
            let existing = try await devices(environmentId: environmentId, subscriberId: subscriberId, integrationId: integration.id)
            let kept = mode == .replace ? [] : existing.map(\.token.revealed)
            let final = kept + unique.filter { !kept.contains($0) }
            guard final.count <= Self.maxTokensPerIntegration else {
                throw HeraldError.invalidInput(
                    "a subscriber can have at most \(Self.maxTokensPerIntegration) device tokens per integration",
                    context: ["field": "credentials.deviceTokens"]
                )
            }
            if mode == .replace {
                let stale = existing.filter { !unique.contains($0.token.revealed) }.map(\.id)
                try await removeDevices(environmentId: environmentId, ids: stale)
            }
            for token in unique {
                _ = try await registerDevice(
                    environmentId: environmentId,
                    DeviceRegistration(
                        provider: integration.providerId, token: Secret(token), integrationId: integration.id,
                        platform: Self.defaultPlatform(provider: integration.providerId), subscriberId: subscriberId
                    )
                )
            }
        }
        guard !otherCredentials.isEmpty else { return }
        let now = nowMilliseconds
        let row = try await db.raw(
            """
            SELECT credentials FROM subscriber_channels
            WHERE environment_id = \(bind: environmentId) AND subscriber_id = \(bind: subscriberId) AND integration_id = \(bind: integration.id)
            """
        ).first()
        var merged = try row.flatMap { try JSONValue.parse(try $0.decode(column: "credentials", as: String.self)).objectValue } ?? [:]
        for (key, value) in otherCredentials { merged[key] = value }
        let text = JSONValue.object(merged).jsonString()
        if row == nil {
            try await db.raw(
                """
                INSERT INTO subscriber_channels (id, environment_id, subscriber_id, integration_id, provider_id, credentials, created_at, updated_at)
                VALUES (\(bind: ids.next()), \(bind: environmentId), \(bind: subscriberId), \(bind: integration.id), \(bind: integration.providerId),
                    \(bind: text), \(bind: now), \(bind: now))
                """
            ).run()
        } else {
            try await db.raw(
                """
                UPDATE subscriber_channels SET credentials = \(bind: text), active = \(bind: true), updated_at = \(bind: now)
                WHERE environment_id = \(bind: environmentId) AND subscriber_id = \(bind: subscriberId) AND integration_id = \(bind: integration.id)
                """
            ).run()
        }
    }

    /// Removes every credential of a provider from a subscriber, across all integrations of that provider (Novu's
    /// DELETE semantics). Returns how many records were removed.
    @discardableResult
    public func deleteCredentials(environmentId: String, subscriberId: String, providerId: String) async throws -> Int {
        let devices = try await db.raw(
            """
            DELETE FROM devices WHERE environment_id = \(bind: environmentId) AND subscriber_id = \(bind: subscriberId)
            AND provider = \(bind: providerId) RETURNING id
            """
        ).all().count
        let channels = try await db.raw(
            """
            DELETE FROM subscriber_channels WHERE environment_id = \(bind: environmentId) AND subscriber_id = \(bind: subscriberId)
            AND provider_id = \(bind: providerId) RETURNING id
            """
        ).all().count
        return devices + channels
    }

    /// A subscriber's channels, one per integration that holds tokens or credentials for it, in integration order.
    public func subscriberChannels(environmentId: String, subscriberId: String) async throws -> [SubscriberChannel] {
        let integrations = Dictionary(
            uniqueKeysWithValues: try await db.raw(
                "SELECT id, identifier, provider_id FROM integrations WHERE environment_id = \(bind: environmentId)"
            ).all().map { row in
                (
                    try row.decode(column: "id", as: String.self),
                    (try row.decode(column: "identifier", as: String.self), try row.decode(column: "provider_id", as: String.self))
                )
            }
        )
        var channels: [String: SubscriberChannel] = [:]
        func channel(_ integrationId: String) -> SubscriberChannel? {
            if let existing = channels[integrationId] { return existing }
            guard let (identifier, provider) = integrations[integrationId] else { return nil }
            return SubscriberChannel(
                integrationId: integrationId, integrationIdentifier: identifier, providerId: provider, credentials: [:], deviceTokens: [])
        }
        for device in try await devices(environmentId: environmentId, subscriberId: subscriberId) {
            guard let integrationId = device.integrationId, var entry = channel(integrationId) else { continue }
            entry.deviceTokens.append(device.token.revealed)
            channels[integrationId] = entry
        }
        for row in try await db.raw(
            """
            SELECT integration_id, credentials FROM subscriber_channels
            WHERE environment_id = \(bind: environmentId) AND subscriber_id = \(bind: subscriberId)
            """
        ).all() {
            let integrationId = try row.decode(column: "integration_id", as: String.self)
            guard var entry = channel(integrationId) else { continue }
            entry.credentials = try JSONValue.parse(try row.decode(column: "credentials", as: String.self)).objectValue ?? [:]
            channels[integrationId] = entry
        }
        return channels.values.sorted { $0.integrationId < $1.integrationId }
    }

    static func defaultPlatform(provider: String) -> String? {
        switch provider {
        case "apns": "ios"
        case "hms": "android"
        case "web-push": "web"
        default: nil
        }
    }
}
