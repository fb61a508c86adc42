import Foundation
import HeraldCore
import HeraldStore
import HeraldWorkflow
import Logging
import Synchronization

/// Engine settings (README.md §Configuration, docs/architecture.md §Engine).
public struct EngineConfiguration: Sendable {
    /// When failed deliveries are retried.
    public var retryPolicy = RetryPolicy()
    /// The mass invalid-token deletion guard.
    public var invalidTokenGuard = InvalidTokenGuard()
    /// Subscribers per expansion page (one transaction each: the crash-replay bound).
    public var expansionPageSize = 500
    /// Notifications per `run` job.
    public var runBatchSize = 250
    /// Deliveries per `deliver` job: the unit a crash may repeat. The job sends them in the provider's own batch
    /// size, with at most its declared concurrency.
    public var deliveryJobSize = 400
    /// Devices per raw-send page (one transaction each: the crash-replay bound of its fan-out).
    public var pushPageSize = 1000
    /// How long one expansion job works before it yields (and continues in a new claim).
    public var expansionTimeSlice: Duration = .seconds(5)
    /// Herald's public base URL (`--public-url`, e.g. `https://herald.example.com`): one-click unsubscribe links
    /// (`List-Unsubscribe`, `{{unsubscribeUrl}}`) start with it. Nil: emails carry no unsubscribe link.
    public var publicURL: String? = nil
    /// When status webhooks are retried, given up, and their endpoints disabled.
    public var webhookRetry = WebhookRetryPolicy()

    public init() {}
}

/// What the per-transaction code needs from the engine.
struct EngineContext: Sendable {
    let workflows: WorkflowRegistry
    let providers: ProviderPool
    let configuration: EngineConfiguration
    /// Retry jitter.
    let random: RandomSource
    let logger: Logger
    /// Environments' unsubscribe keys, read once per process (they never change).
    let unsubscribeKeys = UnsubscribeKeyCache()
}

/// The unsubscribe keys the engine has read, by environment id.
final class UnsubscribeKeyCache: Sendable {
    private let keys = Mutex<[String: Data]>([:])

    func key(_ environmentId: String, session: StoreSession) async throws -> Data? {
        if let key = keys.withLock({ $0[environmentId] }) { return key }
        guard let key = try await session.unsubscribeKey(environmentId: environmentId) else { return nil }
        keys.withLock { $0[environmentId] = key }
        return key
    }
}

/// The workflow engine (docs/architecture.md §Engine): job handlers for recipient expansion, run start and resume, and delivery.
/// Stateless between jobs — everything lives in the store — so any number of processes can run it.
public struct Engine: Sendable {
    let store: SQLStore
    let context: EngineContext
    let metrics: EngineMetrics
    let logger: Logger
    /// Accepted sends not yet committed with their job (``SentJournal``), shared by the process's jobs.
    let journalWriter: SentJournalWriter
    /// Writes the status-webhook events of what each transaction commits.
    let webhooks = WebhookOutbox()

    public init(
        store: SQLStore, workflows: WorkflowRegistry, providers: ProviderPool, metrics: EngineMetrics,
        configuration: EngineConfiguration = .init(), random: RandomSource = .system, logger: Logger
    ) {
        self.store = store
        self.context = EngineContext(
            workflows: workflows, providers: providers, configuration: configuration, random: random, logger: logger)
        self.metrics = metrics
        self.logger = logger
        self.journalWriter = SentJournalWriter(store: store, logger: logger)
    }

    var configuration: EngineConfiguration { context.configuration }

    /// Herald's public base URL (`--public-url`), if configured.
    public var publicURL: String? { context.configuration.publicURL }

    /// Reports domain events after the transaction that produced them committed: counts them, and logs steps that
    /// could not send for want of an active integration — a configuration gap an operator must see — once per
    /// workflow step and batch at `warning`, steps the subscribers' preferences turned off at `info` (with how many
    /// runs), and other skips, which depend on a subscriber's data, at `debug`.
    func committed(_ events: [DomainEvent]) {
        metrics.record(events)
        let skipped = events.filter { $0.kind == .stepSkipped }
        guard !skipped.isEmpty else { return }
        let groups = Dictionary(grouping: skipped) { [$0.workflowId ?? "", $0.stepId ?? "", $0.reason ?? ""] }
        for (key, group) in groups.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
            let metadata: Logger.Metadata = [
                "event": "step.skipped", "workflow": "\(key[0])", "step": "\(key[1])", "channel": "\(group[0].channel?.rawValue ?? "")",
                "reason": "\(key[2])", "runs": "\(group.count)",
            ]
            if key[2] == "no_active_integration" {
                logger.warning("step skipped: no active integration of its channel", metadata: metadata)
            } else if key[2] == StepState.preferenceDisabled {
                logger.info("step skipped: turned off by the subscribers' preferences", metadata: metadata)
            } else {
                logger.debug("step skipped", metadata: metadata)
            }
        }
    }

    /// Runs one claimed job.
    public func handle(_ job: Job) async throws -> JobResult {
        guard let kind = JobKind(rawValue: job.kind) else {
            logger.error("unknown job kind; dropping it", metadata: ["kind": "\(job.kind)", "job": "\(job.id)"])
            return .done
        }
        switch kind {
        case .expand: return try await expand(ExpandJob.decode(job.payload))
        case .run: return try await run(RunJob.decode(job.payload), environmentId: job.environmentId ?? "", attempt: job.attempts)
        case .resume: return try await resume(ResumeJob.decode(job.payload), environmentId: job.environmentId ?? "")
        case .deliver:
            return try await deliver(DeliverJob.decode(job.payload), environmentId: job.environmentId ?? "", attempt: job.attempts)
        case .receipts: return try await receipts(ReceiptsJob.decode(job.payload), environmentId: job.environmentId ?? "")
        case .push: return try await sendPush(PushJob.decode(job.payload), environmentId: job.environmentId ?? "")
        case .webhook: return try await postWebhooks(WebhookJob.decode(job.payload), environmentId: job.environmentId ?? "")
        }
    }

    // MARK: Expansion

    /// Expands an event's recipients: first the subscriber objects (upserted with their just-in-time device tokens
    /// and credentials, before any step runs) and explicit ids, then each topic (or, for a broadcast, every
    /// subscriber) page by page. Each page commits its notifications, their `run` jobs and the cursor together, so
    /// a crash repeats at most the page in flight — and notifications are unique per (event, subscriber), so even
    /// that page creates no duplicate runs.
    func expand(_ job: ExpandJob) async throws -> JobResult {
        let started = ContinuousClock.now
        guard let event = try await store.read({ try await $0.event(id: job.event) }), event.status.isExpanding
        else { return .done }
        var cursor = ExpandCursor.decode(event.cursor)
        let entries: [[String: JSONValue]] = if case .array(let items) = event.recipients { items.compactMap(\.objectValue) } else { [] }
        let actorId = event.actor?.stringValue ?? event.actor?.objectValue?["subscriberId"]?.stringValue
        let runBatch = configuration.runBatchSize

        if !cursor.prepared {
            let initial = cursor
            try await store.transaction(durability: .replayable) { session in
                var explicit: [String] = []
                for entry in entries where entry["type"]?.stringValue == "Subscriber" {
                    guard let id = entry["subscriberId"]?.stringValue else { continue }
                    if entry.count > 2 { try await Self.upsertRecipient(entry, environmentId: event.environmentId, session: session) }
                    if !explicit.contains(id) { explicit.append(id) }
                }
                if case .object(let actor)? = event.actor {
                    try await Self.upsertRecipient(actor, environmentId: event.environmentId, session: session)
                }
                let created = try await session.insertNotifications(event: event, subscriberIds: explicit, topicKey: nil)
                try await session.enqueue(Self.runJobs(created, event: event, batch: runBatch))
                var next = initial
                next.prepared = true
                try await session.updateEvent(id: event.id, status: .expanding, cursor: next.encoded())
            }
            cursor.prepared = true
        }

        while cursor.index < entries.count {
            let entry = entries[cursor.index]
            let type = entry["type"]?.stringValue
            guard type == "Topic" || type == "Broadcast" else {
                cursor.index += 1
                cursor.after = nil
                continue
            }
            if ContinuousClock.now - started > configuration.expansionTimeSlice {
                return .again(at: store.clock.now())
            }
            let pageSize = configuration.expansionPageSize
            let topicKey = entry["topicKey"]?.stringValue
            let excluded = Set((entry["exclude"]?.arrayValue ?? []).compactMap(\.stringValue))
            let current = cursor
            let next = try await store.transaction(durability: .replayable) { session -> ExpandCursor? in
                // A cancel may have landed since the last page.
                guard let fresh = try await session.event(id: event.id), fresh.status != .canceled else { return nil }
                let page: Page<String>
                if let topicKey {
                    page = try await session.topicMembers(
                        environmentId: event.environmentId, topicKey: topicKey, after: current.after, limit: pageSize)
                } else {
                    let subscribers = try await session.subscriberIds(
                        environmentId: event.environmentId, after: current.after, limit: pageSize)
                    page = subscribers
                }
                let members = page.items.filter { !excluded.contains($0) && $0 != actorId }
                let created = try await session.insertNotifications(event: event, subscriberIds: members, topicKey: topicKey)
                try await session.enqueue(Self.runJobs(created, event: event, batch: runBatch))
                var next = current
                if let last = page.nextCursor {
                    next.after = last
                } else {
                    next.index += 1
                    next.after = nil
                }
                try await session.updateEvent(id: event.id, status: .expanding, cursor: next.encoded())
                return next
            }
            guard let next else { return .done }
            cursor = next
        }
        let final = cursor
        try await store.transaction(durability: .replayable) { session in
            try await session.updateEvent(id: event.id, status: .expanded, cursor: final.encoded())
        }
        return .done
    }

    static func runJobs(_ notifications: [NotificationRecord], event: EventRecord, batch: Int) -> [NewJob] {
        stride(from: 0, to: notifications.count, by: batch).map { start in
            NewJob(
                environmentId: event.environmentId, job: .run,
                payload: RunJob(notifications: notifications[start..<min(start + batch, notifications.count)].map(\.id)).encoded(),
                transactionId: event.transactionId)
        }
    }

    /// Upserts a subscriber object from a trigger (profile fields present in it, PATCH semantics) and merges its
    /// `channels[]` credentials into the registry: device tokens appended, other fields merged.
    static func upsertRecipient(_ entry: [String: JSONValue], environmentId: String, session: StoreSession) async throws {
        guard let subscriberId = entry["subscriberId"]?.stringValue else { return }
        var patch = SubscriberProfilePatch()
        func update(_ key: String) -> FieldUpdate<String> {
            guard let value = entry[key] else { return .keep }
            return value == .null ? .clear : value.stringValue.map { .set($0) } ?? .keep
        }
        patch.firstName = update("firstName")
        patch.lastName = update("lastName")
        patch.email = update("email")
        patch.phone = update("phone")
        patch.avatar = update("avatar")
        patch.locale = update("locale")
        patch.timezone = update("timezone")
        if let data = entry["data"] { patch.data = data == .null ? .clear : .set(data) }
        _ = try await session.upsertSubscriber(environmentId: environmentId, subscriberId: subscriberId, patch: patch)
        guard case .array(let channels)? = entry["channels"] else { return }
        for channel in channels {
            guard let object = channel.objectValue, let providerId = object["providerId"]?.stringValue,
                var credentials = object["credentials"]?.objectValue
            else { continue }
            guard
                let integration = try await session.resolveIntegration(
                    environmentId: environmentId, providerId: providerId, identifier: object["integrationIdentifier"]?.stringValue)
            else { continue }
            let tokens = credentials.removeValue(forKey: "deviceTokens").flatMap { value -> [String]? in
                if case .array(let items) = value { return items.compactMap(\.stringValue) }
                return nil
            }
            try await session.updateCredentials(
                environmentId: environmentId, subscriberId: subscriberId, integration: integration, deviceTokens: tokens,
                otherCredentials: credentials, mode: .append)
        }
    }

    // MARK: Runs

    /// Starts a batch of runs and sends their first channel steps inline: the runs are planned in a read session, the
    /// planned deliveries sent (every integration concurrently), and then the plan and the outcomes are written in
    /// one transaction — each notification, message and delivery row is written once, in its final state, and no
    /// `deliver` job is queued for them. A crash before that transaction commits runs the job again when its lease
    /// expires: the batch's sends repeat, nothing is lost. A run that another worker started meanwhile is left to it;
    /// one a cancel finished meanwhile stays canceled, with what it sent recorded. A batch whose runs must write while
    /// they are planned (a digest step first) is planned in a transaction and sent through `deliver` jobs instead.
    func run(_ job: RunJob, environmentId: String, attempt: Int) async throws -> JobResult {
        let context = self.context
        let planned = try await store.read { session -> RunBatch? in
            var batch = RunBatch(session: session, engine: context, environmentId: environmentId, planning: true)
            try await batch.start(notificationIds: job.notifications)
            return batch.needsTransaction ? nil : batch
        }
        guard var batch = planned else {
            let events = try await store.transaction(durability: .replayable) { session in
                var batch = RunBatch(session: session, engine: context, environmentId: environmentId)
                try await batch.start(notificationIds: job.notifications)
                try await batch.flush()
                try await webhooks.stage(batch.events, environmentId: environmentId, session: session, known: batch.notifications)
                return batch.events
            }
            committed(events)
            return .done
        }
        let (deliveries, messages) = batch.takePlannedSends()
        let statuses = batch.loadedStatuses
        let integrations = batch.integrationsById
        let prepared = batch
        let contents = deliveries.reduce(into: [String: MessageContent]()) { result, delivery in
            result[delivery.id] = delivery.messageId.flatMap { messages[$0]?.content }
        }
        let groups = Dictionary(grouping: deliveries.filter { contents[$0.id] != nil }, by: { $0.integrationId ?? "" })
        let journal = try await SentJournal.open(writer: journalWriter, attempt: attempt, deliveryIds: deliveries.map(\.id))
        let sent = await withTaskGroup(of: SentBatch.self) { group in
            for (integrationId, deliveries) in groups {
                group.addTask {
                    await sendBatch(
                        deliveries, contents: contents, integrationId: integrationId, integration: integrations[integrationId],
                        messages: messages, journal: journal)
                }
            }
            return await group.reduce(into: [SentBatch]()) { $0.append($1) }
        }
        let events = try await store.transaction(durability: .replayable) { session in
            var batch = prepared
            batch.rebind(to: session)
            let current = try await session.notifications(ids: Array(statuses.keys), lock: true)
            let currentStatus = Dictionary(current.map { ($0.id, $0.status) }, uniquingKeysWith: { first, _ in first })
            // Runs another worker started meanwhile (this job's lease ran out) are its to record; runs a cancel
            // finished keep the trail of what was sent, not the progress.
            let changed = statuses.keys.filter { currentStatus[$0] != statuses[$0] }
            let canceled = Set(changed.filter { currentStatus[$0] == .canceled })
            batch.discard(startedElsewhere: Set(changed).subtracting(canceled), canceled: canceled)
            let kept = batch.ownDeliveryIds
            var random = context.random
            for sentBatch in sent.sorted(by: { $0.integrationId < $1.integrationId }) {
                try await Self.record(
                    sentBatch.keeping(kept), messages: messages, environmentId: environmentId, into: &batch, random: &random)
            }
            try await batch.flush()
            try await journal.forget(in: session)
            // A cancel that landed during the send also stops what this commit queued for those transactions (retries).
            for transactionId in Set(current.filter { canceled.contains($0.id) }.map(\.transactionId)).sorted() {
                _ = try await session.cancelJobs(environmentId: environmentId, transactionId: transactionId)
                _ = try await session.cancelDeliveries(environmentId: environmentId, transactionId: transactionId)
            }
            try await webhooks.stage(batch.events, environmentId: environmentId, session: session, known: batch.notifications)
            return batch.events
        }
        committed(events)
        return .done
    }

    func resume(_ job: ResumeJob, environmentId: String) async throws -> JobResult {
        let context = self.context
        let events = try await store.transaction(durability: .replayable) { session in
            var batch = RunBatch(session: session, engine: context, environmentId: environmentId)
            try await batch.load(notificationIds: job.all)
            for notification in job.all { try await batch.resume(notification, stepId: job.step, digest: job.digest) }
            try await batch.flush()
            try await webhooks.stage(batch.events, environmentId: environmentId, session: session, known: batch.notifications)
            return batch.events
        }
        committed(events)
        return .done
    }

    // MARK: Cancel

    /// Cancels a transaction: removes its pending jobs (expansion, runs, delays, digests, retries), cancels its
    /// unfinished deliveries and runs. Returns whether anything was pending.
    public func cancel(environmentId: String, transactionId: String) async throws -> Bool {
        let context = self.context
        return try await store.transaction { session in
            guard let event = try await session.event(environmentId: environmentId, transactionId: transactionId) else { return false }
            // The runs first (locked on PostgreSQL, in id order as every writer locks them): a worker recording
            // outcomes for them right now commits before this goes on, so the retries and later steps it queued are
            // visible to the cancels below — and one that records after this sees them canceled.
            let ids = try await session.notifications(environmentId: environmentId, transactionId: transactionId).map(\.id)
            var batch = RunBatch(session: session, engine: context, environmentId: environmentId)
            try await batch.load(notificationIds: ids)
            let open = ids.filter { batch.notifications[$0].map { !$0.status.isFinished } ?? false }
            let jobs = try await session.cancelJobs(environmentId: environmentId, transactionId: transactionId)
            let deliveries = try await session.cancelDeliveries(environmentId: environmentId, transactionId: transactionId)
            if event.status != .expanded { try await session.updateEvent(id: event.id, status: .canceled, cursor: event.cursor) }
            for id in open { try await batch.cancel(id) }
            try await batch.flush()
            return jobs > 0 || !deliveries.isEmpty || !open.isEmpty || event.status.isExpanding
        }
    }
}
