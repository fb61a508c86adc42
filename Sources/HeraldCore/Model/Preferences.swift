import Foundation

/// One stored layer of a subscriber's preferences: the global one (``workflowId`` nil) or one workflow's. A channel
/// missing from ``channels`` has no value at this layer, and so does a nil ``enabled`` (README §Preferences).
public struct SubscriberPreference: Sendable, Hashable {
    public var workflowId: String?
    /// The workflow as a whole (set by the v1 API); nil when never set. The global layer never has one.
    public var enabled: Bool?
    public var channels: [Channel: Bool]
    public var updatedAt: Date

    public init(workflowId: String?, enabled: Bool? = nil, channels: [Channel: Bool] = [:], updatedAt: Date) {
        self.workflowId = workflowId
        self.enabled = enabled
        self.channels = channels
        self.updatedAt = updatedAt
    }
}

/// Every stored preference of one subscriber.
public struct SubscriberPreferences: Sendable, Hashable {
    public var global: SubscriberPreference?
    public var workflows: [String: SubscriberPreference]

    public init(global: SubscriberPreference? = nil, workflows: [String: SubscriberPreference] = [:]) {
        self.global = global
        self.workflows = workflows
    }

    public static let none = SubscriberPreferences()
}

/// A partial change to one preference layer: channels absent from ``channels`` and a nil ``enabled`` stay as they are.
public struct PreferencePatch: Sendable, Hashable {
    public var workflowId: String?
    public var enabled: Bool?
    public var channels: [Channel: Bool]

    public init(workflowId: String?, enabled: Bool? = nil, channels: [Channel: Bool] = [:]) {
        self.workflowId = workflowId
        self.enabled = enabled
        self.channels = channels
    }

    public var isEmpty: Bool { enabled == nil && channels.isEmpty }
}

/// A recorded preference change: who made it, what changed, when and through which door.
public struct PreferenceChange: Sendable, Hashable {
    /// `api` (the management API) or `unsubscribe-link` (a recipient's one-click unsubscribe).
    public enum Source: String, Sendable, Hashable, Codable {
        case api
        case unsubscribeLink = "unsubscribe-link"
    }

    public var id: String
    public var environmentId: String
    public var subscriberId: String
    /// nil for the global layer.
    public var workflowId: String?
    public var enabled: Bool?
    public var channels: [Channel: Bool]
    public var source: Source
    /// The API key prefix for `api`, `subscriber` for the link.
    public var actor: String
    public var createdAt: Date

    public init(
        id: String, environmentId: String, subscriberId: String, workflowId: String?, enabled: Bool?, channels: [Channel: Bool],
        source: Source, actor: String, createdAt: Date
    ) {
        self.id = id
        self.environmentId = environmentId
        self.subscriberId = subscriberId
        self.workflowId = workflowId
        self.enabled = enabled
        self.channels = channels
        self.source = source
        self.actor = actor
        self.createdAt = createdAt
    }
}
