import Foundation
import Synchronization

/// Limits failed console sign-ins per client address: at most `limit` failures in a sliding `window`, after which
/// every attempt from that address is refused (429) until the oldest failure ages out. Kept in memory per process
/// (docs/console.md §Sign-in): keys are 256-bit random, so the limit is against noise and log flooding more than
/// against guessing.
final class SignInLimiter: Sendable {
    let limit: Int
    let window: TimeInterval
    private let failures = Mutex<[String: [Date]]>([:])

    init(limit: Int = 5, window: TimeInterval = 60) {
        self.limit = limit
        self.window = window
    }

    /// Seconds until the address may try again, or nil when it may now.
    func retryAfter(_ address: String, now: Date) -> Int? {
        failures.withLock { table in
            let recent = (table[address] ?? []).filter { now.timeIntervalSince($0) < window }
            table[address] = recent.isEmpty ? nil : recent
            guard recent.count >= limit, let oldest = recent.first else { return nil }
            return max(1, Int((window - now.timeIntervalSince(oldest)).rounded(.up)))
        }
    }

    /// Records a failed attempt.
    func fail(_ address: String, now: Date) {
        failures.withLock { table in
            if table.count > 10_000 {  // bounded memory: forget addresses whose failures have all aged out
                table = table.filter { $0.value.contains { now.timeIntervalSince($0) < window } }
            }
            table[address, default: []].append(now)
        }
    }

    /// Forgets an address's failures after a successful sign-in.
    func succeed(_ address: String) {
        failures.withLock { _ = $0.removeValue(forKey: address) }
    }
}
