import Foundation
import HeraldCore
import SQLKit

/// A process running queue workers, as the `workers` table knows it.
public struct WorkerRecord: Sendable, Hashable {
    public var id: String
    public var host: String
    public var pid: Int
    public var startedAt: Date
    public var heartbeatAt: Date
}

extension StoreSession {
    // MARK: Worker liveness

    /// Registers a worker process (or re-registers one that was declared dead) with a fresh heartbeat.
    public func registerWorker(id: String, host: String, pid: Int) async throws {
        let now = nowMilliseconds
        try await db.raw(
            """
            INSERT INTO workers (id, host, pid, started_at, heartbeat_at)
            VALUES (\(bind: id), \(bind: host), \(bind: Int64(pid)), \(bind: now), \(bind: now))
            ON CONFLICT (id) DO UPDATE SET heartbeat_at = \(bind: now)
            """
        ).run()
    }

    /// Moves a worker's heartbeat to now. False when the worker is not registered (any more): another worker declared
    /// it dead and released its jobs.
    public func heartbeat(workerId: String) async throws -> Bool {
        try await !db.raw(
            "UPDATE workers SET heartbeat_at = \(bind: nowMilliseconds) WHERE id = \(bind: workerId) RETURNING id"
        ).all().isEmpty
    }

    /// Declares dead every worker (other than `except`) whose heartbeat is older than `cutoff`: their claimed jobs
    /// become due now, in one statement, and their rows are deleted. Returns the workers and the number of jobs
    /// released. A `cutoff` in the future declares every other worker dead (SQLite at start-up: one process owns the
    /// database, so every claim left is a crashed process's).
    public func releaseDeadWorkers(heartbeatBefore cutoff: Date, except: String? = nil) async throws -> (workers: [String], jobs: Int) {
        let limit = cutoff.millisecondsSince1970
        let dead = try await db.raw(
            "SELECT id FROM workers WHERE heartbeat_at < \(bind: limit) AND id <> \(bind: except ?? "") ORDER BY id"
        ).all().map { try $0.decode(column: "id", as: String.self) }
        guard !dead.isEmpty else { return ([], 0) }
        let released = try await releaseJobs(where: "worker_id IN (\(binds: dead))")
        try await db.raw("DELETE FROM workers WHERE id IN (\(binds: dead))").run()
        return (dead, released)
    }

    /// Releases the claims of jobs that name no registered worker (claimed by a worker that crashed before the
    /// `workers` table existed, or whose row is gone) — SQLite start-up.
    public func releaseOrphanedClaims() async throws -> Int {
        try await releaseJobs(where: "worker_id IS NOT NULL AND worker_id NOT IN (SELECT id FROM workers)")
    }

    /// Makes a live worker's claims due again except the jobs it is running: after a database outage, a claim whose
    /// COMMIT answer was lost may have committed although the worker never got the jobs. Returns how many.
    public func releaseClaims(worker: String, except running: Set<Int64>) async throws -> Int {
        var condition: SQLQueryString = "worker_id = \(bind: worker)"
        if !running.isEmpty { condition += " AND id NOT IN (\(binds: running.sorted()))" }
        return try await releaseJobs(where: condition)
    }

    /// A graceful stop: the worker's remaining claims become due now and its row is deleted.
    public func deregisterWorker(id: String) async throws {
        _ = try await releaseJobs(where: "worker_id = \(bind: id)")
        try await db.raw("DELETE FROM workers WHERE id = \(bind: id)").run()
    }

    /// Makes the claimed jobs matching `condition` due now and unclaimed; returns how many.
    private func releaseJobs(where condition: SQLQueryString) async throws -> Int {
        let now = nowMilliseconds
        return try await db.raw(
            "UPDATE jobs SET run_at = \(bind: now), worker_id = NULL, updated_at = \(bind: now) WHERE \(condition) RETURNING id"
        ).all().count
    }

    /// The registered workers, oldest first.
    public func workers() async throws -> [WorkerRecord] {
        try await db.raw("SELECT id, host, pid, started_at, heartbeat_at FROM workers ORDER BY started_at, id").all().map { row in
            WorkerRecord(
                id: try row.decode(column: "id", as: String.self), host: try row.decode(column: "host", as: String.self),
                pid: try row.decode(column: "pid", as: Int.self), startedAt: try row.date("started_at"),
                heartbeatAt: try row.date("heartbeat_at"))
        }
    }
}
