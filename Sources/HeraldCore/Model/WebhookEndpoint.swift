import Foundation

/// An application's receiver of status events (README §Status webhooks): the events whose type matches one of
/// ``eventTypes`` (and, when ``workflowIds`` is set, that concern one of those workflows) are posted to ``url``,
/// signed per the Standard Webhooks specification with ``secret`` (`docs/webhooks.md`).
public struct WebhookEndpoint: Sendable, Equatable {
    public var id: String
    public var environmentId: String
    public var url: String
    public var description: String?
    /// Event types and `prefix.*` patterns (`message.*`); `*` matches every type.
    public var eventTypes: [String]
    /// Only events of these workflows (by trigger identifier) when set.
    public var workflowIds: [String]?
    /// `whsec_` + base64 of the signing key; shown once on create and rotate, sealed at rest.
    public var secret: Secret
    /// The secret before the last rotation, which keeps signing beside ``secret`` until ``previousSecretExpiresAt``
    /// (zero-downtime rotation: receivers accept either signature while they switch).
    public var previousSecret: Secret?
    public var previousSecretExpiresAt: Date?
    public var disabled: Bool
    /// Why the endpoint was disabled (`failing` when Herald disabled it, `api` when an operator did).
    public var disabledReason: String?
    /// The first failed attempt of the current streak of failures (nil after a success).
    public var failingSince: Date?
    public var createdAt: Date
    public var updatedAt: Date
    /// Whether message events carry the message's content (`includeContent`, opt-in: bodies may hold personal data).
    public var includeContent = false

    public init(
        id: String, environmentId: String, url: String, description: String? = nil, eventTypes: [String], workflowIds: [String]? = nil,
        secret: Secret, previousSecret: Secret? = nil, previousSecretExpiresAt: Date? = nil, disabled: Bool = false,
        disabledReason: String? = nil, failingSince: Date? = nil, createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.environmentId = environmentId
        self.url = url
        self.description = description
        self.eventTypes = eventTypes
        self.workflowIds = workflowIds
        self.secret = secret
        self.previousSecret = previousSecret
        self.previousSecretExpiresAt = previousSecretExpiresAt
        self.disabled = disabled
        self.disabledReason = disabledReason
        self.failingSince = failingSince
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    /// The secrets that sign at `time`: the current one, and the previous one while its overlap lasts.
    public func signingSecrets(at time: Date) -> [Secret] {
        guard let previousSecret, let expires = previousSecretExpiresAt, expires > time else { return [secret] }
        return [secret, previousSecret]
    }

    /// Whether an event of `type` about `workflowId` goes to this endpoint.
    public func accepts(type: String, workflowId: String?) -> Bool {
        guard eventTypes.contains(where: { Self.pattern($0, matches: type) }) else { return false }
        guard let workflowIds else { return true }
        return workflowId.map(workflowIds.contains) ?? false
    }

    /// `*` matches everything, `message.*` every `message.` type, anything else itself.
    public static func pattern(_ pattern: String, matches type: String) -> Bool {
        if pattern == "*" { return true }
        if pattern.hasSuffix(".*") { return type.hasPrefix(pattern.dropLast()) }
        return pattern == type
    }

    /// The event types an endpoint may subscribe to (each documented in `docs/webhooks.md`).
    public static let eventTypes = [
        "message.sent", "message.delivered", "message.bounced", "message.complained", "message.opened", "message.clicked",
        "message.failed", "message.dead", "device.removed", "notification.completed", "step.skipped",
        "push.interacted", "subscriber.unsubscribed",
    ]

    /// Whether a subscription entry names a known type, a known `prefix.*` or `*`.
    public static func isValidPattern(_ pattern: String) -> Bool {
        pattern == "*" || eventTypes.contains(pattern)
            || (pattern.hasSuffix(".*") && eventTypes.contains { $0.hasPrefix(pattern.dropLast()) })
    }
}

/// What became of one event posted to one endpoint.
public enum WebhookMessageStatus: String, Sendable, Codable, CaseIterable {
    /// Not delivered yet (first attempt to come, retrying, or waiting for a disabled endpoint).
    case pending
    /// The endpoint answered 2xx.
    case delivered
    /// Retries exhausted (older than the maximum age).
    case dead
}

/// One event for one endpoint: its `id` is the `webhook-id` of every attempt, so a receiver can deduplicate.
public struct WebhookMessage: Sendable, Equatable {
    public var id: String
    public var environmentId: String
    public var endpointId: String
    public var eventType: String
    /// The JSON body posted (`{"type", "timestamp", "data"}`), fixed when the event was produced.
    public var payload: String
    public var status: WebhookMessageStatus
    public var attempts: Int
    /// The HTTP status of the last attempt (nil before one or after a transport failure).
    public var lastStatus: Int?
    /// The last failure, without secrets (`http 503`, `transport: connection refused`).
    public var lastError: String?
    /// When it may be tried next (nil: now).
    public var nextAttemptAt: Date?
    /// When its current window of attempts started: its last replay (nil: its creation).
    public var windowStartedAt: Date?
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: String, environmentId: String, endpointId: String, eventType: String, payload: String, status: WebhookMessageStatus = .pending,
        attempts: Int = 0, lastStatus: Int? = nil, lastError: String? = nil, nextAttemptAt: Date? = nil, windowStartedAt: Date? = nil,
        createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.environmentId = environmentId
        self.endpointId = endpointId
        self.eventType = eventType
        self.payload = payload
        self.status = status
        self.attempts = attempts
        self.lastStatus = lastStatus
        self.lastError = lastError
        self.nextAttemptAt = nextAttemptAt
        self.windowStartedAt = windowStartedAt
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}
