import HeraldCore

/// Something that happened to what Herald sends, decided by the engine's pure cores and committed with the state
/// change it reports. Metrics count them today; status webhooks and other consumers read the same list.
public struct DomainEvent: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        /// Every delivery of a message is final and at least one was delivered (the provider accepted it).
        case messageSent = "message.sent"
        /// The provider confirmed that a message reached its recipient (a receipt: Twilio `delivered`).
        case messageDelivered = "message.delivered"
        /// The provider reported a bounce (SendGrid `bounce`, hard or blocked): the delivery failed.
        case messageBounced = "message.bounced"
        /// The recipient marked the message as spam (SendGrid `spamreport`).
        case messageComplained = "message.complained"
        /// The recipient opened the message (SendGrid `open`).
        case messageOpened = "message.opened"
        /// The recipient clicked a link of the message (SendGrid `click`).
        case messageClicked = "message.clicked"
        /// Every delivery of a message is final and none was delivered.
        case messageFailed = "message.failed"
        /// A delivery exhausted its retries.
        case messageDead = "message.dead"
        /// A device was removed because the provider called its token invalid.
        case deviceRemoved = "device.removed"
        /// An invalid-token removal was held back by the mass-deletion guard.
        case deviceRemovalWithheld = "device.removal_withheld"
        /// A run finished (every step terminal).
        case notificationCompleted = "notification.completed"
        /// A channel step could not send and was skipped (``DomainEvent/reason``: `no_active_integration`,
        /// `missing_push_token`, `missing_webhook_url`, `missing_email`, `missing_phone`, `preference_disabled`,
        /// `suppressed`).
        case stepSkipped = "step.skipped"
        /// An app reported that its user interacted with a raw push (Centrifugo `update_push_status`).
        case pushInteracted = "push.interacted"
        /// A subscriber turned a workflow's channel off through a one-click unsubscribe link.
        case subscriberUnsubscribed = "subscriber.unsubscribed"
    }

    public var kind: Kind
    public var notificationId: String?
    public var workflowId: String?
    public var messageId: String?
    public var deliveryId: String?
    public var stepId: String?
    public var channel: Channel?
    public var integrationId: String?
    public var providerId: String?
    /// The device removed (``Kind/deviceRemoved``), when the delivery had one.
    public var deviceId: String?
    /// The provider's reason or the error code, never a secret.
    public var reason: String?
    /// The subscriber, when the event concerns one without a notification (``Kind/subscriberUnsubscribed``).
    public var subscriberId: String?
    /// Kind-specific fields of the webhook payload (`analyticsUid`, `status`, `source`), never secrets.
    public var attributes: [String: String]

    public init(
        _ kind: Kind, notificationId: String? = nil, workflowId: String? = nil, messageId: String? = nil, deliveryId: String? = nil,
        stepId: String? = nil,
        channel: Channel? = nil, integrationId: String? = nil, providerId: String? = nil, deviceId: String? = nil, reason: String? = nil,
        subscriberId: String? = nil, attributes: [String: String] = [:]
    ) {
        self.kind = kind
        self.notificationId = notificationId
        self.workflowId = workflowId
        self.messageId = messageId
        self.deliveryId = deliveryId
        self.stepId = stepId
        self.channel = channel
        self.integrationId = integrationId
        self.providerId = providerId
        self.deviceId = deviceId
        self.reason = reason
        self.subscriberId = subscriberId
        self.attributes = attributes
    }
}
