import Foundation

/// A unit of durable work. Jobs live in the `jobs` table until a worker completes them; a worker that claims a job
/// holds a lease, and a job whose lease expires (its worker crashed) is claimed again. Delivery is therefore
/// at least once: handlers must tolerate running twice.
public struct Job: Sendable, Hashable {
    /// Monotonic id, assigned by the database.
    public var id: Int64
    public var environmentId: String?
    /// What handler runs it (`trigger`, `deliver`, `resume`, …).
    public var kind: String
    /// Handler input, JSON.
    public var payload: String
    /// The transaction it belongs to, so that cancelling a transaction can remove its pending jobs.
    public var transactionId: String?
    /// When it is due (while leased: when the lease expires).
    public var runAt: Date
    /// How many times it has been claimed, this claim included.
    public var attempts: Int
    /// Proof of the current lease: completing or rescheduling with a stale token does nothing.
    public var leaseToken: String?
    public var lastError: String?
    public var createdAt: Date

    public init(
        id: Int64, environmentId: String?, kind: String, payload: String, transactionId: String?, runAt: Date, attempts: Int,
        leaseToken: String?, lastError: String?, createdAt: Date
    ) {
        self.id = id
        self.environmentId = environmentId
        self.kind = kind
        self.payload = payload
        self.transactionId = transactionId
        self.runAt = runAt
        self.attempts = attempts
        self.leaseToken = leaseToken
        self.lastError = lastError
        self.createdAt = createdAt
    }
}

/// How urgent a class of jobs is: workers claim due jobs of a more urgent class first, oldest due first within a
/// class. The two urgent classes are fed only by the backlog class (runs come from expansions, first deliveries
/// from runs) or by time (delays), so they drain and the backlog cannot starve; a flood of retries during a
/// provider outage competes oldest-first with expansions instead of overtaking them.
public enum JobPriority: Int, Sendable, CaseIterable, Comparable {
    /// First delivery attempts and receipts: sending what is already planned.
    case send = 0
    /// Starting and resuming runs.
    case plan = 1
    /// Work that may wait, served oldest first: expanding an event's recipients, paging a raw send's devices,
    /// retried and re-driven deliveries.
    case backlog = 2
    /// Status reports (status-webhook events): claimed after every other class, by at most ``reportSlotsPerWorker``
    /// of a process's workers at once — but one due for longer than ``reportAging`` is claimed first, so that
    /// reporting what was sent takes a bounded share of the workers and keeps flowing however busy sending is.
    case report = 3

    /// Worker slots a process gives ``report`` jobs at most.
    public static let reportSlotsPerWorker = 1
    /// How long a due ``report`` job may wait behind the other classes before it goes first.
    public static let reportAging: Duration = .seconds(5)

    public static func < (lhs: JobPriority, rhs: JobPriority) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A job to enqueue.
public struct NewJob: Sendable, Hashable {
    public var environmentId: String?
    public var kind: String
    public var payload: String
    public var transactionId: String?
    /// When it becomes due; nil means now.
    public var runAt: Date?
    public var priority: JobPriority

    public init(
        environmentId: String? = nil, kind: String, payload: String, transactionId: String? = nil, runAt: Date? = nil,
        priority: JobPriority = .plan
    ) {
        self.environmentId = environmentId
        self.kind = kind
        self.payload = payload
        self.transactionId = transactionId
        self.runAt = runAt
        self.priority = priority
    }
}
