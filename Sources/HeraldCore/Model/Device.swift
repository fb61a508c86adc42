import Foundation

/// One push token in the device registry. Novu subscriber credentials (`deviceTokens`) and Centrifugo devices are
/// two views of these records. A token is unique per (environment, provider, token): registering it again for
/// another subscriber moves it, so a shared phone never receives the previous user's notifications.
public struct Device: Sendable, Hashable {
    public var id: String
    public var environmentId: String
    /// Provider id (`fcm`, `apns`, `web-push`, …).
    public var provider: String
    /// The push token; for `web-push` the browser's PushSubscription JSON. Redacted in ``description``.
    public var token: Secret
    /// The integration the token was registered for; nil means any active integration of ``provider``.
    public var integrationId: String?
    /// `ios`, `android` or `web`.
    public var platform: String?
    /// The app's user id (Novu `subscriberId`, Centrifugo `user`).
    public var subscriberId: String?
    public var topics: [String]
    /// The topics of the device's user (Centrifugo `UserTopic`, Novu topic subscriptions), attached to the device
    /// while the user is: read with the device, never stored on it, so a user switch or detach moves them at once.
    public var userTopics: [String] = []
    public var tags: [String: String]
    public var meta: [String: String]
    public var timezone: String?
    public var locale: String?
    public var createdAt: Date
    public var updatedAt: Date
    public var lastSuccessAt: Date?

    public init(
        id: String, environmentId: String, provider: String, token: Secret, integrationId: String? = nil, platform: String? = nil,
        subscriberId: String? = nil, topics: [String] = [], tags: [String: String] = [:], meta: [String: String] = [:],
        timezone: String? = nil, locale: String? = nil, createdAt: Date, updatedAt: Date, lastSuccessAt: Date? = nil
    ) {
        self.id = id
        self.environmentId = environmentId
        self.provider = provider
        self.token = token
        self.integrationId = integrationId
        self.platform = platform
        self.subscriberId = subscriberId
        self.topics = topics
        self.tags = tags
        self.meta = meta
        self.timezone = timezone
        self.locale = locale
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.lastSuccessAt = lastSuccessAt
    }
}

/// What a caller registers; the store fills in ids and timestamps. Optional fields left nil keep what is stored
/// when the token is already registered to the same subscriber; when the token moves to another subscriber, nil
/// topics, tags and meta are cleared so that nothing of the previous owner stays attached.
public struct DeviceRegistration: Sendable, Hashable {
    public var provider: String
    public var token: Secret
    public var integrationId: String?
    public var platform: String?
    public var subscriberId: String?
    public var topics: [String]?
    public var tags: [String: String]?
    public var meta: [String: String]?
    public var timezone: String?
    public var locale: String?
    /// Full-state registration (Centrifugo `device_register`): nil fields clear what is stored instead of keeping it.
    public var replacesAll: Bool

    public init(
        provider: String, token: Secret, integrationId: String? = nil, platform: String? = nil, subscriberId: String? = nil,
        topics: [String]? = nil, tags: [String: String]? = nil, meta: [String: String]? = nil, timezone: String? = nil,
        locale: String? = nil, replacesAll: Bool = false
    ) {
        self.replacesAll = replacesAll
        self.provider = provider
        self.token = token
        self.integrationId = integrationId
        self.platform = platform
        self.subscriberId = subscriberId
        self.topics = topics
        self.tags = tags
        self.meta = meta
        self.timezone = timezone
        self.locale = locale
    }

    /// Longest token accepted, in bytes (a Web Push subscription JSON is well under 1 KiB).
    public static let maxTokenLength = 4096
}
