/// A delivery channel, with Novu's spelling on the wire.
public enum Channel: String, Sendable, Hashable, Codable, CaseIterable {
    case push
    case chat
    case email
    case sms
    case inApp = "in_app"

    /// Whether an environment marks one integration of this channel as primary (Novu: email and SMS only).
    public var hasPrimary: Bool { self == .email || self == .sms }
}

/// What a provider's delivery goes to.
public enum ProviderTarget: String, Sendable {
    /// A device token (or Web Push subscription) from the device registry or the trigger's overrides.
    case deviceToken
    /// The subscriber's own webhook URL (`subscriber_channels.webhookUrl`).
    case webhookURL
    /// The subscriber's chat id (`subscriber_channels.chatId`, else `channel`).
    case chatId
    /// The subscriber's email address.
    case emailAddress
    /// The subscriber's phone number.
    case phoneNumber
}

/// One provider Herald ships: the single table that integration validation, the Novu subscriber rules, the provider
/// factory, the workflow linter and the engine read (docs/providers.md has each provider's protocol).
public struct ProviderSpec: Sendable {
    public let id: String
    public let channel: Channel
    /// Credential fields an active integration must have.
    public let requiredCredentials: [String]
    public let target: ProviderTarget
    /// Most messages the engine hands the provider in one call (its API's batch limit, or the per-call fan-out bound).
    public let batchLimit: Int
    /// Whether a trigger's overrides may name a provider-side topic or condition (one send for many devices) and a
    /// token list under the provider's own key (`tokens`).
    public let supportsTopics: Bool
    /// Whether Novu's SDK knows the id (`channels[].providerId` in subscriber responses, activity provider ids).
    public let novuKnown: Bool
    /// The device platform every token of the provider belongs to (`ios` for APNs, `android` for HMS, `web` for Web
    /// Push); nil where tokens may be of any platform (FCM, Expo…).
    public let platform: String?

    init(
        _ id: String, _ channel: Channel, requires: [String], target: ProviderTarget, batch: Int, topics: Bool = false, novu: Bool = true,
        platform: String? = nil
    ) {
        self.platform = platform
        self.id = id
        self.channel = channel
        self.requiredCredentials = requires
        self.target = target
        self.batchLimit = batch
        self.supportsTopics = topics
        self.novuKnown = novu
    }
}

/// The providers Herald knows (Novu's ids where Novu has the provider), one row each.
public enum ProviderCatalog {
    public static let specs: [ProviderSpec] = [
        ProviderSpec("fcm", .push, requires: ["serviceAccount"], target: .deviceToken, batch: 100, topics: true),
        ProviderSpec(
            "apns", .push, requires: ["secretKey", "apiKey", "projectName", "applicationId"], target: .deviceToken, batch: 100,
            platform: "ios"),
        ProviderSpec("expo", .push, requires: [], target: .deviceToken, batch: 100),
        ProviderSpec("one-signal", .push, requires: ["applicationId", "apiKey"], target: .deviceToken, batch: 2000),
        ProviderSpec("pusher-beams", .push, requires: ["instanceId", "secretKey"], target: .deviceToken, batch: 1000),
        ProviderSpec("pushpad", .push, requires: ["apiKey", "applicationId"], target: .deviceToken, batch: 1000, platform: "web"),
        ProviderSpec("push-webhook", .push, requires: ["webhookUrl"], target: .deviceToken, batch: 100),
        ProviderSpec(
            "web-push", .push, requires: ["vapidPublicKey", "vapidPrivateKey", "vapidSubject"], target: .deviceToken, batch: 100,
            novu: false, platform: "web"),
        ProviderSpec(
            "hms", .push, requires: ["clientId", "secretKey"], target: .deviceToken, batch: 1000, novu: false, platform: "android"),
        ProviderSpec("slack", .chat, requires: [], target: .webhookURL, batch: 50),
        ProviderSpec("discord", .chat, requires: [], target: .webhookURL, batch: 50),
        ProviderSpec("msteams", .chat, requires: [], target: .webhookURL, batch: 50),
        ProviderSpec("mattermost", .chat, requires: [], target: .webhookURL, batch: 50),
        ProviderSpec("telegram", .chat, requires: ["apiToken"], target: .chatId, batch: 50),
        ProviderSpec("chat-webhook", .chat, requires: [], target: .webhookURL, batch: 100),
        ProviderSpec("sendgrid", .email, requires: ["apiKey", "from"], target: .emailAddress, batch: 50),
        ProviderSpec("mailgun", .email, requires: ["apiKey", "domain", "from"], target: .emailAddress, batch: 50),
        ProviderSpec("postmark", .email, requires: ["apiKey", "from"], target: .emailAddress, batch: 50),
        ProviderSpec("resend", .email, requires: ["apiKey", "from"], target: .emailAddress, batch: 50),
        ProviderSpec("nodemailer", .email, requires: ["host", "port", "from"], target: .emailAddress, batch: 20),
        ProviderSpec("email-webhook", .email, requires: ["webhookUrl"], target: .emailAddress, batch: 100),
        ProviderSpec("twilio", .sms, requires: ["accountSid", "token", "from"], target: .phoneNumber, batch: 50),
        ProviderSpec("nexmo", .sms, requires: ["apiKey", "secretKey", "from"], target: .phoneNumber, batch: 50),
        ProviderSpec("generic-sms", .sms, requires: ["baseUrl"], target: .phoneNumber, batch: 100),
    ]

    private static let byId: [String: ProviderSpec] = Dictionary(uniqueKeysWithValues: specs.map { ($0.id, $0) })

    /// The spec of a provider id, or nil for an unknown id.
    public static func spec(_ providerId: String) -> ProviderSpec? { byId[providerId] }

    /// The batch limit of a provider id (1 for an unknown id).
    public static func batchLimit(_ providerId: String) -> Int { byId[providerId]?.batchLimit ?? 1 }

    /// The ids of one channel, in table order.
    public static func ids(_ channel: Channel) -> [String] { specs.filter { $0.channel == channel }.map(\.id) }

    public static var push: [String] { ids(.push) }
    public static var chat: [String] { ids(.chat) }
    public static var email: [String] { ids(.email) }
    public static var sms: [String] { ids(.sms) }

    /// The channel a provider id belongs to, or nil for an unknown id.
    public static func channel(of providerId: String) -> Channel? { byId[providerId]?.channel }

    /// Every known provider id.
    public static var all: [String] { specs.map(\.id) }

    /// Credential fields whose values are secrets, for every provider: masked in every answer, sealed at rest.
    public static let secretCredentialFields: Set<String> = [
        "apiKey", "secretKey", "password", "token", "serviceAccount", "vapidPrivateKey", "apiToken", "authenticationTokenKey",
        "signingSecret", "certificate", "passphrase", "accessKey", "webhookUrl", "inboundWebhookSigningKey",
    ]
}
