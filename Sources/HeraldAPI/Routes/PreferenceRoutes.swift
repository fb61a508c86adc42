import Foundation
import HTTPTypes
import HeraldCore
import HeraldStore
import HeraldWorkflow
import Hummingbird

/// Subscriber preferences (README §Preferences, docs/api.md §Preferences): Novu's v2 routes as `novu-py` 3.19.0 calls
/// them (list, update global or one workflow, bulk), the v1 routes of older SDKs, and Herald's change history. Every
/// change is recorded with its source (`api`) and the key prefix that made it.
struct PreferenceRoutes {
    let store: SQLStore
    let workflows: WorkflowRegistry

    func register(on group: RouterGroup<HeraldRequestContext>) {
        // MARK: v2
        group.get("/v2/subscribers/{subscriberId}/preferences") { request, context in
            let (environment, subscriberId) = try Self.target(context)
            let query = NovuQuery(request)
            let criticality = query.string("criticality") ?? "nonCritical"
            guard ["critical", "nonCritical", "all"].contains(criticality) else {
                throw APIError.invalidField(
                    "criticality", "criticality must be one of the following values: critical, nonCritical, all",
                    value: .string(criticality))
            }
            guard query.strings("contextKeys").isEmpty else { throw Self.contextUnsupported("contextKeys") }
            let preferences = try await stored(environment, subscriberId)
            return JSONResponse.make(NovuPreferences.listJSON(listed(criticality), preferences))
        }
        group.patch("/v2/subscribers/{subscriberId}/preferences") { request, context in
            let (environment, subscriberId) = try Self.target(context)
            let body = try Self.object(try await request.jsonValue(context: context), field: "body")
            try Self.allowOnly(body, ["channels", "workflowId", "schedule", "context"])
            try Self.refuseUnsupported(body)
            var patch = PreferencePatch(workflowId: nil, channels: try Self.channels(body["channels"], field: "channels"))
            if let workflowId = body["workflowId"] {
                guard let text = workflowId.stringValue, !text.isEmpty else {
                    throw APIError.invalidField("workflowId", "workflowId must be a non-empty string", value: workflowId)
                }
                patch.workflowId = try editableWorkflow(text).id
            }
            let preferences = try await apply([patch], environment: environment, subscriberId: subscriberId, request: request)
            return JSONResponse.make(NovuPreferences.listJSON(listed("nonCritical"), preferences))
        }
        group.patch("/v2/subscribers/{subscriberId}/preferences/bulk") { request, context in
            let (environment, subscriberId) = try Self.target(context)
            let body = try Self.object(try await request.jsonValue(context: context), field: "body")
            try Self.allowOnly(body, ["preferences", "context"])
            try Self.refuseUnsupported(body)
            guard case .array(let items)? = body["preferences"], (1...100).contains(items.count) else {
                throw APIError.invalidField("preferences", "preferences must be a list of 1 to 100 items", value: body["preferences"])
            }
            var patches: [PreferencePatch] = []
            var updated: [Workflow] = []
            for (index, item) in items.enumerated() {
                let field = "preferences[\(index)]"
                let object = try Self.object(item, field: field)
                try Self.allowOnly(object, ["channels", "workflowId"], prefix: field + ".")
                guard let id = object["workflowId"]?.stringValue, !id.isEmpty else {
                    throw APIError.invalidField("\(field).workflowId", "\(field).workflowId is required", value: object["workflowId"])
                }
                guard object["channels"] != nil else {
                    throw APIError.invalidField("\(field).channels", "\(field).channels is required")
                }
                let workflow = try editableWorkflow(id)
                updated.append(workflow)
                patches.append(
                    PreferencePatch(workflowId: workflow.id, channels: try Self.channels(object["channels"], field: "\(field).channels")))
            }
            let preferences = try await apply(patches, environment: environment, subscriberId: subscriberId, request: request)
            return JSONResponse.make(.array(updated.map { NovuPreferences.levelJSON($0, preferences) }))
        }
        group.get("/v2/subscribers/{subscriberId}/preferences/changes") { request, context in
            let (environment, subscriberId) = try Self.target(context)
            let page = try NovuQuery(request).cursor()
            let result = try await store.read { session in
                try await Self.requireSubscriber(session, environment.id, subscriberId)
                return try await session.preferenceChanges(environmentId: environment.id, subscriberId: subscriberId, request: page)
            }
            return JSONResponse.make(result.novuJSON(NovuPreferences.changeJSON))
        }

        // MARK: v1
        group.get("/v1/subscribers/{subscriberId}/preferences") { _, context in
            let (environment, subscriberId) = try Self.target(context)
            return v1List(try await stored(environment, subscriberId))
        }
        group.get("/v1/subscribers/{subscriberId}/preferences/{parameter}") { _, context in
            let (environment, subscriberId) = try Self.target(context)
            // One path parameter name for both methods (Hummingbird's trie requires it; Novu calls it `parameter` too).
            let level = try context.parameters.require("parameter")
            guard level == "global" || level == "template" else {
                throw APIError.invalidField("level", "level must be one of the following values: global, template", value: .string(level))
            }
            let preferences = try await stored(environment, subscriberId)
            if level == "global" { return JSONResponse.data([NovuPreferences.v1GlobalJSON(preferences)]) }
            return v1List(preferences)
        }
        group.patch("/v1/subscribers/{subscriberId}/preferences") { request, context in
            let (environment, subscriberId) = try Self.target(context)
            let body = try Self.object(try await request.jsonValue(context: context), field: "body")
            try Self.allowOnly(body, ["enabled", "preferences"])
            if let enabled = body["enabled"], enabled.boolValue != true {
                throw APIError.invalidField(
                    "enabled", "the global preference is always enabled; turn channels off with preferences[]", value: enabled)
            }
            var channels: [Channel: Bool] = [:]
            if let list = body["preferences"] {
                guard case .array(let items) = list else {
                    throw APIError.invalidField("preferences", "preferences must be a list of {type, enabled}", value: list)
                }
                for (index, item) in items.enumerated() {
                    let (channel, enabled) = try Self.channelSetting(item, field: "preferences[\(index)]")
                    channels[channel] = enabled
                }
            }
            let preferences = try await apply(
                [PreferencePatch(workflowId: nil, channels: channels)], environment: environment, subscriberId: subscriberId,
                request: request)
            return JSONResponse.data(NovuPreferences.v1GlobalJSON(preferences))
        }
        group.patch("/v1/subscribers/{subscriberId}/preferences/{parameter}") { request, context in
            let (environment, subscriberId) = try Self.target(context)
            let workflow = try editableWorkflow(try context.parameters.require("parameter"))
            let body = try Self.object(try await request.jsonValue(context: context), field: "body")
            try Self.allowOnly(body, ["channel", "enabled"])
            var patch = PreferencePatch(workflowId: workflow.id)
            if let enabled = body["enabled"] {
                guard let value = enabled.boolValue else {
                    throw APIError.invalidField("enabled", "enabled must be a boolean", value: enabled)
                }
                patch.enabled = value
            }
            if let channel = body["channel"] {
                let (type, enabled) = try Self.channelSetting(channel, field: "channel")
                patch.channels[type] = enabled
            }
            let preferences = try await apply([patch], environment: environment, subscriberId: subscriberId, request: request)
            return JSONResponse.data(NovuPreferences.v1JSON(workflow, preferences))
        }
    }

    // MARK: Helpers

    /// The active workflows a listing shows, by identifier, filtered by Novu's `criticality`.
    func listed(_ criticality: String) -> [Workflow] {
        workflows.workflows.values.filter { workflow in
            guard workflow.active, !workflow.stepChannels.isEmpty else { return false }
            switch criticality {
            case "critical": return NovuPreferences.isCritical(workflow)
            case "nonCritical": return !NovuPreferences.isCritical(workflow)
            default: return true
            }
        }.sorted { $0.id < $1.id }
    }

    /// A subscriber's stored preferences; 404 for an unknown subscriber.
    func stored(_ environment: HeraldCore.Environment, _ subscriberId: String) async throws -> SubscriberPreferences {
        try await store.read { session in
            try await Self.requireSubscriber(session, environment.id, subscriberId)
            return try await session.preferences(environmentId: environment.id, subscriberId: subscriberId)
        }
    }

    /// The v1 listing: every active workflow with channel steps, critical ones marked.
    func v1List(_ preferences: SubscriberPreferences) -> Response {
        JSONResponse.data(.array(listed("all").map { NovuPreferences.v1JSON($0, preferences) }))
    }

    /// The workflow a change names, which subscribers must be allowed to change.
    func editableWorkflow(_ id: String) throws -> Workflow {
        guard let workflow = workflows.workflow(id), workflow.active else {
            throw APIError(.notFound, "Workflow with id: \(id) is not found")
        }
        guard workflow.subscriberEditable else {
            // Novu's answer for a critical workflow (its read-only preferences are the same thing).
            throw APIError(.badRequest, "Critical workflow with id: \(id) can not be updated")
        }
        return workflow
    }

    /// Applies the patches in one transaction (the subscriber must exist) and returns the subscriber's preferences.
    func apply(
        _ patches: [PreferencePatch], environment: HeraldCore.Environment, subscriberId: String, request: Request
    ) async throws -> SubscriberPreferences {
        let actor = AuthMiddleware.presentedKey(request.headers).map { "api-key:" + String($0.prefix(APIKey.prefixLength)) } ?? "api"
        return try await store.transaction { session in
            try await Self.requireSubscriber(session, environment.id, subscriberId)
            for patch in patches where !patch.isEmpty {
                try await session.applyPreference(
                    environmentId: environment.id, subscriberId: subscriberId, patch: patch, source: .api, actor: actor)
            }
            return try await session.preferences(environmentId: environment.id, subscriberId: subscriberId)
        }
    }

    static func target(_ context: HeraldRequestContext) throws -> (HeraldCore.Environment, String) {
        (try context.requireEnvironment(), try context.parameters.require("subscriberId"))
    }

    static func requireSubscriber(_ session: StoreSession, _ environmentId: String, _ subscriberId: String) async throws {
        guard try await session.subscriber(environmentId: environmentId, subscriberId: subscriberId) != nil else {
            throw APIError(.notFound, "Subscriber: \(subscriberId) was not found")
        }
    }

    static func object(_ value: JSONValue, field: String) throws -> [String: JSONValue] {
        guard case .object(let object) = value else {
            throw APIError.invalidField(field, "\(field) must be a JSON object", value: field == "body" ? nil : value)
        }
        return object
    }

    static func allowOnly(_ object: [String: JSONValue], _ allowed: Set<String>, prefix: String = "") throws {
        if let unknown = object.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw APIError.invalidField(
                prefix + unknown, "\(prefix)\(unknown) is not a field of this request (\(allowed.sorted().joined(separator: ", ")))")
        }
    }

    /// Herald keeps one preference per channel and workflow: no per-context layers and no delivery schedule yet.
    static func refuseUnsupported(_ body: [String: JSONValue]) throws {
        if let context = body["context"], context != .null, context.objectValue?.isEmpty != true {
            throw contextUnsupported("context")
        }
        if let schedule = body["schedule"], schedule != .null {
            throw APIError.invalidField("schedule", "subscriber delivery schedules are not supported by Herald", value: schedule)
        }
    }

    static func contextUnsupported(_ field: String) -> APIError {
        APIError.invalidField(field, "context-scoped preferences are not supported by Herald; omit \(field)")
    }

    /// `{email: false, push: true}` with Novu's channel names; Herald has no `tool` channel.
    static func channels(_ value: JSONValue?, field: String) throws -> [Channel: Bool] {
        guard let value, value != .null else { return [:] }
        guard case .object(let object) = value else {
            throw APIError.invalidField(field, "\(field) must be an object of channel: boolean", value: value)
        }
        var result: [Channel: Bool] = [:]
        for (key, setting) in object.sorted(by: { $0.key < $1.key }) {
            guard let channel = Channel(rawValue: key) else {
                throw APIError.invalidField(
                    "\(field).\(key)", "\(field).\(key): unknown channel (email, sms, in_app, chat, push)", value: setting)
            }
            guard setting != .null else { continue }
            guard let enabled = setting.boolValue else {
                throw APIError.invalidField("\(field).\(key)", "\(field).\(key) must be a boolean", value: setting)
            }
            result[channel] = enabled
        }
        return result
    }

    /// A v1 `{type: <channel>, enabled: <bool>}`.
    static func channelSetting(_ value: JSONValue, field: String) throws -> (Channel, Bool) {
        let object = try object(value, field: field)
        guard let type = object["type"]?.stringValue, let channel = Channel(rawValue: type) else {
            throw APIError.invalidField(
                "\(field).type", "\(field).type must be one of email, sms, in_app, chat, push", value: object["type"])
        }
        guard let enabled = object["enabled"]?.boolValue else {
            throw APIError.invalidField("\(field).enabled", "\(field).enabled must be a boolean", value: object["enabled"])
        }
        return (channel, enabled)
    }
}
