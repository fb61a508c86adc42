import Foundation
import HeraldCore
import HeraldWorkflow
import Synchronization
import Testing

@testable import HeraldEngine

/// The outcome reducer, fed loaded state and provider outcomes directly: no database, no providers.
@Suite("Outcome reducer")
struct OutcomeReducerTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    /// Ids `id-1`, `id-2`, … in order.
    final class CountingIDs: IDGenerator {
        private let count = Mutex(0)
        func next() -> String {
            let value = count.withLock { value in
                value += 1
                return value
            }
            return "id-\(value)"
        }
    }

    static func integration(_ id: String, _ providerId: String, _ channel: Channel, primary: Bool = false) -> Integration {
        Integration(
            id: id, environmentId: "env", providerId: providerId, channel: channel, name: id, identifier: id, primary: primary,
            createdAt: now, updatedAt: now)
    }

    static func message(
        _ id: String, channel: Channel, integration: String = "int-1", provider: String = "push-webhook", step: String = "s1"
    )
        -> MessageRecord
    {
        MessageRecord(
            id: id, environmentId: "env", notificationId: "n1", transactionId: "tx", workflowId: "wf", subscriberId: "ann", stepId: step,
            channel: channel, integrationId: integration, providerId: provider, status: .pending,
            content: MessageContent(channel: channel, body: "hi"), deviceTokens: ["target-\(id)"], createdAt: now, updatedAt: now)
    }

    static func delivery(
        _ id: String, message: String?, device: String? = nil, integration: String = "int-1", provider: String = "push-webhook",
        attempts: Int = 0, status: DeliveryStatus = .pending, pushId: String? = nil
    ) -> DeliveryRecord {
        DeliveryRecord(
            id: id, environmentId: "env", messageId: message, deviceId: device, integrationId: integration, providerId: provider,
            target: Secret("token-\(id)"), status: status, attempts: attempts, windowStartedAt: attempts > 0 ? now : nil, pushId: pushId,
            createdAt: now, updatedAt: now)
    }

    /// Decides `results` for `sent`, with a ledger of `messages` and `sent` plus `others` (deliveries not in this batch).
    static func decide(
        _ sent: [DeliveryRecord], _ results: [String: DeliveryOutcome], messages: [MessageRecord], others: [DeliveryRecord] = [],
        integration: Integration = integration("int-1", "push-webhook", .push), tokenCount: Int? = nil,
        candidates: [Channel: [Integration]] = [:], random: RandomSource = .constant(0), retryPolicy: RetryPolicy = RetryPolicy()
    ) -> (OutcomeDecision, DeliveryLedger) {
        var ledger = DeliveryLedger(messages: messages.map(MessageHead.init), deliveries: (sent + others).map(DeliverySummary.init))
        let reducer = OutcomeReducer(
            environmentId: "env", integrationId: integration.id, integration: integration, now: now, retryPolicy: retryPolicy,
            invalidTokenGuard: InvalidTokenGuard(), ids: CountingIDs())
        let open = OutcomeReducer.open(sent, results: results, ledger: ledger)
        var random = random
        let decision = reducer.reduce(
            open, results: results, messages: Dictionary(uniqueKeysWithValues: messages.map { ($0.id, $0) }), ledger: &ledger,
            tokenCount: reducer.needsTokenCount(open, results: results) ? tokenCount : nil, candidates: candidates, random: &random)
        return (decision, ledger)
    }

    /// One row of the per-outcome table: a single delivery of a single message on `channel`.
    struct Row: Sendable, CustomStringConvertible {
        var name: String
        var channel: Channel
        var outcome: DeliveryOutcome
        var status: DeliveryStatus
        var errorCode: String?
        var messageStatus: MessageStatus
        var stepStatus: StepStatus
        var detail: String?
        var event: DomainEvent.Kind?
        var description: String { name }
    }

    static let rows: [Row] = [
        Row(
            name: "push delivered", channel: .push, outcome: .delivered(providerMessageId: "p-1"), status: .delivered, messageStatus: .sent,
            stepStatus: .completed, detail: "message_sent", event: .messageSent),
        Row(
            name: "push invalid token: device removed", channel: .push, outcome: .invalidToken(reason: "Unregistered"), status: .invalid,
            messageStatus: .error, stepStatus: .failed, detail: "push_invalid_token_removed", event: .deviceRemoved),
        Row(
            name: "chat webhook gone: credentials deactivated", channel: .chat, outcome: .invalidToken(reason: "HTTP 404"),
            status: .invalid,
            messageStatus: .error, stepStatus: .failed, detail: "chat_webhook_deactivated", event: .messageFailed),
        Row(
            name: "sms number refused: final", channel: .sms, outcome: .invalidToken(reason: "21211"), status: .invalid,
            errorCode: "invalid_address", messageStatus: .error, stepStatus: .failed, detail: "recipient_address_invalid",
            event: .messageFailed),
        Row(
            name: "email address refused: final", channel: .email, outcome: .invalidToken(reason: "550"), status: .invalid,
            errorCode: "invalid_address", messageStatus: .error, stepStatus: .failed, detail: "recipient_address_invalid",
            event: .messageFailed),
        Row(
            name: "bad request: failed, not retried", channel: .push, outcome: .badRequest(reason: "HTTP 400"), status: .failed,
            errorCode: "bad_request", messageStatus: .error, stepStatus: .failed, detail: "message_failed", event: .messageFailed),
        Row(
            name: "credentials: failed, not retried", channel: .chat, outcome: .authConfig(reason: "HTTP 401"), status: .failed,
            errorCode: "auth_config", messageStatus: .error, stepStatus: .failed, detail: "message_failed", event: .messageFailed),
    ]

    @Test("each outcome class per channel", arguments: rows)
    func outcomeClasses(_ row: Row) {
        let integration = Self.integration("int-1", "p", row.channel)
        let message = Self.message("m1", channel: row.channel, provider: "p")
        let sent = [Self.delivery("d1", message: "m1", device: row.channel == .push ? "dev-1" : nil, provider: "p")]
        let (decision, ledger) = Self.decide(sent, ["d1": row.outcome], messages: [message], integration: integration)
        #expect(decision.deliveries.map(\.status) == [row.status])
        #expect(decision.deliveries.first?.errorCode == row.errorCode)
        #expect(decision.deliveries.first?.attempts == 1)
        #expect(decision.deliveries.first?.outcome == row.outcome.label)
        #expect(ledger.status(of: "d1") == row.status)
        #expect(decision.messages.map(\.status) == [row.messageStatus])
        #expect(decision.finishedSteps.map(\.result.status) == [row.stepStatus])
        #expect(decision.finishedSteps.first?.step == StepKey(notificationId: "n1", stepId: "s1"))
        if let detail = row.detail { #expect(decision.details.map(\.detail).contains(detail), "\(decision.details.map(\.detail))") }
        if let event = row.event { #expect(decision.events.map(\.kind).contains(event), "\(decision.events.map(\.kind))") }
        #expect(decision.retries.isEmpty)
        #expect(decision.removeDevices == (row.status == .invalid && row.channel == .push ? ["dev-1"] : []))
        #expect(decision.reachedDevices == (row.status == .delivered ? ["dev-1"] : []))
        #expect(
            decision.deactivateChannels
                == (row.channel == .chat && row.status == .invalid ? [.init(subscriberId: "ann", integrationId: "int-1")] : []))
    }

    /// Retry timing: full jitter under `base · 2^(n-1)` with the draw injected, `Retry-After` as a floor.
    struct RetryRow: Sendable, CustomStringConvertible {
        var name: String
        var attemptsBefore: Int
        var retryAfter: Duration?
        var random: UInt64
        /// Seconds after now, or nil for dead.
        var delay: Double?
        var description: String { name }
    }

    static let retryRows: [RetryRow] = [
        RetryRow(name: "first failure, smallest draw: at once", attemptsBefore: 0, retryAfter: nil, random: 0, delay: 0),
        RetryRow(name: "first failure, largest draw: about the 1 s base", attemptsBefore: 0, retryAfter: nil, random: .max, delay: 1),
        RetryRow(name: "fourth failure, largest draw: about 8 s", attemptsBefore: 3, retryAfter: nil, random: .max, delay: 8),
        RetryRow(name: "Retry-After is a floor", attemptsBefore: 0, retryAfter: .seconds(30), random: .max, delay: 30),
        RetryRow(name: "backoff above Retry-After wins", attemptsBefore: 5, retryAfter: .seconds(2), random: .max, delay: 32),
        RetryRow(name: "twelfth attempt fails: dead", attemptsBefore: 11, retryAfter: nil, random: 0, delay: nil),
    ]

    @Test("retry timing and exhaustion", arguments: retryRows)
    func retries(_ row: RetryRow) throws {
        let message = Self.message("m1", channel: .push)
        let sent = [Self.delivery("d1", message: "m1", device: "dev-1", attempts: row.attemptsBefore)]
        let (decision, _) = Self.decide(
            sent, ["d1": .retryLater(reason: "HTTP 503", after: row.retryAfter)], messages: [message], random: .constant(row.random))
        let delivery = try #require(decision.deliveries.first)
        #expect(delivery.attempts == row.attemptsBefore + 1)
        if let delay = row.delay {
            #expect(delivery.status == .retrying)
            let at = try #require(delivery.nextAttemptAt)
            #expect(abs(at.timeIntervalSince(Self.now) - delay) < 0.01, "at \(at.timeIntervalSince(Self.now)) s")
            #expect(decision.retries.count == 1)
            #expect(decision.retries.first?.runAt == at)
            #expect(decision.retries.first?.priority == .backlog)
            #expect(decision.retries.first?.transactionId == "tx")
            #expect(decision.details.map(\.detail) == ["delivery_retry_scheduled"])
            // Still in flight: neither the message nor the step finishes.
            #expect(decision.messages.isEmpty)
            #expect(decision.finishedSteps.isEmpty)
        } else {
            #expect(delivery.status == .dead)
            #expect(decision.retries.isEmpty)
            #expect(decision.events.map(\.kind) == [.messageDead, .messageFailed])
            #expect(decision.finishedSteps.map(\.result) == [StepState(status: .failed, delivered: 0, failed: 1)])
        }
    }

    @Test("the mass-deletion guard holds back removals when a whole large batch is invalid")
    func guardHeldBack() {
        let messages = (0..<20).map { Self.message("m\($0)", channel: .push) }
        let sent = (0..<20).map { Self.delivery("d\($0)", message: "m\($0)", device: "dev-\($0)") }
        let results = Dictionary(uniqueKeysWithValues: sent.map { ($0.id, DeliveryOutcome.invalidToken(reason: "BadDeviceToken")) })
        let (held, _) = Self.decide(sent, results, messages: messages, tokenCount: 25)
        #expect(held.removeDevices.isEmpty)
        #expect(Set(held.deliveries.map(\.status)) == [.failed])
        #expect(Set(held.deliveries.compactMap(\.errorCode)) == ["invalid_token_removal_withheld"])
        #expect(held.events.filter { $0.kind == .deviceRemovalWithheld }.count == 20)
        // The same batch against an integration with many tokens is an ordinary cleanup.
        let (allowed, _) = Self.decide(sent, results, messages: messages, tokenCount: 10_000)
        #expect(allowed.removeDevices.count == 20)
        #expect(allowed.events.filter { $0.kind == .deviceRemoved }.count == 20)
    }

    @Test("a message is finished only when all its deliveries are; partial success is a warning")
    func messageCompletion() {
        let message = Self.message("m1", channel: .push)
        let a = Self.delivery("d1", message: "m1", device: "dev-1")
        let b = Self.delivery("d2", message: "m1", device: "dev-2")
        // d2 still pending elsewhere: nothing finishes.
        let (open, _) = Self.decide([a], ["d1": .delivered(providerMessageId: nil)], messages: [message], others: [b])
        #expect(open.messages.isEmpty)
        #expect(open.finishedSteps.isEmpty)
        // Both in this batch, one delivered, one refused.
        let (done, _) = Self.decide(
            [a, b], ["d1": .delivered(providerMessageId: nil), "d2": .badRequest(reason: "HTTP 400")], messages: [message])
        #expect(done.messages == [.init(id: "m1", status: .warning, errorId: "bad_request", errorText: "HTTP 400")])
        #expect(done.finishedSteps.map(\.result) == [StepState(status: .completed, delivered: 1, failed: 1)])
    }

    @Test("a step finishes only when every message of it is final, across integrations")
    func stepAcrossIntegrations() {
        let first = Self.message("m1", channel: .push, integration: "int-1")
        let second = Self.message("m2", channel: .push, integration: "int-2")
        let sent = [Self.delivery("d1", message: "m1", device: "dev-1")]
        let other = Self.delivery("d2", message: "m2", device: "dev-2", integration: "int-2", status: .delivered)
        let (decision, _) = Self.decide(sent, ["d1": .invalidToken(reason: "gone")], messages: [first, second], others: [other])
        #expect(decision.finishedSteps.map(\.result) == [StepState(status: .completed, delivered: 1, failed: 1)])
    }

    @Test("email fails over to the next integration not tried; when none is left, the step fails")
    func failover() {
        let primary = Self.integration("int-1", "sendgrid", .email, primary: true)
        let backup = Self.integration("int-2", "mailgun", .email)
        let message = Self.message("m1", channel: .email, integration: "int-1", provider: "sendgrid")
        let sent = [Self.delivery("d1", message: "m1", integration: "int-1", provider: "sendgrid")]
        let (decision, _) = Self.decide(
            sent, ["d1": .authConfig(reason: "HTTP 401")], messages: [message], integration: primary,
            candidates: [.email: [primary, backup]])
        #expect(decision.failovers.map(\.integration.id) == ["int-2"])
        #expect(decision.failovers.first?.message.id == "m1")
        #expect(decision.details.map(\.detail).contains("provider_failover"))
        #expect(decision.finishedSteps.isEmpty)
        // The backup was tried too (its message is in the ledger): nothing left.
        let backupMessage = Self.message("m2", channel: .email, integration: "int-2", provider: "mailgun")
        let tried = Self.delivery("d2", message: "m2", integration: "int-2", provider: "mailgun", status: .failed)
        let (exhausted, _) = Self.decide(
            sent, ["d1": .authConfig(reason: "HTTP 401")], messages: [message, backupMessage], others: [tried], integration: primary,
            candidates: [.email: [primary, backup]])
        #expect(exhausted.failovers.isEmpty)
        #expect(exhausted.finishedSteps.map(\.result.status) == [.failed])
    }

    @Test("a bad request does not fail over: another provider would refuse it too")
    func noFailoverForBadRequest() {
        let primary = Self.integration("int-1", "sendgrid", .email, primary: true)
        let backup = Self.integration("int-2", "mailgun", .email)
        let message = Self.message("m1", channel: .email, integration: "int-1", provider: "sendgrid")
        let sent = [Self.delivery("d1", message: "m1", integration: "int-1", provider: "sendgrid")]
        let (decision, _) = Self.decide(
            sent, ["d1": .badRequest(reason: "HTTP 400")], messages: [message], integration: primary,
            candidates: [.email: [primary, backup]])
        #expect(decision.failovers.isEmpty)
        #expect(decision.finishedSteps.map(\.result.status) == [.failed])
    }

    @Test("a delivery a cancel finished while it was in flight is left as the cancel left it")
    func cancelRacingResult() {
        let message = Self.message("m1", channel: .push)
        let sent = Self.delivery("d1", message: "m1", device: "dev-1")
        var ledger = DeliveryLedger(messages: [MessageHead(message)], deliveries: [DeliverySummary(sent)])
        var canceled = sent
        canceled.status = .canceled
        ledger.update(canceled)
        #expect(OutcomeReducer.open([sent], results: ["d1": .delivered(providerMessageId: nil)], ledger: ledger).isEmpty)
        let (decision, _) = Self.decide([sent], ["d1": .delivered(providerMessageId: nil)], messages: [message], others: [])
        #expect(decision.deliveries.count == 1)
    }

    @Test("raw-send deliveries: a dead token is removed by token, and no trail is written")
    func rawSend() {
        let sent = [Self.delivery("d1", message: nil, provider: "fcm", pushId: "push-1")]
        let (decision, _) = Self.decide(
            sent, ["d1": .invalidToken(reason: "UNREGISTERED")], messages: [], integration: Self.integration("int-1", "fcm", .push))
        #expect(decision.removeTokens == ["fcm": ["token-d1"]])
        #expect(decision.details.isEmpty)
        #expect(decision.messages.isEmpty)
        #expect(decision.finishedSteps.isEmpty)
    }
}
