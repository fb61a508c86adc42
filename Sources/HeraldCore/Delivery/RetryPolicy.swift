/// When to try a failed delivery again: exponential backoff with full jitter (a uniformly random delay between zero
/// and `base · 2^(attempt-1)`, capped), never sooner than the provider's `Retry-After`, and no more than
/// `maximumAttempts` attempts or `maximumAge` after the first — then the delivery is dead.
public struct RetryPolicy: Sendable, Equatable {
    /// Delay scale of the first retry (default 1 s).
    public var base: Duration
    /// Longest backoff before jitter (default 5 min).
    public var cap: Duration
    /// Attempts in all, the first included (default 12).
    public var maximumAttempts: Int
    /// Time after the first attempt beyond which no retry is scheduled (default 24 h).
    public var maximumAge: Duration

    public init(
        base: Duration = .seconds(1), cap: Duration = .seconds(300), maximumAttempts: Int = 12, maximumAge: Duration = .seconds(86_400)
    ) {
        self.base = base
        self.cap = cap
        self.maximumAttempts = maximumAttempts
        self.maximumAge = maximumAge
    }

    /// The delay before the next attempt after `attempt` attempts have failed, or nil when the delivery is
    /// exhausted. `elapsed` is the time since the first attempt; `retryAfter` the provider's minimum.
    public func delay(
        afterAttempt attempt: Int, elapsed: Duration, retryAfter: Duration?, using generator: inout some RandomNumberGenerator
    ) -> Duration? {
        guard attempt < maximumAttempts else { return nil }
        let exponent = min(max(attempt - 1, 0), 40)
        let ceiling = min(Self.seconds(base) * Double(sign: .plus, exponent: exponent, significand: 1), Self.seconds(cap))
        // One draw, no rejection sampling: a uniform fraction in [0, 1) from the top 53 bits.
        let fraction = Double(generator.next() >> 11) / Double(UInt64(1) << 53)
        var delay = fraction * ceiling
        if let retryAfter { delay = max(delay, Self.seconds(retryAfter)) }
        guard Self.seconds(elapsed) + delay <= Self.seconds(maximumAge) else { return nil }
        return .milliseconds(Int64((delay * 1000).rounded(.up)))
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
