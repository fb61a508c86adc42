import Foundation

/// An email address or phone number Herald no longer sends to (README §Status webhooks, docs/webhooks.md
/// §Suppression list): a provider refused it for good. Sends to it are skipped (`suppressed`) before they reach a
/// provider, until an operator lifts it.
public struct Suppression: Sendable, Equatable {
    public var environmentId: String
    /// `email` or `sms`.
    public var channel: Channel
    /// The address as stored: emails lowercased, phone numbers as sent (E.164).
    public var address: String
    /// Why: the provider's answer (never a secret).
    public var reason: String
    public var providerId: String?
    public var createdAt: Date

    public init(environmentId: String, channel: Channel, address: String, reason: String, providerId: String?, createdAt: Date) {
        self.environmentId = environmentId
        self.channel = channel
        self.address = Self.normalised(address, channel: channel)
        self.reason = String(reason.prefix(500))
        self.providerId = providerId
        self.createdAt = createdAt
    }

    /// The stored form of an address: email addresses compare case-insensitively, phone numbers exactly.
    public static func normalised(_ address: String, channel: Channel) -> String {
        channel == .email ? address.lowercased() : address
    }
}
