import Foundation
import HeraldCore
import HeraldStore
import HeraldWorkflow
import Logging

extension Engine {
    /// Sends a batch of deliveries to one integration, then records the outcomes in one transaction: retries are
    /// scheduled, invalid tokens removed (behind the mass-deletion guard), messages and steps finished, runs
    /// advanced, and email/SMS failed over to the next integration when the first cannot deliver.
    func deliver(_ job: DeliverJob, environmentId: String, attempt: Int) async throws -> JobResult {
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
        let journal = try await SentJournal.open(writer: journalWriter, attempt: attempt, deliveryIds: deliveries.map(\.id))
        let sent = await sendBatch(
            deliveries.filter { contents[$0.id] != nil }, contents: contents, integrationId: job.integration, integration: integration,
            messages: messages, journal: journal)
        let context = self.context
        let events = try await store.transaction(durability: .replayable) { session in
            var batch = RunBatch(session: session, engine: context, environmentId: environmentId)
            var random = context.random
            try await Self.record(sent, messages: messages, environmentId: environmentId, into: &batch, random: &random)
            try await batch.flush()
            try await journal.forget(in: session)
            try await webhooks.stage(batch.events, environmentId: environmentId, session: session, known: batch.notifications)
            return batch.events
        }
        committed(events)
        return .done
    }

    /// Sends deliveries that all go through one integration and returns their outcomes (nothing is written). An
    /// integration that is inactive, deleted or unusable fails them as `authConfig`; credentials that can expire are
    /// refreshed once and the messages they failed sent again. Accepted sends are journaled as each provider call
    /// returns, and deliveries an earlier attempt of the job journaled are not sent again (``SentJournal``).
    func sendBatch(
        _ all: [DeliveryRecord], contents: [String: MessageContent], integrationId: String, integration: Integration?,
        messages: [String: MessageRecord], journal: SentJournal
    ) async -> SentBatch {
        var outcomes: [DeliveryOutcome]
        var receiptDelay: Duration?
        let providerId = integration?.providerId ?? all.first?.providerId ?? "unknown"
        var earlier: [String: DeliveryOutcome] = [:]
        for delivery in all {
            if let providerMessageId = journal.sentEarlier(delivery.id) {
                earlier[delivery.id] = .delivered(providerMessageId: providerMessageId)
            }
        }
        let deliveries = earlier.isEmpty ? all : all.filter { earlier[$0.id] == nil }
        if deliveries.isEmpty {
            outcomes = []
        } else if let integration, integration.active {
            do {
                let provider = try context.providers.provider(for: integration)
                receiptDelay = (provider as? any ReceiptProvider)?.receiptDelay
                let batch = deliveries.map { OutboundMessage(deliveryId: $0.id, target: $0.target, content: contents[$0.id]!) }
                let started = ContinuousClock.now
                outcomes = await Self.send(batch, with: provider, journal: journal)
                metrics.providerCallSeconds.observe(ContinuousClock.now - started, providerId)
                let authFailures = outcomes.indices.filter { if case .authConfig = outcomes[$0] { true } else { false } }
                if !authFailures.isEmpty {
                    await provider.refreshCredentials()
                    let again = await Self.send(authFailures.map { batch[$0] }, with: provider, journal: journal)
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
            integrationId: integrationId, integration: integration, sent: all,
            results: Dictionary(zip(deliveries.map(\.id), outcomes), uniquingKeysWith: { first, _ in first }).merging(earlier) { sent, _ in
                sent
            },
            receiptDelay: receiptDelay)
    }

    /// Records the outcomes of a sent batch into `runs`: loads (and on PostgreSQL locks) the runs, reads the ledger of
    /// their steps, lets ``OutcomeReducer`` decide, and applies the decision to the batch; for a provider with receipts,
    /// queues the job that fetches them. The caller flushes `runs`. `messages` are the records read (or planned)
    /// before sending: a delivery changes only here (one job per delivery at a time) or by a cancel, and a message's
    /// identity and content never change.
    static func record(
        _ batch: SentBatch, messages loaded: [String: MessageRecord], environmentId: String, into runs: inout RunBatch,
        random: inout some RandomNumberGenerator
    ) async throws {
        let messageIds = Set(batch.sent.compactMap(\.messageId))
        let messages = loaded.filter { messageIds.contains($0.key) }
        try await runs.load(notificationIds: Array(Set(messages.values.map(\.notificationId))).sorted())
        var ledger = try await runs.ledger(sent: batch.sent, messages: messages)
        let configuration = runs.engine.configuration
        let reducer = OutcomeReducer(
            environmentId: environmentId, integrationId: batch.integrationId, integration: batch.integration, now: runs.now,
            retryPolicy: configuration.retryPolicy, invalidTokenGuard: configuration.invalidTokenGuard, ids: runs.session.idGenerator)
        let open = OutcomeReducer.open(batch.sent, results: batch.results, ledger: ledger)
        if !open.isEmpty {
            var tokenCount: Int?
            if reducer.needsTokenCount(open, results: batch.results), let integration = batch.integration {
                tokenCount = try await runs.session.integrationTokenCount(
                    environmentId: environmentId, integrationId: integration.id, providerId: integration.providerId)
            }
            var candidates: [Channel: [Integration]] = [:]
            for channel in Set(messages.values.map(\.channel)) where channel == .email || channel == .sms {
                candidates[channel] = try await runs.integrations(channel)
            }
            let decision = reducer.reduce(
                open, results: batch.results, messages: messages, ledger: &ledger, tokenCount: tokenCount, candidates: candidates,
                random: &random)
            try await runs.apply(decision)
            logUndelivered(decision.deliveries, batch: batch, logger: runs.engine.logger)
        }
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

    /// Makes failed and retried sends visible: one `info` line per batch with the counts per status and outcome
    /// class and the first error, and at `debug` one line per delivery (provider, integration, attempt, error).
    static func logUndelivered(_ deliveries: [DeliveryRecord], batch: SentBatch, logger: Logger) {
        let undelivered = deliveries.filter { $0.status != .delivered }
        guard !undelivered.isEmpty else { return }
        let provider = batch.integration?.providerId ?? undelivered[0].providerId
        var counts: [String: Int] = [:]
        for delivery in undelivered { counts["\(delivery.status.rawValue)/\(delivery.outcome ?? "-")", default: 0] += 1 }
        logger.info(
            "deliveries not delivered",
            metadata: [
                "provider": "\(provider)", "integration": "\(batch.integrationId)", "sent": "\(batch.sent.count)",
                "counts": "\(counts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))",
                "maxAttempt": "\(undelivered.map(\.attempts).max() ?? 0)", "firstError": "\(undelivered[0].errorText ?? "-")",
            ])
        guard logger.logLevel <= .debug else { return }
        for delivery in undelivered {
            logger.debug(
                "delivery not delivered",
                metadata: [
                    "delivery": "\(delivery.id)", "provider": "\(delivery.providerId)", "integration": "\(batch.integrationId)",
                    "status": "\(delivery.status.rawValue)", "outcome": "\(delivery.outcome ?? "-")", "attempt": "\(delivery.attempts)",
                    "error": "\(delivery.errorText ?? "-")",
                    "nextAttempt": "\(delivery.nextAttemptAt?.iso8601Milliseconds ?? "-")",
                ])
        }
    }

    /// What each delivery sends: its message's content, or its raw send's payload for the provider. Deliveries of
    /// raw sends cancelled or expired meanwhile are finished here, unsent, and get no content.
    private func contents(
        of deliveries: [DeliveryRecord], messages: [String: MessageRecord], pushes: [String: PushSend]
    ) async throws -> [String: MessageContent] {
        var result: [String: MessageContent] = [:]
        var renderers: [String: PushRenderer] = [:]
        var stopped: [DeliveryRecord] = []
        let now = store.clock.now()
        for (pushId, push) in pushes { renderers[pushId] = PushRenderer(request: try PushSendRequest(json: push.request)) }
        // Templated sends render per device (docs/api.md §Personalisation): their devices, in one query.
        let templated = deliveries.filter { delivery in
            delivery.pushId.flatMap { renderers[$0]?.request.personalization.templating } == true && delivery.deviceId != nil
        }
        let environmentId = deliveries.first?.environmentId ?? ""
        let devices: [String: Device] =
            templated.isEmpty
            ? [:]
            : try await store.read {
                try await $0.devices(environmentId: environmentId, ids: templated.compactMap(\.deviceId), topics: false)
            }
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
                    result[delivery.id] = renderers[pushId]?.content(
                        providerId: delivery.providerId, device: delivery.deviceId.flatMap { devices[$0] })
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
    static func send(_ messages: [OutboundMessage], with provider: any DeliveryProvider, journal: SentJournal?) async -> [DeliveryOutcome] {
        let size = max(1, provider.batchSize)
        let chunks = stride(from: 0, to: messages.count, by: size).map { Array(messages[$0..<min($0 + size, messages.count)]) }
        @Sendable func call(_ chunk: [OutboundMessage]) async -> [DeliveryOutcome] {
            guard let journal else { return await provider.send(chunk) }
            let outcomes = await provider.send(chunk) { index, outcome in await journal.note(chunk[index], outcome) }
            await journal.flush()
            return outcomes
        }
        guard chunks.count > 1 else { return await call(messages) }
        var results = [[DeliveryOutcome]](repeating: [], count: chunks.count)
        await withTaskGroup(of: (Int, [DeliveryOutcome]).self) { group in
            var next = 0
            func start() {
                let index = next
                next += 1
                group.addTask { (index, await call(chunks[index])) }
            }
            while next < min(chunks.count, max(1, provider.concurrency)) { start() }
            for await (index, outcomes) in group {
                results[index] = outcomes
                if next < chunks.count { start() }
            }
        }
        return results.flatMap { $0 }
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
