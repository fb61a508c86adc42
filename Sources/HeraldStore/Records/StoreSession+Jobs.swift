import Foundation
import HeraldCore
import PostgresNIO
import SQLKit

extension StoreSession {
    private static let jobColumns =
        "id, environment_id, kind, payload, transaction_id, run_at, attempts, lease_token, last_error, created_at"

    /// Enqueues jobs in the current session — inside a transaction, they commit or vanish with the domain rows
    /// written beside them (the job row is the outbox). Returns their ids.
    @discardableResult
    public func enqueue(_ jobs: [NewJob]) async throws -> [Int64] {
        guard !jobs.isEmpty else { return [] }
        let now = nowMilliseconds
        var ids: [Int64] = []
        ids.reserveCapacity(jobs.count)
        // Multi-row INSERTs in chunks keep the statement count (and round trips) low for large fan-outs.
        for start in stride(from: 0, to: jobs.count, by: 200) {
            var insert = Self.jobRows(jobs[start..<min(start + 200, jobs.count)], now: now)
            insert.suffix = "RETURNING id"
            ids.append(contentsOf: try await run(insert).map { try $0.decode(column: "id", as: Int64.self) })
        }
        // PostgreSQL's NOTIFY is sent once per transaction, when it commits (``SQLStore/transaction(durability:_:)``);
        // outside a transaction, here.
        if let enqueued {
            enqueued.set()
        } else if dialect == .postgres {
            try await notifyWorkers()
        }
        return ids.sorted()
    }

    /// The rows of new jobs, due at their `runAt` or now (for ``enqueue(_:)`` and statements that fold the insert in
    /// with other writes).
    static func jobRows(_ jobs: some Collection<NewJob>, now: Int64) -> RowInsert {
        var insert = RowInsert(
            into: "jobs",
            columns: ["environment_id", "kind", "payload", "transaction_id", "run_at", "priority", "attempts", "created_at", "updated_at"])
        for job in jobs {
            insert.row(
                job.environmentId, job.kind, job.payload, job.transactionId, job.runAt?.millisecondsSince1970 ?? now,
                Int64(job.priority.rawValue), Int64(0), now, now)
        }
        return insert
    }

    /// Claims up to `limit` due jobs, the most urgent class first (``JobPriority``) and oldest due first within a
    /// class, leasing each for `lease`: until then no other worker can claim it; after that it is due again (its
    /// worker is presumed dead). Each claim counts as an attempt.
    ///
    /// PostgreSQL skips rows other transactions are claiming (`FOR UPDATE SKIP LOCKED`), so concurrent workers
    /// never receive the same job; SQLite serialises writers, which gives the same guarantee. One range scan of the
    /// `(priority, run_at, id)` index per class: leased and scheduled jobs of an urgent class are never walked over.
    /// `worker` names the claiming worker process (``registerWorker(id:host:pid:)``): if it dies, a live worker makes
    /// its jobs due again at once (``releaseDeadWorkers(heartbeatBefore:except:)``).
    public func claimJobs(limit: Int, lease: Duration, worker: String? = nil, reportLimit: Int = .max) async throws -> [Job] {
        let now = nowMilliseconds
        let leaseMilliseconds = Int64(lease.components.seconds * 1000 + lease.components.attoseconds / 1_000_000_000_000_000)
        let token = ids.next()
        var claimed: [Job] = []
        // The report class comes last, up to its slots — except a report job due for longer than
        // `JobPriority.reportAging`, which is claimed first: however busy the sending classes, status events keep
        // flowing (at a bounded share), and while they are not busy reporting waits for nothing.
        var passes = JobPriority.allCases.map { (priority: $0, dueBy: now) }
        if reportLimit > 0 {
            passes.insert((.report, now - Int64(JobPriority.reportAging.components.seconds * 1000)), at: 0)
        }
        var reportsClaimed = 0
        for (priority, dueBy) in passes {
            let wanted = priority == .report ? min(limit - claimed.count, reportLimit - reportsClaimed) : limit - claimed.count
            guard wanted > 0 else { continue }
            let query: SQLQueryString =
                switch dialect {
                case .postgres:
                    """
                    WITH due AS (
                        SELECT id FROM jobs WHERE priority = \(bind: priority.rawValue) AND run_at <= \(bind: dueBy)
                        ORDER BY run_at, id LIMIT \(bind: wanted) FOR UPDATE SKIP LOCKED
                    )
                    UPDATE jobs SET run_at = \(bind: now + leaseMilliseconds), lease_token = \(bind: token), leased_at = \(bind: now),
                        attempts = jobs.attempts + 1, updated_at = \(bind: now), worker_id = \(bind: worker)
                    FROM due WHERE jobs.id = due.id
                    RETURNING jobs.id, jobs.environment_id, jobs.kind, jobs.payload, jobs.transaction_id, jobs.run_at, jobs.attempts,
                        jobs.lease_token, jobs.last_error, jobs.created_at
                    """
                case .sqlite:
                    """
                    UPDATE jobs SET run_at = \(bind: now + leaseMilliseconds), lease_token = \(bind: token), leased_at = \(bind: now),
                        attempts = attempts + 1, updated_at = \(bind: now), worker_id = \(bind: worker)
                    WHERE id IN (
                        SELECT id FROM jobs WHERE priority = \(bind: priority.rawValue) AND run_at <= \(bind: dueBy)
                        ORDER BY run_at, id LIMIT \(bind: wanted)
                    )
                    RETURNING \(unsafeRaw: Self.jobColumns)
                    """
                }
            let jobs = try await db.raw(query).all().map(Self.job(from:)).sorted { $0.id < $1.id }
            if priority == .report { reportsClaimed += jobs.count }
            claimed += jobs
        }
        return claimed
    }

    /// Deletes finished jobs. A job whose lease was lost (claimed again by another worker) is left to that worker.
    /// Returns how many were deleted.
    @discardableResult
    public func completeJobs(_ jobs: [Job]) async throws -> Int {
        var deleted = 0
        // One statement per 200 jobs, each fenced by its own lease token.
        for start in stride(from: 0, to: jobs.count, by: 200) {
            let rows = jobs[start..<min(start + 200, jobs.count)].map { job -> SQLQueryString in
                "(\(bind: job.id), \(bind: job.leaseToken))"
            }
            deleted += try await db.raw(
                """
                WITH v(id, token) AS (VALUES \(rows.joined(separator: ", ")))
                DELETE FROM jobs WHERE (id, lease_token) IN (SELECT id, token FROM v) RETURNING id
                """
            ).all().count
        }
        return deleted
    }

    /// Wakes the idle workers of every process (PostgreSQL `NOTIFY herald_jobs`; delivered when the transaction
    /// commits).
    func notifyWorkers() async throws {
        try await db.raw("SELECT pg_notify(\(bind: PostgresDriver.jobsChannel), '')").run()
    }

    /// Makes a claimed job due again at `runAt` (a retry, or a release on shutdown with `runAt` = now), recording
    /// why. Returns false when the lease was lost meanwhile.
    @discardableResult
    public func rescheduleJob(_ job: Job, runAt: Date, error: String?) async throws -> Bool {
        try await !db.raw(
            """
            UPDATE jobs SET run_at = \(bind: runAt.millisecondsSince1970), lease_token = NULL, leased_at = NULL, worker_id = NULL,
                last_error = \(bind: error), updated_at = \(bind: nowMilliseconds)
            WHERE id = \(bind: job.id) AND lease_token = \(bind: job.leaseToken) RETURNING id
            """
        ).all().isEmpty
    }

    /// Deletes the pending jobs of a transaction (cancelling a trigger). Returns how many were removed.
    @discardableResult
    public func cancelJobs(environmentId: String, transactionId: String) async throws -> Int {
        try await db.raw(
            "DELETE FROM jobs WHERE environment_id = \(bind: environmentId) AND transaction_id = \(bind: transactionId) RETURNING id"
        ).all().count
    }

    /// One job by id.
    public func job(id: Int64) async throws -> Job? {
        try await db.raw("SELECT \(unsafeRaw: Self.jobColumns) FROM jobs WHERE id = \(bind: id)").first().map(Self.job(from:))
    }

    /// Queue depth: jobs due now (ready), leased (running) and scheduled for later.
    public func jobCounts() async throws -> (ready: Int, running: Int, scheduled: Int) {
        let now = nowMilliseconds
        let row = try await db.raw(
            """
            SELECT
                COALESCE(SUM(CASE WHEN run_at <= \(bind: now) THEN 1 ELSE 0 END), 0) AS ready,
                COALESCE(SUM(CASE WHEN run_at > \(bind: now) AND lease_token IS NOT NULL THEN 1 ELSE 0 END), 0) AS running,
                COALESCE(SUM(CASE WHEN run_at > \(bind: now) AND lease_token IS NULL THEN 1 ELSE 0 END), 0) AS scheduled
            FROM jobs
            """
        ).first()
        return (
            try row?.decode(column: "ready", as: Int.self) ?? 0, try row?.decode(column: "running", as: Int.self) ?? 0,
            try row?.decode(column: "scheduled", as: Int.self) ?? 0
        )
    }

    private static func job(from row: any SQLRow) throws -> Job {
        Job(
            id: try row.decode(column: "id", as: Int64.self), environmentId: try row.optional("environment_id"),
            kind: try row.decode(column: "kind", as: String.self), payload: try row.decode(column: "payload", as: String.self),
            transactionId: try row.optional("transaction_id"), runAt: try row.date("run_at"),
            attempts: try row.decode(column: "attempts", as: Int.self),
            leaseToken: try row.optional("lease_token"), lastError: try row.optional("last_error"), createdAt: try row.date("created_at")
        )
    }
}
