import Foundation
import HeraldCore
import HeraldStore
import HeraldWorkflow

extension RunBatch {
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
    mutating func apply(_ decision: OutcomeDecision) async throws {
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
        try await session.insertSuppressions(decision.suppressions)
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
                targets: failover.message.deviceTokens.prefix(1).map { ($0, nil, nil) })
        }
        for finished in decision.finishedSteps {
            try await finishStep(finished.step.notificationId, stepId: finished.step.stepId, result: finished.result)
        }
    }
}
