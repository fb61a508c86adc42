import Foundation
import HeraldCore
import Testing

@Suite("Delivery primitives")
struct DeliveryTests {
    struct FixedRandom: RandomNumberGenerator {
        var value: UInt64
        mutating func next() -> UInt64 { value }
    }

    @Test("backoff is full jitter under an exponential ceiling capped at 5 minutes")
    func backoffCeiling() {
        let policy = RetryPolicy()
        var highest = FixedRandom(value: .max)
        var lowest = FixedRandom(value: 0)
        let expected: [(Int, Double)] = [(1, 1), (2, 2), (3, 4), (4, 8), (9, 256), (10, 300), (11, 300)]
        for (attempt, ceiling) in expected {
            let top = policy.delay(afterAttempt: attempt, elapsed: .zero, retryAfter: nil, using: &highest)
            #expect(
                top.map { abs(Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 - ceiling) < 0.01 } == true,
                "attempt \(attempt)")
            #expect(policy.delay(afterAttempt: attempt, elapsed: .zero, retryAfter: nil, using: &lowest) == .zero)
        }
    }

    @Test("Retry-After is a floor, attempts and age are limits")
    func limits() {
        let policy = RetryPolicy()
        var random = FixedRandom(value: 0)
        #expect(policy.delay(afterAttempt: 1, elapsed: .zero, retryAfter: .seconds(2), using: &random) == .seconds(2))
        #expect(policy.delay(afterAttempt: 1, elapsed: .zero, retryAfter: .seconds(60), using: &random) == .seconds(60))
        #expect(policy.delay(afterAttempt: 12, elapsed: .zero, retryAfter: nil, using: &random) == nil, "12 attempts made")
        #expect(policy.delay(afterAttempt: 11, elapsed: .zero, retryAfter: nil, using: &random) != nil)
        #expect(policy.delay(afterAttempt: 3, elapsed: .seconds(86_399), retryAfter: .seconds(2), using: &random) == nil, "past 24 h")
        var generator = SystemRandomNumberGenerator()
        for attempt in 1..<12 {
            let delay = policy.delay(afterAttempt: attempt, elapsed: .zero, retryAfter: nil, using: &generator)!
            #expect(delay >= .zero && delay <= .seconds(300))
        }
    }

    @Test(
        "Retry-After: delta-seconds and HTTP-dates, clamped at zero",
        arguments: [
            ("2", 2000), ("0", 0), ("-5", 0), ("1.5", 1500), ("Wed, 21 Oct 2015 07:28:10 GMT", 10_000),
            ("Wed, 21 Oct 2015 07:27:00 GMT", 0),
        ]
    )
    func retryAfter(value: String, milliseconds: Int64) {
        let now = Date(timeIntervalSince1970: 1_445_412_480)  // Wed, 21 Oct 2015 07:28:00 GMT
        #expect(RetryAfter.parse(value, now: now) == .milliseconds(milliseconds))
    }

    @Test("an unparseable Retry-After is ignored")
    func retryAfterGarbage() {
        #expect(RetryAfter.parse("soon", now: Date()) == nil)
    }

    @Test("the mass-deletion guard holds back a batch that is entirely invalid and large for the integration")
    func invalidTokenGuard() {
        let guardRail = InvalidTokenGuard()
        let allInvalid = Array(repeating: DeliveryOutcome.invalidToken(reason: "UNREGISTERED"), count: 20)
        #expect(guardRail.allowsRemoval(batch: allInvalid, integrationTokenCount: 30) == false)
        #expect(guardRail.allowsRemoval(batch: allInvalid, integrationTokenCount: 1000) == true)
        #expect(guardRail.allowsRemoval(batch: Array(allInvalid.prefix(5)), integrationTokenCount: 5) == true, "small batches pass")
        #expect(guardRail.allowsRemoval(batch: allInvalid + [.delivered(providerMessageId: "m")], integrationTokenCount: 21) == true)
        #expect(DeliveryOutcome.retryLater(reason: "429", after: .seconds(60)).label == "retryLater")
    }
}
