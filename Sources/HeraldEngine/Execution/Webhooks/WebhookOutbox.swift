import Foundation
import HeraldCore
import HeraldStore
import Synchronization

/// Turns committed domain events into status-webhook events (README §Status webhooks, `docs/webhooks.md`): called
/// inside the transaction that records the state change, so an event exists exactly when its change committed. One
/// row per event and subscribed endpoint, written in multi-row statements, and one `webhook` job per endpoint and
/// call (at most ``jobSize`` events each) — a fan-out adds one insert and one job per batch and endpoint, not a round
/// trip per delivery. An environment without endpoints costs nothing: its endpoint list is cached.
final class WebhookOutbox: Sendable {
    /// Events per `webhook` job (the unit one claim posts, with ``WebhookSender/concurrency`` in flight).
    static let jobSize = 250
    /// How long a process trusts its cached endpoint list: an endpoint created or changed through another process
    /// takes effect within this time (through this process's API, at once).
    static let cacheTime: TimeInterval = 1

    private let cache = Mutex<[String: (endpoints: [WebhookEndpoint], expires: Date)]>([:])

    /// Forgets an environment's cached endpoints (after a change through the API).
    func invalidate(_ environmentId: String) {
        _ = cache.withLock { $0.removeValue(forKey: environmentId) }
    }

    func endpoints(_ environmentId: String, session: StoreSession) async throws -> [WebhookEndpoint] {
        let now = session.now
        if let cached = cache.withLock({ $0[environmentId] }), cached.expires > now { return cached.endpoints }
        let endpoints = try await session.webhookEndpoints(environmentId: environmentId)
        cache.withLock { $0[environmentId] = (endpoints, now.addingTimeInterval(Self.cacheTime)) }
        return endpoints
    }

    /// Writes the webhook events of `events` (all of environment `environmentId`) and queues their delivery.
    /// `known` are notifications the caller has loaded already (their transaction and subscriber ids are read from
    /// them rather than queried again).
    func stage(
        _ events: [DomainEvent], environmentId: String, session: StoreSession, known: [String: NotificationRecord] = [:]
    ) async throws {
        guard !events.isEmpty else { return }
        let endpoints = try await endpoints(environmentId, session: session)
        guard !endpoints.isEmpty else { return }
        let matches = events.map { event in endpoints.filter { $0.accepts(type: event.kind.rawValue, workflowId: event.workflowId) } }
        guard matches.contains(where: { !$0.isEmpty }) else { return }
        var notifications = known
        let missing = Set(events.compactMap(\.notificationId)).filter { notifications[$0] == nil }
        for notification in try await session.notifications(ids: Array(missing)) { notifications[notification.id] = notification }
        let now = session.now
        // Endpoints that opted in to message content get it: the messages of their events, read once.
        var contents: [String: MessageRecord] = [:]
        let wanted = zip(events, matches).filter { $0.1.contains(where: \.includeContent) }.compactMap(\.0.messageId)
        if !wanted.isEmpty { contents = try await session.messages(ids: Array(Set(wanted))) }
        var messages: [WebhookMessage] = []
        var byEndpoint: [String: [String]] = [:]
        for (event, endpoints) in zip(events, matches) where !endpoints.isEmpty {
            let notification = event.notificationId.flatMap { notifications[$0] }
            let plain = Self.payload(event, notification: notification, at: now)
            let payloadText = plain.jsonString()
            let withContent = event.messageId.flatMap { contents[$0] }.map { Self.withContent(plain, $0).jsonString() }
            for endpoint in endpoints {
                let payload = endpoint.includeContent ? withContent ?? payloadText : payloadText
                let id = "msg_" + session.newId()
                messages.append(
                    WebhookMessage(
                        id: id, environmentId: environmentId, endpointId: endpoint.id, eventType: event.kind.rawValue, payload: payload,
                        createdAt: now, updatedAt: now))
                if !endpoint.disabled { byEndpoint[endpoint.id, default: []].append(id) }
            }
        }
        // The cached list may name an endpoint deleted since: its events are dropped rather than failing the foreign
        // key — and with it the transaction of the change they report.
        let existing = try await session.existingWebhookEndpointIds(Array(Set(messages.map(\.endpointId))))
        try await session.insertWebhookMessages(messages.filter { existing.contains($0.endpointId) })
        try await session.enqueue(Self.jobs(byEndpoint.filter { existing.contains($0.key) }, environmentId: environmentId))
    }

    /// An event payload with its message's content under `data.content` (`includeContent` endpoints): the rendered
    /// title or subject, body and text as the provider got them.
    static func withContent(_ payload: JSONValue, _ message: MessageRecord) -> JSONValue {
        guard case .object(var root) = payload, case .object(var data)? = root["data"] else { return payload }
        var content: [String: JSONValue] = ["body": .string(message.content.body)]
        if let title = message.content.title { content[message.channel == .email ? "subject" : "title"] = .string(title) }
        if let text = message.content.text { content["text"] = .string(text) }
        if !message.content.data.isEmpty { content["data"] = .object(message.content.data.mapValues(JSONValue.string)) }
        data["content"] = .object(content)
        root["data"] = .object(data)
        return .object(root)
    }

    /// `webhook` jobs for event ids by endpoint, ``jobSize`` each.
    static func jobs(_ byEndpoint: [String: [String]], environmentId: String, runAt: Date? = nil) -> [NewJob] {
        byEndpoint.sorted { $0.key < $1.key }.flatMap { endpointId, ids in
            stride(from: 0, to: ids.count, by: jobSize).map { start in
                NewJob(
                    environmentId: environmentId, job: .webhook,
                    payload: WebhookJob(endpoint: endpointId, messages: Array(ids[start..<min(start + jobSize, ids.count)])).encoded(),
                    runAt: runAt)
            }
        }
    }

    /// The body posted for an event (`docs/webhooks.md` §Event payload): Standard Webhooks' `{type, timestamp, data}`
    /// with the ids that locate what happened, never a message body or a credential.
    static func payload(_ event: DomainEvent, notification: NotificationRecord?, at time: Date) -> JSONValue {
        var data: [String: JSONValue] = [:]
        let fields: [(String, String?)] = [
            ("notificationId", event.notificationId), ("transactionId", notification?.transactionId),
            ("subscriberId", event.subscriberId ?? notification?.subscriberId),
            ("workflowId", event.workflowId ?? notification?.workflowId),
            ("stepId", event.stepId), ("messageId", event.messageId), ("deliveryId", event.deliveryId),
            ("channel", event.channel?.rawValue), ("integrationId", event.integrationId), ("providerId", event.providerId),
            ("deviceId", event.deviceId), ("reason", event.reason),
        ]
        for (key, value) in event.attributes where data[key] == nil { data[key] = .string(value) }
        for (key, value) in fields { if let value { data[key] = .string(value) } }
        return ["type": .string(event.kind.rawValue), "timestamp": .string(time.iso8601Milliseconds), "data": .object(data)]
    }
}

/// A claim of events for one endpoint.
struct WebhookJob: JobPayload {
    var endpoint: String
    var messages: [String]
}

extension Engine {
    /// Writes the status-webhook events of `events` in the caller's transaction (`session`): for state changes made
    /// outside the engine's jobs (the API's unsubscribe links, Centrifugo's push reports). Count them with
    /// ``EngineMetrics/record(_:)`` once the transaction committed.
    public func stageEvents(_ events: [DomainEvent], environmentId: String, session: StoreSession) async throws {
        try await webhooks.stage(events, environmentId: environmentId, session: session)
    }

    /// Tells the engine an environment's endpoints changed through this process (they take effect at once here, and
    /// within ``WebhookOutbox/cacheTime`` in other processes).
    public func webhookEndpointsChanged(environmentId: String) {
        webhooks.invalidate(environmentId)
    }

    /// Queues again an endpoint's events since `since` that were not delivered (pending or dead), with fresh attempt
    /// counts; returns how many (at most `limit`).
    public func replayWebhooks(environmentId: String, endpointId: String, since: Date, limit: Int) async throws -> Int {
        try await store.transaction { session in
            let ids = try await session.replayWebhookMessages(
                environmentId: environmentId, endpointId: endpointId, since: since, limit: limit)
            try await session.enqueue(WebhookOutbox.jobs([endpointId: ids], environmentId: environmentId))
            return ids.count
        }
    }
}
