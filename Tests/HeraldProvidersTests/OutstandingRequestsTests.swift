import Synchronization
import Testing

@testable import HeraldProviders

/// The per-origin bound on outstanding single requests (docs/reliability.md §Crashes): what a crash can repeat.
@Suite("Outstanding requests")
struct OutstandingRequestsTests {
    /// Counts bodies running at once, per origin.
    final class Gauge: Sendable {
        private let state = Mutex<(now: [String: Int], peak: [String: Int])>(([:], [:]))
        func enter(_ origin: String) {
            state.withLock {
                $0.now[origin, default: 0] += 1
                $0.peak[origin] = max($0.peak[origin] ?? 0, $0.now[origin]!)
            }
        }
        func leave(_ origin: String) { state.withLock { $0.now[origin, default: 0] -= 1 } }
        func peak(_ origin: String) -> Int { state.withLock { $0.peak[origin] ?? 0 } }
    }

    @Test("at most the limit per origin is outstanding; origins do not wait for each other; every request runs")
    func boundPerOrigin() async throws {
        let outstanding = OutstandingRequests(limit: 3)
        let gauge = Gauge()
        let finished = try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<40 {
                let origin = index % 4 == 0 ? "https://b:443" : "https://a:443"
                group.addTask {
                    try await outstanding.withPermit(origin) {
                        gauge.enter(origin)
                        try await Task.sleep(for: .milliseconds(2))
                        gauge.leave(origin)
                        return 1
                    }
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(finished == 40)
        #expect(gauge.peak("https://a:443") == 3)
        #expect(gauge.peak("https://b:443") == 3)
        #expect(outstanding.active("https://a:443") == 0)
        #expect(outstanding.active("https://b:443") == 0)
    }

    @Test("a request waiting for a permit can be cancelled; the permits stay counted right")
    func cancelledWaiter() async throws {
        let outstanding = OutstandingRequests(limit: 1)
        let release = AsyncStream<Void>.makeStream()
        let holder = Task {
            try await outstanding.withPermit("o") {
                for await _ in release.stream { break }
            }
        }
        while outstanding.active("o") == 0 { await Task.yield() }
        let waiter = Task { try await outstanding.withPermit("o") { true } }
        try await Task.sleep(for: .milliseconds(20))
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        #expect(outstanding.active("o") == 1)
        release.continuation.yield()
        try await holder.value
        #expect(outstanding.active("o") == 0)
        #expect(try await outstanding.withPermit("o") { true })
    }

    @Test("a thrown error returns the permit")
    func errorReleases() async throws {
        struct Failure: Error {}
        let outstanding = OutstandingRequests(limit: 1)
        await #expect(throws: Failure.self) { try await outstanding.withPermit("o") { throw Failure() } }
        #expect(outstanding.active("o") == 0)
    }
}
