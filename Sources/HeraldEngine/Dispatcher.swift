import Foundation
import HeraldCore
import HeraldStore
import Logging
import ServiceLifecycle
import Synchronization

/// The queue workers (docs/architecture.md §Engine): claims due jobs in batches with a lease, runs them with at most `workers` in
/// flight, completes or reschedules them, and sleeps until the store signals new work (in-process signal on SQLite,
/// `LISTEN/NOTIFY` on PostgreSQL) or the poll interval passes. On graceful shutdown it stops claiming and lets the
/// jobs in flight finish; a job whose worker died is claimed again when its lease expires.
///
/// Finished jobs are deleted by the next claim, in its transaction (a finished job frees a slot, which starts a
/// claim at once): one commit per claim instead of one more per job. A crash between a job's last write and that
/// claim runs the job again when its lease expires — the same bounded repeat as a crash during the job.
public struct Dispatcher: Service {
    let store: SQLStore
    let engine: Engine
    let metrics: EngineMetrics
    let workers: Int
    let lease: Duration
    let pollInterval: Duration
    let logger: Logger
    /// Awaited before the first claim (the server opens it once migrations are applied).
    let ready: @Sendable () async -> Void

    public init(
        store: SQLStore, engine: Engine, metrics: EngineMetrics, workers: Int, lease: Duration = .seconds(60),
        pollInterval: Duration = .seconds(1), logger: Logger, ready: @escaping @Sendable () async -> Void = {}
    ) {
        self.ready = ready
        self.store = store
        self.engine = engine
        self.metrics = metrics
        self.workers = max(1, workers)
        self.lease = lease
        self.pollInterval = pollInterval
        self.logger = logger
    }

    public func run() async throws {
        await ready()
        let stopping = Atomic<Bool>(false)
        let slots = SlotCounter(capacity: workers)
        let finished = FinishedJobs()
        let wake = store.jobSignal
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                while !stopping.load(ordering: .relaxed) && !Task.isCancelled {
                    let generation = wake.generation
                    let free = slots.free
                    guard free > 0 else {
                        await slots.waitForFree()
                        continue
                    }
                    let done = finished.take()
                    let jobs: [Job]
                    do {
                        jobs = try await store.transaction(durability: .replayable) { session in
                            if !done.isEmpty { _ = try await session.completeJobs(done) }
                            return try await session.claimJobs(limit: free, lease: lease)
                        }
                    } catch {
                        finished.add(done)
                        logger.error("claiming jobs failed", metadata: ["error": "\(error)"])
                        try? await Task.sleep(for: pollInterval)
                        continue
                    }
                    if jobs.isEmpty {
                        if finished.isEmpty { await wake.wait(after: generation, timeout: pollInterval) }
                        continue
                    }
                    for job in jobs {
                        slots.take()
                        group.addTask {
                            let done = await self.execute(job)
                            if done { finished.add([job]) }
                            slots.release()
                            // An idle claim loop waits for new work: wake it to delete the finished job.
                            if done { wake.signal() }
                        }
                    }
                }
            }
            let done = finished.take()
            if !done.isEmpty {
                do {
                    try await store.transaction(durability: .replayable) { _ = try await $0.completeJobs(done) }
                } catch {
                    logger.warning(
                        "completing finished jobs failed; they run again when their lease expires", metadata: ["error": "\(error)"])
                }
            }
        } onGracefulShutdown: {
            stopping.store(true, ordering: .relaxed)
            wake.signal()
            slots.wakeAll()
        }
    }

    /// Runs one job and records its result; failures reschedule it with backoff (the handler's writes are
    /// transactional, so a retry starts from consistent state). Returns whether the job finished, to be deleted by
    /// the next claim.
    func execute(_ job: Job) async -> Bool {
        metrics.jobStarted()
        defer { metrics.jobFinished() }
        let started = ContinuousClock.now
        var finished = false
        do {
            let result = try await engine.handle(job)
            switch result {
            case .done:
                finished = true
            case .again(let at):
                try await store.transaction(durability: .replayable) { _ = try await $0.rescheduleJob(job, runAt: at, error: nil) }
            }
            metrics.jobs.increment(job.kind, "ok")
        } catch {
            metrics.jobs.increment(job.kind, "error")
            let delay = min(300.0, pow(2.0, Double(min(job.attempts, 8))))
            logger.error(
                "job failed; retrying",
                metadata: ["kind": "\(job.kind)", "job": "\(job.id)", "attempt": "\(job.attempts)", "error": "\(error)"])
            _ = try? await store.transaction(durability: .replayable) {
                try await $0.rescheduleJob(job, runAt: store.clock.now().addingTimeInterval(delay), error: "\(error)")
            }
        }
        metrics.jobSeconds.observe(ContinuousClock.now - started, job.kind)
        return finished
    }
}

/// Jobs finished since the last claim, deleted in the next claim's transaction.
final class FinishedJobs: Sendable {
    private let jobs = Mutex<[Job]>([])

    func add(_ finished: [Job]) { jobs.withLock { $0 += finished } }

    func take() -> [Job] {
        jobs.withLock { jobs in
            defer { jobs.removeAll() }; return jobs
        }
    }

    var isEmpty: Bool { jobs.withLock { $0.isEmpty } }
}

/// Counts free worker slots; the claim loop waits here when all are busy.
final class SlotCounter: Sendable {
    private struct State {
        var free: Int
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state: Mutex<State>

    init(capacity: Int) { state = Mutex(State(free: capacity)) }

    var free: Int { state.withLock { $0.free } }

    func take() { state.withLock { $0.free -= 1 } }

    func release() {
        state.withLock { $0.free += 1 }
        wakeAll()
    }

    func wakeAll() {
        let waiters = state.withLock { state in
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func waitForFree() async {
        await withCheckedContinuation { continuation in
            let resumeNow = state.withLock { state -> Bool in
                if state.free > 0 { return true }
                state.waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }
}
