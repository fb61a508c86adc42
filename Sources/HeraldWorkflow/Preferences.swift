import HeraldCore

/// A workflow's preference defaults, the `preferences:` block of its file (docs/workflows.md §Preferences):
/// `all.enabled` is the default of a channel the block does not name, `all.readOnly` stops subscribers from changing
/// anything, and `channels.<channel>.enabled` is one channel's default.
public struct WorkflowPreferences: Sendable, Hashable {
    /// `all.enabled`; nil when the file does not say (then true).
    public var enabled: Bool?
    public var readOnly: Bool
    public var channels: [Channel: Bool]

    public init(enabled: Bool? = nil, readOnly: Bool = false, channels: [Channel: Bool] = [:]) {
        self.enabled = enabled
        self.readOnly = readOnly
        self.channels = channels
    }

    /// The workflow's default for `channel`.
    public func defaultEnabled(_ channel: Channel) -> Bool { channels[channel] ?? enabled ?? true }
}

/// Which rule of the resolution table decided a channel (README §Preferences).
public enum PreferenceSource: String, Sendable, Hashable, CaseIterable {
    /// The workflow is `critical: true`: preferences do not apply.
    case critical
    /// The workflow's `all.readOnly`: its defaults apply, subscribers' settings do not.
    case readOnly = "workflow_read_only"
    case subscriberWorkflowChannel = "subscriber_workflow_channel"
    case subscriberWorkflow = "subscriber_workflow"
    case subscriberGlobalChannel = "subscriber_global_channel"
    case workflowDefault = "workflow_default"
    /// Nothing says anything: enabled.
    case standard = "default"
}

/// The outcome of resolving one channel of one workflow for one subscriber.
public struct PreferenceDecision: Sendable, Hashable {
    public var enabled: Bool
    public var source: PreferenceSource

    public init(_ enabled: Bool, _ source: PreferenceSource) {
        self.enabled = enabled
        self.source = source
    }
}

/// The preference resolution table (README §Preferences), a pure function: the first rule that has a value decides.
///
/// | # | rule | decides |
/// | 1 | the workflow is critical | send |
/// | 2 | the workflow's `all.readOnly` | the workflow's defaults |
/// | 3 | the subscriber's per-workflow channel setting | that |
/// | 4 | the subscriber's per-workflow `enabled` | that |
/// | 5 | the subscriber's global channel setting | that |
/// | 6 | the workflow's channel default, then its `all.enabled` | that |
/// | 7 | — | send |
public enum PreferenceResolver {
    public static func resolve(
        _ channel: Channel, critical: Bool, defaults: WorkflowPreferences, workflowId: String, subscriber: SubscriberPreferences
    ) -> PreferenceDecision {
        if critical { return PreferenceDecision(true, .critical) }
        if defaults.readOnly { return PreferenceDecision(defaults.defaultEnabled(channel), .readOnly) }
        let own = subscriber.workflows[workflowId]
        if let value = own?.channels[channel] { return PreferenceDecision(value, .subscriberWorkflowChannel) }
        if let value = own?.enabled { return PreferenceDecision(value, .subscriberWorkflow) }
        if let value = subscriber.global?.channels[channel] { return PreferenceDecision(value, .subscriberGlobalChannel) }
        if let value = defaults.channels[channel] ?? defaults.enabled { return PreferenceDecision(value, .workflowDefault) }
        return PreferenceDecision(true, .standard)
    }

    /// Resolves a channel of `workflow` for a subscriber.
    public static func resolve(_ channel: Channel, workflow: Workflow, subscriber: SubscriberPreferences) -> PreferenceDecision {
        resolve(channel, critical: workflow.critical, defaults: workflow.preferences, workflowId: workflow.id, subscriber: subscriber)
    }
}

extension Workflow {
    /// Whether subscribers may change this workflow's preferences (neither critical nor read-only). Only such a
    /// workflow's emails carry a one-click unsubscribe.
    public var subscriberEditable: Bool { !critical && !preferences.readOnly }

    /// The channels the workflow has a step for, in the order Novu lists them.
    public var stepChannels: [Channel] {
        let used = Set(steps.compactMap(\.type.channel))
        return Channel.allCases.filter(used.contains)
    }
}
