import HeraldCore
import Synchronization

/// Environments of recently accepted API keys, so that a busy client is not authenticated by a database round trip
/// per request (on PostgreSQL that was one statement per trigger beside the group-committed writes).
///
/// Only accepted keys are remembered, each for ``lifetime``: a key revoked by any process (`herald keys revoke`)
/// stops working everywhere within that time; an unknown or revoked key is looked up every time, so a key created a
/// moment ago works at once. Keyed by the key's SHA-256 (the secret itself is not kept), and bounded: when
/// ``capacity`` keys are remembered the cache starts over.
final class APIKeyCache: Sendable {
    static let lifetime: Duration = .seconds(1)
    static let capacity = 10_000

    private struct Entry {
        var environment: HeraldCore.Environment
        var expires: ContinuousClock.Instant
    }
    private let entries = Mutex<[String: Entry]>([:])

    /// The environment of `keyHash` if it was accepted less than ``lifetime`` ago.
    func environment(forKeyHash keyHash: String, now: ContinuousClock.Instant = .now) -> HeraldCore.Environment? {
        entries.withLock { entries in
            guard let entry = entries[keyHash] else { return nil }
            guard entry.expires > now else {
                entries[keyHash] = nil
                return nil
            }
            return entry.environment
        }
    }

    func remember(_ environment: HeraldCore.Environment, forKeyHash keyHash: String, now: ContinuousClock.Instant = .now) {
        entries.withLock { entries in
            if entries.count >= Self.capacity { entries.removeAll(keepingCapacity: true) }
            entries[keyHash] = Entry(environment: environment, expires: now + Self.lifetime)
        }
    }
}
