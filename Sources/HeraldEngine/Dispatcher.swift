import Foundation
import HeraldCore
import HeraldStore
import Logging
import ServiceLifecycle
import Synchronization

/// The queue workers (docs/architecture.md §Engine): claims due jobs in batches with a lease, runs them with at most `workers` in
/// flight, completes or reschedules them, and sleeps until the store signals new work (in-process signal on SQLite,
/// `LISTEN/NOTIFY` on PostgreSQL) or the poll interval passes. On graceful shutdown it stops claiming, lets the
/// jobs in flight finish and deregisters.
///
/// **Liveness.** The process registers as a worker and heartbeats every `heartbeatInterval`; its claims name it. Every
/// heartbeat also looks for workers whose heartbeat is older than `workerTimeout`: they are dead, and their jobs are
/// made due again in one statement — a crashed process is taken over in seconds, not when its leases run out (the lease
/// stays as the last resort). On SQLite one process owns the workers (``SQLStore/acquireWorkerOwnership()``), so at
/// start-up every claim left is a crashed process's and is released at once.
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
    let heartbeatInterval: Duration
    /// Failed jobs whose reschedule could not be written (the database was unavailable): the next claim writes it.
    let retries = PendingItems<(job: Job, at: Date, error: String)>()
    let workerTimeout: Duration
    let logger: Logger
    /// Awaited before the first claim (the server opens it once migrations are applied).
    let ready: @Sendable () async -> Void

    public init(
        store: SQLStore, engine: Engine, metrics: EngineMetrics, workers: Int, lease: Duration = .seconds(60),
        pollInterval: Duration = .seconds(1), heartbeatInterval: Duration = .seconds(1), workerTimeout: Duration = .seconds(5),
        logger: Logger, ready: @escaping @Sendable () async -> Void = {}
    ) {
        self.heartbeatInterval = heartbeatInterval
        self.workerTimeout = workerTimeout
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
        try store.acquireWorkerOwnership()
        defer { store.releaseWorkerOwnership() }
        let workerId = store.ids.next()
        try await register(workerId)
        let stopping = OnceFlag()
        let slots = SlotCounter(capacity: workers)
        // Jobs finished since the last claim, deleted in the next claim's transaction.
        let finished = PendingItems<Job>()
        let inFlight = InFlightJobs()
        // Report-class jobs running (JobPriority.report: at most reportSlotsPerWorker at once).
        let reports = Counter()
        let wake = store.jobSignal
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    var beats = 0
                    while !stopping.isSet && !Task.isCancelled {
                        try? await Task.sleep(for: heartbeatInterval)
                        await beat(workerId)
                        beats += 1
                        // Housekeeping rides on the heartbeat: expired idempotency records go about once a minute.
                        if beats % 60 == 0 { await purgeExpiredRecords() }
                        // The console's queue charts: depth and lag, sampled about once a minute (last sample wins).
                        if beats % 60 == 30 { await sampleQueue() }
                    }
                }
                var failures = 0
                while !stopping.isSet && !Task.isCancelled {
                    let generation = wake.generation
                    let free = slots.free
                    guard free > 0 else {
                        await slots.waitForFree()
                        continue
                    }
                    let done = finished.take()
                    let retries = self.retries.take()
                    // After failures (a database outage) a claim may have committed without its answer arriving: its
                    // jobs would wait for their lease although this worker is alive. Release every claim of ours that
                    // is not running.
                    let recovering = failures > 0
                    let running = inFlight.snapshot()
                    let jobs: [Job]
                    do {
                        jobs = try await store.transaction(durability: .replayable) { session in
                            if !done.isEmpty { _ = try await session.completeJobs(done) }
                            if recovering { _ = try await session.releaseClaims(worker: workerId, except: running) }
                            for retry in retries { try await session.rescheduleJob(retry.job, runAt: retry.at, error: retry.error) }
                            return try await session.claimJobs(
                                limit: free, lease: lease, worker: workerId,
                                reportLimit: max(0, JobPriority.reportSlotsPerWorker - reports.count))
                        }
                        if failures > 0 { logger.info("claiming jobs works again", metadata: ["failures": "\(failures)"]) }
                        failures = 0
                    } catch {
                        finished.add(done)
                        self.retries.add(retries)
                        failures += 1
                        // The database is down or restarting: back off (up to 5 s), and log the first failure of a run.
                        if failures == 1 { logger.error("claiming jobs failed; retrying with backoff", metadata: ["error": "\(error)"]) }
                        try? await Task.sleep(for: min(pollInterval * (1 << min(failures - 1, 4)), .seconds(5)))
                        continue
                    }
                    if jobs.isEmpty {
                        if finished.isEmpty { await wake.wait(after: generation, timeout: pollInterval) }
                        continue
                    }
                    for job in jobs {
                        slots.take()
                        inFlight.insert(job.id)
                        let report = job.kind == JobKind.webhook.rawValue
                        if report { reports.add(1) }
                        group.addTask {
                            let done = await self.execute(job)
                            if done { finished.add([job]) }
                            if report { reports.add(-1) }
                            inFlight.remove(job.id)
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
            do {
                try await store.transaction { try await $0.deregisterWorker(id: workerId) }
            } catch {
                logger.warning(
                    "deregistering the worker failed; its claims are released when its heartbeat ages", metadata: ["error": "\(error)"])
            }
        } onGracefulShutdown: {
            stopping.set()
            wake.signal()
            slots.wakeAll()
        }
    }

    /// Registers this process as a worker; releases what crashed workers left (on SQLite every other claim: one
    /// process owns the database).
    func register(_ workerId: String) async throws {
        let exclusive = !store.allowsSeveralWorkerProcesses
        let released = try await store.transaction { session in
            try await Self.registerSelf(workerId, session: session)
            var released = try await session.releaseOrphanedClaims()
            if exclusive { released += try await session.releaseDeadWorkers(heartbeatBefore: .distantFuture, except: workerId).jobs }
            return released
        }
        if released > 0 {
            metrics.jobsReleased.increment(by: released)
            logger.info("released the claims a stopped worker left", metadata: ["jobs": "\(released)"])
        }
    }

    /// Registers this process (host name, pid) under `workerId`, with a fresh heartbeat.
    static func registerSelf(_ workerId: String, session: StoreSession) async throws {
        let info = ProcessInfo.processInfo
        try await session.registerWorker(id: workerId, host: info.hostName, pid: Int(info.processIdentifier))
    }

    /// One heartbeat, and the look for dead workers. A worker that finds itself declared dead (a stall longer than the
    /// timeout) registers again: its released jobs may run twice, never not at all.
    func beat(_ workerId: String) async {
        let timeout = workerTimeout
        do {
            let (alive, dead) = try await store.transaction(durability: .replayable) { session in
                let alive = try await session.heartbeat(workerId: workerId)
                if !alive { try await Self.registerSelf(workerId, session: session) }
                let cutoff = session.now.addingTimeInterval(-Double(timeout.components.seconds))
                return (alive, try await session.releaseDeadWorkers(heartbeatBefore: cutoff, except: workerId))
            }
            if !alive { logger.warning("this worker was declared dead (its heartbeat stalled) and registered again") }
            if !dead.workers.isEmpty {
                metrics.jobsReleased.increment(by: dead.jobs)
                logger.info(
                    "released the jobs of dead workers",
                    metadata: ["workers": "\(dead.workers.joined(separator: ","))", "jobs": "\(dead.jobs)"])
                if dead.jobs > 0 { store.jobSignal.signal() }
            }
        } catch {
            logger.warning("worker heartbeat failed", metadata: ["error": "\(error)"])
        }
    }

    /// Deletes the idempotency records past their 24 h, and sent-journal rows older than an hour — left by a job
    /// whose runs were canceled or recorded by another attempt (any worker may; both statements are idempotent).
    /// How long delivered and dead status-webhook events stay listed (docs/webhooks.md); pending ones stay for replay.
    static let webhookRetention: TimeInterval = 7 * 86400
    /// How long the console's per-minute counters are kept (its overview shows the last day; docs/console.md).
    static let consoleStatsRetention: TimeInterval = 8 * 86400

    /// Records the queue's depth and lag of this minute for the console's overview (docs/console.md); any worker may,
    /// the last write of a minute wins.
    func sampleQueue() async {
        do {
            try await store.transaction(durability: .replayable) { session in
                let counts = try await session.jobCounts()
                let lag = try await session.queueLag()
                try await session.recordQueueSample(
                    ready: counts.ready, running: counts.running, scheduled: counts.scheduled,
                    lagMilliseconds: Int(lag.components.seconds * 1000 + lag.components.attoseconds / 1_000_000_000_000_000))
            }
        } catch {
            logger.debug("sampling the queue for the console failed", metadata: ["error": "\(error)"])
        }
    }

    func purgeExpiredRecords() async {
        do {
            let now = store.clock.now()
            let cutoff = now.addingTimeInterval(-3600)
            let purged = try await store.transaction(durability: .replayable) { session in
                (
                    try await session.purgeExpiredIdempotencyKeys(), try await session.purgeSentJournal(before: cutoff),
                    try await session.purgeWebhookMessages(before: now.addingTimeInterval(-Self.webhookRetention), limit: 10_000),
                    try await session.purgeConsoleStats(before: now.addingTimeInterval(-Self.consoleStatsRetention))
                        + session.purgeConsoleSessions(before: now)
                        + session.purgePushRateCounts(before: now.addingTimeInterval(-86_400))
                        + session.purgeThrottleCounters(before: now.addingTimeInterval(-86_400))
                )
            }
            if purged.0 + purged.1 + purged.2 + purged.3 > 0 {
                logger.debug(
                    "expired records deleted",
                    metadata: [
                        "idempotency": "\(purged.0)", "sentJournal": "\(purged.1)", "webhookEvents": "\(purged.2)",
                        "consoleAndRateCounters": "\(purged.3)",
                    ])
            }
        } catch {
            logger.warning("deleting expired records failed", metadata: ["error": "\(error)"])
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
            // A database outage is not the job's fault: try again soon (the claim loop backs off meanwhile) rather
            // than after a backoff that grows with every claim the outage failed.
            let outage = (error as? HeraldError)?.code == .unavailable
            let delay = outage ? 1.0 : min(300.0, pow(2.0, Double(min(job.attempts, 8))))
            logger.error(
                "job failed; retrying",
                metadata: ["kind": "\(job.kind)", "job": "\(job.id)", "attempt": "\(job.attempts)", "error": "\(error)"])
            let at = store.clock.now().addingTimeInterval(delay)
            do {
                try await store.transaction(durability: .replayable) { _ = try await $0.rescheduleJob(job, runAt: at, error: "\(error)") }
            } catch {
                // Without this the job would wait for its lease (its worker is alive): the next claim writes it.
                retries.add([(job, at, "\(error)")])
            }
        }
        metrics.jobSeconds.observe(ContinuousClock.now - started, job.kind)
        return finished
    }
}

/// The ids of the jobs this worker is running.
final class InFlightJobs: Sendable {
    private let ids = Mutex<Set<Int64>>([])
    func insert(_ id: Int64) { _ = ids.withLock { $0.insert(id) } }
    func remove(_ id: Int64) { _ = ids.withLock { $0.remove(id) } }
    func snapshot() -> Set<Int64> { ids.withLock { $0 } }
}

/// Work the claim loop hands to its next claim's transaction (finished jobs to delete, reschedules to write).
final class PendingItems<Item: Sendable>: Sendable {
    private let items = Mutex<[Item]>([])

    func add(_ more: [Item]) { items.withLock { $0 += more } }

    func take() -> [Item] {
        items.withLock { items in
            defer { items.removeAll() }; return items
        }
    }

    var isEmpty: Bool { items.withLock { $0.isEmpty } }
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

/// A count shared by the claim loop and its jobs.
final class Counter: Sendable {
    private let value = Mutex(0)
    var count: Int { value.withLock { $0 } }
    func add(_ delta: Int) { value.withLock { $0 += delta } }
}
