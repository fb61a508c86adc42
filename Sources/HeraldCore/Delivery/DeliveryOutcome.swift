import Foundation

/// What a provider call came to (`docs/providers.md` §Outcome classes). Every provider maps its responses onto these five
/// classes, and the engine acts on the class alone.
public enum DeliveryOutcome: Sendable, Hashable {
    /// The provider accepted the message; its id is kept when it gives one.
    case delivered(providerMessageId: String?)
    /// The address is permanently dead (uninstalled, unsubscribed, expired, wrong app): remove it, never retry.
    case invalidToken(reason: String)
    /// Throttling or a transient fault: retry with backoff, no sooner than `after` when the provider said so.
    case retryLater(reason: String, after: Duration?)
    /// The payload or headers are wrong: do not retry unchanged, do not touch the token.
    case badRequest(reason: String)
    /// Our credentials or configuration are wrong or expired: refresh once if they can expire, then fail the
    /// message. Never deletes tokens.
    case authConfig(reason: String)

    /// The class name used in records, API bodies and metric labels.
    public var label: String {
        switch self {
        case .delivered: "delivered"
        case .invalidToken: "invalidToken"
        case .retryLater: "retryLater"
        case .badRequest: "badRequest"
        case .authConfig: "authConfig"
        }
    }

    /// The provider's reason, if any.
    public var reason: String? {
        switch self {
        case .delivered: nil
        case .invalidToken(let reason), .retryLater(let reason, _), .badRequest(let reason), .authConfig(let reason): reason
        }
    }
}

/// Guards against mass token deletion caused by misconfiguration (`docs/providers.md` §Outcome classes, HMS and FCM notes):
/// when every token of a batch fails as invalid and the batch would remove more than `maximumShare` of the
/// integration's tokens, the removals are withheld and reported instead.
public struct InvalidTokenGuard: Sendable, Equatable {
    /// Largest share of an integration's tokens one batch may remove when all of the batch failed (default 0.5).
    public var maximumShare: Double
    /// Batches smaller than this are never held back (default 10): a few uninstalls are normal.
    public var minimumBatch: Int

    public init(maximumShare: Double = 0.5, minimumBatch: Int = 10) {
        self.maximumShare = maximumShare
        self.minimumBatch = minimumBatch
    }

    /// Whether the invalid-token removals of a batch may proceed.
    public func allowsRemoval(batch outcomes: [DeliveryOutcome], integrationTokenCount: Int) -> Bool {
        let invalid = outcomes.filter { if case .invalidToken = $0 { true } else { false } }.count
        guard invalid == outcomes.count, outcomes.count >= minimumBatch, integrationTokenCount > 0 else { return true }
        return Double(invalid) / Double(integrationTokenCount) <= maximumShare
    }
}

/// Parses `Retry-After` (RFC 9110 §10.2.3): delta-seconds or an HTTP-date. Negative or past values clamp to zero;
/// unparseable values are nil.
public enum RetryAfter {
    public static func parse(_ value: String, now: Date) -> Duration? {
        let text = value.trimmingCharacters(in: .whitespaces)
        if let seconds = Double(text), seconds.isFinite {
            return .milliseconds(Int64(max(0, seconds) * 1000))
        }
        for format in ["EEE, dd MMM yyyy HH:mm:ss zzz", "EEEE, dd-MMM-yy HH:mm:ss zzz", "EEE MMM d HH:mm:ss yyyy"] {
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "GMT")
            formatter.dateFormat = format
            if let date = formatter.date(from: text) {
                return .milliseconds(Int64(max(0, date.timeIntervalSince(now)) * 1000))
            }
        }
        return nil
    }
}
