import Crypto
import Foundation
import HeraldCore
import HeraldStore
import Logging

/// How status webhooks are retried and given up (README §Status webhooks). Pure: the engine asks it what to do with
/// each answer.
public struct WebhookRetryPolicy: Sendable, Equatable {
    /// Delays after the 1st, 2nd, … failed attempt; the last repeats until ``maxAge``.
    public var delays: [TimeInterval] = [5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800]
    /// An event not delivered this long after it was produced is dead.
    public var maxAge: TimeInterval = 3 * 86400
    /// An endpoint failing every attempt for this long is disabled; its events wait for a replay.
    public var disableAfter: TimeInterval = 5 * 86400
    /// The longest `Retry-After` honoured.
    public var maxRetryAfter: TimeInterval = 3600

    public init() {}

    /// When to try again after failed attempt number `attempts` (1-based): the schedule's delay with ±20 % jitter, or
    /// the endpoint's `Retry-After` when that is later (capped at ``maxRetryAfter``).
    public func nextAttempt(after attempts: Int, retryAfter: Duration?, now: Date, random: inout RandomSource) -> Date {
        let base = delays.isEmpty ? 60 : delays[min(max(attempts, 1), delays.count) - 1]
        let jitter = 0.8 + 0.4 * Double(random.next() >> 11) / Double(1 << 53)
        var delay = base * jitter
        if let retryAfter {
            let seconds = Double(retryAfter.components.seconds) + Double(retryAfter.components.attoseconds) / 1e18
            delay = max(delay, min(seconds, maxRetryAfter))
        }
        return now.addingTimeInterval(delay)
    }
}

/// Standard Webhooks signing (`docs/webhooks.md` §Signature): `v1,` + base64 of HMAC-SHA256 over
/// `<webhook-id>.<webhook-timestamp>.<body>`, keyed with the base64-decoded part of the `whsec_` secret.
public enum WebhookSigner {
    /// A new secret: `whsec_` + base64 of 24 random bytes.
    public static func newSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        return "whsec_" + Data((0..<24).map { _ in UInt8.random(in: .min ... .max, using: &generator) }).base64EncodedString()
    }

    /// Whether a secret has the `whsec_<base64>` form (and a key of 24–64 bytes).
    public static func isValidSecret(_ secret: String) -> Bool {
        key(secret).map { (24...64).contains($0.count) } ?? false
    }

    static func key(_ secret: String) -> Data? {
        guard secret.hasPrefix("whsec_") else { return nil }
        return Data(base64Encoded: String(secret.dropFirst(6)))
    }

    /// The `webhook-signature` value for a message signed with each of `secrets` (space-separated, the first first).
    public static func signature(secrets: [String], id: String, timestamp: Int64, body: [UInt8]) -> String {
        secrets.map { signature(secret: $0, id: id, timestamp: timestamp, body: body) }.joined(separator: " ")
    }

    /// The `webhook-signature` entry for a message.
    public static func signature(secret: String, id: String, timestamp: Int64, body: [UInt8]) -> String {
        let key = SymmetricKey(data: key(secret) ?? Data(secret.utf8))
        var hmac = HMAC<SHA256>(key: key)
        hmac.update(data: Array("\(id).\(timestamp).".utf8))
        hmac.update(data: body)
        return "v1," + Data(hmac.finalize()).base64EncodedString()
    }
}

extension Engine {
    /// Events posted to one endpoint at once.
    static let webhookConcurrency = 16

    /// Longest a `webhook` job starts new posts for (well inside the job lease): what is left comes back at once.
    static let webhookJobBudget: Duration = .seconds(30)

    /// Posts a claim of events to their endpoint (`webhook` job): each pending one that is due, concurrently, signed at
    /// the moment it is sent; records every answer, each event's next attempt and the endpoint's health in one
    /// transaction, then comes back at the earliest next attempt of those still pending. A deleted or disabled
    /// endpoint ends the job (a disabled one's events stay pending for a replay).
    func postWebhooks(_ job: WebhookJob, environmentId: String) async throws -> JobResult {
        guard let poster = context.providers.factory.webhookPoster else {
            logger.error("no HTTP client for status webhooks; the events stay pending", metadata: ["endpoint": "\(job.endpoint)"])
            return .done
        }
        let (endpoint, loaded) = try await store.read { session in
            (
                try await session.webhookEndpoint(environmentId: environmentId, id: job.endpoint),
                try await session.webhookMessages(ids: job.messages)
            )
        }
        guard let endpoint, !endpoint.disabled else { return .done }
        let policy = configuration.webhookRetry
        let clock = store.clock
        let started = clock.now()
        let pending = loaded.filter { $0.status == .pending && $0.endpointId == endpoint.id }
        var messages = pending.filter { ($0.nextAttemptAt ?? started) <= started }
        let waiting = pending.compactMap { $0.nextAttemptAt.flatMap { $0 > started ? $0 : nil } }
        guard !messages.isEmpty else { return waiting.min().map { .again(at: $0) } ?? .done }
        let secrets = endpoint.signingSecrets(at: started).map(\.revealed)
        let deadline = ContinuousClock.now + Self.webhookJobBudget
        let answers = await Self.limited(messages.count, concurrency: Self.webhookConcurrency) { [messages] index in
            // Past the budget nothing new starts (a slow endpoint would otherwise hold the job past its lease).
            guard ContinuousClock.now < deadline else { return Result<WebhookAnswer, any Error>?.none }
            let message = messages[index]
            let body = Array(message.payload.utf8)
            // Each request is signed when it leaves: receivers refuse timestamps more than 5 minutes off.
            let timestamp = Int64(clock.now().timeIntervalSince1970)
            let headers = [
                ("content-type", "application/json"), ("user-agent", "Herald"), ("webhook-id", message.id),
                ("webhook-timestamp", String(timestamp)),
                ("webhook-signature", WebhookSigner.signature(secrets: secrets, id: message.id, timestamp: timestamp, body: body)),
            ]
            do {
                return .success(try await poster.postWebhook(endpoint.url, headers: headers, body: body))
            } catch {
                return .failure(error)
            }
        }
        let now = clock.now()
        var random = context.random
        var next: Date? = waiting.min()
        var attempted: [WebhookMessage] = []
        var delivered = 0
        var failed = 0
        var dead = 0
        var errors: [String: Int] = [:]
        for (index, answer) in answers.enumerated() {
            guard let answer else {
                next = now
                continue
            }
            messages[index].attempts += 1
            messages[index].nextAttemptAt = nil
            defer { attempted.append(messages[index]) }
            var retryAfter: Duration?
            switch answer {
            case .success(let answer) where (200..<300).contains(answer.status):
                messages[index].status = .delivered
                messages[index].lastStatus = answer.status
                messages[index].lastError = nil
                delivered += 1
                continue
            case .success(let answer):
                messages[index].lastStatus = answer.status
                messages[index].lastError = "http \(answer.status)"
                retryAfter = answer.retryAfter.flatMap { RetryAfter.parse($0, now: now) }
            case .failure(let error):
                messages[index].lastStatus = nil
                messages[index].lastError = "transport: " + String(String(describing: error).prefix(200))
            }
            failed += 1
            errors[messages[index].lastError ?? "", default: 0] += 1
            // The window starts at the event's creation, or at its last replay.
            if now.timeIntervalSince(messages[index].windowStartedAt ?? messages[index].createdAt) >= policy.maxAge {
                messages[index].status = .dead
                dead += 1
            } else {
                let at = policy.nextAttempt(after: messages[index].attempts, retryAfter: retryAfter, now: now, random: &random)
                messages[index].nextAttemptAt = at
                next = min(next ?? at, at)
            }
        }
        let recorded = attempted
        let succeeded = delivered > 0
        let anyFailed = failed > 0
        let disabled = try await store.transaction { session -> Bool in
            try await session.updateWebhookMessages(recorded)
            guard succeeded || anyFailed else { return false }
            return try await session.recordWebhookEndpointHealth(id: endpoint.id, succeeded: succeeded, disableAfter: policy.disableAfter)
        }
        if failed > 0 {
            let metadata: Logger.Metadata = [
                "endpoint": "\(endpoint.id)", "delivered": "\(delivered)", "failed": "\(failed)", "dead": "\(dead)",
                "errors": "\(errors.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", "))",
            ]
            if disabled {
                logger.warning("status webhook endpoint disabled: it has failed for longer than the limit", metadata: metadata)
            } else if dead > 0 {
                logger.warning("status webhook events dead: not delivered within the maximum age", metadata: metadata)
            } else {
                logger.info("status webhook attempts failed; retrying", metadata: metadata)
            }
        }
        if disabled { return .done }
        return next.map { .again(at: $0) } ?? .done
    }

    /// Runs `body` for indices `0..<count` with at most `concurrency` at once; results in index order.
    static func limited<T: Sendable>(_ count: Int, concurrency: Int, _ body: @escaping @Sendable (Int) async -> T) async -> [T] {
        await withTaskGroup(of: (Int, T).self) { group in
            var results = [T?](repeating: nil, count: count)
            var started = 0
            while started < min(concurrency, count) {
                let index = started
                group.addTask { (index, await body(index)) }
                started += 1
            }
            while let (index, result) = await group.next() {
                results[index] = result
                if started < count {
                    let index = started
                    group.addTask { (index, await body(index)) }
                    started += 1
                }
            }
            return results.map { $0! }
        }
    }
}
