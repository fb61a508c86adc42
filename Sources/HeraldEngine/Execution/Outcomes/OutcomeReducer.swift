import Foundation
import HeraldCore
import HeraldWorkflow

/// Decides what a batch of provider outcomes means — pure: loaded state and outcomes in, an ``OutcomeDecision`` out.
///
/// Per delivery: delivered (the device's last-success moves), invalid token (the device is removed unless the
/// mass-deletion guard withholds it; a chat webhook's credentials are deactivated; an email address or phone number
/// is final), retry (a `deliver` job at the jittered backoff, never before `Retry-After`) or dead when the policy is
/// exhausted, failed (bad request, credentials). Then per message whose deliveries are all final: `sent`, `warning`
/// or `error`, and for email/SMS that could not deliver for reasons another provider may not share (credentials, an
/// outage outlasting the retries) a failover to the next active integration of the channel not tried yet. Then per
/// step whose deliveries are all final: its ``StepState`` for the run.
struct OutcomeReducer {
    var environmentId: String
    /// The integration the batch went through (nil when deleted).
    var integrationId: String
    var integration: Integration?
    var now: Date
    var retryPolicy: RetryPolicy
    var invalidTokenGuard: InvalidTokenGuard
    var ids: any IDGenerator

    /// The deliveries of `sent` that are still open in the ledger and have an outcome: those a cancel finished
    /// meanwhile, or that another worker recorded, are left alone.
    static func open(_ sent: [DeliveryRecord], results: [String: DeliveryOutcome], ledger: DeliveryLedger) -> [DeliveryRecord] {
        sent.filter { results[$0.id] != nil && (ledger.status(of: $0.id).map { !$0.isFinal } ?? false) }
    }

    /// Whether deciding `open` needs the integration's token count (the guard looks at batches where every outcome
    /// is an invalid token, of a push integration).
    func needsTokenCount(_ open: [DeliveryRecord], results: [String: DeliveryOutcome]) -> Bool {
        guard let integration, integration.channel == .push, !open.isEmpty else { return false }
        return open.allSatisfy { if case .invalidToken? = results[$0.id] { true } else { false } }
    }

    /// Decides the outcomes of `open` (see ``open(_:results:ledger:)``). `messages` are the records of their
    /// messages as read before sending (content included, for a failover); `tokenCount` the integration's token
    /// count when ``needsTokenCount(_:results:)`` said so; `candidates` the active integrations of each channel,
    /// primary first then oldest (the order failover walks). `ledger` is updated with the new statuses.
    func reduce(
        _ open: [DeliveryRecord], results: [String: DeliveryOutcome], messages: [String: MessageRecord], ledger: inout DeliveryLedger,
        tokenCount: Int?, candidates: [Channel: [Integration]], random: inout some RandomNumberGenerator
    ) -> OutcomeDecision {
        var decision = OutcomeDecision()
        guard !open.isEmpty else { return decision }
        let outcomes = open.compactMap { results[$0.id] }
        let removalAllowed = tokenCount.map { invalidTokenGuard.allowsRemoval(batch: outcomes, integrationTokenCount: $0) } ?? true
        for var delivery in open {
            guard let outcome = results[delivery.id] else { continue }
            let message = delivery.messageId.flatMap { messages[$0] }
            decide(&delivery, outcome: outcome, message: message, removalAllowed: removalAllowed, into: &decision, random: &random)
            ledger.update(delivery)
            decision.deliveries.append(delivery)
        }
        finishMessages(Set(open.compactMap(\.messageId)), messages: messages, ledger: &ledger, candidates: candidates, into: &decision)
        return decision
    }

    // MARK: Deliveries

    private func decide(
        _ delivery: inout DeliveryRecord, outcome: DeliveryOutcome, message: MessageRecord?, removalAllowed: Bool,
        into decision: inout OutcomeDecision, random: inout some RandomNumberGenerator
    ) {
        delivery.attempts += 1
        delivery.windowStartedAt = delivery.windowStartedAt ?? now
        delivery.outcome = outcome.label
        delivery.errorText = outcome.reason.map { String($0.prefix(500)) }
        delivery.nextAttemptAt = nil
        func detail(
            _ status: ExecutionDetail.Status, _ code: String, source: ExecutionDetail.Source = .internal, retry: Bool = false,
            _ raw: [String: JSONValue]
        ) {
            // Raw sends keep no activity trail (their deliveries and statistics are the record).
            guard let message else { return }
            decision.details.append(
                ExecutionDetail(
                    id: ids.next(), environmentId: environmentId, notificationId: message.notificationId, messageId: message.id,
                    deliveryId: delivery.id, stepId: message.stepId, providerId: delivery.providerId, status: status, detail: code,
                    source: source, isRetry: retry, raw: JSONValue.object(raw).jsonString(), createdAt: now))
        }
        func event(_ kind: DomainEvent.Kind, reason: String?) {
            decision.events.append(
                DomainEvent(
                    kind, notificationId: message?.notificationId, messageId: message?.id, deliveryId: delivery.id, stepId: message?.stepId,
                    channel: message?.channel, integrationId: delivery.integrationId, providerId: delivery.providerId,
                    deviceId: delivery.deviceId, reason: reason))
        }
        switch outcome {
        case .delivered(let providerMessageId):
            delivery.status = .delivered
            delivery.providerMessageId = providerMessageId
            if let deviceId = delivery.deviceId { decision.reachedDevices.append(deviceId) }
        case .invalidToken(let reason):
            delivery.status = .invalid
            if let message, message.channel == .chat, let integrationId = delivery.integrationId {
                decision.deactivateChannels.append(.init(subscriberId: message.subscriberId, integrationId: integrationId))
                detail(.warning, "chat_webhook_deactivated", source: .webhook, ["reason": .string(reason)])
            } else if let message, message.channel == .sms || message.channel == .email {
                // A number or address the provider refuses (invalid, unsubscribed): final, never retried.
                delivery.errorCode = "invalid_address"
                detail(.failed, "recipient_address_invalid", source: .credentials, ["reason": .string(reason)])
                // Suppressed only for a refusal about the recipient alone, and not when the whole batch was refused
                // (the invalid-token guard: more likely the integration than every recipient).
                if removalAllowed, SuppressionRules.isPermanentRecipientRefusal(providerId: delivery.providerId, reason: reason) {
                    decision.suppressions.append(
                        Suppression(
                            environmentId: environmentId, channel: message.channel, address: delivery.target.revealed, reason: reason,
                            providerId: delivery.providerId, createdAt: now))
                }
            } else if removalAllowed {
                if let deviceId = delivery.deviceId {
                    decision.removeDevices.append(deviceId)
                } else if delivery.pushId != nil {
                    // A raw token of a raw send: the device registered with it, if any, is just as dead.
                    decision.removeTokens[delivery.providerId, default: []].append(delivery.target.revealed)
                }
                event(.deviceRemoved, reason: reason)
                detail(.warning, "push_invalid_token_removed", source: .credentials, ["reason": .string(reason)])
            } else {
                delivery.status = .failed
                delivery.errorCode = "invalid_token_removal_withheld"
                event(.deviceRemovalWithheld, reason: reason)
                detail(
                    .failed, "invalid_token_removal_withheld", source: .credentials,
                    ["reason": .string("every token of the batch failed as invalid; suspect the integration's configuration")])
            }
        case .retryLater(_, let after):
            let elapsed = Duration.milliseconds(now.millisecondsSince1970 - (delivery.windowStartedAt ?? now).millisecondsSince1970)
            if let delay = retryPolicy.delay(afterAttempt: delivery.attempts, elapsed: elapsed, retryAfter: after, using: &random) {
                delivery.status = .retrying
                let at = now.addingTimeInterval(Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18)
                delivery.nextAttemptAt = at
                decision.retries.append(
                    NewJob(
                        environmentId: environmentId, job: .deliver,
                        payload: DeliverJob(integration: integrationId, deliveries: [delivery.id]).encoded(),
                        transactionId: message?.transactionId, runAt: at, priority: .backlog))
                detail(
                    .pending, "delivery_retry_scheduled", retry: true,
                    [
                        "attempt": .number(Double(delivery.attempts)), "at": .string(at.iso8601Milliseconds),
                        "reason": .string(outcome.reason ?? ""),
                    ])
            } else {
                delivery.status = .dead
                event(.messageDead, reason: outcome.reason)
                detail(.failed, "delivery_retries_exhausted", ["attempts": .number(Double(delivery.attempts))])
            }
        case .badRequest:
            delivery.status = .failed
            delivery.errorCode = "bad_request"
        case .authConfig:
            delivery.status = .failed
            delivery.errorCode = "auth_config"
        }
    }

    // MARK: Messages and steps

    private func finishMessages(
        _ messageIds: Set<String>, messages: [String: MessageRecord], ledger: inout DeliveryLedger, candidates: [Channel: [Integration]],
        into decision: inout OutcomeDecision
    ) {
        var steps: Set<StepKey> = []
        /// Integrations chosen for a failover by this decision, per step (a second message of the step must not pick
        /// the same one again).
        var chosen: [StepKey: Set<String>] = [:]
        for messageId in messageIds.sorted() {
            guard let message = messages[messageId] else { continue }
            let list = ledger.deliveries(ofMessage: message.id)
            guard list.allSatisfy(\.status.isFinal) else { continue }
            let delivered = list.filter { $0.status == .delivered }.count
            let failures = list.filter { $0.status != .delivered && $0.status != .canceled }
            let lastFailure = failures.last
            decision.messages.append(
                .init(
                    id: message.id, status: .final(delivered: delivered, failures: failures.count),
                    errorId: lastFailure?.errorCode ?? lastFailure?.outcome, errorText: lastFailure?.errorText))
            decision.details.append(
                ExecutionDetail(
                    id: ids.next(), environmentId: environmentId, notificationId: message.notificationId, messageId: message.id,
                    stepId: message.stepId, providerId: message.providerId, status: delivered > 0 ? .success : .failed,
                    detail: delivered > 0 ? "message_sent" : "message_failed",
                    raw: JSONValue.object(["delivered": .number(Double(delivered)), "failed": .number(Double(failures.count))])
                        .jsonString(),
                    createdAt: now))
            decision.events.append(
                DomainEvent(
                    delivered > 0 ? .messageSent : .messageFailed, notificationId: message.notificationId, messageId: message.id,
                    stepId: message.stepId, channel: message.channel, integrationId: message.integrationId, providerId: message.providerId,
                    reason: delivered > 0 ? nil : lastFailure?.errorCode ?? lastFailure?.outcome))
            let step = StepKey(notificationId: message.notificationId, stepId: message.stepId)
            // Email and SMS fail over to the next active integration when this one could not deliver for reasons
            // that another provider may not share (credentials, configuration, an outage outlasting the retries).
            if delivered == 0, message.channel == .email || message.channel == .sms,
                failures.contains(where: { $0.status == .dead || $0.errorCode == "auth_config" })
            {
                let tried = ledger.integrationsTried(step).union(chosen[step] ?? [])
                if let next = (candidates[message.channel] ?? []).first(where: { !tried.contains($0.id) }) {
                    chosen[step, default: []].insert(next.id)
                    decision.details.append(
                        ExecutionDetail(
                            id: ids.next(), environmentId: environmentId, notificationId: message.notificationId, messageId: message.id,
                            stepId: message.stepId, providerId: next.providerId, status: .warning, detail: "provider_failover",
                            raw: JSONValue.object(["from": .string(message.providerId ?? ""), "to": .string(next.identifier)]).jsonString(),
                            createdAt: now))
                    decision.failovers.append(.init(message: message, integration: next))
                    continue
                }
            }
            steps.insert(step)
        }
        for step in steps.sorted() {
            let counts = ledger.counts(step)
            guard (counts[.pending] ?? 0) + (counts[.retrying] ?? 0) == 0 else { continue }
            let delivered = counts[.delivered] ?? 0
            let failed = (counts[.failed] ?? 0) + (counts[.invalid] ?? 0) + (counts[.dead] ?? 0)
            decision.finishedSteps.append(
                .init(step: step, result: StepState(status: delivered > 0 ? .completed : .failed, delivered: delivered, failed: failed)))
        }
    }
}
