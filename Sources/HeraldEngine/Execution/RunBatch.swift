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
/// `@unchecked Sendable`: one task uses a batch at a time — it only moves, with the run job that owns it, from the
/// read session that plans to the transaction that records.
final class RunBatch: @unchecked Sendable {
    private(set) var session: StoreSession
    let engine: EngineContext
    let environmentId: String
    private(set) var now: Date
    private(set) var planning: Bool
    /// Set when planning met a step that must write while it is planned (a digest joins or opens its group).
    private(set) var needsTransaction = false

    private(set) var notifications: [String: NotificationRecord] = [:]
    /// The status of each notification as it was loaded, before this batch changed it.
    private(set) var loadedStatuses: [String: NotificationStatus] = [:]
    private var runs: [String: WorkflowRun] = [:]
    private var eventRecords: [String: EventRecord] = [:]
    private var subscribers: [String: Subscriber] = [:]
    private var channels: [String: RecipientChannels] = [:]
    private var integrationsByChannel: [Channel: [Integration]]?

    private var messages: [MessageRecord] = []
    private var deliveries: [DeliveryRecord] = []
    private var details: [ExecutionDetail] = []
    private var jobs: [(notificationId: String?, job: NewJob)] = []
    private var dirty: Set<String> = []
    /// Positions of the batch's own (unwritten) messages and deliveries, by id.
    private var messageIndex: [String: Int] = [:]
    private var deliveryIndex: [String: Int] = [:]
    /// Notifications whose runs this batch started: every message and delivery they have is the batch's own.
    private var startedHere: Set<String> = []

    init(session: StoreSession, engine: EngineContext, environmentId: String, planning: Bool = false) {
        self.session = session
        self.engine = engine
        self.environmentId = environmentId
        self.now = session.now
        self.planning = planning
    }

    /// Moves the batch into `session` (a transaction), with that session's time: what it does from now on is
    /// written, nothing is planning any more.
    func rebind(to session: StoreSession) {
        self.session = session
        now = session.now
        planning = false
    }

    // MARK: Loading

    /// Loads notifications (locked on PostgreSQL) with their events; those loaded already are kept as they are.
    /// Subscribers and their channels are loaded when a run needs them (``ensureRecipients()``): finishing the last step
    /// of a run does not.
    func load(notificationIds: [String]) async throws {
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

    private var recipientsLoaded: Set<String> = []
    /// Subscribers of loaded notifications whose records are not loaded yet (kept as notifications are loaded, so that
    /// the per-run check is O(1) rather than a pass over every notification of the batch).
    private var recipientsPending: Set<String> = []

    /// Loads the subscribers and channels of every loaded notification not loaded yet, in batched queries.
    func ensureRecipients() async throws {
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
    }

    func integrations(_ channel: Channel) async throws -> [Integration] {
        if integrationsByChannel == nil {
            let all = try await session.integrations(environmentId: environmentId, activeOnly: true)
            integrationsByChannel = Dictionary(grouping: all, by: \.channel)
        }
        let list = integrationsByChannel?[channel] ?? []
        // Primary first (email/SMS), then oldest first: the order failover walks.
        return list.sorted { ($0.primary ? 0 : 1, $0.id) < ($1.primary ? 0 : 1, $1.id) }
    }

    /// The run of a loaded notification, with its persisted state.
    func run(_ notificationId: String) throws -> WorkflowRun? {
        if let run = runs[notificationId] { return run }
        guard let notification = notifications[notificationId], let event = eventRecords[notification.eventId] else { return nil }
        guard let workflow = engine.workflows.workflow(notification.workflowId) else { return nil }
        let state = RunState(stored: notification.state)
        let run = WorkflowRun(workflow: workflow, state: state, context: context(event: event, subscriberId: notification.subscriberId))
        runs[notificationId] = run
        return run
    }

    private func context(event: EventRecord, subscriberId: String) -> [String: JSONValue] {
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
    func start(notificationIds: [String]) async throws {
        try await load(notificationIds: notificationIds)
        for id in notificationIds { try await start(id) }
    }

    /// Starts a pending notification's run.
    func start(_ notificationId: String) async throws {
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
    func finishStep(_ notificationId: String, stepId: String, result: StepState) async throws {
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
    func resume(_ notificationId: String, stepId: String, digest: Bool) async throws {
        guard let status = notifications[notificationId]?.status, status == .running || status == .waiting else { return }
        try await ensureRecipients()
        guard var run = try run(notificationId) else { return }
        var directives: [RunDirective]
        if digest {
            let collected = try await session.closeDigest(notificationId: notificationId, stepId: stepId)
            directives = run.resume(stepId, events: collected?.events ?? [], count: collected?.count, now: now)
        } else {
            directives = run.resume(stepId, now: now)
        }
        details.append(detail(notificationId, stepId: stepId, status: .success, digest ? "digest_closed" : "delay_finished"))
        try await perform(directives, on: &run, notificationId: notificationId)
    }

    /// Cancels a run (a cancelled transaction).
    func cancel(_ notificationId: String) async throws {
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

    private func fail(_ notificationId: String, detail code: String) {
        notifications[notificationId]?.status = .completed
        dirty.insert(notificationId)
        details.append(detail(notificationId, stepId: nil, status: .failed, code))
    }

    // MARK: Directives

    private func perform(_ initial: [RunDirective], on run: inout WorkflowRun, notificationId: String) async throws {
        var queue = initial
        while !queue.isEmpty {
            let directive = queue.removeFirst()
            switch directive {
            case .send(let stepId):
                if let skip = try await send(stepId, run: run, notificationId: notificationId) {
                    details.append(detail(notificationId, stepId: stepId, status: .warning, skip))
                    queue += run.finish(stepId, with: StepState(status: .skipped, reason: skip), now: now)
                }
            case .wait(let stepId, let until):
                jobs.append((notificationId, resumeJob(notificationId, stepId: stepId, at: until, digest: false)))
                details.append(
                    detail(
                        notificationId, stepId: stepId, status: .pending, "delay_scheduled",
                        raw: ["until": .string(until.iso8601Milliseconds)]))
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
                    run.cancel(reason: "merged")
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

    private func resumeJob(_ notificationId: String, stepId: String, at: Date, digest: Bool) -> NewJob {
        NewJob(
            environmentId: environmentId, job: .resume,
            payload: ResumeJob(notification: notificationId, step: stepId, digest: digest).encoded(),
            transactionId: notifications[notificationId]?.transactionId, runAt: at)
    }

    /// Plans a channel step: selects integrations and targets, renders, records messages and deliveries, queues
    /// delivery jobs. Returns a skip reason when there is nothing to send to.
    private func send(_ stepId: String, run: WorkflowRun, notificationId: String) async throws -> String? {
        guard let notification = notifications[notificationId], let event = eventRecords[notification.eventId],
            let step = run.workflow.step(stepId), let channel = step.type.channel, let options = step.action.channelOptions
        else { return "unknown_step" }
        var candidates = try await integrations(channel)
        if let allowed = options.integrations { candidates = candidates.filter { allowed.contains($0.identifier) } }
        let subscriberChannels = channels[notification.subscriberId] ?? RecipientChannels()
        let profile = subscribers[notification.subscriberId]?.profile
        let base = StepRenderer.render(step, context: run.evaluationContext)

        // The provider overrides of each candidate, merged once (push targets may come from them).
        func overrides(_ integration: Integration) -> JSONValue {
            Overrides.merged(
                step: options.overrides[integration.providerId].map { Template.renderStrings(in: $0, context: run.evaluationContext) },
                trigger: event.overrides, stepId: stepId,
                providerId: integration.providerId)
        }
        var plans: [(Integration, [(target: String, deviceId: String?)], overrides: JSONValue)] = []
        switch channel {
        case .push:
            for integration in candidates {
                // Targets named by the overrides win, as in Novu: `deviceTokens` (any provider) or FCM's `tokens`
                // replace the stored tokens; an FCM `topic`/`condition` is one send whatever the subscriber's devices.
                let merged = overrides(integration)
                let object = merged.objectValue ?? [:]
                let named = (object["deviceTokens"] ?? (integration.providerId == "fcm" ? object["tokens"] : nil))?.arrayValue?
                    .compactMap(\.stringValue)
                if integration.providerId == "fcm", let topic = object["topic"]?.stringValue ?? object["condition"]?.stringValue {
                    plans.append((integration, [(topic, nil)], merged))
                } else if let named, !named.isEmpty {
                    plans.append((integration, named.map { ($0, nil) }, merged))
                } else {
                    let devices = subscriberChannels.devices.filter {
                        $0.integrationId == integration.id || ($0.integrationId == nil && $0.provider == integration.providerId)
                    }
                    if !devices.isEmpty { plans.append((integration, devices.map { ($0.token.revealed, $0.id) }, merged)) }
                }
            }
            if plans.isEmpty { return candidates.isEmpty ? "no_active_integration" : "missing_push_token" }
        case .chat:
            for integration in candidates {
                // Webhook chats post to the subscriber's own URL; Telegram sends to the subscriber's chat id.
                let credentials = subscriberChannels.credentials[integration.id]
                let target =
                    integration.providerId == "telegram"
                    ? (credentials?["chatId"] ?? credentials?["channel"]).flatMap {
                        $0.stringValue ?? ($0 == .null ? nil : $0.jsonString())
                    }
                    : credentials?["webhookUrl"]?.stringValue
                if let target, !target.isEmpty { plans.append((integration, [(target, nil)], overrides(integration))) }
            }
            if plans.isEmpty { return candidates.isEmpty ? "no_active_integration" : "missing_webhook_url" }
        case .email, .sms:
            let address = channel == .email ? profile?.email : profile?.phone
            guard let address, !address.isEmpty else { return channel == .email ? "missing_email" : "missing_phone" }
            guard let primary = candidates.first else { return "no_active_integration" }
            plans.append((primary, [(address, nil)], overrides(primary)))
        default:
            return "unsupported_channel"
        }

        for (integration, targets, merged) in plans {
            var content = base
            content.overrides = merged
            content.context = [
                "payload": event.payload, "subscriber": run.context["subscriber"] ?? .null,
                "step": ["id": .string(stepId), "type": .string(step.type.rawValue)], "transactionId": .string(event.transactionId),
            ]
            addMessage(notification: notification, stepId: stepId, integration: integration, content: content, targets: targets)
        }
        var channelsUsed = notifications[notificationId]?.channels ?? []
        if !channelsUsed.contains(channel.rawValue) { channelsUsed.append(channel.rawValue) }
        notifications[notificationId]?.channels = channelsUsed
        return nil
    }

    /// Records a message for one integration with a delivery per target, and queues the delivery jobs.
    func addMessage(
        notification: NotificationRecord, stepId: String, integration: Integration, content: MessageContent,
        targets: [(target: String, deviceId: String?)]
    ) {
        let message = MessageRecord(
            id: session.newId(), environmentId: environmentId, notificationId: notification.id, transactionId: notification.transactionId,
            workflowId: notification.workflowId, subscriberId: notification.subscriberId, stepId: stepId, channel: content.channel,
            integrationId: integration.id, providerId: integration.providerId, status: .pending, content: content,
            deviceTokens: targets.map(\.target), createdAt: now, updatedAt: now)
        messageIndex[message.id] = messages.count
        messages.append(message)
        details.append(
            detail(
                notification.id, stepId: stepId, status: .pending, "message_created", messageId: message.id,
                providerId: integration.providerId))
        let planned = targets.map { target in
            DeliveryRecord(
                id: session.newId(), environmentId: environmentId, messageId: message.id, deviceId: target.deviceId,
                integrationId: integration.id, providerId: integration.providerId, target: Secret(target.target), status: .pending,
                createdAt: now, updatedAt: now)
        }
        for delivery in planned {
            deliveryIndex[delivery.id] = deliveries.count
            deliveries.append(delivery)
        }
        // Deliveries are batched per integration and transaction across the whole batch of runs, so a topic page
        // becomes a few provider batches rather than one job per subscriber.
        outbound[[integration.id, integration.providerId, notification.transactionId], default: []] += planned.map(\.id)
    }

    private var outbound: [[String]: [String]] = [:]

    private func deliveryJobs() -> [NewJob] {
        var result: [NewJob] = []
        for (key, ids) in outbound.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
            let batchSize = max(1, engine.configuration.deliveryJobSize)
            for start in stride(from: 0, to: ids.count, by: batchSize) {
                result.append(
                    NewJob(
                        environmentId: environmentId, job: .deliver,
                        payload: DeliverJob(integration: key[0], deliveries: Array(ids[start..<min(start + batchSize, ids.count)]))
                            .encoded(),
                        transactionId: key[2]))
            }
        }
        outbound.removeAll()
        return result
    }

    // MARK: Records

    func detail(
        _ notificationId: String?, stepId: String?, status: ExecutionDetail.Status, _ code: String, messageId: String? = nil,
        deliveryId: String? = nil, providerId: String? = nil, source: ExecutionDetail.Source = .internal, isRetry: Bool = false,
        raw: [String: JSONValue]? = nil
    ) -> ExecutionDetail {
        ExecutionDetail(
            id: session.newId(), environmentId: environmentId, notificationId: notificationId, messageId: messageId, deliveryId: deliveryId,
            stepId: stepId, providerId: providerId, status: status, detail: code, source: source, isRetry: isRetry,
            raw: raw.map { JSONValue.object($0).jsonString() }, createdAt: now)
    }

    func record(_ extra: [ExecutionDetail]) { details += extra }
    func enqueue(_ extra: [NewJob]) { jobs += extra.map { (nil, $0) } }

    /// Writes everything the batch produced, with `deliver` jobs for the deliveries it planned and did not hand out.
    func flush() async throws {
        var updates: [(id: String, status: NotificationStatus, state: String, channels: [String])] = []
        for id in dirty.sorted() {
            guard let notification = notifications[id] else { continue }
            let state = runs[id]?.state.stored ?? notification.state
            updates.append((id, notification.status, state, notification.channels))
        }
        let queued = jobs.map(\.job) + deliveryJobs()
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
        dirty.removeAll()
    }

    /// Takes the deliveries planned so far out of the `deliver` jobs ``flush()`` would queue, with the batch's
    /// messages: the caller sends them itself and records their outcomes into the batch before it flushes.
    func takePlannedSends() -> (deliveries: [DeliveryRecord], messages: [String: MessageRecord]) {
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
    func discard(startedElsewhere: Set<String>, canceled: Set<String>) {
        let progress = startedElsewhere.union(canceled)
        guard !progress.isEmpty else { return }
        let dropped = Set(messages.filter { startedElsewhere.contains($0.notificationId) }.map(\.id))
        messages.removeAll { dropped.contains($0.id) }
        deliveries.removeAll { $0.messageId.map(dropped.contains) ?? false }
        details.removeAll { $0.notificationId.map(startedElsewhere.contains) ?? false }
        jobs.removeAll { $0.notificationId.map(progress.contains) ?? false }
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

    // MARK: Outcomes
    //
    // Recording outcomes reads and changes deliveries and messages: the batch's own in memory, the others in the store.

    /// The ledger ``OutcomeReducer`` decides on for deliveries sent for `messages` (and raw-send deliveries without
    /// one): the messages and deliveries of every step they belong to — the batch's own rows, plus the stored rows of
    /// runs this batch did not start (one query) — and the current status of raw-send deliveries. Load the
    /// notifications first (``load(notificationIds:)``): on PostgreSQL that locks them, so a cancel racing this
    /// recording has either committed before the ledger is read or waits for this transaction.
    func ledger(sent: [DeliveryRecord], messages: [String: MessageRecord]) async throws -> DeliveryLedger {
        var ledger = DeliveryLedger()
        let steps = Set(messages.values.map { StepKey(notificationId: $0.notificationId, stepId: $0.stepId) })
        for message in self.messages where steps.contains(StepKey(notificationId: message.notificationId, stepId: message.stepId)) {
            ledger.add(MessageHead(message))
        }
        for delivery in deliveries where delivery.messageId.map({ ledger.messages[$0] != nil }) ?? false {
            ledger.add(DeliverySummary(delivery))
        }
        let stored = steps.filter { !startedHere.contains($0.notificationId) }.sorted()
        if !stored.isEmpty {
            let rows = try await session.stepLedger(steps: stored.map { ($0.notificationId, $0.stepId) })
            for message in rows.messages { ledger.add(message) }
            for delivery in rows.deliveries { ledger.add(delivery) }
        }
        let raw = sent.filter { $0.messageId == nil }
        let own = raw.filter { deliveryIndex[$0.id] != nil }
        for delivery in own { ledger.add(DeliverySummary(deliveries[deliveryIndex[delivery.id]!])) }
        let others = raw.filter { deliveryIndex[$0.id] == nil }.map(\.id)
        if !others.isEmpty {
            for (id, status) in try await session.deliveryStatuses(ids: others) {
                ledger.add(DeliverySummary(id: id, messageId: nil, status: status, errorCode: nil, outcome: nil, errorText: nil))
            }
        }
        return ledger
    }

    /// Writes what ``OutcomeReducer`` decided: deliveries and messages (the batch's own in memory, the others in the
    /// store), removed and reached devices, deactivated chat credentials, retries, the trail, failovers — and feeds
    /// finished steps into their runs, which may plan their next steps into this batch.
    func apply(_ decision: OutcomeDecision) async throws {
        var stored: [DeliveryRecord] = []
        for var delivery in decision.deliveries {
            if let index = deliveryIndex[delivery.id] {
                delivery.updatedAt = now
                deliveries[index] = delivery
            } else {
                stored.append(delivery)
            }
        }
        try await session.updateDeliveries(stored)
        try await session.removeDevices(environmentId: environmentId, ids: decision.removeDevices)
        for (provider, tokens) in decision.removeTokens.sorted(by: { $0.key < $1.key }) {
            try await session.removeDevices(environmentId: environmentId, provider: provider, tokens: tokens)
        }
        try await session.markDevicesReached(ids: decision.reachedDevices)
        for channel in decision.deactivateChannels {
            try await session.deactivateChannel(
                environmentId: environmentId, subscriberId: channel.subscriberId, integrationId: channel.integrationId)
        }
        details += decision.details
        jobs += decision.retries.map { (nil, $0) }
        events += decision.events

        var storedMessages: [(id: String, status: MessageStatus, errorId: String?, errorText: String?)] = []
        for update in decision.messages {
            if let index = messageIndex[update.id] {
                messages[index].status = update.status
                messages[index].errorId = update.errorId
                messages[index].errorText = update.errorText
                messages[index].updatedAt = now
            } else {
                storedMessages.append((update.id, update.status, update.errorId, update.errorText))
            }
        }
        try await session.updateMessages(storedMessages)

        for failover in decision.failovers {
            guard let notification = notifications[failover.message.notificationId] else { continue }
            var content = failover.message.content
            content.overrides = .object([:])
            addMessage(
                notification: notification, stepId: failover.message.stepId, integration: failover.integration, content: content,
                targets: failover.message.deviceTokens.prefix(1).map { ($0, nil) })
        }
        for finished in decision.finishedSteps {
            try await finishStep(finished.step.notificationId, stepId: finished.step.stepId, result: finished.result)
        }
    }

    /// What happened in this batch (outcomes decided, runs finished), for the caller to report once it committed.
    private(set) var events: [DomainEvent] = []
}

/// Renders a channel step's templates into provider-neutral content.
enum StepRenderer {
    static func render(_ step: Step, context: JSONValue) -> MessageContent {
        switch step.action {
        case .push(let push, _):
            var data: [String: String] = [:]
            for (key, template) in push.data { data[key] = template.render(context) }
            return MessageContent(
                channel: .push, title: push.title?.render(context), body: push.body?.render(context) ?? "", data: data,
                image: push.image?.render(context).nonEmpty, sound: push.sound?.render(context).nonEmpty,
                badge: push.badge.flatMap { Int($0.render(context).trimmingCharacters(in: .whitespaces)) }, ttl: push.ttl?.seconds,
                priority: push.priority, collapseKey: push.collapseKey?.render(context).nonEmpty)
        case .chat(let chat, _):
            return MessageContent(channel: .chat, body: chat.body.render(context))
        case .email(let email, _):
            return MessageContent(
                channel: .email, title: email.subject.render(context), body: email.body.render(context), text: email.text?.render(context),
                from: email.from?.render(context).nonEmpty, senderName: email.senderName?.render(context).nonEmpty)
        case .sms(let sms, _):
            return MessageContent(channel: .sms, body: sms.body.render(context))
        case .delay, .digest:
            return MessageContent(channel: .push, body: "")
        }
    }
}

/// Provider overrides from the workflow and the trigger, deep-merged (later wins): the step's `overrides.<provider>`,
/// the trigger's legacy `overrides.<provider>`, `overrides.providers.<provider>`, then
/// `overrides.steps.<stepId>.providers.<provider>`.
enum Overrides {
    static func merged(step: JSONValue?, trigger: JSONValue, stepId: String, providerId: String) -> JSONValue {
        var result: JSONValue = step ?? .object([:])
        let object = trigger.objectValue ?? [:]
        for layer in [
            object[providerId], object["providers"]?.objectValue?[providerId],
            object["steps"]?.objectValue?[stepId]?.objectValue?["providers"]?.objectValue?[providerId],
        ] {
            if let layer { result = result.deepMerged(with: layer) }
        }
        return result
    }
}

extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}
