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

    /// Commits requests in one transaction; throws when the transaction fails as a whole. The group costs the same few
    /// statements whatever its size: one lookup of reused transaction ids per environment, one multi-row insert of the
    /// events and one of their jobs (each request's decisions are made in memory between them).
    private func commitTogether(_ requests: [(String, [TriggerCommand])]) async throws -> [Result<[TriggerReceipt], any Error>] {
        let validator = self.validator
        return try await store.transaction { session in
            var existing: [String: [String: EventRecord]] = [:]
            let idsByEnvironment = Dictionary(grouping: requests.flatMap { request in request.1.map { (request.0, $0.transactionId) } }) {
                $0.0
            }
            for (environmentId, ids) in idsByEnvironment.sorted(by: { $0.key < $1.key }) {
                existing[environmentId] = try await session.events(environmentId: environmentId, transactionIds: ids.map(\.1))
            }
            var results: [Result<[TriggerReceipt], any Error>] = []
            var events: [EventRecord] = []
            var jobs: [NewJob] = []
            for (environmentId, commands) in requests {
                let result = try await Self.plan(
                    commands, environmentId: environmentId, validator: validator, session: session,
                    existing: existing[environmentId] ?? [:])
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
            let taken = try await session.insertEvents(events)
            if let conflict = taken.first {
                // Another process committed the same transaction id a moment ago: the caller retries and gets a replay
                // or a conflict.
                throw HeraldError(.conflict, "transaction \(conflict) is being committed by another request; retry")
            }
            try await session.enqueue(jobs)
            return results
        }
    }

    /// One request's receipts, and the events and first jobs to write for it, given the events already committed (or
    /// accepted earlier in the group) under its transaction ids. A failure fails this request only.
    private static func plan(
        _ commands: [TriggerCommand], environmentId: String, validator: TriggerValidator, session: StoreSession,
        existing: [String: EventRecord]
    ) async throws -> Result<(receipts: [TriggerReceipt], events: [EventRecord], jobs: [NewJob]), any Error> {
        // Within one request a transaction id may appear once.
        var seen: Set<String> = []
        for command in commands where !seen.insert(command.transactionId).inserted {
            return .failure(TriggerRejection.transactionConflict(command.transactionId))
        }
        var receipts: [TriggerReceipt?] = Array(repeating: nil, count: commands.count)
        var events: [EventRecord] = []
        var jobs: [NewJob] = []
        let now = session.now
        for (index, command) in commands.enumerated() {
            // Topics must exist (Novu: an unknown topic key is an error), checked inside the commit's transaction.
            for (position, recipient) in command.recipients.enumerated() {
                guard let key = recipient.objectValue?["topicKey"]?.stringValue else { continue }
                if try await session.topic(environmentId: environmentId, key: key) == nil {
                    let field = commands.count > 1 ? "events[\(index)].to[\(position)]" : "to[\(position)]"
                    return .failure(TriggerRejection.invalid([field: ["topic '\(key)' does not exist"]], values: [field: .string(key)]))
                }
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
                id: session.newId(), environmentId: environmentId, transactionId: command.transactionId, workflowId: command.workflowId,
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
