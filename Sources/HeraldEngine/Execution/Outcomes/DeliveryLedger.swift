import HeraldCore

/// A (notification, step) pair: the unit whose messages and deliveries finish a workflow step.
struct StepKey: Hashable, Comparable, Sendable {
    let notificationId: String
    let stepId: String

    static func < (lhs: StepKey, rhs: StepKey) -> Bool {
        (lhs.notificationId, lhs.stepId) < (rhs.notificationId, rhs.stepId)
    }
}

/// The messages and deliveries of the steps a batch of outcomes touches, as they stand under the recording
/// transaction: the rows a ``RunBatch`` holds unwritten merged with those in the store, loaded once before the
/// outcomes are decided. ``OutcomeReducer`` reads it and updates it as it decides, so whether a message or a step is
/// finished is judged on one picture — no second query path that must agree with the first.
struct DeliveryLedger: Sendable, Equatable {
    typealias Message = MessageHead
    typealias Delivery = DeliverySummary

    private(set) var messages: [String: Message] = [:]
    private(set) var deliveries: [String: Delivery] = [:]
    /// Delivery ids of each message, in id order.
    private var byMessage: [String: [String]] = [:]
    /// Message ids of each step, in id order.
    private var byStep: [StepKey: [String]] = [:]

    init(messages: [Message] = [], deliveries: [Delivery] = []) {
        for message in messages { add(message) }
        for delivery in deliveries { add(delivery) }
    }

    /// Adds a message (ignored when present).
    mutating func add(_ message: Message) {
        guard messages[message.id] == nil else { return }
        messages[message.id] = message
        Self.insertSorted(message.id, into: &byStep[StepKey(notificationId: message.notificationId, stepId: message.stepId), default: []])
    }

    /// Adds a delivery (ignored when present).
    mutating func add(_ delivery: Delivery) {
        guard deliveries[delivery.id] == nil else { return }
        deliveries[delivery.id] = delivery
        if let messageId = delivery.messageId { Self.insertSorted(delivery.id, into: &byMessage[messageId, default: []]) }
    }

    /// Records a delivery's new state.
    mutating func update(_ record: DeliveryRecord) {
        guard var delivery = deliveries[record.id] else { return }
        delivery.status = record.status
        delivery.errorCode = record.errorCode
        delivery.outcome = record.outcome
        delivery.errorText = record.errorText
        deliveries[record.id] = delivery
    }

    func status(of deliveryId: String) -> DeliveryStatus? { deliveries[deliveryId]?.status }

    /// A message's deliveries, in id order.
    func deliveries(ofMessage messageId: String) -> [Delivery] {
        (byMessage[messageId] ?? []).compactMap { deliveries[$0] }
    }

    /// A step's messages, in id order.
    func messages(of step: StepKey) -> [Message] {
        (byStep[step] ?? []).compactMap { messages[$0] }
    }

    /// The integrations a step has sent through (or planned to).
    func integrationsTried(_ step: StepKey) -> Set<String> {
        Set(messages(of: step).compactMap(\.integrationId))
    }

    /// Delivery counts by status over every message of a step.
    func counts(_ step: StepKey) -> [DeliveryStatus: Int] {
        var counts: [DeliveryStatus: Int] = [:]
        for message in messages(of: step) {
            for delivery in deliveries(ofMessage: message.id) { counts[delivery.status, default: 0] += 1 }
        }
        return counts
    }

    private static func insertSorted(_ id: String, into list: inout [String]) {
        if let last = list.last, last > id {
            list.insert(id, at: list.firstIndex { $0 > id } ?? list.endIndex)
        } else {
            list.append(id)
        }
    }
}
