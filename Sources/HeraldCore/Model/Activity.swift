import Foundation

/// One accepted trigger (Novu event): what was asked, committed before the API answers.
public struct EventRecord: Sendable, Hashable {
    public var id: String
    public var environmentId: String
    public var transactionId: String
    public var workflowId: String
    /// SHA-256 of the canonical request, to tell a replay (same body) from a conflicting reuse of the id.
    public var requestHash: String
    /// The JSON answered to the first request, replayed to a repeat.
    public var response: String
    public var payload: JSONValue
    /// The `to` recipients as given (array), or `[{"type":"Broadcast"}]` for a broadcast.
    public var recipients: JSONValue
    public var actor: JSONValue?
    public var tenant: JSONValue?
    public var overrides: JSONValue
    public var status: EventStatus
    /// Fan-out checkpoint: where recipient expansion resumes after a crash.
    public var cursor: String?
    public var createdAt: Date

    public init(
        id: String, environmentId: String, transactionId: String, workflowId: String, requestHash: String, response: String,
        payload: JSONValue, recipients: JSONValue, actor: JSONValue?, tenant: JSONValue?, overrides: JSONValue, status: EventStatus,
        cursor: String? = nil, createdAt: Date
    ) {
        self.id = id
        self.environmentId = environmentId
        self.transactionId = transactionId
        self.workflowId = workflowId
        self.requestHash = requestHash
        self.response = response
        self.payload = payload
        self.recipients = recipients
        self.actor = actor
        self.tenant = tenant
        self.overrides = overrides
        self.status = status
        self.cursor = cursor
        self.createdAt = createdAt
    }
}

/// One trigger × one subscriber: the run of the workflow for that subscriber, with its persisted executor state.
public struct NotificationRecord: Sendable, Hashable {
    public var id: String
    public var environmentId: String
    public var eventId: String
    public var transactionId: String
    public var workflowId: String
    public var subscriberId: String
    public var topicKey: String?
    public var status: NotificationStatus
    /// The executor's state (JSON of `RunState`).
    public var state: String
    /// Channels the run used.
    public var channels: [String]
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: String, environmentId: String, eventId: String, transactionId: String, workflowId: String, subscriberId: String,
        topicKey: String?, status: NotificationStatus, state: String, channels: [String], createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.environmentId = environmentId
        self.eventId = eventId
        self.transactionId = transactionId
        self.workflowId = workflowId
        self.subscriberId = subscriberId
        self.topicKey = topicKey
        self.status = status
        self.state = state
        self.channels = channels
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// One channel step × one integration of a notification (Novu message): the rendered content and its status.
public struct MessageRecord: Sendable, Hashable {
    public var id: String
    public var environmentId: String
    public var notificationId: String
    public var transactionId: String
    public var workflowId: String
    public var subscriberId: String
    public var stepId: String
    public var channel: Channel
    public var integrationId: String?
    public var providerId: String?
    public var status: MessageStatus
    public var content: MessageContent
    /// Targets (push tokens; the address for email/SMS, the URL for chat).
    public var deviceTokens: [String]
    public var errorId: String?
    public var errorText: String?
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: String, environmentId: String, notificationId: String, transactionId: String, workflowId: String, subscriberId: String,
        stepId: String, channel: Channel, integrationId: String?, providerId: String?, status: MessageStatus, content: MessageContent,
        deviceTokens: [String], errorId: String? = nil, errorText: String? = nil, createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.environmentId = environmentId
        self.notificationId = notificationId
        self.transactionId = transactionId
        self.workflowId = workflowId
        self.subscriberId = subscriberId
        self.stepId = stepId
        self.channel = channel
        self.integrationId = integrationId
        self.providerId = providerId
        self.status = status
        self.content = content
        self.deviceTokens = deviceTokens
        self.errorId = errorId
        self.errorText = errorText
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// Where a delivery stands.
public enum DeliveryStatus: String, Sendable, Codable, CaseIterable {
    case pending, retrying, delivered
    /// The target was invalid and its device removed.
    case invalid
    /// Bad request or credentials: not retried.
    case failed
    /// Retries exhausted.
    case dead
    case canceled

    public var isFinal: Bool { self != .pending && self != .retrying }
}

/// The part of a message that deciding outcomes needs: which step and integration it belongs to (no content).
public struct MessageHead: Sendable, Hashable {
    public var id: String
    public var notificationId: String
    public var stepId: String
    public var channel: Channel
    public var integrationId: String?
    public var providerId: String?

    public init(id: String, notificationId: String, stepId: String, channel: Channel, integrationId: String?, providerId: String?) {
        self.id = id
        self.notificationId = notificationId
        self.stepId = stepId
        self.channel = channel
        self.integrationId = integrationId
        self.providerId = providerId
    }

    public init(_ record: MessageRecord) {
        self.init(
            id: record.id, notificationId: record.notificationId, stepId: record.stepId, channel: record.channel,
            integrationId: record.integrationId, providerId: record.providerId)
    }
}

/// The part of a delivery that decides its message's outcome.
public struct DeliverySummary: Sendable, Hashable {
    public var id: String
    /// Nil for a delivery of a raw send (no message).
    public var messageId: String?
    public var status: DeliveryStatus
    public var errorCode: String?
    public var outcome: String?
    public var errorText: String?

    public init(id: String, messageId: String?, status: DeliveryStatus, errorCode: String?, outcome: String?, errorText: String?) {
        self.id = id
        self.messageId = messageId
        self.status = status
        self.errorCode = errorCode
        self.outcome = outcome
        self.errorText = errorText
    }

    public init(_ record: DeliveryRecord) {
        self.init(
            id: record.id, messageId: record.messageId, status: record.status, errorCode: record.errorCode, outcome: record.outcome,
            errorText: record.errorText)
    }
}

/// One provider call for one device or address.
public struct DeliveryRecord: Sendable, Hashable {
    public var id: String
    public var environmentId: String
    public var messageId: String?
    /// The raw send (``PushSend``) it belongs to, for deliveries without a message.
    public var pushId: String?
    public var deviceId: String?
    /// The device's platform (`ios`, `android`, `web`) where known, for push statistics.
    public var platform: String?
    public var integrationId: String?
    public var providerId: String
    public var target: Secret
    public var status: DeliveryStatus
    /// The last outcome class (`DeliveryOutcome.label`).
    public var outcome: String?
    public var attempts: Int
    public var providerMessageId: String?
    public var errorCode: String?
    public var errorText: String?
    public var nextAttemptAt: Date?
    /// When the current retry window began (first attempt, or the last manual re-drive).
    public var windowStartedAt: Date?
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: String, environmentId: String, messageId: String?, deviceId: String?, integrationId: String?, providerId: String,
        target: Secret,
        status: DeliveryStatus, outcome: String? = nil, attempts: Int = 0, providerMessageId: String? = nil, errorCode: String? = nil,
        errorText: String? = nil, nextAttemptAt: Date? = nil, windowStartedAt: Date? = nil, pushId: String? = nil, platform: String? = nil,
        createdAt: Date, updatedAt: Date
    ) {
        self.windowStartedAt = windowStartedAt
        self.pushId = pushId
        self.platform = platform
        self.id = id
        self.environmentId = environmentId
        self.messageId = messageId
        self.deviceId = deviceId
        self.integrationId = integrationId
        self.providerId = providerId
        self.target = target
        self.status = status
        self.outcome = outcome
        self.attempts = attempts
        self.providerMessageId = providerMessageId
        self.errorCode = errorCode
        self.errorText = errorText
        self.nextAttemptAt = nextAttemptAt
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// One line of the activity trail (Novu execution detail): what happened and why.
public struct ExecutionDetail: Sendable, Hashable {
    public enum Status: String, Sendable {
        case success = "Success", warning = "Warning", failed = "Failed", pending = "Pending", queued = "Queued"
    }
    public enum Source: String, Sendable {
        case credentials = "Credentials", `internal` = "Internal", payload = "Payload", webhook = "Webhook"
    }

    public var id: String
    public var environmentId: String
    public var notificationId: String?
    public var messageId: String?
    public var deliveryId: String?
    public var stepId: String?
    public var providerId: String?
    public var status: Status
    /// A stable code (`message_sent`, `push_invalid_token_removed`, `missing_push_token`, …).
    public var detail: String
    public var source: Source
    public var isRetry: Bool
    /// Extra facts (provider reason, attempt), JSON; never secrets.
    public var raw: String?
    public var createdAt: Date

    public init(
        id: String, environmentId: String, notificationId: String?, messageId: String? = nil, deliveryId: String? = nil, stepId: String?,
        providerId: String? = nil, status: Status, detail: String, source: Source = .internal, isRetry: Bool = false, raw: String? = nil,
        createdAt: Date
    ) {
        self.id = id
        self.environmentId = environmentId
        self.notificationId = notificationId
        self.messageId = messageId
        self.deliveryId = deliveryId
        self.stepId = stepId
        self.providerId = providerId
        self.status = status
        self.detail = detail
        self.source = source
        self.isRetry = isRetry
        self.raw = raw
        self.createdAt = createdAt
    }
}
