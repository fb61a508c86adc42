import Foundation
import HeraldCore
import HeraldStore
import HeraldTestSupport
import Testing

/// Worker liveness: a dead worker's claims are taken over in one statement as soon as its heartbeat is stale.
@Suite("Worker liveness")
struct WorkerLivenessTests {
    @Test("a worker whose heartbeat is stale is declared dead and its jobs are due again at once", arguments: Backend.available)
    func deadWorkerReleased(_ backend: Backend) async throws {
        let clock = ManualWallClock()
        try await withStore(backend, clock: clock) { store, _ in
            try await store.transaction { session in
                try await session.registerWorker(id: "worker-a", host: "a", pid: 1)
                try await session.registerWorker(id: "worker-b", host: "b", pid: 2)
                try await session.enqueue((0..<4).map { NewJob(kind: "deliver", payload: "{\"n\":\($0)}") })
            }
            let claimed = try await store.transaction { try await $0.claimJobs(limit: 3, lease: .seconds(60), worker: "worker-a") }
            #expect(claimed.count == 3)
            // Within the timeout nothing happens; B keeps beating, A stops.
            clock.advance(by: .seconds(3))
            #expect(try await store.transaction { try await $0.heartbeat(workerId: "worker-b") })
            let early = try await store.transaction {
                try await $0.releaseDeadWorkers(heartbeatBefore: clock.now().addingTimeInterval(-5), except: "worker-b")
            }
            #expect(early.workers.isEmpty && early.jobs == 0)
            clock.advance(by: .seconds(3))
            #expect(try await store.transaction { try await $0.heartbeat(workerId: "worker-b") })
            let released = try await store.transaction {
                try await $0.releaseDeadWorkers(heartbeatBefore: clock.now().addingTimeInterval(-5), except: "worker-b")
            }
            #expect(released.workers == ["worker-a"])
            #expect(released.jobs == 3)
            // Long before A's 60 s leases run out, B claims all four (A's three again: a second attempt each).
            let taken = try await store.transaction { try await $0.claimJobs(limit: 10, lease: .seconds(60), worker: "worker-b") }
            #expect(taken.count == 4)
            #expect(Set(taken.filter { $0.attempts == 2 }.map(\.id)) == Set(claimed.map(\.id)))
            #expect(try await store.read { try await $0.workers() }.map(\.id) == ["worker-b"])
            // A comes back after a stall: it finds itself deregistered. Its stale claims cannot complete B's jobs.
            #expect(try await store.transaction { try await $0.heartbeat(workerId: "worker-a") } == false)
            #expect(try await store.transaction { try await $0.completeJobs(claimed) } == 0)
            #expect(try await store.transaction { try await $0.completeJobs(taken) } == 4)
        }
    }

    @Test("a graceful stop releases the worker's claims and removes it; orphaned claims are released", arguments: Backend.available)
    func deregisterAndOrphans(_ backend: Backend) async throws {
        let clock = ManualWallClock()
        try await withStore(backend, clock: clock) { store, _ in
            try await store.transaction { session in
                try await session.registerWorker(id: "worker-a", host: "a", pid: 1)
                try await session.enqueue((0..<2).map { NewJob(kind: "deliver", payload: "{\"n\":\($0)}") })
            }
            _ = try await store.transaction { try await $0.claimJobs(limit: 1, lease: .seconds(60), worker: "worker-a") }
            _ = try await store.transaction { try await $0.claimJobs(limit: 1, lease: .seconds(60), worker: "gone") }
            #expect(try await store.read { try await $0.jobCounts() }.running == 2)
            #expect(try await store.transaction { try await $0.releaseOrphanedClaims() } == 1)
            try await store.transaction { try await $0.deregisterWorker(id: "worker-a") }
            #expect(try await store.read { try await $0.workers() }.isEmpty)
            #expect(try await store.read { try await $0.jobCounts() }.ready == 2)
        }
    }
}
