import Foundation
import HeraldCore

/// A bearer credential with its expiry.
public struct CachedCredential: Sendable {
    public var value: String
    public var expiresAt: Date

    public init(value: String, expiresAt: Date) {
        self.value = value
        self.expiresAt = expiresAt
    }
}

/// Why a credential could not be obtained: a fault of ours (bad key, rejected assertion → `authConfig`) or of the
/// token endpoint (5xx, network → `retryLater`).
public enum CredentialFailure: Error, Sendable {
    case rejected(String)
    case unavailable(String, retryAfter: Duration?)

    public var outcome: DeliveryOutcome {
        switch self {
        case .rejected(let reason): .authConfig(reason: reason)
        case .unavailable(let reason, let after): .retryLater(reason: reason, after: after)
        }
    }
}

/// One integration's access token (OAuth) or signed provider token (APNs JWT): fetched once and shared by every
/// concurrent send, renewed `refreshMargin` before it expires, and dropped on demand after the service rejects it.
/// Concurrent callers during a renewal wait for that one renewal — a refresh storm gets throttled by token endpoints.
public actor CredentialCache {
    private var current: CachedCredential?
    private var pending: Task<CachedCredential, any Error>?
    private let refreshMargin: TimeInterval
    private let clock: any WallClock
    private let fetch: @Sendable () async throws -> CachedCredential
    /// How many credentials were fetched or signed (tests check reuse).
    public private(set) var fetches = 0

    public init(refreshMargin: TimeInterval, clock: any WallClock, fetch: @escaping @Sendable () async throws -> CachedCredential) {
        self.refreshMargin = refreshMargin
        self.clock = clock
        self.fetch = fetch
    }

    /// The valid credential, fetching one when there is none or it is about to expire.
    public func value() async throws -> String {
        if let current, current.expiresAt.timeIntervalSince(clock.now()) > refreshMargin { return current.value }
        if let pending { return try await pending.value.value }
        let task = Task { try await fetch() }
        pending = task
        defer { pending = nil }
        do {
            let credential = try await task.value
            current = credential
            fetches += 1
            return credential.value
        } catch {
            throw error
        }
    }

    /// Forgets the credential only if it expires before `date` (APNs: a provider token younger than 20 minutes must
    /// not be replaced, or APNs answers `TooManyProviderTokenUpdates`).
    public func invalidate(expiringBefore date: Date) {
        if let current, current.expiresAt < date { self.current = nil }
    }

    /// Forgets the credential if it is still `value` (another caller may have renewed it already).
    public func invalidate(_ value: String? = nil) {
        if value == nil || current?.value == value { current = nil }
    }
}
