import Foundation
import HeraldCore
import HeraldStore
import HeraldWorkflow

/// What the API answers for one accepted trigger (Novu `TriggerEventResponseDto`).
public struct TriggerReceipt: Sendable, Equatable {
    public var acknowledged: Bool
    /// `processed`, or Novu's status for a trigger that will not run (`trigger_not_active`, …).
    public var status: String
    public var transactionId: String

    public var json: JSONValue {
        ["acknowledged": .bool(acknowledged), "status": .string(status), "transactionId": .string(transactionId)]
    }
}

/// Commits triggers: the event row and its first job in one transaction, so that a 2xx means the trigger is durable
/// (docs/architecture.md §Engine). Concurrent requests share transactions (group commit): while one commit is in flight, the requests
/// that arrive queue up and the next commit takes them all, so one fsync covers many triggers under load and none
/// waits when the server is idle.
public actor TriggerIntake {
    let store: SQLStore
    let validator: TriggerValidator
    let metrics: EngineMetrics
    private var pending: [Submission] = []
    /// Commits in flight, at most ``lanes``: SQLite has one writer, so one lane; PostgreSQL two — measured on 4 December
    /// (12 connections, the database on the same two cores): 1,617–1,768 triggers/s with two lanes against 1,502–1,517
    /// with four and 1,454–1,699 with one; fewer lanes make larger groups, and a group costs the same few statements
    /// whatever its size.
    private var flushing = 0
    let lanes: Int
    /// Most requests one commit takes.
    let maxBatch = 256

    struct Submission {
        var environmentId: String
        var commands: [TriggerCommand]
        var continuation: CheckedContinuation<Result<[TriggerReceipt], any Error>, Never>
    }

    public init(store: SQLStore, validator: TriggerValidator, metrics: EngineMetrics) {
        self.store = store
        self.validator = validator
        self.metrics = metrics
        self.lanes = store.dialect == .postgres ? 2 : 1
    }

    /// Commits one request's triggers (one, or a bulk request's up to 100) atomically and returns their receipts in
    /// order. A transaction id reused with the same request replays the first receipt; with a different request the
    /// whole call fails with ``TriggerRejection/transactionConflict(_:)`` and commits nothing.
    public func accept(environmentId: String, commands: [TriggerCommand]) async throws -> [TriggerReceipt] {
        let result = await withCheckedContinuation { continuation in
            pending.append(Submission(environmentId: environmentId, commands: commands, continuation: continuation))
            if flushing < lanes {
                flushing += 1
                Task { await self.flush() }
            }
        }
        switch result {
        case .success(let receipts):
            metrics.triggersAccepted.increment(by: receipts.count)
            return receipts
        case .failure(let error):
            throw error
        }
    }

    private func flush() async {
        while !pending.isEmpty {
            let batch = Array(pending.prefix(maxBatch))
            pending.removeFirst(batch.count)
            let results = await commit(batch)
            for (submission, result) in zip(batch, results) { submission.continuation.resume(returning: result) }
        }
        flushing -= 1
    }

    /// One transaction for a batch of submissions; a per-request problem fails that request only. A request whose
    /// problem is only found by the database (a transaction id another process committed a moment ago, a constraint)
    /// throws inside the shared transaction and rolls all of it back: the group is then committed again one request per
    /// transaction, so only that request fails, with its own error, and the others commit (the rare path pays, not
    /// the common one).
    private func commit(_ batch: [Submission]) async -> [Result<[TriggerReceipt], any Error>] {
        let requests = batch.map { ($0.environmentId, $0.commands) }
        do {
            return try await commitTogether(requests)
        } catch {
            guard requests.count > 1 else { return [.failure(error)] }
            metrics.triggerGroupSplits.increment()
            var results: [Result<[TriggerReceipt], any Error>] = []
            for request in requests {
                do {
                    results += try await commitTogether([request])
                } catch {
                    results.append(.failure(error))
                }
            }
            return results
        }
    }

    /// Commits requests together; throws when the group fails as a whole. The group costs the same few statements
    /// whatever its size. SQLite: one transaction that reads what the group needs to know (``Facts``), then inserts
    /// the events and their jobs (each request's decisions are made in memory between them). PostgreSQL: the facts
    /// in a read session — skipped when no request names a transaction id or a topic — and then one statement that
    /// writes everything (``StoreSession/insertTriggersAtOnce(_:jobs:)``): one or two round trips instead of a
    /// transaction of six, which is what intake on PostgreSQL was waiting on. Both read the facts before writing
    /// under `READ COMMITTED`-like visibility; a transaction id committed by another request in between fails the
    /// insert, and the whole group is then committed again one request at a time (``commit(_:)``), which replays or
    /// conflicts.
    private func commitTogether(_ requests: [(String, [TriggerCommand])]) async throws -> [Result<[TriggerReceipt], any Error>] {
        let validator = self.validator
        let store = self.store
        guard store.dialect == .postgres else {
            return try await store.transaction { session in
                let facts = try await Facts.load(for: requests, session: session)
                let group = Self.plan(requests, facts: facts, validator: validator, now: session.now, ids: session.idGenerator)
                try await Self.write(group, in: session)
                return group.results
            }
        }
        let facts =
            Facts.needed(for: requests)
            ? try await store.read { session in try await Facts.load(for: requests, session: session) } : Facts()
        let group = Self.plan(requests, facts: facts, validator: validator, now: store.clock.now(), ids: store.ids)
        if group.events.count > StoreSession.maxEventsAtOnce {
            try await store.transaction { session in try await Self.write(group, in: session) }
            return group.results
        }
        do {
            try await store.read { session in try await session.insertTriggersAtOnce(group.events, jobs: group.jobs) }
        } catch is TransactionIdTaken {
            throw Self.taken(nil)
        }
        if !group.jobs.isEmpty { store.jobSignal.signal() }
        return group.results
    }

    /// Writes a planned group's events and jobs in `session`'s transaction; throws if a transaction id was taken.
    private static func write(_ group: PlannedGroup, in session: StoreSession) async throws {
        if let conflict = try await session.insertEvents(group.events).first { throw Self.taken(conflict) }
        try await session.enqueue(group.jobs)
    }

    /// Another process committed one of the group's transaction ids a moment ago: the caller retries and gets a replay
    /// or a conflict.
    private static func taken(_ transactionId: String?) -> HeraldError {
        HeraldError(.conflict, "transaction \(transactionId ?? "id") is being committed by another request; retry")
    }

    /// What committing a group needs to know from the database: the events already committed under the transaction
    /// ids the requests gave (ids Herald generated cannot name one), and which of the topics they name exist.
    struct Facts {
        var existing: [String: [String: EventRecord]] = [:]
        /// Environment id → keys of the named topics that exist.
        var topics: [String: Set<String>] = [:]

        /// Whether any request names a transaction id or a topic.
        static func needed(for requests: [(String, [TriggerCommand])]) -> Bool {
            requests.contains { _, commands in
                commands.contains { command in !command.transactionIdGenerated || !command.topicKeys.isEmpty }
            }
        }

        static func load(for requests: [(String, [TriggerCommand])], session: StoreSession) async throws -> Facts {
            var facts = Facts()
            var ids: [String: [String]] = [:]
            var topicKeys: [String: Set<String>] = [:]
            for (environmentId, commands) in requests {
                for command in commands {
                    if !command.transactionIdGenerated { ids[environmentId, default: []].append(command.transactionId) }
                    topicKeys[environmentId, default: []].formUnion(command.topicKeys)
                }
            }
            for (environmentId, transactionIds) in ids.sorted(by: { $0.key < $1.key }) {
                facts.existing[environmentId] = try await session.events(environmentId: environmentId, transactionIds: transactionIds)
            }
            for (environmentId, keys) in topicKeys.sorted(by: { $0.key < $1.key }) {
                for key in keys.sorted() where try await session.topic(environmentId: environmentId, key: key) != nil {
                    facts.topics[environmentId, default: []].insert(key)
                }
            }
            return facts
        }
    }

    /// The group's receipts, and the events and first jobs to write, decided in memory from ``Facts``.
    private static func plan(
        _ requests: [(String, [TriggerCommand])], facts: Facts, validator: TriggerValidator, now: Date, ids: any IDGenerator
    ) -> PlannedGroup {
        var existing = facts.existing
        var results: [Result<[TriggerReceipt], any Error>] = []
        var events: [EventRecord] = []
        var jobs: [NewJob] = []
        for (environmentId, commands) in requests {
            let result = plan(
                commands, environmentId: environmentId, validator: validator, existing: existing[environmentId] ?? [:],
                topics: facts.topics[environmentId] ?? [], now: now, ids: ids)
            switch result {
            case .success(let planned):
                events += planned.events
                jobs += planned.jobs
                // A later request of the group reusing one of these transaction ids replays or conflicts, as if
                // this one had committed first.
                for event in planned.events { existing[environmentId, default: [:]][event.transactionId] = event }
                results.append(.success(planned.receipts))
            case .failure(let error):
                results.append(.failure(error))
            }
        }
        return PlannedGroup(results: results, events: events, jobs: jobs)
    }

    /// A group's receipts (or per-request failures), and the events and first jobs to write for it.
    private struct PlannedGroup {
        var results: [Result<[TriggerReceipt], any Error>]
        var events: [EventRecord]
        var jobs: [NewJob]
    }

    /// One request's receipts, and the events and first jobs to write for it, given the events already committed (or
    /// accepted earlier in the group) under its transaction ids and the topics that exist. A failure fails this
    /// request only.
    private static func plan(
        _ commands: [TriggerCommand], environmentId: String, validator: TriggerValidator, existing: [String: EventRecord],
        topics: Set<String>, now: Date, ids: any IDGenerator
    ) -> Result<(receipts: [TriggerReceipt], events: [EventRecord], jobs: [NewJob]), any Error> {
        // Within one request a transaction id may appear once.
        var seen: Set<String> = []
        for command in commands where !seen.insert(command.transactionId).inserted {
            return .failure(TriggerRejection.transactionConflict(command.transactionId))
        }
        var receipts: [TriggerReceipt?] = Array(repeating: nil, count: commands.count)
        var events: [EventRecord] = []
        var jobs: [NewJob] = []
        for (index, command) in commands.enumerated() {
            // Topics must exist (Novu: an unknown topic key is an error).
            for (position, recipient) in command.recipients.enumerated() {
                guard let key = recipient.objectValue?["topicKey"]?.stringValue, !topics.contains(key) else { continue }
                let field = commands.count > 1 ? "events[\(index)].to[\(position)]" : "to[\(position)]"
                return .failure(TriggerRejection.invalid([field: ["topic '\(key)' does not exist"]], values: [field: .string(key)]))
            }
            if let event = existing[command.transactionId] {
                guard event.requestHash == command.requestHash, let replay = receipt(from: event) else {
                    return .failure(TriggerRejection.transactionConflict(command.transactionId))
                }
                receipts[index] = replay
                continue
            }
            let status = validator.status(of: command.workflowId) ?? "processed"
            let receipt = TriggerReceipt(acknowledged: true, status: status, transactionId: command.transactionId)
            receipts[index] = receipt
            guard status == "processed" else { continue }
            let event = EventRecord(
                id: ids.next(), environmentId: environmentId, transactionId: command.transactionId, workflowId: command.workflowId,
                requestHash: command.requestHash, response: receipt.json.jsonString(), payload: command.payload,
                recipients: .array(command.recipients), actor: command.actor, tenant: command.tenant, overrides: command.overrides,
                status: .accepted, createdAt: now)
            events.append(event)
            jobs.append(
                NewJob(
                    environmentId: environmentId, job: .expand, payload: ExpandJob(event: event.id).encoded(),
                    transactionId: command.transactionId))
        }
        return .success((receipts.compactMap { $0 }, events, jobs))
    }

    static func receipt(from event: EventRecord) -> TriggerReceipt? {
        guard case .object(let object) = try? JSONValue.parse(event.response) else { return nil }
        return TriggerReceipt(
            acknowledged: object["acknowledged"]?.boolValue ?? true, status: object["status"]?.stringValue ?? "processed",
            transactionId: event.transactionId)
    }
}
