import Foundation
import HeraldCore
import HeraldStore
import HeraldWorkflow

/// Advances the runs of a batch of notifications inside one transaction: loads what the runs need in a few batched
/// queries (events, subscribers, devices, credentials, integrations), performs the executor's directives, and writes
/// everything they produce — messages, deliveries, execution details, jobs, run states — in multi-row statements
/// when ``flush()`` is called. One instance per transaction; all notifications belong to one environment.
///
/// A batch made for `planning` runs in a read session: it takes nothing that needs a write during planning (a digest
/// step sets ``needsTransaction`` and stops). The caller takes the planned sends out of it (``takePlannedSends()``),
/// sends them, moves the batch into a transaction (``rebind(to:)``) and records the outcomes into it before it
/// flushes (``Engine/run(_:environmentId:)``): the batch's own messages and deliveries stay in memory until
/// ``flush()``, so outcomes recorded before then change them in place and each row is written once, in its final
/// state.
///
/// A value: it moves, with the run job that owns it, from the read session that plans to the transaction that records.
struct RunBatch: Sendable {
    var session: StoreSession
    let engine: EngineContext
    let environmentId: String
    var now: Date
    var planning: Bool
    /// Set when planning met a step that must write while it is planned (a digest joins or opens its group).
    var needsTransaction = false

    var notifications: [String: NotificationRecord] = [:]
    /// The status of each notification as it was loaded, before this batch changed it.
    var loadedStatuses: [String: NotificationStatus] = [:]
    var runs: [String: WorkflowRun] = [:]
    var eventRecords: [String: EventRecord] = [:]
    var subscribers: [String: Subscriber] = [:]
    var channels: [String: RecipientChannels] = [:]
    /// The stored preferences of the batch's recipients (absent: none stored).
    var preferences: [String: SubscriberPreferences] = [:]
    /// Suppressed addresses among the batch's recipients, by channel and stored address (loaded at the first email or
    /// SMS step, for every recipient loaded by then, in one query per channel).
    var suppressed: [Channel: [String: Suppression]] = [:]
    /// Recipients whose addresses were checked against the suppression list.
    var suppressionChecked: Set<String> = []
    var integrationsByChannel: [Channel: [Integration]]?

    var messages: [MessageRecord] = []
    var deliveries: [DeliveryRecord] = []
    var details: [ExecutionDetail] = []
    var jobs: [(notificationId: String?, job: NewJob)] = []
    /// Runs waiting for a delay or a send window, queued by ``flush()`` as one resume job per (transaction, step,
    /// instant) bucket: a topic trigger to subscribers in 24 timezones makes 24 wake-ups, not one per subscriber.
    var waits: [(notificationId: String, stepId: String, at: Date)] = []
    var dirty: Set<String> = []
    /// Positions of the batch's own (unwritten) messages and deliveries, by id.
    var messageIndex: [String: Int] = [:]
    var deliveryIndex: [String: Int] = [:]
    /// Notifications whose runs this batch started: every message and delivery they have is the batch's own.
    var startedHere: Set<String> = []
    /// Planned deliveries not handed out yet, by [integration id, provider id, transaction id].
    var outbound: [[String]: [String]] = [:]

    init(session: StoreSession, engine: EngineContext, environmentId: String, planning: Bool = false) {
        self.session = session
        self.engine = engine
        self.environmentId = environmentId
        self.now = session.now
        self.planning = planning
    }

    /// Moves the batch into `session` (a transaction), with that session's time: what it does from now on is
    /// written, nothing is planning any more.
    mutating func rebind(to session: StoreSession) {
        self.session = session
        now = session.now
        planning = false
    }

    // MARK: Loading

    /// Loads notifications (locked on PostgreSQL) with their events; those loaded already are kept as they are.
    /// Subscribers and their channels are loaded when a run needs them (``ensureRecipients()``): finishing the last step
    /// of a run does not.
    mutating func load(notificationIds: [String]) async throws {
        let missing = notificationIds.filter { notifications[$0] == nil }
        guard !missing.isEmpty else { return }
        let loaded = try await session.notifications(ids: missing, lock: !planning).filter { $0.environmentId == environmentId }
        for notification in loaded {
            notifications[notification.id] = notification
            loadedStatuses[notification.id] = notification.status
            if !recipientsLoaded.contains(notification.subscriberId) { recipientsPending.insert(notification.subscriberId) }
        }
        let eventIds = Set(loaded.map(\.eventId)).subtracting(eventRecords.keys)
        for id in eventIds {
            if let event = try await session.event(id: id) { eventRecords[id] = event }
        }
    }

    var recipientsLoaded: Set<String> = []
    /// Subscribers of loaded notifications whose records are not loaded yet (kept as notifications are loaded, so that
    /// the per-run check is O(1) rather than a pass over every notification of the batch).
    var recipientsPending: Set<String> = []

    /// Loads the subscribers and channels of every loaded notification not loaded yet, in batched queries.
    mutating func ensureRecipients() async throws {
        guard !recipientsPending.isEmpty else { return }
        let subscriberIds = Array(recipientsPending)
        recipientsPending = []
        recipientsLoaded.formUnion(subscriberIds)
        for (id, subscriber) in try await session.subscribers(environmentId: environmentId, subscriberIds: subscriberIds) {
            subscribers[id] = subscriber
        }
        for (id, entry) in try await session.recipientChannels(environmentId: environmentId, subscriberIds: subscriberIds) {
            channels[id] = entry
        }
        for (id, entry) in try await session.preferences(environmentId: environmentId, subscriberIds: subscriberIds) {
            preferences[id] = entry
        }
    }

    mutating func integrations(_ channel: Channel) async throws -> [Integration] {
        if integrationsByChannel == nil {
            let all = try await session.integrations(environmentId: environmentId, activeOnly: true)
            integrationsByChannel = Dictionary(grouping: all, by: \.channel)
        }
        let list = integrationsByChannel?[channel] ?? []
        // Primary first (email/SMS), then oldest first: the order failover walks.
        return list.sorted { ($0.primary ? 0 : 1, $0.id) < ($1.primary ? 0 : 1, $1.id) }
    }

    /// The run of a loaded notification, with its persisted state.
    mutating func run(_ notificationId: String) throws -> WorkflowRun? {
        if let run = runs[notificationId] { return run }
        guard let notification = notifications[notificationId], let event = eventRecords[notification.eventId] else { return nil }
        guard let workflow = engine.workflows.workflow(notification.workflowId) else { return nil }
        let state = RunState(stored: notification.state)
        let run = WorkflowRun(workflow: workflow, state: state, context: context(event: event, subscriberId: notification.subscriberId))
        runs[notificationId] = run
        return run
    }

    func context(event: EventRecord, subscriberId: String) -> [String: JSONValue] {
        var subscriber: [String: JSONValue] = ["subscriberId": .string(subscriberId)]
        if let record = subscribers[subscriberId] {
            let profile = record.profile
            for (key, value) in [
                ("firstName", profile.firstName), ("lastName", profile.lastName), ("email", profile.email), ("phone", profile.phone),
                ("avatar", profile.avatar), ("locale", profile.locale), ("timezone", profile.timezone),
            ] {
                subscriber[key] = value.map(JSONValue.string) ?? .null
            }
            subscriber["data"] = profile.data ?? .null
        }
        return [
            "payload": event.payload, "subscriber": .object(subscriber), "tenant": event.tenant ?? .null,
            "workflow": ["id": .string(event.workflowId)], "transactionId": .string(event.transactionId),
        ]
    }

    // MARK: Events into the runs

    /// Loads the notifications and starts the runs of those pending.
    mutating func start(notificationIds: [String]) async throws {
        try await load(notificationIds: notificationIds)
        for id in notificationIds { try await start(id) }
    }

    /// Starts a pending notification's run.
    mutating func start(_ notificationId: String) async throws {
        guard notifications[notificationId]?.status == .pending else { return }
        startedHere.insert(notificationId)
        try await ensureRecipients()
        guard var run = try run(notificationId) else {
            fail(notificationId, detail: "workflow_not_found")
            return
        }
        let directives = run.start(now: now)
        try await perform(directives, on: &run, notificationId: notificationId)
    }

    /// Reports a channel step's result into its run.
    mutating func finishStep(_ notificationId: String, stepId: String, result: StepState) async throws {
        guard let status = notifications[notificationId]?.status, status == .running || status == .waiting else { return }
        if runs[notificationId] == nil, let notification = notifications[notificationId],
            RunState(stored: notification.state).steps.contains(where: { $0.key != stepId && !$0.value.status.isTerminal })
        {
            // Later steps will evaluate conditions and render: they need the subscriber.
            try await ensureRecipients()
        }
        guard var run = try run(notificationId), run.state.steps[stepId]?.status == .running else { return }
        let directives = run.finish(stepId, with: result, now: now)
        try await perform(directives, on: &run, notificationId: notificationId)
    }

    /// Resumes a waiting delay or digest step.
    mutating func resume(_ notificationId: String, stepId: String, digest: Bool) async throws {
        guard let status = notifications[notificationId]?.status, status == .running || status == .waiting else { return }
        try await ensureRecipients()
        guard var run = try run(notificationId) else { return }
        var directives: [RunDirective]
        if digest {
            let collected = try await session.closeDigest(notificationId: notificationId, stepId: stepId)
            directives = run.resume(stepId, events: collected?.events ?? [], count: collected?.count, now: now)
        } else {
            let window = run.state.steps[stepId]?.reason == StepState.sendWindow
            directives = run.resume(stepId, now: now)
            if window {
                details.append(detail(notificationId, stepId: stepId, status: .success, "send_window_opened"))
                try await perform(directives, on: &run, notificationId: notificationId)
                return
            }
        }
        details.append(detail(notificationId, stepId: stepId, status: .success, digest ? "digest_closed" : "delay_finished"))
        try await perform(directives, on: &run, notificationId: notificationId)
    }

    /// Cancels a run (a cancelled transaction).
    mutating func cancel(_ notificationId: String) async throws {
        try await ensureRecipients()
        guard let notification = notifications[notificationId], !notification.status.isFinished,
            var run = try run(notificationId)
        else { return }
        run.cancel(reason: "execution_canceled_by_user")
        runs[notificationId] = run
        notifications[notificationId]?.status = .canceled
        dirty.insert(notificationId)
        details.append(detail(notificationId, stepId: nil, status: .warning, "execution_canceled_by_user"))
    }

    mutating func fail(_ notificationId: String, detail code: String) {
        notifications[notificationId]?.status = .completed
        dirty.insert(notificationId)
        details.append(detail(notificationId, stepId: nil, status: .failed, code))
    }

    // MARK: Directives

    mutating func perform(_ initial: [RunDirective], on run: inout WorkflowRun, notificationId: String) async throws {
        var queue = initial
        while !queue.isEmpty {
            let directive = queue.removeFirst()
            switch directive {
            case .send(let stepId):
                var skip: String?
                var raw: [String: JSONValue]?
                if let channel = run.workflow.step(stepId)?.type.channel, let subscriberId = notifications[notificationId]?.subscriberId {
                    let decision = PreferenceResolver.resolve(
                        channel, workflow: run.workflow, subscriber: preferences[subscriberId] ?? .none)
                    if !decision.enabled {
                        skip = StepState.preferenceDisabled
                        raw = ["channel": .string(channel.rawValue), "source": .string(decision.source.rawValue)]
                    }
                }
                if skip == nil, let skipped = try await send(stepId, run: run, notificationId: notificationId) {
                    (skip, raw) = (skipped.reason, skipped.raw)
                }
                if let skip {
                    details.append(detail(notificationId, stepId: stepId, status: .warning, skip, raw: raw))
                    events.append(
                        DomainEvent(
                            .stepSkipped, notificationId: notificationId, workflowId: run.workflow.id, stepId: stepId,
                            channel: run.workflow.step(stepId)?.type.channel, reason: skip))
                    queue += run.finish(stepId, with: StepState(status: .skipped, reason: skip), now: now)
                }
            case .wait(let stepId, let until):
                waits.append((notificationId, stepId, until))
                let window = run.state.steps[stepId]?.reason == StepState.sendWindow
                details.append(
                    detail(
                        notificationId, stepId: stepId, status: .pending, window ? "send_window_wait" : "delay_scheduled",
                        raw: ["until": .string(until.iso8601Milliseconds)]
                            .merging(window ? ["timezone": .string(run.subscriberTimeZone.identifier)] : [:], uniquingKeysWith: { $1 })))
            case .throttle(let stepId, let key, let limit, let window):
                // Counting writes: a planned batch stops here and runs again in a transaction, as a digest does.
                if planning {
                    needsTransaction = true
                    return
                }
                let windowMs = max(Int64(window.components.seconds) * 1000, 1)
                let nowMs = now.millisecondsSince1970
                let count = try await session.countThrottle(
                    environmentId: environmentId, workflowId: run.workflow.id, stepId: stepId, key: key,
                    windowStart: nowMs - nowMs % windowMs, windowMilliseconds: windowMs)
                let allowed = count <= limit
                let raw: [String: JSONValue] = [
                    "key": .string(key), "count": .number(Double(count)), "limit": .number(Double(limit)),
                    "windowSeconds": .number(Double(windowMs / 1000)),
                ]
                details.append(
                    detail(
                        notificationId, stepId: stepId, status: allowed ? .success : .warning, allowed ? "throttle_passed" : "throttled",
                        raw: raw))
                if !allowed {
                    events.append(
                        DomainEvent(
                            .stepSkipped, notificationId: notificationId, workflowId: run.workflow.id, stepId: stepId, channel: nil,
                            reason: StepState.throttled))
                }
                queue += run.finishThrottle(stepId, allowed: allowed, now: now)
            case .digest(let stepId, let window, let key):
                if planning {
                    needsTransaction = true
                    return
                }
                guard let notification = notifications[notificationId], let event = eventRecords[notification.eventId] else { continue }
                let closesAt = now.addingTimeInterval(Double(window.components.seconds))
                let joined = try await session.joinDigest(
                    environmentId: environmentId, workflowId: notification.workflowId, stepId: stepId,
                    subscriberId: notification.subscriberId,
                    key: key, notificationId: notificationId, event: event.payload, closesAt: closesAt)
                if joined.opened {
                    jobs.append((notificationId, resumeJob(notificationId, stepId: stepId, at: closesAt, digest: true)))
                    details.append(detail(notificationId, stepId: stepId, status: .pending, "digest_opened"))
                } else {
                    run.cancel(reason: StepState.mergedIntoDigest)
                    notifications[notificationId]?.status = .merged
                    details.append(
                        detail(notificationId, stepId: stepId, status: .success, "digest_merged", raw: ["digest": .string(joined.id)]))
                }
            case .skipped(let stepId, let reason):
                details.append(detail(notificationId, stepId: stepId, status: .warning, reason))
            case .finished:
                if notifications[notificationId]?.status != .merged {
                    notifications[notificationId]?.status = .completed
                    events.append(DomainEvent(.notificationCompleted, notificationId: notificationId))
                }
            }
        }
        if let status = notifications[notificationId]?.status, !status.isFinished {
            let waiting = run.state.steps.values.contains { $0.status == .waiting }
            let running = run.state.steps.values.contains { $0.status == .running }
            notifications[notificationId]?.status = running || !waiting ? .running : .waiting
        }
        runs[notificationId] = run
        dirty.insert(notificationId)
    }

    func resumeJob(_ notificationId: String, stepId: String, at: Date, digest: Bool) -> NewJob {
        NewJob(
            environmentId: environmentId, job: .resume,
            payload: ResumeJob(notification: notificationId, step: stepId, digest: digest).encoded(),
            transactionId: notifications[notificationId]?.transactionId, runAt: at)
    }

    /// Writes everything the batch produced, with `deliver` jobs for the deliveries it planned and did not hand out.
    mutating func flush() async throws {
        var updates: [(id: String, status: NotificationStatus, state: String, channels: [String])] = []
        for id in dirty.sorted() {
            guard let notification = notifications[id] else { continue }
            let state = runs[id]?.state.stored ?? notification.state
            updates.append((id, notification.status, state, notification.channels))
        }
        let queued = jobs.map(\.job) + resumeJobs() + deliveryJobs()
        try await session.insertMessages(messages)
        try await session.insertDeliveries(deliveries)
        try await session.appendDetails(details)
        try await session.updateNotifications(updates)
        try await session.enqueue(queued)
        messages.removeAll()
        deliveries.removeAll()
        messageIndex.removeAll()
        deliveryIndex.removeAll()
        details.removeAll()
        jobs.removeAll()
        waits.removeAll()
        dirty.removeAll()
    }

    /// The resume jobs of ``waits``, one per (transaction, step, instant), at most 500 runs each.
    func resumeJobs() -> [NewJob] {
        struct Bucket: Hashable {
            var transactionId: String?
            var stepId: String
            var at: Date
        }
        let buckets = Dictionary(grouping: waits) { wait in
            Bucket(transactionId: notifications[wait.notificationId]?.transactionId, stepId: wait.stepId, at: wait.at)
        }
        var jobs: [NewJob] = []
        for (bucket, group) in buckets.sorted(by: { ($0.key.at, $0.key.stepId) < ($1.key.at, $1.key.stepId) }) {
            let ids = group.map(\.notificationId)
            for start in stride(from: 0, to: ids.count, by: 500) {
                let chunk = Array(ids[start..<min(start + 500, ids.count)])
                jobs.append(
                    NewJob(
                        environmentId: environmentId, job: .resume,
                        payload: ResumeJob(
                            notification: chunk[0], step: bucket.stepId, digest: false, notifications: chunk.count > 1 ? chunk : nil
                        )
                        .encoded(),
                        transactionId: bucket.transactionId, runAt: bucket.at))
            }
        }
        return jobs
    }

    /// Takes the deliveries planned so far out of the `deliver` jobs ``flush()`` would queue, with the batch's
    /// messages: the caller sends them itself and records their outcomes into the batch before it flushes.
    mutating func takePlannedSends() -> (deliveries: [DeliveryRecord], messages: [String: MessageRecord]) {
        let ids = Set(outbound.values.joined())
        outbound.removeAll()
        return (
            deliveries.filter { ids.contains($0.id) },
            Dictionary(messages.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        )
    }

    /// The active integrations the batch read, by id.
    var integrationsById: [String: Integration] {
        Dictionary((integrationsByChannel ?? [:]).values.flatMap { $0 }.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// Forgets the runs of `startedElsewhere` entirely (another worker started them meanwhile: theirs to record), and
    /// the progress of those in `canceled` (a cancel finished them meanwhile: what they sent stays, with its trail, but
    /// their runs do not advance and their state is not written).
    mutating func discard(startedElsewhere: Set<String>, canceled: Set<String>) {
        let progress = startedElsewhere.union(canceled)
        guard !progress.isEmpty else { return }
        let dropped = Set(messages.filter { startedElsewhere.contains($0.notificationId) }.map(\.id))
        messages.removeAll { dropped.contains($0.id) }
        deliveries.removeAll { $0.messageId.map(dropped.contains) ?? false }
        details.removeAll { $0.notificationId.map(startedElsewhere.contains) ?? false }
        jobs.removeAll { $0.notificationId.map(progress.contains) ?? false }
        waits.removeAll { progress.contains($0.notificationId) }
        let kept = Set(deliveries.map(\.id))
        outbound = outbound.mapValues { $0.filter(kept.contains) }.filter { !$0.value.isEmpty }
        for id in progress {
            dirty.remove(id)
            runs[id] = nil
        }
        for id in startedElsewhere {
            notifications[id] = nil
            startedHere.remove(id)
        }
        for id in canceled { notifications[id]?.status = .canceled }
        messageIndex = Dictionary(messages.indices.map { (messages[$0].id, $0) }, uniquingKeysWith: { first, _ in first })
        deliveryIndex = Dictionary(deliveries.indices.map { (deliveries[$0].id, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// The ids of the deliveries the batch holds, unwritten.
    var ownDeliveryIds: Set<String> { Set(deliveryIndex.keys) }

    /// What happened in this batch (outcomes decided, runs finished), for the caller to report once it committed.
    var events: [DomainEvent] = []
}
