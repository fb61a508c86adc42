import Foundation
import HeraldCore
import HeraldStore

/// Raw provider-payload sends (Centrifugo `send_push_notification`, `cancel_push`, `update_push_status`) and their
/// statistics. A send is committed with its fan-out job before it is acknowledged; the workers do the rest.
public struct PushIntake: Sendable {
    let store: SQLStore
    let metrics: EngineMetrics
    /// Vets Web Push endpoints of raw tokens.
    let policy: OutboundURLPolicy
    /// Writes the status-webhook events of app reports (`push.interacted`).
    let engine: Engine?

    public init(store: SQLStore, metrics: EngineMetrics, policy: OutboundURLPolicy, engine: Engine? = nil) {
        self.store = store
        self.metrics = metrics
        self.policy = policy
        self.engine = engine
    }

    /// Commits a send and returns its uid. A uid used before in the environment sends nothing new: the same request
    /// gets the same answer, a different one a conflict.
    public func send(environmentId: String, body: JSONValue) async throws -> String {
        let request = try PushSendRequest(json: body, policy: policy)
        let uid = request.uid ?? UUID().uuidString.lowercased()
        let result = try await store.transaction { session -> Bool in
            let now = session.now
            let push = PushSend(
                id: session.newId(), environmentId: environmentId, uid: uid, analyticsUid: request.analyticsUid ?? uid, request: body,
                status: .queued, sendAt: request.sendAt, expireAt: request.expireAt, createdAt: now, updatedAt: now)
            switch try await session.insertPush(push) {
            case .existing(let existing):
                guard existing.request == body else {
                    throw HeraldError(.conflict, "uid \(uid) was used by a different push", context: ["field": "uid"])
                }
                return false
            case .inserted:
                try await session.enqueue([
                    NewJob(
                        environmentId: environmentId, job: .push, payload: PushJob(push: push.id).encoded(),
                        transactionId: Self.jobKey(push.id), runAt: request.sendAt.flatMap { $0 > now ? $0 : nil })
                ])
                return true
            }
        }
        if result { metrics.pushSends.increment(Self.recipientType(request.recipient)) }
        return uid
    }

    /// Cancels what is not sent yet of a send: a scheduled send entirely, the pending deliveries and retries of one
    /// in progress.
    public func cancel(environmentId: String, uid: String) async throws {
        try await store.transaction { session in
            guard let push = try await session.push(environmentId: environmentId, uid: uid) else {
                throw HeraldError(.notFound, "no push with uid \(uid)")
            }
            let locked = try await session.pushes(ids: [push.id], lock: true)[push.id] ?? push
            guard locked.status != .canceled, locked.status != .expired else { return }
            try await session.updatePush(id: push.id, status: .canceled, cursor: locked.cursor)
            _ = try await session.cancelJobs(environmentId: environmentId, transactionId: Self.jobKey(push.id))
            _ = try await session.cancelPushDeliveries(pushId: push.id)
        }
    }

    /// Records an app's report that a push reached a device or was interacted with.
    public func report(environmentId: String, analyticsUid: String, deviceId: String, status: String) async throws {
        guard let report = PushReport(rawValue: status) else {
            throw HeraldError(.invalidInput, "status: must be delivered or interacted", context: ["field": "status"])
        }
        // An interaction is a status event (README §Status webhooks), written with the report it comes from.
        let events =
            report == .interacted
            ? [DomainEvent(.pushInteracted, deviceId: deviceId, attributes: ["analyticsUid": analyticsUid, "status": status])] : []
        let (matched, changed) = try await store.transaction { session in
            let result = try await session.reportPushStatus(
                environmentId: environmentId, analyticsUid: analyticsUid, deviceId: deviceId, status: report)
            // A repeated report (an app retrying its call) changes nothing and reports nothing again.
            if result.changed > 0, let engine { try await engine.stageEvents(events, environmentId: environmentId, session: session) }
            return result
        }
        guard matched > 0 else { throw HeraldError(.notFound, "no push \(analyticsUid) was sent to device \(deviceId)") }
        if changed > 0 { metrics.record(events) }
    }

    /// A send's counts per provider and platform: `sent` (accepted by the provider), `failed`, `pending`, `canceled`,
    /// and what apps reported, `delivered` (interacted counts as delivered too) and `interacted`.
    public func stats(environmentId: String, uid: String) async throws -> JSONValue {
        let (push, rows) = try await store.read { session -> (PushSend?, [PushStatsRow]) in
            guard let push = try await session.push(environmentId: environmentId, uid: uid) else { return (nil, []) }
            return (push, try await session.pushStats(pushId: push.id))
        }
        guard let push else { throw HeraldError(.notFound, "no push with uid \(uid)") }
        var totals: [String: Int] = [:]
        let providers = rows.map { row -> JSONValue in
            let counts: [String: Int] = [
                "sent": row.statuses[.delivered, default: 0],
                "failed": row.statuses[.failed, default: 0] + row.statuses[.invalid, default: 0] + row.statuses[.dead, default: 0],
                "pending": row.statuses[.pending, default: 0] + row.statuses[.retrying, default: 0],
                "canceled": row.statuses[.canceled, default: 0],
                "delivered": row.reported[.delivered, default: 0] + row.reported[.interacted, default: 0],
                "interacted": row.reported[.interacted, default: 0],
            ]
            totals.merge(counts, uniquingKeysWith: +)
            var object = counts.mapValues { JSONValue.number(Double($0)) }
            object["provider"] = .string(row.provider)
            object["platform"] = .string(row.platform.isEmpty ? "unknown" : row.platform)
            return .object(object)
        }
        for key in ["sent", "failed", "pending", "canceled", "delivered", "interacted"] where totals[key] == nil { totals[key] = 0 }
        var result: [String: JSONValue] = [
            "uid": .string(push.uid), "analyticsUid": .string(push.analyticsUid), "status": .string(push.status.rawValue),
            "createdAt": .string(push.createdAt.iso8601Milliseconds),
            "skipped": .number(Double(PushCursor.decode(push.cursor).skipped)),
            "totals": .object(totals.mapValues { .number(Double($0)) }), "providers": .array(providers),
        ]
        if let sendAt = push.sendAt { result["sendAt"] = .string(sendAt.iso8601Milliseconds) }
        if let expireAt = push.expireAt { result["expireAt"] = .string(expireAt.iso8601Milliseconds) }
        return .object(result)
    }

    /// The transaction key of a send's jobs, so that a cancel removes its scheduled fan-out.
    static func jobKey(_ pushId: String) -> String { "push:\(pushId)" }

    static func recipientType(_ recipient: PushSendRequest.Recipient) -> String {
        switch recipient {
        case .devices: "filter"
        case .tokens(let provider, _): "\(provider)_tokens"
        case .nativeTopic(let provider, _): "\(provider)_topic"
        case .nativeCondition(let provider, _): "\(provider)_condition"
        }
    }
}
