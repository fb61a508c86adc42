import Foundation
import HeraldCore
import SQLKit

/// Filters of `GET /v1/notifications`.
public struct NotificationFilter: Sendable {
    public var workflowIds: [String] = []
    public var subscriberIds: [String] = []
    public var transactionId: String?
    public var topicKey: String?
    public var channels: [String] = []
    public var after: Date?
    public var before: Date?
    public init() {}
}

/// Filters of `GET /v1/messages`.
public struct MessageFilter: Sendable {
    public var channel: Channel?
    public var subscriberId: String?
    public var transactionIds: [String] = []
    public init() {}
}

extension StoreSession {
    static let notificationColumns =
        "id, environment_id, event_id, transaction_id, workflow_id, subscriber_id, topic_key, status, state, channels, created_at, updated_at"
    private static let messageColumns =
        "id, environment_id, notification_id, transaction_id, workflow_id, subscriber_id, step_id, channel, integration_id, provider_id, status, payload, device_tokens, error_id, error_text, created_at, updated_at"
    static let deliveryColumns =
        "id, environment_id, message_id, push_id, device_id, platform, integration_id, provider_id, target, status, outcome, attempts, provider_message_id, error_code, error_text, next_attempt_at, window_started_at, created_at, updated_at"

    // MARK: Notifications

    /// Creates the notifications of an event for these subscribers, skipping subscribers that already have one
    /// (a page re-expanded after a crash, or a subscriber reached through two topics). Returns the new ones.
    public func insertNotifications(event: EventRecord, subscriberIds: [String], topicKey: String?) async throws -> [NotificationRecord] {
        guard !subscriberIds.isEmpty else { return [] }
        let now = nowMilliseconds
        var created: [NotificationRecord] = []
        for start in stride(from: 0, to: subscriberIds.count, by: 500) {
            var insert = RowInsert(
                into: "notifications",
                columns: [
                    "id", "environment_id", "event_id", "transaction_id", "workflow_id", "subscriber_id", "topic_key", "status", "state",
                    "channels", "created_at", "updated_at",
                ])
            insert.suffix = "ON CONFLICT (event_id, subscriber_id) DO NOTHING RETURNING id"
            var records: [String: NotificationRecord] = [:]
            for subscriberId in subscriberIds[start..<min(start + 500, subscriberIds.count)] {
                let record = NotificationRecord(
                    id: ids.next(), environmentId: event.environmentId, eventId: event.id, transactionId: event.transactionId,
                    workflowId: event.workflowId, subscriberId: subscriberId, topicKey: topicKey, status: .pending, state: "{}",
                    channels: [], createdAt: Date(millisecondsSince1970: now), updatedAt: Date(millisecondsSince1970: now))
                records[record.id] = record
                insert.row(
                    record.id, record.environmentId, record.eventId, record.transactionId, record.workflowId, record.subscriberId,
                    record.topicKey, record.status.rawValue, record.state, "[]", now, now)
            }
            for row in try await run(insert) {
                if let record = records[try row.decode(column: "id", as: String.self)] { created.append(record) }
            }
        }
        return created
    }

    /// Notifications by id. With `lock` (inside a transaction) PostgreSQL locks their rows until commit, so two
    /// workers finishing deliveries of one run advance it one after the other; SQLite transactions are serial anyway.
    public func notifications(ids: [String], lock: Bool = false) async throws -> [NotificationRecord] {
        guard !ids.isEmpty else { return [] }
        let sorted = Array(Set(ids)).sorted()
        let suffix = lock && dialect == .postgres ? " ORDER BY id FOR UPDATE" : " ORDER BY id"
        return try await db.raw(
            "SELECT \(unsafeRaw: Self.notificationColumns) FROM notifications WHERE id IN (\(binds: sorted))\(unsafeRaw: suffix)"
        ).all().map(Self.notification(from:))
    }

    /// One notification of an environment.
    public func notification(environmentId: String, id: String) async throws -> NotificationRecord? {
        try await db.raw(
            "SELECT \(unsafeRaw: Self.notificationColumns) FROM notifications WHERE environment_id = \(bind: environmentId) AND id = \(bind: id)"
        ).first().map(Self.notification(from:))
    }

    /// The notifications of a transaction.
    public func notifications(environmentId: String, transactionId: String) async throws -> [NotificationRecord] {
        try await db.raw(
            """
            SELECT \(unsafeRaw: Self.notificationColumns) FROM notifications
            WHERE environment_id = \(bind: environmentId) AND transaction_id = \(bind: transactionId) ORDER BY id
            """
        ).all().map(Self.notification(from:))
    }

    /// Saves many runs' status, state and channels, one statement per 200.
    public func updateNotifications(_ updates: [(id: String, status: NotificationStatus, state: String, channels: [String])]) async throws {
        let now = nowMilliseconds
        for start in stride(from: 0, to: updates.count, by: 200) {
            let rows = updates[start..<min(start + 200, updates.count)].map { update -> SQLQueryString in
                "(\(bind: update.id), \(bind: update.status.rawValue), \(bind: update.state), \(bind: JSONValue.array(update.channels.map { .string($0) }).jsonString()))"
            }
            try await db.raw(
                """
                WITH v(id, status, state, channels) AS (VALUES \(rows.joined(separator: ", ")))
                UPDATE notifications SET status = v.status, state = v.state, channels = v.channels, updated_at = \(bind: now)
                FROM v WHERE notifications.id = v.id
                """
            ).run()
        }
    }

    /// A page of notifications, newest first (Novu's `/v1/notifications`, offset pagination).
    public func listNotifications(
        environmentId: String, filter: NotificationFilter, page: Int, limit: Int
    ) async throws
        -> [NotificationRecord]
    {
        var query = SQLQueryString(
            "SELECT \(unsafeRaw: Self.notificationColumns) FROM notifications WHERE environment_id = \(bind: environmentId)")
        if !filter.workflowIds.isEmpty { query += " AND workflow_id IN (\(binds: filter.workflowIds))" }
        if !filter.subscriberIds.isEmpty { query += " AND subscriber_id IN (\(binds: filter.subscriberIds))" }
        if let transactionId = filter.transactionId { query += " AND transaction_id = \(bind: transactionId)" }
        if let topicKey = filter.topicKey { query += " AND topic_key = \(bind: topicKey)" }
        if let after = filter.after { query += " AND created_at >= \(bind: after.millisecondsSince1970)" }
        if let before = filter.before { query += " AND created_at <= \(bind: before.millisecondsSince1970)" }
        for channel in filter.channels { query += " AND channels LIKE \(bind: "%\"\(channel)\"%")" }
        query += " ORDER BY id DESC LIMIT \(bind: limit) OFFSET \(bind: page * limit)"
        return try await db.raw(query).all().map(Self.notification(from:))
    }

    static func notification(from row: any SQLRow) throws -> NotificationRecord {
        let channels = try JSONValue.parse(try row.decode(column: "channels", as: String.self))
        let list: [String] = if case .array(let items) = channels { items.compactMap(\.stringValue) } else { [] }
        return NotificationRecord(
            id: try row.decode(column: "id", as: String.self), environmentId: try row.decode(column: "environment_id", as: String.self),
            eventId: try row.decode(column: "event_id", as: String.self),
            transactionId: try row.decode(column: "transaction_id", as: String.self),
            workflowId: try row.decode(column: "workflow_id", as: String.self),
            subscriberId: try row.decode(column: "subscriber_id", as: String.self),
            topicKey: try row.optional("topic_key"), status: try row.status(as: NotificationStatus.self),
            state: try row.decode(column: "state", as: String.self), channels: list, createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at"))
    }

    // MARK: Messages

    /// Inserts messages in multi-row statements.
    public func insertMessages(_ messages: [MessageRecord]) async throws {
        for start in stride(from: 0, to: messages.count, by: 200) {
            var insert = RowInsert(
                into: "messages",
                columns: [
                    "id", "environment_id", "notification_id", "transaction_id", "workflow_id", "subscriber_id", "step_id", "channel",
                    "integration_id", "provider_id", "status", "title", "subject", "content", "payload", "device_tokens", "email", "phone",
                    "error_id", "error_text", "created_at", "updated_at",
                ])
            for message in messages[start..<min(start + 200, messages.count)] {
                let email = message.channel == .email
                insert.row(
                    message.id, message.environmentId, message.notificationId, message.transactionId, message.workflowId,
                    message.subscriberId, message.stepId, message.channel.rawValue, message.integrationId, message.providerId,
                    message.status.rawValue, email ? nil : message.content.title, email ? message.content.title : nil, message.content.body,
                    message.content.json.jsonString(), JSONValue.array(message.deviceTokens.map { .string($0) }).jsonString(),
                    email ? message.deviceTokens.first : nil, message.channel == .sms ? message.deviceTokens.first : nil,
                    message.errorId, message.errorText, message.createdAt.millisecondsSince1970, message.updatedAt.millisecondsSince1970)
            }
            _ = try await run(insert)
        }
    }

    /// Messages by id. Without `content` the rendered content is left empty (recording outcomes does not need it,
    /// and parsing it is the largest part of reading a message).
    public func messages(ids: [String], content: Bool = true) async throws -> [String: MessageRecord] {
        guard !ids.isEmpty else { return [:] }
        var result: [String: MessageRecord] = [:]
        let columns = content ? Self.messageColumns : Self.messageColumns.replacingOccurrences(of: "payload,", with: "'{}' AS payload,")
        // The messages of one fan-out often carry identical content: parse each distinct payload once.
        var parsed: [String: MessageContent] = [:]
        for start in stride(from: 0, to: ids.count, by: 500) {
            let chunk = Array(ids[start..<min(start + 500, ids.count)])
            for row in try await db.raw("SELECT \(unsafeRaw: columns) FROM messages WHERE id IN (\(binds: chunk))").all() {
                let message = try Self.message(from: row, contents: &parsed)
                result[message.id] = message
            }
        }
        return result
    }

    /// The messages of notifications, oldest first.
    public func messages(notificationIds: [String]) async throws -> [MessageRecord] {
        guard !notificationIds.isEmpty else { return [] }
        return try await db.raw(
            "SELECT \(unsafeRaw: Self.messageColumns) FROM messages WHERE notification_id IN (\(binds: notificationIds)) ORDER BY id"
        ).all().map(Self.message(from:))
    }

    /// Sets many messages' status and error, one statement per 200.
    public func updateMessages(_ updates: [(id: String, status: MessageStatus, errorId: String?, errorText: String?)]) async throws {
        let now = nowMilliseconds
        for start in stride(from: 0, to: updates.count, by: 200) {
            let rows = updates[start..<min(start + 200, updates.count)].map { update -> SQLQueryString in
                "(\(bind: update.id), \(bind: update.status.rawValue), \(bind: update.errorId ?? ""), \(bind: update.errorText ?? ""))"
            }
            try await db.raw(
                """
                WITH v(id, status, error_id, error_text) AS (VALUES \(rows.joined(separator: ", ")))
                UPDATE messages SET status = v.status, error_id = NULLIF(v.error_id, ''), error_text = NULLIF(v.error_text, ''),
                    updated_at = \(bind: now)
                FROM v WHERE messages.id = v.id
                """
            ).run()
        }
    }

    /// A page of messages, newest first.
    public func listMessages(environmentId: String, filter: MessageFilter, page: Int, limit: Int) async throws -> [MessageRecord] {
        var query = SQLQueryString("SELECT \(unsafeRaw: Self.messageColumns) FROM messages WHERE environment_id = \(bind: environmentId)")
        if let channel = filter.channel { query += " AND channel = \(bind: channel.rawValue)" }
        if let subscriberId = filter.subscriberId { query += " AND subscriber_id = \(bind: subscriberId)" }
        if !filter.transactionIds.isEmpty { query += " AND transaction_id IN (\(binds: filter.transactionIds))" }
        query += " ORDER BY id DESC LIMIT \(bind: limit) OFFSET \(bind: page * limit)"
        return try await db.raw(query).all().map(Self.message(from:))
    }

    /// Deletes one message (and its deliveries); false when it does not exist.
    public func deleteMessage(environmentId: String, id: String) async throws -> Bool {
        try await !db.raw("DELETE FROM messages WHERE environment_id = \(bind: environmentId) AND id = \(bind: id) RETURNING id").all()
            .isEmpty
    }

    /// Deletes the messages of a transaction, optionally of one channel. Returns how many.
    @discardableResult
    public func deleteMessages(environmentId: String, transactionId: String, channel: Channel?) async throws -> Int {
        var query = SQLQueryString(
            "DELETE FROM messages WHERE environment_id = \(bind: environmentId) AND transaction_id = \(bind: transactionId)")
        if let channel { query += " AND channel = \(bind: channel.rawValue)" }
        query += " RETURNING id"
        return try await db.raw(query).all().count
    }

    private static func message(from row: any SQLRow) throws -> MessageRecord {
        var unused: [String: MessageContent] = [:]
        return try message(from: row, contents: &unused)
    }

    /// A message from its row; `contents` memoises parsed payloads by their text.
    private static func message(from row: any SQLRow, contents: inout [String: MessageContent]) throws -> MessageRecord {
        let payload = try row.decode(column: "payload", as: String.self)
        let content: MessageContent
        if let known = contents[payload] {
            content = known
        } else {
            content = MessageContent(json: try JSONValue.parse(payload))
            if contents.count < 64 { contents[payload] = content }
        }
        let tokens = try JSONValue.parse(try row.optional("device_tokens") ?? "[]")
        let list: [String] = if case .array(let items) = tokens { items.compactMap(\.stringValue) } else { [] }
        return MessageRecord(
            id: try row.decode(column: "id", as: String.self), environmentId: try row.decode(column: "environment_id", as: String.self),
            notificationId: try row.decode(column: "notification_id", as: String.self),
            transactionId: try row.decode(column: "transaction_id", as: String.self),
            workflowId: try row.decode(column: "workflow_id", as: String.self),
            subscriberId: try row.decode(column: "subscriber_id", as: String.self),
            stepId: try row.decode(column: "step_id", as: String.self),
            channel: Channel(rawValue: try row.decode(column: "channel", as: String.self)) ?? .push,
            integrationId: try row.optional("integration_id"),
            providerId: try row.optional("provider_id"), status: try row.status(as: MessageStatus.self), content: content,
            deviceTokens: list, errorId: try row.optional("error_id"), errorText: try row.optional("error_text"),
            createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at"))
    }

    // MARK: Deliveries

    /// Inserts deliveries in multi-row statements.
    public func insertDeliveries(_ deliveries: [DeliveryRecord]) async throws {
        for start in stride(from: 0, to: deliveries.count, by: 250) {
            var insert = RowInsert(
                into: "deliveries",
                columns: [
                    "id", "environment_id", "message_id", "push_id", "device_id", "platform", "integration_id", "provider_id", "target",
                    "status", "outcome", "attempts", "provider_message_id", "error_code", "error_text", "next_attempt_at",
                    "window_started_at", "created_at", "updated_at",
                ])
            for delivery in deliveries[start..<min(start + 250, deliveries.count)] {
                insert.row(
                    delivery.id, delivery.environmentId, delivery.messageId, delivery.pushId, delivery.deviceId, delivery.platform,
                    delivery.integrationId, delivery.providerId, delivery.target.revealed, delivery.status.rawValue, delivery.outcome,
                    delivery.attempts, delivery.providerMessageId, delivery.errorCode, delivery.errorText,
                    delivery.nextAttemptAt?.millisecondsSince1970, delivery.windowStartedAt?.millisecondsSince1970,
                    delivery.createdAt.millisecondsSince1970, delivery.updatedAt.millisecondsSince1970)
            }
            _ = try await run(insert)
        }
    }

    /// Deliveries by id, in id order; unknown ids are left out.
    public func deliveries(ids: [String]) async throws -> [DeliveryRecord] {
        guard !ids.isEmpty else { return [] }
        var result: [DeliveryRecord] = []
        for start in stride(from: 0, to: ids.count, by: 500) {
            let chunk = Array(ids[start..<min(start + 500, ids.count)])
            result += try await db.raw(
                "SELECT \(unsafeRaw: Self.deliveryColumns) FROM deliveries WHERE id IN (\(binds: chunk)) ORDER BY id"
            )
            .all().map(Self.delivery(from:))
        }
        return result
    }

    /// Deliveries of an environment by id.
    public func deliveries(environmentId: String, ids: [String]) async throws -> [DeliveryRecord] {
        try await deliveries(ids: ids).filter { $0.environmentId == environmentId }
    }

    /// Saves deliveries' status and outcome: one statement per 200 deliveries (`WITH v(...) AS (VALUES …) UPDATE …
    /// FROM v`, which both SQLite and PostgreSQL run).
    public func updateDeliveries(_ deliveries: [DeliveryRecord]) async throws {
        let now = nowMilliseconds
        for start in stride(from: 0, to: deliveries.count, by: 200) {
            let rows = deliveries[start..<min(start + 200, deliveries.count)].map { delivery -> SQLQueryString in
                "(\(bind: delivery.id), \(bind: delivery.status.rawValue), \(bind: delivery.outcome ?? ""), \(bind: Int64(delivery.attempts)), \(bind: delivery.providerMessageId ?? ""), \(bind: delivery.errorCode ?? ""), \(bind: delivery.errorText ?? ""), \(bind: delivery.nextAttemptAt?.millisecondsSince1970 ?? -1), \(bind: delivery.windowStartedAt?.millisecondsSince1970 ?? -1))"
            }
            try await db.raw(
                """
                WITH v(id, status, outcome, attempts, provider_message_id, error_code, error_text, next_attempt_at, window_started_at) AS (
                    VALUES \(rows.joined(separator: ", ")))
                UPDATE deliveries SET status = v.status, outcome = NULLIF(v.outcome, ''), attempts = v.attempts,
                    provider_message_id = NULLIF(v.provider_message_id, ''), error_code = NULLIF(v.error_code, ''),
                    error_text = NULLIF(v.error_text, ''), next_attempt_at = NULLIF(v.next_attempt_at, -1),
                    window_started_at = NULLIF(v.window_started_at, -1), updated_at = \(bind: now)
                FROM v WHERE deliveries.id = v.id
                """
            ).run()
        }
        // The console's overview counts every transition with the statement batch that makes it (docs/console.md).
        var counts: [String: [String: [String: Int]]] = [:]
        for delivery in deliveries {
            counts[delivery.environmentId, default: [:]]["delivery", default: [:]][
                "\(delivery.providerId):\(delivery.status.rawValue)", default: 0] += 1
        }
        try await countConsoleStats(counts)
    }

    /// The messages of (notification, step) pairs and their deliveries' summaries, in one query per 500
    /// notifications: what recording outcomes decides a message's and a step's completion on.
    public func stepLedger(
        steps: [(notificationId: String, stepId: String)]
    ) async throws -> (
        messages: [MessageHead], deliveries: [DeliverySummary]
    ) {
        guard !steps.isEmpty else { return ([], []) }
        let wanted = Set(steps.map { [$0.notificationId, $0.stepId] })
        let notificationIds = Array(Set(steps.map(\.notificationId))).sorted()
        let stepIds = Array(Set(steps.map(\.stepId))).sorted()
        var messages: [MessageHead] = []
        var deliveries: [DeliverySummary] = []
        var seen: Set<String> = []
        for start in stride(from: 0, to: notificationIds.count, by: 500) {
            let chunk = Array(notificationIds[start..<min(start + 500, notificationIds.count)])
            let rows = try await db.raw(
                """
                SELECT m.id AS id, m.notification_id AS notification_id, m.step_id AS step_id, m.channel AS channel,
                m.integration_id AS integration_id, m.provider_id AS provider_id, d.id AS delivery_id, d.status AS status,
                d.error_code AS error_code, d.outcome AS outcome, d.error_text AS error_text
                FROM messages m LEFT JOIN deliveries d ON d.message_id = m.id
                WHERE m.notification_id IN (\(binds: chunk)) AND m.step_id IN (\(binds: stepIds)) ORDER BY m.id, d.id
                """
            ).all()
            for row in rows {
                let id = try row.decode(column: "id", as: String.self)
                let notificationId = try row.decode(column: "notification_id", as: String.self)
                let stepId = try row.decode(column: "step_id", as: String.self)
                guard wanted.contains([notificationId, stepId]) else { continue }
                if seen.insert(id).inserted {
                    messages.append(
                        MessageHead(
                            id: id, notificationId: notificationId, stepId: stepId,
                            channel: Channel(rawValue: try row.decode(column: "channel", as: String.self)) ?? .push,
                            integrationId: try row.optional("integration_id"), providerId: try row.optional("provider_id")))
                }
                guard let deliveryId = try row.optional("delivery_id", as: String.self) else { continue }
                deliveries.append(
                    DeliverySummary(
                        id: deliveryId, messageId: id, status: try row.status(as: DeliveryStatus.self),
                        errorCode: try row.optional("error_code"), outcome: try row.optional("outcome"),
                        errorText: try row.optional("error_text")))
            }
        }
        return (messages, deliveries)
    }

    /// The current status of each delivery: the light re-read of a transaction that already holds the records.
    public func deliveryStatuses(ids: [String]) async throws -> [String: DeliveryStatus] {
        var result: [String: DeliveryStatus] = [:]
        for start in stride(from: 0, to: ids.count, by: 500) {
            let chunk = Array(ids[start..<min(start + 500, ids.count)])
            for row in try await db.raw("SELECT id, status FROM deliveries WHERE id IN (\(binds: chunk))").all() {
                result[try row.decode(column: "id", as: String.self)] = try row.status(as: DeliveryStatus.self)
            }
        }
        return result
    }

    /// A page of deliveries with one of `statuses`, oldest first, after the cursor (a delivery id).
    public func listDeliveries(
        environmentId: String, statuses: [DeliveryStatus], providerId: String?, after: String?, limit: Int
    ) async throws
        -> Page<DeliveryRecord>
    {
        var query = SQLQueryString(
            "SELECT \(unsafeRaw: Self.deliveryColumns) FROM deliveries WHERE environment_id = \(bind: environmentId)")
        if !statuses.isEmpty { query += " AND status IN (\(binds: statuses.map(\.rawValue)))" }
        if let providerId { query += " AND provider_id = \(bind: providerId)" }
        if let after { query += " AND id > \(bind: after)" }
        query += " ORDER BY id LIMIT \(bind: limit + 1)"
        var items = try await db.raw(query).all().map(Self.delivery(from:))
        let more = items.count > limit
        if more { items.removeLast() }
        return Page(items: items, nextCursor: more ? items.last?.id : nil)
    }

    /// Marks the unfinished deliveries of a transaction cancelled; returns their ids.
    public func cancelDeliveries(environmentId: String, transactionId: String) async throws -> [String] {
        try await db.raw(
            """
            UPDATE deliveries SET status = 'canceled', updated_at = \(bind: nowMilliseconds)
            WHERE status IN ('pending', 'retrying') AND message_id IN (
                SELECT id FROM messages WHERE environment_id = \(bind: environmentId) AND transaction_id = \(bind: transactionId))
            RETURNING id
            """
        ).all().map { try $0.decode(column: "id", as: String.self) }
    }

    static func delivery(from row: any SQLRow) throws -> DeliveryRecord {
        DeliveryRecord(
            id: try row.decode(column: "id", as: String.self), environmentId: try row.decode(column: "environment_id", as: String.self),
            messageId: try row.optional("message_id"), deviceId: try row.optional("device_id"),
            integrationId: try row.optional("integration_id"),
            providerId: try row.decode(column: "provider_id", as: String.self),
            target: Secret(try row.decode(column: "target", as: String.self)),
            status: DeliveryStatus(rawValue: try row.decode(column: "status", as: String.self)) ?? .pending,
            outcome: try row.optional("outcome"),
            attempts: try row.decode(column: "attempts", as: Int.self), providerMessageId: try row.optional("provider_message_id"),
            errorCode: try row.optional("error_code"), errorText: try row.optional("error_text"),
            nextAttemptAt: try row.optionalDate("next_attempt_at"),
            windowStartedAt: try row.optionalDate("window_started_at"), pushId: try row.optional("push_id"),
            platform: try row.optional("platform"), createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at"))
    }

    // MARK: Execution details

    /// Appends execution details.
    public func appendDetails(_ details: [ExecutionDetail]) async throws {
        for start in stride(from: 0, to: details.count, by: 300) {
            var insert = RowInsert(
                into: "execution_details",
                columns: [
                    "id", "environment_id", "notification_id", "message_id", "delivery_id", "step_id", "provider_id", "status", "detail",
                    "source", "is_retry", "raw", "created_at",
                ])
            for detail in details[start..<min(start + 300, details.count)] {
                insert.row(
                    detail.id, detail.environmentId, detail.notificationId, detail.messageId, detail.deliveryId, detail.stepId,
                    detail.providerId, detail.status.rawValue, detail.detail, detail.source.rawValue, detail.isRetry, detail.raw,
                    detail.createdAt.millisecondsSince1970)
            }
            _ = try await run(insert)
        }
    }

    /// The execution details of notifications, oldest first.
    public func executionDetails(notificationIds: [String]) async throws -> [ExecutionDetail] {
        guard !notificationIds.isEmpty else { return [] }
        return try await db.raw(
            """
            SELECT id, environment_id, notification_id, message_id, delivery_id, step_id, provider_id, status, detail, source, is_retry, raw,
                created_at FROM execution_details WHERE notification_id IN (\(binds: notificationIds)) ORDER BY created_at, id
            """
        ).all().map { row in
            ExecutionDetail(
                id: try row.decode(column: "id", as: String.self), environmentId: try row.decode(column: "environment_id", as: String.self),
                notificationId: try row.optional("notification_id"), messageId: try row.optional("message_id"),
                deliveryId: try row.optional("delivery_id"), stepId: try row.optional("step_id"),
                providerId: try row.optional("provider_id"),
                status: ExecutionDetail.Status(rawValue: try row.decode(column: "status", as: String.self)) ?? .pending,
                detail: try row.decode(column: "detail", as: String.self),
                source: ExecutionDetail.Source(rawValue: try row.decode(column: "source", as: String.self)) ?? .internal,
                isRetry: try row.decode(column: "is_retry", as: Bool.self), raw: try row.optional("raw"),
                createdAt: try row.date("created_at"))
        }
    }

    // MARK: Digests

    /// Adds an event to the open digest of (workflow, step, subscriber, key), or opens one owned by `notificationId`
    /// that closes at `closesAt`. Returns the digest id and whether this call opened it. Two runs racing to open the
    /// same digest meet at the partial unique index: the loser waits for the winner's commit and joins its digest.
    public func joinDigest(
        environmentId: String, workflowId: String, stepId: String, subscriberId: String, key: String, notificationId: String,
        event: JSONValue, closesAt: Date, keepEvents: Int = 100
    ) async throws -> (id: String, opened: Bool) {
        let now = nowMilliseconds
        let lockSuffix = dialect == .postgres ? " FOR UPDATE" : ""
        for _ in 0..<2 {
            if let row = try await db.raw(
                """
                SELECT id, events, event_count FROM digests WHERE environment_id = \(bind: environmentId) AND workflow_id = \(bind: workflowId)
                AND step_id = \(bind: stepId) AND subscriber_id = \(bind: subscriberId) AND digest_key = \(bind: key) AND status = 'open'\(unsafeRaw: lockSuffix)
                """
            ).first() {
                let id = try row.decode(column: "id", as: String.self)
                var events: [JSONValue] = []
                if case .array(let stored) = try JSONValue.parse(try row.decode(column: "events", as: String.self)) { events = stored }
                if events.count < keepEvents { events.append(event) }
                try await db.raw(
                    """
                    UPDATE digests SET events = \(bind: JSONValue.array(events).jsonString()), event_count = event_count + 1,
                        updated_at = \(bind: now) WHERE id = \(bind: id)
                    """
                ).run()
                return (id, false)
            }
            let id = ids.next()
            let inserted = try await db.raw(
                """
                INSERT INTO digests (id, environment_id, workflow_id, step_id, subscriber_id, digest_key, notification_id, closes_at, event_count,
                    events, status, created_at, updated_at)
                VALUES (\(bind: id), \(bind: environmentId), \(bind: workflowId), \(bind: stepId), \(bind: subscriberId), \(bind: key),
                    \(bind: notificationId), \(bind: closesAt.millisecondsSince1970), 1, \(bind: JSONValue.array([event]).jsonString()), 'open',
                    \(bind: now), \(bind: now))
                ON CONFLICT (environment_id, workflow_id, step_id, subscriber_id, digest_key) WHERE status = 'open' DO NOTHING
                RETURNING id
                """
            ).all()
            if !inserted.isEmpty { return (id, true) }
        }
        throw HeraldError(.conflict, "digest of step \(stepId) is being opened concurrently; retry")
    }

    /// Closes the open digest owned by a notification's step; returns the collected events and their total count.
    public func closeDigest(notificationId: String, stepId: String) async throws -> (events: [JSONValue], count: Int)? {
        guard
            let row = try await db.raw(
                """
                UPDATE digests SET status = 'closed', updated_at = \(bind: nowMilliseconds)
                WHERE notification_id = \(bind: notificationId) AND step_id = \(bind: stepId) AND status = 'open'
                RETURNING events, event_count
                """
            ).first()
        else { return nil }
        var events: [JSONValue] = []
        if case .array(let stored) = try JSONValue.parse(try row.decode(column: "events", as: String.self)) { events = stored }
        return (events, try row.decode(column: "event_count", as: Int.self))
    }
}
