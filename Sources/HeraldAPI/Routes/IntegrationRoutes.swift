import Foundation
import HeraldCore
import HeraldStore
import Hummingbird

/// Novu integrations (`docs/wire-compatibility.md` §Novu integrations), scoped to the caller's environment. Secrets are returned
/// masked; an update that sends a masked value back keeps the stored secret.
struct IntegrationRoutes {
    let store: SQLStore
    let policy: OutboundURLPolicy

    struct CreateBody: Decodable {
        var providerId: String?
        var channel: String?
        var name: String?
        var identifier: String?
        var credentials: [String: JSONValue]?
        var active: Bool?
        var check: Bool?
        var conditions: JSONValue?
        var configurations: JSONValue?
    }

    func register(on group: RouterGroup<HeraldRequestContext>) {
        group.get("/v1/integrations") { _, context in
            try await list(context, activeOnly: false)
        }
        group.get("/v1/integrations/active") { _, context in
            try await list(context, activeOnly: true)
        }
        group.post("/v1/integrations") { request, context in
            let environment = try context.requireEnvironment()
            let body = try await request.decodeJSON(CreateBody.self, context: context)
            guard let providerId = body.providerId, !providerId.isEmpty else {
                throw APIError.invalidField("providerId", "providerId should not be empty")
            }
            guard let providerChannel = ProviderCatalog.channel(of: providerId) else {
                throw APIError.invalidField(
                    "providerId", "providerId '\(providerId)' is not a provider Herald supports", value: .string(providerId))
            }
            guard let channelName = body.channel, let channel = Channel(rawValue: channelName) else {
                throw APIError.invalidField("channel", "channel must be one of the following values: in_app, email, sms, chat, push")
            }
            guard channel == providerChannel else {
                throw APIError.invalidField(
                    "channel", "provider \(providerId) is a \(providerChannel.rawValue) provider, not \(channel.rawValue)")
            }
            let identifier = body.identifier ?? "\(providerId)-\(Self.randomSuffix())"
            guard Self.isSlug(identifier) else {
                throw APIError.invalidField(
                    "identifier", "identifier must be 1–64 characters of a-z, 0-9, '-' and '_'", value: .string(identifier))
            }
            let active = body.active ?? true
            let credentials = IntegrationCredentials(body.credentials ?? [:])
            try Self.check(providerId: providerId, credentials: credentials, active: active, policy: policy)
            let now = store.clock.now()
            let integration = try await store.transaction { session in
                let hasPrimary = try await session.integrations(environmentId: environment.id, channel: channel).contains {
                    $0.primary && $0.active
                }
                do {
                    return try await session.createIntegration(
                        Integration(
                            id: session.newId(), environmentId: environment.id, providerId: providerId, channel: channel,
                            name: body.name ?? providerId, identifier: identifier, active: active,
                            primary: channel.hasPrimary && active && !hasPrimary, credentials: credentials,
                            conditions: body.conditions?.jsonString() ?? "[]", configurations: body.configurations?.jsonString() ?? "{}",
                            createdAt: now, updatedAt: now
                        )
                    )
                } catch let error as HeraldError where error.code == .conflict {
                    throw APIError.invalidField(
                        "identifier", "an integration with identifier '\(identifier)' already exists", value: .string(identifier))
                }
            }
            return JSONResponse.data(Self.json(integration), status: .created)
        }
        group.put("/v1/integrations/{integrationId}") { request, context in
            let environment = try context.requireEnvironment()
            let id = try context.parameters.require("integrationId")
            let body = try await request.decodeJSON(CreateBody.self, context: context)
            let updated = try await store.transaction { session in
                guard var integration = try await session.integration(environmentId: environment.id, id: id) else {
                    throw APIError(.notFound, "Integration \(id) was not found")
                }
                if let identifier = body.identifier, identifier != integration.identifier {
                    throw APIError.invalidField("identifier", "identifier cannot be changed after creation", value: .string(identifier))
                }
                if let providerId = body.providerId, providerId != integration.providerId {
                    throw APIError.invalidField("providerId", "providerId cannot be changed")
                }
                if let channel = body.channel, channel != integration.channel.rawValue {
                    throw APIError.invalidField("channel", "channel cannot be changed")
                }
                if let name = body.name { integration.name = name }
                if let active = body.active { integration.active = active }
                if let credentials = body.credentials {
                    var merged: [String: JSONValue] = [:]
                    for (field, value) in credentials {
                        merged[field] = IntegrationRules.isMasked(value) ? integration.credentials[field] : value
                    }
                    integration.credentials = IntegrationCredentials(merged.compactMapValues { $0 })
                }
                if let conditions = body.conditions { integration.conditions = conditions.jsonString() }
                if let configurations = body.configurations { integration.configurations = configurations.jsonString() }
                try Self.check(
                    providerId: integration.providerId, credentials: integration.credentials, active: integration.active, policy: policy)
                if !integration.active { integration.primary = false }
                return try await session.updateIntegration(integration)
            }
            return JSONResponse.data(Self.json(updated))
        }
        group.delete("/v1/integrations/{integrationId}") { _, context in
            let environment = try context.requireEnvironment()
            let id = try context.parameters.require("integrationId")
            let remaining = try await store.transaction { session in
                guard try await session.deleteIntegration(environmentId: environment.id, id: id) else {
                    throw APIError(.notFound, "Integration \(id) was not found")
                }
                return try await session.integrations(environmentId: environment.id)
            }
            return JSONResponse.data(.array(remaining.map(Self.json)))
        }
        group.post("/v1/integrations/{integrationId}/set-primary") { _, context in
            let environment = try context.requireEnvironment()
            let id = try context.parameters.require("integrationId")
            let primary = try await store.transaction { try await Self.setPrimary($0, environmentId: environment.id, id: id) }
            return JSONResponse.data(Self.json(primary))
        }
    }

    /// Makes an email or SMS integration its channel's primary (and active); the previous primary stops being one.
    static func setPrimary(_ session: StoreSession, environmentId: String, id: String) async throws -> Integration {
        guard var integration = try await session.integration(environmentId: environmentId, id: id) else {
            throw APIError(.notFound, "Integration \(id) was not found")
        }
        guard integration.channel.hasPrimary else {
            throw APIError(
                .badRequest,
                "Only email and sms integrations can be primary; \(integration.providerId) is a \(integration.channel.rawValue) provider"
            )
        }
        for var other in try await session.integrations(environmentId: environmentId, channel: integration.channel)
        where other.primary && other.id != id {
            other.primary = false
            _ = try await session.updateIntegration(other)
        }
        integration.primary = true
        integration.active = true
        return try await session.updateIntegration(integration)
    }

    /// Activates or deactivates an integration (the console's switch; `PUT` with `active` does the same): activating
    /// checks its credentials as the API does, deactivating drops its primary flag.
    static func setActive(store: SQLStore, policy: OutboundURLPolicy, environmentId: String, id: String, active: Bool) async throws {
        _ = try await store.transaction { session in
            guard var integration = try await session.integration(environmentId: environmentId, id: id) else {
                throw APIError(.notFound, "Integration \(id) was not found")
            }
            integration.active = active
            if !active { integration.primary = false }
            let problems = IntegrationRules.problems(
                providerId: integration.providerId, credentials: integration.credentials, active: active, policy: policy)
            if !problems.isEmpty { throw APIError(.unprocessableContent, problems.values.sorted().joined(separator: "; ")) }
            return try await session.updateIntegration(integration)
        }
    }

    func list(_ context: HeraldRequestContext, activeOnly: Bool) async throws -> Response {
        let environment = try context.requireEnvironment()
        let integrations = try await store.read { try await $0.integrations(environmentId: environment.id, activeOnly: activeOnly) }
        return JSONResponse.data(.array(integrations.map(Self.json)))
    }

    static func check(providerId: String, credentials: IntegrationCredentials, active: Bool, policy: OutboundURLPolicy) throws {
        let problems = IntegrationRules.problems(providerId: providerId, credentials: credentials, active: active, policy: policy)
        guard problems.isEmpty else {
            throw APIError(
                .unprocessableContent, problems.values.sorted().joined(separator: "; "),
                fieldErrors: problems.mapValues { APIError.FieldError(messages: [$0]) }
            )
        }
    }

    /// Novu `IntegrationResponseDto`, secrets masked.
    static func json(_ integration: Integration) -> JSONValue {
        [
            "_id": .string(integration.id), "_environmentId": .string(integration.environmentId),
            "_organizationId": .string(novuOrganizationId),
            "name": .string(integration.name), "identifier": .string(integration.identifier), "providerId": .string(integration.providerId),
            "channel": .string(integration.channel.rawValue), "credentials": IntegrationRules.masked(integration.credentials),
            "active": .bool(integration.active), "deleted": false, "primary": .bool(integration.primary),
            "conditions": (try? JSONValue.parse(integration.conditions)) ?? [],
            "configurations": (try? JSONValue.parse(integration.configurations)) ?? [:],
            "createdAt": .string(integration.createdAt.iso8601Milliseconds),
            "updatedAt": .string(integration.updatedAt.iso8601Milliseconds),
        ]
    }

    static func isSlug(_ text: String) -> Bool {
        (1...64).contains(text.count)
            && text.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_" }
    }

    static func randomSuffix() -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        return String((0..<6).map { _ in alphabet.randomElement()! })
    }
}
