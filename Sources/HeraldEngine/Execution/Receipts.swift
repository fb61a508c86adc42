import Foundation
import HeraldCore
import HeraldStore

extension Engine {
    /// Asks a ``ReceiptProvider`` for the receipts of delivered messages and applies them: a dead device is removed
    /// (behind the mass-deletion guard) with `push_invalid_token_removed`, any other error marks the delivery failed
    /// with `provider_receipt_error`. Ids without a receipt yet are asked again after the provider's delay, at most
    /// three times; a failed request is retried the same way.
    func receipts(_ job: ReceiptsJob, environmentId: String) async throws -> JobResult {
        let loaded = try await store.read { session -> ([DeliveryRecord], Integration?) in
            let deliveries = try await session.deliveries(ids: job.deliveries).filter {
                $0.status == .delivered && $0.providerMessageId != nil
            }
            return (deliveries, try await session.integration(environmentId: environmentId, id: job.integration))
        }
        let (deliveries, integration) = loaded
        guard !deliveries.isEmpty, let integration, integration.active,
            let provider = try? context.providers.provider(for: integration) as? any ReceiptProvider
        else { return .done }
        let receipts: [String: DeliveryOutcome]
        do {
            receipts = try await provider.receipts(deliveries.compactMap(\.providerMessageId))
        } catch {
            logger.warning("receipts request failed", metadata: ["provider": "\(integration.providerId)", "error": "\(type(of: error))"])
            receipts = [:]
        }
        let pending = deliveries.filter { receipts[$0.providerMessageId!] == nil }.map(\.id)
        let configuration = self.configuration
        let context = self.context
        let events = try await store.transaction(durability: .replayable) { session -> [DomainEvent] in
            var events: [DomainEvent] = []
            var updated: [DeliveryRecord] = []
            var remove: [String] = []
            var details: [ExecutionDetail] = []
            let messages = try await session.messages(ids: Array(Set(deliveries.compactMap(\.messageId))), content: false)
            var batch = RunBatch(session: session, engine: context, environmentId: environmentId)
            try await batch.load(notificationIds: Array(Set(messages.values.map(\.notificationId))))
            let outcomes = deliveries.compactMap { receipts[$0.providerMessageId!] }
            let failures = outcomes.filter { if case .delivered = $0 { false } else { true } }
            var removalAllowed = true
            if failures.count == outcomes.count, !failures.isEmpty {
                let total = try await session.integrationTokenCount(
                    environmentId: environmentId, integrationId: integration.id, providerId: integration.providerId)
                removalAllowed = configuration.invalidTokenGuard.allowsRemoval(batch: outcomes, integrationTokenCount: total)
            }
            for var delivery in deliveries {
                guard let outcome = receipts[delivery.providerMessageId!] else { continue }
                let message = delivery.messageId.flatMap { messages[$0] }
                switch outcome {
                case .delivered:
                    continue
                case .invalidToken(let reason) where removalAllowed:
                    delivery.status = .invalid
                    if let deviceId = delivery.deviceId { remove.append(deviceId) }
                    events.append(
                        DomainEvent(
                            .deviceRemoved, notificationId: message?.notificationId, messageId: message?.id, deliveryId: delivery.id,
                            stepId: message?.stepId, channel: .push, integrationId: integration.id, providerId: delivery.providerId,
                            deviceId: delivery.deviceId, reason: reason))
                    details.append(
                        batch.detail(
                            message?.notificationId, stepId: message?.stepId, status: .warning, "push_invalid_token_removed",
                            messageId: message?.id, deliveryId: delivery.id, providerId: delivery.providerId, source: .credentials,
                            raw: ["reason": .string(reason), "from": "receipt"]))
                default:
                    delivery.status = .failed
                    if case .invalidToken(let reason) = outcome {
                        // The whole batch came back dead: held back by the mass-deletion guard, as for send results.
                        events.append(
                            DomainEvent(
                                .deviceRemovalWithheld, notificationId: message?.notificationId, messageId: message?.id,
                                deliveryId: delivery.id, stepId: message?.stepId, channel: .push, integrationId: integration.id,
                                providerId: delivery.providerId, deviceId: delivery.deviceId, reason: reason))
                    }
                    details.append(
                        batch.detail(
                            message?.notificationId, stepId: message?.stepId, status: .failed, "provider_receipt_error",
                            messageId: message?.id,
                            deliveryId: delivery.id, providerId: delivery.providerId,
                            raw: ["outcome": .string(outcome.label), "reason": .string(outcome.reason ?? "")]))
                }
                delivery.outcome = outcome.label
                delivery.errorText = outcome.reason.map { String($0.prefix(500)) }
                updated.append(delivery)
            }
            try await session.updateDeliveries(updated)
            try await session.removeDevices(environmentId: environmentId, ids: remove)
            batch.record(details)
            if !pending.isEmpty, job.attempt < 2 {
                let at = session.now.addingTimeInterval(Double(provider.receiptDelay.components.seconds))
                batch.enqueue([
                    NewJob(
                        environmentId: environmentId, job: .receipts,
                        payload: ReceiptsJob(integration: job.integration, deliveries: pending, attempt: job.attempt + 1).encoded(),
                        runAt: at)
                ])
            }
            try await batch.flush()
            try await webhooks.stage(events, environmentId: environmentId, session: session)
            return events
        }
        // Counted (herald_tokens_removed_total, herald_events_total) only now that the removals committed.
        committed(events)
        return .done
    }
}
