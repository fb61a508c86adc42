import Foundation
import HeraldCore

/// The providers Herald ships, behind the ``ProviderFactory`` interface the engine uses. Provider issues add their
/// clients here; the engine does not change.
public struct StandardProviderFactory: ProviderFactory {
    let transport: HTTPTransport
    let clock: any WallClock
    /// Herald's public base URL (`--public-url`): providers that report delivery to a callback (Twilio) are given
    /// Herald's receipt route under it.
    let publicURL: String?

    public init(transport: HTTPTransport, clock: any WallClock = SystemWallClock(), publicURL: String? = nil) {
        self.transport = transport
        self.clock = clock
        self.publicURL = publicURL
    }

    /// Provider ids with a client in this build (a test holds it equal to ``ProviderCatalog``).
    public static let providerIds: Set<String> = WebhookProvider.providerIds.union(ChatWebhookProvider.providerIds).union(
        EmailAPIProvider.providerIds
    ).union([
        "fcm", "apns", "web-push", "expo", "hms", "one-signal", "pusher-beams", "pushpad", "telegram", "twilio", "nexmo", "nodemailer",
    ])

    public var webhookPoster: (any WebhookPoster)? { transport }

    public func makeProvider(for integration: Integration) throws -> any DeliveryProvider {
        switch integration.providerId {
        case let id where WebhookProvider.providerIds.contains(id):
            return try WebhookProvider(integration: integration, transport: transport, clock: clock)
        case let id where ChatWebhookProvider.providerIds.contains(id):
            return ChatWebhookProvider(integration: integration, transport: transport, clock: clock)
        case "twilio": return try TwilioProvider(integration: integration, transport: transport, clock: clock, publicURL: publicURL)
        case "nexmo": return try NexmoProvider(integration: integration, transport: transport, clock: clock)
        case let id where EmailAPIProvider.providerIds.contains(id):
            return try EmailAPIProvider(integration: integration, transport: transport, clock: clock)
        case "nodemailer": return try SMTPProvider(integration: integration, transport: transport, clock: clock)
        case "telegram": return try TelegramProvider(integration: integration, transport: transport, clock: clock)
        case "fcm": return try FCMProvider(integration: integration, transport: transport, clock: clock)
        case "apns": return try APNsProvider(integration: integration, transport: transport, clock: clock)
        case "web-push": return try WebPushProvider(integration: integration, transport: transport, clock: clock)
        case "expo": return try ExpoProvider(integration: integration, transport: transport, clock: clock)
        case "hms": return try HMSProvider(integration: integration, transport: transport, clock: clock)
        case "one-signal": return try OneSignalProvider(integration: integration, transport: transport, clock: clock)
        case "pusher-beams": return try PusherBeamsProvider(integration: integration, transport: transport, clock: clock)
        case "pushpad": return try PushpadProvider(integration: integration, transport: transport, clock: clock)
        default:
            throw HeraldError(.configuration, "provider \(integration.providerId) is not available in this build")
        }
    }
}
