import Foundation
import HeraldCore
import SQLKit

/// Status webhooks: endpoints and the events produced for them (`migrations/*/0009_webhooks.sql`, `docs/webhooks.md`).
extension StoreSession {
    private static let endpointColumns =
        "id, environment_id, url, description, event_types, workflow_ids, secret, previous_secret, previous_secret_expires_at, disabled, disabled_reason, failing_since, created_at, updated_at, include_content"
    private static let messageColumns =
        "id, environment_id, endpoint_id, event_type, payload, status, attempts, last_status, last_error, next_attempt_at, window_started_at, created_at, updated_at"
    /// The field name an endpoint's secret is sealed under (bound into the ciphertext with the endpoint id).
    private static let secretField = "webhookSecret"
    private static let previousSecretField = "webhookPreviousSecret"

    // MARK: Endpoints

    public func createWebhookEndpoint(_ endpoint: WebhookEndpoint) async throws {
        try await db.raw(
            """
            INSERT INTO webhook_endpoints (\(unsafeRaw: Self.endpointColumns))
            VALUES (\(bind: endpoint.id), \(bind: endpoint.environmentId), \(bind: endpoint.url), \(bind: endpoint.description),
                    \(bind: Self.jsonList(endpoint.eventTypes)), \(bind: endpoint.workflowIds.map(Self.jsonList)),
                    \(bind: try sealSecret(endpoint)), \(bind: try sealPreviousSecret(endpoint)),
                    \(bind: endpoint.previousSecretExpiresAt?.millisecondsSince1970), \(bind: endpoint.disabled), \(bind: endpoint.disabledReason),
                    \(bind: endpoint.failingSince?.millisecondsSince1970), \(bind: endpoint.createdAt.millisecondsSince1970),
                    \(bind: endpoint.updatedAt.millisecondsSince1970), \(bind: endpoint.includeContent))
            """
        ).run()
    }

    /// Replaces an endpoint's mutable fields; false when it does not exist.
    @discardableResult
    public func updateWebhookEndpoint(_ endpoint: WebhookEndpoint) async throws -> Bool {
        try await !db.raw(
            """
            UPDATE webhook_endpoints SET url = \(bind: endpoint.url), description = \(bind: endpoint.description),
                event_types = \(bind: Self.jsonList(endpoint.eventTypes)), workflow_ids = \(bind: endpoint.workflowIds.map(Self.jsonList)),
                secret = \(bind: try sealSecret(endpoint)), previous_secret = \(bind: try sealPreviousSecret(endpoint)),
                previous_secret_expires_at = \(bind: endpoint.previousSecretExpiresAt?.millisecondsSince1970),
                disabled = \(bind: endpoint.disabled),
                disabled_reason = \(bind: endpoint.disabledReason), failing_since = \(bind: endpoint.failingSince?.millisecondsSince1970),
                updated_at = \(bind: endpoint.updatedAt.millisecondsSince1970), include_content = \(bind: endpoint.includeContent)
            WHERE id = \(bind: endpoint.id) AND environment_id = \(bind: endpoint.environmentId) RETURNING id
            """
        ).all().isEmpty
    }

    /// Records an attempt's effect on the endpoint's health: a success clears the failing streak; a failure starts one
    /// (or continues it) and, once it is older than `disableAfter`, disables the endpoint. Returns whether this call
    /// disabled it.
    public func recordWebhookEndpointHealth(id: String, succeeded: Bool, disableAfter: TimeInterval) async throws -> Bool {
        let now = nowMilliseconds
        if succeeded {
            try await db.raw("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = \(bind: id) AND failing_since IS NOT NULL").run()
            return false
        }
        try await db.raw("UPDATE webhook_endpoints SET failing_since = \(bind: now) WHERE id = \(bind: id) AND failing_since IS NULL").run()
        let limit = now - Int64(disableAfter * 1000)
        return try await !db.raw(
            """
            UPDATE webhook_endpoints SET disabled = \(bind: true), disabled_reason = 'failing', updated_at = \(bind: now)
            WHERE id = \(bind: id) AND disabled = \(bind: false) AND failing_since <= \(bind: limit) RETURNING id
            """
        ).all().isEmpty
    }

    /// One endpoint; with `lock` (PostgreSQL) its row stays locked until the transaction ends, so that a
    /// read-modify-write of it cannot lose a concurrent change (the health record disabling it, a rotation).
    public func webhookEndpoint(environmentId: String, id: String, lock: Bool = false) async throws -> WebhookEndpoint? {
        let suffix = lock && dialect == .postgres ? " FOR UPDATE" : ""
        return try await db.raw(
            """
            SELECT \(unsafeRaw: Self.endpointColumns) FROM webhook_endpoints WHERE environment_id = \(bind: environmentId) AND id = \(bind: id)\(unsafeRaw: suffix)
            """
        ).first().map(webhookEndpoint(from:))
    }

    /// An environment's endpoints, oldest first.
    public func webhookEndpoints(environmentId: String) async throws -> [WebhookEndpoint] {
        try await db.raw(
            "SELECT \(unsafeRaw: Self.endpointColumns) FROM webhook_endpoints WHERE environment_id = \(bind: environmentId) ORDER BY id"
        ).all().map(webhookEndpoint(from:))
    }

    /// Which of `ids` are endpoints that still exist. On PostgreSQL the rows are locked against deletion until the
    /// transaction ends (`FOR KEY SHARE`), so events inserted for them cannot fail their foreign key because of a
    /// delete committed meanwhile.
    public func existingWebhookEndpointIds(_ ids: [String]) async throws -> Set<String> {
        guard !ids.isEmpty else { return [] }
        let lock = dialect == .postgres ? " FOR KEY SHARE" : ""
        return Set(
            try await db.raw("SELECT id FROM webhook_endpoints WHERE id IN (\(binds: ids))\(unsafeRaw: lock)").all().map {
                try $0.decode(column: "id", as: String.self)
            })
    }

    /// Deletes an endpoint and its events; false when it does not exist.
    public func deleteWebhookEndpoint(environmentId: String, id: String) async throws -> Bool {
        try await db.raw("DELETE FROM webhook_messages WHERE environment_id = \(bind: environmentId) AND endpoint_id = \(bind: id)").run()
        return try await !db.raw(
            "DELETE FROM webhook_endpoints WHERE environment_id = \(bind: environmentId) AND id = \(bind: id) RETURNING id"
        ).all().isEmpty
    }

    private func sealPreviousSecret(_ endpoint: WebhookEndpoint) throws -> String? {
        try endpoint.previousSecret.map {
            try cipher.seal($0.revealed, environmentId: endpoint.environmentId, integrationId: endpoint.id, field: Self.previousSecretField)
        }
    }

    private func sealSecret(_ endpoint: WebhookEndpoint) throws -> String {
        try cipher.seal(
            endpoint.secret.revealed, environmentId: endpoint.environmentId, integrationId: endpoint.id, field: Self.secretField)
    }

    private func webhookEndpoint(from row: any SQLRow) throws -> WebhookEndpoint {
        let id = try row.decode(column: "id", as: String.self)
        let environmentId = try row.decode(column: "environment_id", as: String.self)
        let secret = try cipher.open(
            try row.decode(column: "secret", as: String.self), environmentId: environmentId, integrationId: id, field: Self.secretField)
        let previous = try row.optional("previous_secret", as: String.self).map {
            Secret(try cipher.open($0, environmentId: environmentId, integrationId: id, field: Self.previousSecretField))
        }
        var endpoint = WebhookEndpoint(
            id: id, environmentId: environmentId, url: try row.decode(column: "url", as: String.self),
            description: try row.optional("description"), eventTypes: Self.list(try row.decode(column: "event_types", as: String.self)),
            workflowIds: try row.optional("workflow_ids", as: String.self).map(Self.list), secret: Secret(secret),
            previousSecret: previous, previousSecretExpiresAt: try row.optionalDate("previous_secret_expires_at"),
            disabled: try row.decode(column: "disabled", as: Bool.self), disabledReason: try row.optional("disabled_reason"),
            failingSince: try row.optionalDate("failing_since"), createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at"))
        endpoint.includeContent = try row.decode(column: "include_content", as: Bool.self)
        return endpoint
    }

    private static func jsonList(_ items: [String]) -> String { JSONValue.array(items.map(JSONValue.string)).jsonString() }

    private static func list(_ text: String) -> [String] {
        guard case .array(let items)? = try? JSONValue.parse(text) else { return [] }
        return items.compactMap(\.stringValue)
    }

    // MARK: Events

    /// Inserts events in multi-row statements (in the transaction of the state change they report).
    public func insertWebhookMessages(_ messages: [WebhookMessage]) async throws {
        for start in stride(from: 0, to: messages.count, by: 200) {
            var insert = RowInsert(
                into: "webhook_messages",
                columns: [
                    "id", "environment_id", "endpoint_id", "event_type", "payload", "status", "attempts", "last_status", "last_error",
                    "created_at", "updated_at",
                ])
            for message in messages[start..<min(start + 200, messages.count)] {
                insert.row(
                    message.id, message.environmentId, message.endpointId, message.eventType, message.payload, message.status.rawValue,
                    Int64(message.attempts), message.lastStatus.map(Int64.init), message.lastError, message.createdAt.millisecondsSince1970,
                    message.updatedAt.millisecondsSince1970)
            }
            _ = try await run(insert)
        }
    }

    /// Deletes delivered and dead events produced before `time`, at most `limit` (housekeeping: a fan-out of N members
    /// leaves N events per endpoint). Pending events stay, for a replay. Returns how many.
    public func purgeWebhookMessages(before time: Date, limit: Int) async throws -> Int {
        // Event ids are `msg_` + a time-ordered id (its first 8 hex digits are the Unix second): the primary key is the
        // time index, so the purge is a range scan, not a pass over the table.
        let cutoff = "msg_" + String(format: "%08x", UInt32(clamping: max(0, Int64(time.timeIntervalSince1970)))) + "0000000000000000"
        return try await db.raw(
            """
            DELETE FROM webhook_messages WHERE id IN (
                SELECT id FROM webhook_messages WHERE id < \(bind: cutoff) AND status <> 'pending' ORDER BY id LIMIT \(bind: limit))
            RETURNING id
            """
        ).all().count
    }

    /// Events by id.
    public func webhookMessages(ids: [String]) async throws -> [WebhookMessage] {
        var result: [WebhookMessage] = []
        for start in stride(from: 0, to: ids.count, by: 500) {
            let chunk = Array(ids[start..<min(start + 500, ids.count)])
            result += try await db.raw(
                "SELECT \(unsafeRaw: Self.messageColumns) FROM webhook_messages WHERE id IN (\(binds: chunk)) ORDER BY id"
            ).all().map(Self.webhookMessage(from:))
        }
        return result
    }

    /// Records attempts: each event's status, attempt count, last answer and next attempt, one statement per 200.
    /// Only an event still pending with the attempt count before this attempt changes: one another job recorded
    /// meanwhile (a replay, a job whose lease ran out) keeps that record.
    public func updateWebhookMessages(_ messages: [WebhookMessage]) async throws {
        let now = nowMilliseconds
        for start in stride(from: 0, to: messages.count, by: 200) {
            let rows = messages[start..<min(start + 200, messages.count)].map { message -> SQLQueryString in
                "(\(bind: message.id), \(bind: message.status.rawValue), \(bind: Int64(message.attempts)), \(bind: Int64(message.lastStatus ?? -1)), \(bind: message.lastError ?? ""), \(bind: message.nextAttemptAt?.millisecondsSince1970 ?? -1))"
            }
            try await db.raw(
                """
                WITH v(id, status, attempts, last_status, last_error, next_attempt_at) AS (VALUES \(rows.joined(separator: ", ")))
                UPDATE webhook_messages SET status = v.status, attempts = v.attempts, last_status = NULLIF(v.last_status, -1),
                    last_error = NULLIF(v.last_error, ''), next_attempt_at = NULLIF(v.next_attempt_at, -1), updated_at = \(bind: now)
                FROM v WHERE webhook_messages.id = v.id AND webhook_messages.status = 'pending'
                    AND webhook_messages.attempts = v.attempts - 1
                """
            ).run()
        }
    }

    /// A page of an endpoint's events, newest first, before the cursor `before` (an event id), optionally of one
    /// status.
    public func webhookMessages(
        environmentId: String, endpointId: String, status: WebhookMessageStatus?, before: String?, limit: Int
    ) async throws -> [WebhookMessage] {
        var query = SQLQueryString(
            "SELECT \(unsafeRaw: Self.messageColumns) FROM webhook_messages WHERE environment_id = \(bind: environmentId) AND endpoint_id = \(bind: endpointId)"
        )
        if let status { query += " AND status = \(bind: status.rawValue)" }
        if let before { query += " AND id < \(bind: before)" }
        query += " ORDER BY id DESC LIMIT \(bind: limit)"
        return try await db.raw(query).all().map(Self.webhookMessage(from:))
    }

    /// The ids of an endpoint's events created at or after `since` that were not delivered (pending or dead), oldest
    /// first, at most `limit`, and marks them pending with a fresh attempt count (a replay).
    public func replayWebhookMessages(environmentId: String, endpointId: String, since: Date, limit: Int) async throws -> [String] {
        let ids = try await db.raw(
            """
            SELECT id FROM webhook_messages WHERE environment_id = \(bind: environmentId) AND endpoint_id = \(bind: endpointId)
            AND created_at >= \(bind: since.millisecondsSince1970) AND status <> 'delivered' ORDER BY id LIMIT \(bind: limit)
            """
        ).all().map { try $0.decode(column: "id", as: String.self) }
        for start in stride(from: 0, to: ids.count, by: 500) {
            let chunk = Array(ids[start..<min(start + 500, ids.count)])
            try await db.raw(
                """
                UPDATE webhook_messages SET status = 'pending', attempts = 0, next_attempt_at = NULL,
                    window_started_at = \(bind: nowMilliseconds), updated_at = \(bind: nowMilliseconds) WHERE id IN (\(binds: chunk))
                """
            ).run()
        }
        return ids
    }

    private static func webhookMessage(from row: any SQLRow) throws -> WebhookMessage {
        WebhookMessage(
            id: try row.decode(column: "id", as: String.self), environmentId: try row.decode(column: "environment_id", as: String.self),
            endpointId: try row.decode(column: "endpoint_id", as: String.self),
            eventType: try row.decode(column: "event_type", as: String.self),
            payload: try row.decode(column: "payload", as: String.self), status: try row.status(as: WebhookMessageStatus.self),
            attempts: Int(try row.decode(column: "attempts", as: Int64.self)),
            lastStatus: try row.optional("last_status", as: Int64.self).map(Int.init),
            lastError: try row.optional("last_error"), nextAttemptAt: try row.optionalDate("next_attempt_at"),
            windowStartedAt: try row.optionalDate("window_started_at"), createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at"))
    }
}
