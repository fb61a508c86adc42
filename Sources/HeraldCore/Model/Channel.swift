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

/// The provider ids Herald knows, grouped by channel (DESIGN §5). Novu's ids where Novu has the provider.
public enum ProviderCatalog {
    public static let push: [String] = ["fcm", "apns", "expo", "one-signal", "pusher-beams", "pushpad", "push-webhook", "web-push", "hms"]
    public static let chat: [String] = ["slack", "discord", "msteams", "mattermost", "telegram", "chat-webhook"]
    public static let email: [String] = ["sendgrid", "mailgun", "postmark", "resend", "nodemailer", "email-webhook"]
    public static let sms: [String] = ["twilio", "nexmo", "generic-sms"]

    /// The channel a provider id belongs to, or nil for an unknown id.
    public static func channel(of providerId: String) -> Channel? {
        if push.contains(providerId) { return .push }
        if chat.contains(providerId) { return .chat }
        if email.contains(providerId) { return .email }
        if sms.contains(providerId) { return .sms }
        return nil
    }

    /// Every known provider id.
    public static var all: [String] { push + chat + email + sms }
}
