import Foundation
import HeraldCore
import HeraldWorkflow

/// Novu's subscriber-preference wire shapes (`novu-py` 3.19.0 `GetSubscriberPreferencesDto`,
/// `GetPreferencesResponseDto`, the v1 `{template, preference}` items) built from Herald's stored layers and the
/// resolution table (README §Preferences). Herald has no `in_app` step type, but stores and reports the channel's
/// setting like the others, so a Novu client's settings round-trip.
enum NovuPreferences {
    /// The channels a global preference reports, in Novu's order.
    static let globalChannels: [Channel] = [.email, .sms, .inApp, .chat, .push]

    /// Whether a workflow is "critical" as Novu reports it: subscribers cannot change it.
    static func isCritical(_ workflow: Workflow) -> Bool { !workflow.subscriberEditable }

    /// A workflow's `enabled` as reported: the subscriber's switch for it, always on for a critical one.
    static func workflowEnabled(_ workflow: Workflow, _ preferences: SubscriberPreferences) -> Bool {
        isCritical(workflow) || (preferences.workflows[workflow.id]?.enabled ?? true)
    }

    static func globalJSON(_ preferences: SubscriberPreferences) -> JSONValue {
        [
            "enabled": true,
            "channels": .object(
                Dictionary(
                    uniqueKeysWithValues: globalChannels.map { ($0.rawValue, JSONValue.bool(preferences.global?.channels[$0] ?? true)) })),
        ]
    }

    /// The resolved channels of a workflow (only those it has steps for) and which side decided each.
    static func resolved(_ workflow: Workflow, _ preferences: SubscriberPreferences) -> (channels: JSONValue, overrides: JSONValue) {
        var channels: [String: JSONValue] = [:]
        var overrides: [JSONValue] = []
        for channel in workflow.stepChannels {
            let decision = PreferenceResolver.resolve(channel, workflow: workflow, subscriber: preferences)
            channels[channel.rawValue] = .bool(decision.enabled)
            let source: String =
                switch decision.source {
                case .subscriberWorkflowChannel, .subscriberWorkflow, .subscriberGlobalChannel: "subscriber"
                case .critical, .readOnly, .workflowDefault, .standard: "template"
                }
            overrides.append(["channel": .string(channel.rawValue), "source": .string(source)])
        }
        return (.object(channels), .array(overrides))
    }

    /// `SubscriberWorkflowPreferenceDto`.
    static func workflowJSON(_ workflow: Workflow, _ preferences: SubscriberPreferences) -> JSONValue {
        let (channels, overrides) = resolved(workflow, preferences)
        let own = preferences.workflows[workflow.id]
        var object: [String: JSONValue] = [
            "enabled": .bool(workflowEnabled(workflow, preferences)), "channels": channels, "overrides": overrides,
            "workflow": ["slug": .string(workflow.id), "identifier": .string(workflow.id), "name": .string(workflow.name)],
        ]
        if let own { object["updatedAt"] = .string(own.updatedAt.iso8601Milliseconds) }
        return .object(object)
    }

    /// `GetSubscriberPreferencesDto`: the global preference and one entry per active workflow the filter keeps.
    static func listJSON(_ workflows: [Workflow], _ preferences: SubscriberPreferences) -> JSONValue {
        ["global": globalJSON(preferences), "workflows": .array(workflows.map { workflowJSON($0, preferences) })]
    }

    /// `GetPreferencesResponseDto` of one workflow (the bulk update's answer).
    static func levelJSON(_ workflow: Workflow, _ preferences: SubscriberPreferences) -> JSONValue {
        [
            "level": "template", "enabled": .bool(workflowEnabled(workflow, preferences)),
            "channels": resolved(workflow, preferences).channels,
            "workflow": [
                "id": .string(workflow.id), "identifier": .string(workflow.id), "name": .string(workflow.name),
                "critical": .bool(isCritical(workflow)), "severity": "none", "tags": .array(workflow.tags.map(JSONValue.string)),
            ],
        ]
    }

    /// The v1 item: `{template: {_id, name, critical, triggers}, preference: {enabled, channels, overrides}}`.
    static func v1JSON(_ workflow: Workflow, _ preferences: SubscriberPreferences) -> JSONValue {
        let (channels, overrides) = resolved(workflow, preferences)
        return [
            "template": [
                "_id": .string(workflow.id), "name": .string(workflow.name), "critical": .bool(isCritical(workflow)),
                "tags": .array(workflow.tags.map(JSONValue.string)),
                "triggers": [["type": "event", "identifier": .string(workflow.id), "variables": []]],
            ],
            "preference": [
                "enabled": .bool(workflowEnabled(workflow, preferences)), "channels": channels,
                "overrides": overrides,
            ],
        ]
    }

    /// The v1 global item: `{preference: {enabled, channels}}`.
    static func v1GlobalJSON(_ preferences: SubscriberPreferences) -> JSONValue {
        ["preference": globalJSON(preferences)]
    }

    /// A recorded change.
    static func changeJSON(_ change: PreferenceChange) -> JSONValue {
        var object: [String: JSONValue] = [
            "_id": .string(change.id), "subscriberId": .string(change.subscriberId),
            "workflowId": change.workflowId.map(JSONValue.string) ?? .null, "level": change.workflowId == nil ? "global" : "template",
            "channels": .object(Dictionary(uniqueKeysWithValues: change.channels.map { ($0.key.rawValue, JSONValue.bool($0.value)) })),
            "source": .string(change.source.rawValue), "actor": .string(change.actor),
            "createdAt": .string(change.createdAt.iso8601Milliseconds),
        ]
        if let enabled = change.enabled { object["enabled"] = .bool(enabled) }
        return .object(object)
    }
}
