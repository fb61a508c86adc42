import Foundation
import HeraldCore

/// Which HTTP statuses of a provider's API mean which outcome class (docs/providers.md §Outcome classes): the one
/// classifier every provider uses for answers it has no finer reading of. Most APIs agree — 401/403 credentials,
/// 429 and every 5xx retry honouring `Retry-After`, any other 4xx a bad request — and differ only in which statuses
/// mean a dead target and which more mean credentials; those are the fields.
public struct HTTPStatusClasses: Sendable {
    /// Statuses that mean the target is permanently gone (`invalidToken`).
    public var invalid: Set<Int>
    /// Statuses that mean Herald's credentials or configuration are wrong (`authConfig`).
    public var auth: Set<Int>
    /// Statuses besides 5xx worth another attempt (`retryLater`).
    public var retry: Set<Int>

    public init(invalid: Set<Int> = [], auth: Set<Int> = [401, 403], retry: Set<Int> = [429]) {
        self.invalid = invalid
        self.auth = auth
        self.retry = retry
    }

    /// Plain webhooks: 404/410 gone, 401/403 credentials, 408/425/429/5xx retry.
    public static let webhook = HTTPStatusClasses(invalid: [404, 410], retry: [408, 425, 429])

    /// The class of a non-2xx `status`: `reason` names it; a bad request carries `detail` (the answer's text) too.
    public func outcome(status: Int, reason: String, detail: String? = nil, retryAfter: Duration?) -> DeliveryOutcome {
        if invalid.contains(status) { return .invalidToken(reason: reason) }
        if auth.contains(status) { return .authConfig(reason: reason) }
        if retry.contains(status) || (500..<600).contains(status) { return .retryLater(reason: reason, after: retryAfter) }
        return .badRequest(reason: detail.map { "\(reason): \($0)" } ?? reason)
    }
}
