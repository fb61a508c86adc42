import Foundation
import HeraldCore
import HeraldStore
import HeraldWorkflow

extension Engine {
    /// Sends a batch of deliveries to one integration, then records the outcomes in one transaction: retries are
    /// scheduled, invalid tokens removed (behind the mass-deletion guard), messages and steps finished, runs
    /// advanced, and email/SMS failed over to the next integration when the first cannot deliver.
    func deliver(_ job: DeliverJob, environmentId: String) async throws -> JobResult {
        let loaded = try await store.read { session -> ([DeliveryRecord], [String: MessageRecord], [String: PushSend], Integration?) in
            let deliveries = try await session.deliveries(ids: job.deliveries).filter { !$0.status.isFinal }
            let messages = try await session.messages(ids: Array(Set(deliveries.compactMap(\.messageId))))
            let pushes = try await session.pushes(ids: Array(Set(deliveries.compactMap(\.pushId))))
            let integration = try await session.integration(environmentId: environmentId, id: job.integration)
            return (deliveries, messages, pushes, integration)
        }
        let (deliveries, messages, pushes, integration) = loaded
        guard !deliveries.isEmpty else { return .done }
        let contents = try await contents(of: deliveries, messages: messages, pushes: pushes)
        let sent = await sendBatch(
            deliveries.filter { contents[$0.id] != nil }, contents: contents, integrationId: job.integration, integration: integration,
            messages: messages)
        let context = self.context
        let metrics = self.metrics
        try await store.transaction(durability: .replayable) { session in
            let batch = RunBatch(session: session, engine: context, environmentId: environmentId)
            try await Self.record(sent, messages: messages, environmentId: environmentId, into: batch, metrics: metrics)
            try await batch.flush()
        }
        return .done
    }

    /// Sends deliveries that all go through one integration and returns their outcomes (nothing is written). An
    /// integration that is inactive, deleted or unusable fails them as `authConfig`; credentials that can expire are
    /// refreshed once and the messages they failed sent again.
    func sendBatch(
        _ deliveries: [DeliveryRecord], contents: [String: MessageContent], integrationId: String, integration: Integration?,
        messages: [String: MessageRecord]
    ) async -> SentBatch {
        var outcomes: [DeliveryOutcome]
        var receiptDelay: Duration?
        let providerId = integration?.providerId ?? deliveries.first?.providerId ?? "unknown"
        if let integration, integration.active {
            do {
                let provider = try context.providers.provider(for: integration)
                receiptDelay = (provider as? any ReceiptProvider)?.receiptDelay
                let batch = deliveries.map { OutboundMessage(deliveryId: $0.id, target: $0.target, content: contents[$0.id]!) }
                let started = ContinuousClock.now
                outcomes = await Self.send(batch, with: provider)
                metrics.providerCallSeconds.observe(ContinuousClock.now - started, providerId)
                let authFailures = outcomes.indices.filter { if case .authConfig = outcomes[$0] { true } else { false } }
                if !authFailures.isEmpty {
                    await provider.refreshCredentials()
                    let again = await Self.send(authFailures.map { batch[$0] }, with: provider)
                    for (index, outcome) in zip(authFailures, again) { outcomes[index] = outcome }
                }
            } catch {
                let reason = (error as? HeraldError)?.message ?? "the integration's credentials are unusable"
                outcomes = deliveries.map { _ in .authConfig(reason: reason) }
            }
        } else {
            outcomes = deliveries.map { _ in .authConfig(reason: "integration \(integrationId) is inactive or deleted") }
        }
        for (delivery, outcome) in zip(deliveries, outcomes) {
            metrics.deliveries.increment(providerId, outcome.label)
            if delivery.pushId != nil || messages[delivery.messageId ?? ""]?.channel == .push {
                metrics.pushNotifications.increment(providerId, delivery.platform ?? "unknown", outcome.label)
            }
        }
        return SentBatch(
            integrationId: integrationId, integration: integration, sent: deliveries,
            results: Dictionary(zip(deliveries.map(\.id), outcomes), uniquingKeysWith: { first, _ in first }), receiptDelay: receiptDelay)
    }

    /// Records the outcomes of a sent batch into `runs` (``apply(_:deliveries:messages:integrationId:integration:environmentId:batch:metrics:)``)
    /// and, for a provider with receipts, queues the job that fetches them. The caller flushes `runs`.
    static func record(
        _ batch: SentBatch, messages: [String: MessageRecord], environmentId: String, into runs: RunBatch, metrics: EngineMetrics
    ) async throws {
        try await apply(
            batch.results, deliveries: batch.sent, messages: messages, integrationId: batch.integrationId, integration: batch.integration,
            environmentId: environmentId, batch: runs, metrics: metrics)
        guard let delay = batch.receiptDelay else { return }
        let delivered = batch.sent.map(\.id).filter { if case .delivered(let id)? = batch.results[$0], id != nil { true } else { false } }
        guard !delivered.isEmpty else { return }
        let at = runs.now.addingTimeInterval(Double(delay.components.seconds))
        runs.enqueue([
            NewJob(
                environmentId: environmentId, job: .receipts,
                payload: ReceiptsJob(integration: batch.integrationId, deliveries: delivered, attempt: 0).encoded(), runAt: at)
        ])
    }

    /// What each delivery sends: its message's content, or its raw send's payload for the provider. Deliveries of
    /// raw sends cancelled or expired meanwhile are finished here, unsent, and get no content.
    private func contents(
        of deliveries: [DeliveryRecord], messages: [String: MessageRecord], pushes: [String: PushSend]
    ) async throws -> [String: MessageContent] {
        var result: [String: MessageContent] = [:]
        var requests: [String: PushSendRequest] = [:]
        var stopped: [DeliveryRecord] = []
        let now = store.clock.now()
        for delivery in deliveries {
            if let message = delivery.messageId.flatMap({ messages[$0] }) {
                result[delivery.id] = message.content
            } else if let pushId = delivery.pushId, let push = pushes[pushId] {
                var finished = delivery
                if push.status == .canceled {
                    finished.status = .canceled
                } else if let expireAt = push.expireAt, expireAt <= now {
                    (finished.status, finished.errorCode, finished.errorText) = (.failed, "expired", "expire_at passed before it was sent")
                } else {
                    if requests[pushId] == nil { requests[pushId] = try PushSendRequest(json: push.request) }
                    result[delivery.id] = requests[pushId]?.content(providerId: delivery.providerId)
                    continue
                }
                stopped.append(finished)
            }
        }
        if !stopped.isEmpty {
            let finished = stopped
            try await store.transaction(durability: .replayable) { try await $0.updateDeliveries(finished) }
        }
        return result
    }

    /// Sends messages in the provider's batch size, at most its declared concurrency of batches at a time; one
    /// outcome per message, in order.
    static func send(_ messages: [OutboundMessage], with provider: any DeliveryProvider) async -> [DeliveryOutcome] {
        let size = max(1, provider.batchSize)
        let chunks = stride(from: 0, to: messages.count, by: size).map { Array(messages[$0..<min($0 + size, messages.count)]) }
        guard chunks.count > 1 else { return await provider.send(messages) }
        var results = [[DeliveryOutcome]](repeating: [], count: chunks.count)
        await withTaskGroup(of: (Int, [DeliveryOutcome]).self) { group in
            var next = 0
            func start() {
                let index = next
                next += 1
                group.addTask { (index, await provider.send(chunks[index])) }
            }
            while next < min(chunks.count, max(1, provider.concurrency)) { start() }
            for await (index, outcomes) in group {
                results[index] = outcomes
                if next < chunks.count { start() }
            }
        }
        return results.flatMap { $0 }
    }

    /// `deliveries` and `messages` are the records read (or planned) before sending: a delivery changes only here (one
    /// job per delivery at a time) or by a cancel, and a message's identity and content never change. Rows the batch
    /// holds unwritten (a run job's first sends) are changed in memory; the caller flushes the batch.
    private static func apply(
        _ results: [String: DeliveryOutcome], deliveries sent: [DeliveryRecord], messages loaded: [String: MessageRecord],
        integrationId: String, integration: Integration?, environmentId: String, batch: RunBatch, metrics: EngineMetrics
    ) async throws {
        let session = batch.session
        let now = batch.now
        let configuration = batch.engine.configuration
        // Re-read the statuses under the transaction: a cancel may have finished some of these meanwhile.
        let statuses = try await batch.deliveryStatuses(ids: sent.map(\.id))
        var deliveries = sent.filter { statuses[$0.id].map { !$0.isFinal } ?? false }
        guard !deliveries.isEmpty else { return }
        let messageIds = Set(deliveries.compactMap(\.messageId))
        let messages = loaded.filter { messageIds.contains($0.key) }
        try await batch.load(notificationIds: Array(Set(messages.values.map(\.notificationId))))

        let outcomes = deliveries.compactMap { results[$0.id] }
        let invalidCount = outcomes.filter { if case .invalidToken = $0 { true } else { false } }.count
        var removalAllowed = true
        if invalidCount > 0, invalidCount == outcomes.count, let integration, integration.channel == .push {
            let total = try await session.integrationTokenCount(
                environmentId: environmentId, integrationId: integration.id, providerId: integration.providerId)
            removalAllowed = configuration.invalidTokenGuard.allowsRemoval(batch: outcomes, integrationTokenCount: total)
        }

        var generator = SystemRandomNumberGenerator()
        var removeDevices: [String] = []
        var removeTokens: [String: [String]] = [:]
        var reached: [String] = []
        var retryJobs: [NewJob] = []
        var details: [ExecutionDetail] = []
        for index in deliveries.indices {
            guard let outcome = results[deliveries[index].id] else { continue }
            var delivery = deliveries[index]
            let message = delivery.messageId.flatMap { messages[$0] }
            delivery.attempts += 1
            delivery.windowStartedAt = delivery.windowStartedAt ?? now
            delivery.outcome = outcome.label
            delivery.errorText = outcome.reason.map { String($0.prefix(500)) }
            delivery.nextAttemptAt = nil
            let notificationId = message?.notificationId
            switch outcome {
            case .delivered(let providerMessageId):
                delivery.status = .delivered
                delivery.providerMessageId = providerMessageId
                if let deviceId = delivery.deviceId { reached.append(deviceId) }
            case .invalidToken(let reason):
                if message?.channel == .chat, let message, let integrationId = delivery.integrationId {
                    delivery.status = .invalid
                    try await session.deactivateChannel(
                        environmentId: environmentId, subscriberId: message.subscriberId, integrationId: integrationId)
                    details.append(
                        batch.detail(
                            notificationId, stepId: message.stepId, status: .warning, "chat_webhook_deactivated", messageId: message.id,
                            deliveryId: delivery.id, providerId: delivery.providerId, source: .webhook, raw: ["reason": .string(reason)]))
                } else if let message, message.channel == .sms || message.channel == .email {
                    // A number or address the provider refuses (invalid, unsubscribed): final, never retried.
                    delivery.status = .invalid
                    delivery.errorCode = "invalid_address"
                    details.append(
                        batch.detail(
                            notificationId, stepId: message.stepId, status: .failed, "recipient_address_invalid", messageId: message.id,
                            deliveryId: delivery.id, providerId: delivery.providerId, source: .credentials, raw: ["reason": .string(reason)]
                        ))
                } else if removalAllowed {
                    delivery.status = .invalid
                    if let deviceId = delivery.deviceId {
                        removeDevices.append(deviceId)
                    } else if delivery.pushId != nil {
                        // A raw token of a raw send: the device registered with it, if any, is just as dead.
                        removeTokens[delivery.providerId, default: []].append(delivery.target.revealed)
                    }
                    metrics.tokensRemoved.increment(delivery.providerId)
                    details.append(
                        batch.detail(
                            notificationId, stepId: message?.stepId, status: .warning, "push_invalid_token_removed", messageId: message?.id,
                            deliveryId: delivery.id, providerId: delivery.providerId, source: .credentials, raw: ["reason": .string(reason)]
                        ))
                } else {
                    delivery.status = .failed
                    delivery.errorCode = "invalid_token_removal_withheld"
                    metrics.tokenRemovalsWithheld.increment(delivery.providerId)
                    details.append(
                        batch.detail(
                            notificationId, stepId: message?.stepId, status: .failed, "invalid_token_removal_withheld",
                            messageId: message?.id,
                            deliveryId: delivery.id, providerId: delivery.providerId, source: .credentials,
                            raw: ["reason": .string("every token of the batch failed as invalid; suspect the integration's configuration")])
                    )
                }
            case .retryLater(_, let after):
                let elapsed = Duration.milliseconds(now.millisecondsSince1970 - (delivery.windowStartedAt ?? now).millisecondsSince1970)
                if let delay = configuration.retryPolicy.delay(
                    afterAttempt: delivery.attempts, elapsed: elapsed, retryAfter: after, using: &generator)
                {
                    delivery.status = .retrying
                    let at = now.addingTimeInterval(Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18)
                    delivery.nextAttemptAt = at
                    retryJobs.append(
                        NewJob(
                            environmentId: environmentId, job: .deliver,
                            payload: DeliverJob(integration: integrationId, deliveries: [delivery.id]).encoded(),
                            transactionId: message?.transactionId, runAt: at, priority: .backlog))
                    details.append(
                        batch.detail(
                            notificationId, stepId: message?.stepId, status: .pending, "delivery_retry_scheduled", messageId: message?.id,
                            deliveryId: delivery.id, providerId: delivery.providerId, isRetry: true,
                            raw: [
                                "attempt": .number(Double(delivery.attempts)), "at": .string(at.iso8601Milliseconds),
                                "reason": .string(outcome.reason ?? ""),
                            ]))
                } else {
                    delivery.status = .dead
                    metrics.deadDeliveries.increment(delivery.providerId)
                    details.append(
                        batch.detail(
                            notificationId, stepId: message?.stepId, status: .failed, "delivery_retries_exhausted", messageId: message?.id,
                            deliveryId: delivery.id, providerId: delivery.providerId, raw: ["attempts": .number(Double(delivery.attempts))])
                    )
                }
            case .badRequest:
                delivery.status = .failed
                delivery.errorCode = "bad_request"
            case .authConfig:
                delivery.status = .failed
                delivery.errorCode = "auth_config"
            }
            deliveries[index] = delivery
        }
        try await batch.updateDeliveries(deliveries)
        try await session.removeDevices(environmentId: environmentId, ids: removeDevices)
        for (provider, tokens) in removeTokens {
            try await session.removeDevices(environmentId: environmentId, provider: provider, tokens: tokens)
        }
        try await session.markDevicesReached(ids: reached)
        // Raw sends keep no activity trail (their deliveries and statistics are the record).
        batch.record(details.filter { $0.notificationId != nil })
        batch.enqueue(retryJobs)

        // Finish messages whose deliveries are all final, then steps whose messages are all final.
        let all = try await batch.deliverySummaries(messageIds: Array(messages.keys))
        let byMessage = Dictionary(grouping: all, by: \.messageId)
        var steps: Set<[String]> = []
        var messageUpdates: [(id: String, status: String, errorId: String?, errorText: String?)] = []
        for message in messages.values {
            let list = byMessage[message.id] ?? []
            guard list.allSatisfy(\.status.isFinal) else { continue }
            let delivered = list.filter { $0.status == .delivered }.count
            let failures = list.filter { $0.status != .delivered && $0.status != .canceled }
            let status = failures.isEmpty ? "sent" : delivered > 0 ? "warning" : "error"
            let lastFailure = failures.last
            messageUpdates.append((message.id, status, lastFailure?.errorCode ?? lastFailure?.outcome, lastFailure?.errorText))
            batch.record([
                batch.detail(
                    message.notificationId, stepId: message.stepId, status: delivered > 0 ? .success : .failed,
                    delivered > 0 ? "message_sent" : "message_failed", messageId: message.id, providerId: message.providerId,
                    raw: ["delivered": .number(Double(delivered)), "failed": .number(Double(failures.count))])
            ])
            // Email and SMS fail over to the next active integration when this one could not deliver for reasons
            // that another provider may not share (credentials, configuration, an outage outlasting the retries).
            if delivered == 0, message.channel == .email || message.channel == .sms,
                failures.contains(where: { $0.status == .dead || $0.errorCode == "auth_config" }),
                let notification = batch.notifications[message.notificationId]
            {
                let tried = try await batch.integrationsTried(notificationId: message.notificationId, stepId: message.stepId)
                if let next = try await batch.integrations(message.channel).first(where: { !tried.contains($0.id) }) {
                    batch.record([
                        batch.detail(
                            message.notificationId, stepId: message.stepId, status: .warning, "provider_failover", messageId: message.id,
                            providerId: next.providerId, raw: ["from": .string(message.providerId ?? ""), "to": .string(next.identifier)])
                    ])
                    var content = message.content
                    content.overrides = .object([:])
                    batch.addMessage(
                        notification: notification, stepId: message.stepId, integration: next, content: content,
                        targets: message.deviceTokens.prefix(1).map { ($0, nil) })
                    continue
                }
            }
            steps.insert([message.notificationId, message.stepId])
        }
        try await batch.updateMessages(messageUpdates)
        let allCounts = try await batch.stepDeliveryCounts(steps: Array(steps))
        for key in steps.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            let counts = allCounts[key] ?? [:]
            guard (counts[.pending] ?? 0) + (counts[.retrying] ?? 0) == 0 else { continue }
            let delivered = counts[.delivered] ?? 0
            let failed = (counts[.failed] ?? 0) + (counts[.invalid] ?? 0) + (counts[.dead] ?? 0)
            let result = StepState(status: delivered > 0 ? .completed : .failed, delivered: delivered, failed: failed)
            try await batch.finishStep(key[0], stepId: key[1], result: result)
        }
    }
}

extension Engine {
    /// Re-drives dead or failed deliveries: each gets a fresh retry window and goes back on the queue. Returns the
    /// deliveries re-driven (others — unknown, or not in a failed state — are left alone).
    public func redrive(environmentId: String, deliveryIds: [String]) async throws -> [DeliveryRecord] {
        try await store.transaction { session in
            var deliveries = try await session.deliveries(environmentId: environmentId, ids: deliveryIds)
                .filter { $0.status == .dead || $0.status == .failed }
            guard !deliveries.isEmpty else { return [] }
            let messages = try await session.messages(ids: Array(Set(deliveries.compactMap(\.messageId))))
            for index in deliveries.indices {
                deliveries[index].status = .pending
                deliveries[index].windowStartedAt = nil
                deliveries[index].nextAttemptAt = nil
                deliveries[index].errorCode = nil
            }
            try await session.updateDeliveries(deliveries)
            var jobs: [NewJob] = []
            for (integrationId, group) in Dictionary(grouping: deliveries, by: { $0.integrationId ?? "" }) {
                for start in stride(from: 0, to: group.count, by: 100) {
                    let chunk = group[start..<min(start + 100, group.count)]
                    jobs.append(
                        NewJob(
                            environmentId: environmentId, job: .deliver,
                            payload: DeliverJob(integration: integrationId, deliveries: chunk.map(\.id)).encoded(),
                            transactionId: chunk.first?.messageId.flatMap { messages[$0]?.transactionId }, priority: .backlog))
                }
            }
            let now = session.now
            try await session.appendDetails(
                deliveries.map { delivery in
                    ExecutionDetail(
                        id: session.newId(), environmentId: environmentId,
                        notificationId: delivery.messageId.flatMap { messages[$0]?.notificationId },
                        messageId: delivery.messageId, deliveryId: delivery.id, stepId: delivery.messageId.flatMap { messages[$0]?.stepId },
                        providerId: delivery.providerId, status: .pending, detail: "delivery_redriven", isRetry: true, createdAt: now)
                })
            try await session.enqueue(jobs)
            return deliveries
        }
    }
}

/// Deliveries sent through one integration, with their outcomes, not yet recorded.
struct SentBatch: Sendable {
    let integrationId: String
    let integration: Integration?
    let sent: [DeliveryRecord]
    let results: [String: DeliveryOutcome]
    let receiptDelay: Duration?

    /// The batch without the deliveries not in `kept`.
    func keeping(_ kept: Set<String>) -> SentBatch {
        SentBatch(
            integrationId: integrationId, integration: integration, sent: sent.filter { kept.contains($0.id) },
            results: results.filter { kept.contains($0.key) }, receiptDelay: receiptDelay)
    }
}
