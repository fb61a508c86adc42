import Foundation
import HeraldCore
import HeraldStore
import HeraldTestSupport
import SQLKit
import Synchronization
import Testing

@Suite("Durable job queue")
struct QueueTests {
    @Test("jobs enqueued in a rolled-back transaction vanish with it", arguments: Backend.available)
    func transactionalEnqueue(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            let env = try await makeEnvironment(store)
            struct Abort: Error {}
            await #expect(throws: Abort.self) {
                try await store.transaction { session async throws in
                    _ = try await session.upsertSubscriber(environmentId: env.id, subscriberId: "ghost", patch: .init())
                    try await session.enqueue([NewJob(environmentId: env.id, kind: "deliver", payload: "{}")])
                    throw Abort()
                }
            }
            try await store.read { session async throws in
                #expect(try await session.subscriber(environmentId: env.id, subscriberId: "ghost") == nil)
                #expect(try await session.jobCounts().ready == 0)
            }
            let ids = try await store.transaction {
                try await $0.enqueue([NewJob(kind: "deliver", payload: "{\"n\":1}"), NewJob(kind: "deliver", payload: "{\"n\":2}")])
            }
            #expect(ids.count == 2)
            #expect(try await store.read { try await $0.jobCounts().ready } == 2)
        }
    }

    @Test("concurrent claims from two connections never hand out the same job", arguments: Backend.available)
    func concurrentClaims(backend: Backend) async throws {
        try await withStore(backend) { store, url in
            let total = 600
            try await store.transaction { session async throws in
                try await session.enqueue((0..<total).map { NewJob(kind: "deliver", payload: "{\"n\":\($0)}") })
            }
            // A second store is a second connection (SQLite) or a second pool (PostgreSQL), like a second process.
            let other = try await SQLStore.open(url, cipher: store.cipher, logger: testLogger)
            try await other.withRunning { other in
                let claimed = try await withThrowingTaskGroup(of: [Int64].self) { group in
                    for worker in [store, other, store, other] {
                        group.addTask {
                            var mine: [Int64] = []
                            while true {
                                let jobs = try await worker.transaction { try await $0.claimJobs(limit: 7, lease: .seconds(60)) }
                                if jobs.isEmpty { break }
                                mine += jobs.map(\.id)
                            }
                            return mine
                        }
                    }
                    var all: [[Int64]] = []
                    for try await ids in group { all.append(ids) }
                    return all
                }
                let flat = claimed.flatMap { $0 }
                #expect(flat.count == total, "every job claimed exactly once")
                #expect(Set(flat).count == total, "no job handed out twice")
                #expect(claimed.filter { !$0.isEmpty }.count >= 2, "both connections got work")
            }
        }
    }

    @Test("a job whose lease expired is claimed again; the stale lease can no longer complete it", arguments: Backend.available)
    func leaseExpiry(backend: Backend) async throws {
        let clock = ManualWallClock()
        try await withStore(backend, clock: clock) { store, _ in
            try await store.transaction { try await $0.enqueue([NewJob(kind: "deliver", payload: "{}", transactionId: "tx-1")]) }
            let first = try await store.transaction { try await $0.claimJobs(limit: 10, lease: .seconds(30)) }
            #expect(first.count == 1)
            #expect(first.first?.attempts == 1)
            #expect(try await store.transaction { try await $0.claimJobs(limit: 10, lease: .seconds(30)) }.isEmpty)
            clock.advance(by: .seconds(29))
            #expect(try await store.transaction { try await $0.claimJobs(limit: 10, lease: .seconds(30)) }.isEmpty)
            clock.advance(by: .seconds(2))
            let second = try await store.transaction { try await $0.claimJobs(limit: 10, lease: .seconds(30)) }
            #expect(second.map(\.id) == first.map(\.id))
            #expect(second.first?.attempts == 2)
            #expect(try await store.transaction { try await $0.completeJobs(first) } == 0, "stale lease")
            let staleReschedule = try await store.transaction { try await $0.rescheduleJob(first[0], runAt: clock.now(), error: "x") }
            #expect(staleReschedule == false)
            #expect(try await store.transaction { try await $0.completeJobs(second) } == 1)
            #expect(try await store.read { try await $0.job(id: first[0].id) } == nil)
        }
    }

    @Test(
        "due jobs are claimed by priority, oldest first within one; leased and later jobs of a class do not hold others back",
        arguments: Backend.available)
    func priorities(backend: Backend) async throws {
        let clock = ManualWallClock()
        try await withStore(backend, clock: clock) { store, _ in
            let now = clock.now()
            @Sendable func job(_ name: String, _ priority: JobPriority, at seconds: Double? = nil) -> NewJob {
                NewJob(kind: name, payload: "{}", runAt: seconds.map { now.addingTimeInterval($0) }, priority: priority)
            }
            try await store.transaction {
                try await $0.enqueue([
                    job("expand-1", .backlog), job("run-1", .plan), job("deliver-later", .send, at: 60), job("deliver-1", .send),
                    job("run-2", .plan), job("deliver-2", .send), job("expand-2", .backlog),
                ])
            }
            func claim(_ limit: Int) async throws -> [String] {
                try await store.transaction { try await $0.claimJobs(limit: limit, lease: .seconds(3600)) }.map(\.kind)
            }
            #expect(try await claim(1) == ["deliver-1"])
            #expect(try await claim(3) == ["deliver-2", "run-1", "run-2"])
            #expect(try await claim(5) == ["expand-1", "expand-2"])
            #expect(try await claim(5).isEmpty)
            clock.advance(by: .seconds(60))
            #expect(try await claim(5) == ["deliver-later"])
            // Reports come last, as many as the caller's report slots allow; one due for longer than
            // JobPriority.reportAging goes first.
            try await store.transaction {
                try await $0.enqueue([job("report-1", .report), job("report-2", .report), job("run-3", .plan), job("expand-3", .backlog)])
            }
            let first = try await store.transaction { try await $0.claimJobs(limit: 2, lease: .seconds(3600), reportLimit: 1) }
            #expect(first.map(\.kind) == ["run-3", "expand-3"])
            clock.advance(by: .seconds(6))
            try await store.transaction { try await $0.enqueue([job("run-4", .plan)]) }
            let aged = try await store.transaction { try await $0.claimJobs(limit: 1, lease: .seconds(3600), reportLimit: 1) }
            #expect(aged.map(\.kind) == ["report-1"], "a report due for longer than the aging goes first")
            let none = try await store.transaction { try await $0.claimJobs(limit: 10, lease: .seconds(3600), reportLimit: 0) }
            #expect(none.map(\.kind) == ["run-4"])
            #expect(try await claim(5) == ["report-2"])
        }
    }

    @Test(
        "completing a batch deletes each job only under its own lease; stale entries in the batch are skipped",
        arguments: Backend.available)
    func batchCompletion(backend: Backend) async throws {
        let clock = ManualWallClock()
        try await withStore(backend, clock: clock) { store, _ in
            try await store.transaction { session in
                try await session.enqueue((0..<3).map { NewJob(kind: "deliver", payload: "{\"n\":\($0)}", transactionId: "tx-\($0)") })
            }
            let stale = try await store.transaction { try await $0.claimJobs(limit: 1, lease: .seconds(30)) }
            clock.advance(by: .seconds(31))
            // The first job's lease ran out: this claim takes it again (new token) with the two others.
            let fresh = try await store.transaction { try await $0.claimJobs(limit: 10, lease: .seconds(30)) }
            #expect(fresh.count == 3)
            let reclaimed = fresh.first { $0.id == stale[0].id }!
            let others = fresh.filter { $0.id != stale[0].id }
            // The stale claim of the first job and the two others, in one call: the first job survives.
            #expect(try await store.transaction { try await $0.completeJobs(stale + others) } == 2)
            #expect(try await store.read { try await $0.job(id: reclaimed.id) } != nil)
            #expect(try await store.transaction { try await $0.completeJobs([reclaimed]) } == 1)
            #expect(try await store.read { try await $0.jobCounts() }.ready == 0)
        }
    }

    @Test("a rescheduled job is due at its new time with the error recorded", arguments: Backend.available)
    func reschedule(backend: Backend) async throws {
        let clock = ManualWallClock()
        try await withStore(backend, clock: clock) { store, _ in
            try await store.transaction { try await $0.enqueue([NewJob(kind: "deliver", payload: "{}")]) }
            let job = try #require(try await store.transaction { try await $0.claimJobs(limit: 1, lease: .seconds(30)) }.first)
            let rescheduled = try await store.transaction {
                try await $0.rescheduleJob(job, runAt: clock.now().addingTimeInterval(120), error: "HTTP 503")
            }
            #expect(rescheduled)
            clock.advance(by: .seconds(119))
            #expect(try await store.transaction { try await $0.claimJobs(limit: 1, lease: .seconds(30)) }.isEmpty)
            clock.advance(by: .seconds(1))
            let again = try #require(try await store.transaction { try await $0.claimJobs(limit: 1, lease: .seconds(30)) }.first)
            #expect(again.id == job.id)
            #expect(again.attempts == 2)
            #expect(again.lastError == "HTTP 503")
            let counts = try await store.read { try await $0.jobCounts() }
            #expect(counts.running == 1)
        }
    }

    @Test("cancelling a transaction removes its pending jobs only", arguments: Backend.available)
    func cancelByTransaction(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            let env = try await makeEnvironment(store)
            try await store.transaction { session async throws in
                try await session.enqueue([
                    NewJob(
                        environmentId: env.id, kind: "resume", payload: "{}", transactionId: "tx-a", runAt: Date().addingTimeInterval(3600)),
                    NewJob(environmentId: env.id, kind: "resume", payload: "{}", transactionId: "tx-a"),
                    NewJob(environmentId: env.id, kind: "resume", payload: "{}", transactionId: "tx-b"),
                ])
            }
            #expect(try await store.transaction { try await $0.cancelJobs(environmentId: env.id, transactionId: "tx-a") } == 2)
            let left = try await store.transaction { try await $0.claimJobs(limit: 10, lease: .seconds(30)) }
            #expect(left.map(\.transactionId) == ["tx-b"])
        }
    }

    @Test("an enqueue wakes a waiting worker of another store at once", arguments: Backend.available)
    func wakeUp(backend: Backend) async throws {
        try await withStore(backend) { store, url in
            // On PostgreSQL the waiter is a second process-like store woken by NOTIFY; on SQLite the in-process signal.
            let waiter = backend == .postgres ? try await SQLStore.open(url, cipher: store.cipher, logger: testLogger) : store
            try await waiter.withRunning { waiter in
                // Let the LISTEN loop start: wait for its first (startup) signal.
                if backend == .postgres { await waiter.jobSignal.wait(after: 0, timeout: .seconds(5)) }
                let generation = waiter.jobSignal.generation
                let start = ContinuousClock.now
                async let woke: Void = waiter.jobSignal.wait(after: generation, timeout: .seconds(10))
                try await Task.sleep(for: .milliseconds(50))
                try await store.transaction { try await $0.enqueue([NewJob(kind: "deliver", payload: "{}")]) }
                await woke
                let elapsed = ContinuousClock.now - start
                #expect(elapsed < .seconds(5), "woken by the signal, not by the 10 s timeout (took \(elapsed))")
                #expect(waiter.jobSignal.generation != generation)
            }
        }
    }
}
