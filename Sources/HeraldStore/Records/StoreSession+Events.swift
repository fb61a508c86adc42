import Foundation
import HeraldCore
import PostgresNIO
import SQLKit

extension StoreSession {
    private static let eventColumns =
        "id, environment_id, transaction_id, workflow_id, request_hash, response, payload, recipients, actor, tenant, overrides, status, cursor, created_at"

    /// Inserts many accepted triggers in one statement per chunk. Returns the transaction ids that were already
    /// taken (those rows were not inserted).
    public func insertEvents(_ events: [EventRecord]) async throws -> Set<String> {
        guard !events.isEmpty else { return [] }
        let now = nowMilliseconds
        var inserted: Set<String> = []
        for start in stride(from: 0, to: events.count, by: 100) {
            var insert = Self.eventRows(events[start..<min(start + 100, events.count)], now: now)
            insert.suffix = "ON CONFLICT (environment_id, transaction_id) DO NOTHING RETURNING id"
            for row in try await run(insert) { inserted.insert(try row.decode(column: "id", as: String.self)) }
        }
        try await countConsoleStats(Self.triggerCounts(events.filter { inserted.contains($0.id) }))
        return Set(events.filter { !inserted.contains($0.id) }.map(\.transactionId))
    }

    /// The rows of accepted triggers, for ``insertEvents(_:)`` and ``insertTriggersAtOnce(_:jobs:)``.
    private static func eventRows(_ events: some Collection<EventRecord>, now: Int64) -> RowInsert {
        var insert = RowInsert(
            into: "events",
            columns: [
                "id", "environment_id", "transaction_id", "workflow_id", "request_hash", "response", "payload", "recipients", "actor",
                "tenant", "overrides", "status", "cursor", "created_at", "updated_at",
            ])
        for event in events {
            insert.row(
                event.id, event.environmentId, event.transactionId, event.workflowId, event.requestHash, event.response,
                event.payload.jsonString(), event.recipients.jsonString(), event.actor?.jsonString(), event.tenant?.jsonString(),
                event.overrides.jsonString(), event.status.rawValue, event.cursor, event.createdAt.millisecondsSince1970, now)
        }
        return insert
    }

    /// The console's trigger counters for `events`: environment → `trigger` → workflow → count.
    private static func triggerCounts(_ events: [EventRecord]) -> [String: [String: [String: Int]]] {
        var counts: [String: [String: [String: Int]]] = [:]
        for event in events { counts[event.environmentId, default: [:]]["trigger", default: [:]][event.workflowId, default: 0] += 1 }
        return counts
    }

    /// The most events ``insertTriggersAtOnce(_:jobs:)`` takes: with their jobs that is about 25,000 bound values,
    /// well under PostgreSQL's 65,535 per statement.
    public static let maxEventsAtOnce = 1_000

    /// PostgreSQL only: commits accepted triggers — their events, their first jobs, the console's trigger counts and
    /// the workers' wake-up — in **one statement** (data-modifying CTEs are atomic on their own; outside a transaction
    /// it commits by itself), so a group of triggers costs one round trip instead of a transaction of six
    /// (`BEGIN`, insert events, count, insert jobs, `NOTIFY`, `COMMIT`). A transaction id another request
    /// committed meanwhile fails the whole statement and nothing is written: it throws ``TransactionIdTaken``.
    /// At most ``maxEventsAtOnce`` events.
    public func insertTriggersAtOnce(_ events: [EventRecord], jobs: [NewJob]) async throws {
        precondition(dialect == .postgres && events.count <= Self.maxEventsAtOnce)
        guard !events.isEmpty || !jobs.isEmpty else { return }
        let now = nowMilliseconds
        let eventRows = Self.eventRows(events, now: now)
        let jobRows = Self.jobRows(jobs, now: now)
        var parts: [SQLQueryString] = []
        if !eventRows.isEmpty { parts.append("e AS (\(eventRows))") }
        if let stats = consoleStatsUpsert(Self.triggerCounts(events)) { parts.append("s AS (\(stats))") }
        if !jobRows.isEmpty { parts.append("j AS (\(jobRows))") }
        let notify: SQLQueryString = jobs.isEmpty ? "SELECT 1" : "SELECT pg_notify(\(bind: PostgresDriver.jobsChannel), '')"
        do {
            try await db.raw("WITH \(parts.joined(separator: ", ")) \(notify)").run()
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
            throw TransactionIdTaken()
        }
    }

    /// An event by id.
    public func event(id: String) async throws -> EventRecord? {
        try await db.raw("SELECT \(unsafeRaw: Self.eventColumns) FROM events WHERE id = \(bind: id)").first().map(Self.event(from:))
    }

    /// An event by transaction id.
    public func event(environmentId: String, transactionId: String) async throws -> EventRecord? {
        try await db.raw(
            """
            SELECT \(unsafeRaw: Self.eventColumns) FROM events
            WHERE environment_id = \(bind: environmentId) AND transaction_id = \(bind: transactionId)
            """
        ).first().map(Self.event(from:))
    }

    /// Events by transaction id, for a batch of triggers reusing ids.
    public func events(environmentId: String, transactionIds: [String]) async throws -> [String: EventRecord] {
        guard !transactionIds.isEmpty else { return [:] }
        let rows = try await db.raw(
            """
            SELECT \(unsafeRaw: Self.eventColumns) FROM events
            WHERE environment_id = \(bind: environmentId) AND transaction_id IN (\(binds: transactionIds))
            """
        ).all()
        return Dictionary(try rows.map(Self.event(from:)).map { ($0.transactionId, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// Records fan-out progress (the checkpoint) of an event.
    public func updateEvent(id: String, status: EventStatus, cursor: String?) async throws {
        try await db.raw(
            "UPDATE events SET status = \(bind: status.rawValue), cursor = \(bind: cursor), updated_at = \(bind: nowMilliseconds) WHERE id = \(bind: id)"
        ).run()
    }

    private static func event(from row: any SQLRow) throws -> EventRecord {
        EventRecord(
            id: try row.decode(column: "id", as: String.self), environmentId: try row.decode(column: "environment_id", as: String.self),
            transactionId: try row.decode(column: "transaction_id", as: String.self),
            workflowId: try row.decode(column: "workflow_id", as: String.self),
            requestHash: try row.decode(column: "request_hash", as: String.self), response: try row.optional("response") ?? "",
            payload: try JSONValue.parse(try row.decode(column: "payload", as: String.self)),
            recipients: try JSONValue.parse(try row.decode(column: "recipients", as: String.self)),
            actor: try row.optional("actor", as: String.self).map(JSONValue.parse),
            tenant: try row.optional("tenant", as: String.self).map(JSONValue.parse),
            overrides: try JSONValue.parse(try row.decode(column: "overrides", as: String.self)),
            status: try row.status(as: EventStatus.self), cursor: try row.optional("cursor"),
            createdAt: try row.date("created_at")
        )
    }
}

/// A transaction id was committed by another request while a group of triggers was being committed
/// (``StoreSession/insertTriggersAtOnce(_:jobs:)``): nothing of the group was written.
public struct TransactionIdTaken: Error, Sendable {}
