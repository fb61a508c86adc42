import Foundation
import HeraldCore
import SQLKit

/// What to do with a request that carries an `Idempotency-Key`.
public enum IdempotencyDecision: Sendable, Equatable {
    /// First time: run it, then record the response.
    case proceed
    /// Seen with the same body: answer with the recorded response.
    case replay(status: Int, contentType: String?, body: String)
    /// Seen, still running: answer 409 and let the client retry.
    case inProgress
    /// Seen with a different body: refuse (422).
    case mismatch
}

extension StoreSession {
    /// How long a recorded response is replayed.
    public static let idempotencyTTL: Duration = .seconds(24 * 3600)
    /// A request still marked in progress after this long is presumed dead, and the key can be used again.
    public static let idempotencyStaleAfter: Duration = .seconds(300)

    /// Claims `key` for a request whose method, path and body hash to `requestHash`. Run it in a transaction.
    public func claimIdempotencyKey(environmentId: String, key: String, requestHash: String) async throws -> IdempotencyDecision {
        let now = nowMilliseconds
        let stale = now - Int64(Self.idempotencyStaleAfter.components.seconds * 1000)
        try await db.raw(
            """
            DELETE FROM idempotency_keys WHERE environment_id = \(bind: environmentId) AND key = \(bind: key)
            AND (expires_at <= \(bind: now) OR (state = 'in_progress' AND created_at <= \(bind: stale)))
            """
        ).run()
        let inserted = try await db.raw(
            """
            INSERT INTO idempotency_keys (environment_id, key, request_hash, state, created_at, expires_at)
            VALUES (\(bind: environmentId), \(bind: key), \(bind: requestHash), 'in_progress', \(bind: now),
                \(bind: now + Int64(Self.idempotencyTTL.components.seconds * 1000)))
            ON CONFLICT (environment_id, key) DO NOTHING RETURNING key
            """
        ).all()
        if !inserted.isEmpty { return .proceed }
        guard
            let row = try await db.raw(
                """
                SELECT request_hash, state, status_code, response_headers, response_body FROM idempotency_keys
                WHERE environment_id = \(bind: environmentId) AND key = \(bind: key)
                """
            ).first()
        else { return .inProgress }
        // While the first request runs, nothing can be said about the body yet: ask the client to retry.
        guard try row.decode(column: "state", as: String.self) == "done", let status = try row.optional("status_code", as: Int.self) else {
            return .inProgress
        }
        guard try row.decode(column: "request_hash", as: String.self) == requestHash else { return .mismatch }
        return .replay(status: status, contentType: try row.optional("response_headers"), body: try row.optional("response_body") ?? "")
    }

    /// Records the response of a claimed key.
    public func completeIdempotencyKey(environmentId: String, key: String, status: Int, contentType: String?, body: String) async throws {
        try await db.raw(
            """
            UPDATE idempotency_keys SET state = 'done', status_code = \(bind: status), response_headers = \(bind: contentType),
                response_body = \(bind: body)
            WHERE environment_id = \(bind: environmentId) AND key = \(bind: key)
            """
        ).run()
    }

    /// Forgets a claimed key whose request failed, so that a retry runs again.
    public func releaseIdempotencyKey(environmentId: String, key: String) async throws {
        try await db.raw(
            "DELETE FROM idempotency_keys WHERE environment_id = \(bind: environmentId) AND key = \(bind: key) AND state = 'in_progress'"
        ).run()
    }

    /// Deletes expired records; returns how many.
    @discardableResult
    public func purgeExpiredIdempotencyKeys() async throws -> Int {
        try await db.raw("DELETE FROM idempotency_keys WHERE expires_at <= \(bind: nowMilliseconds) RETURNING key").all().count
    }
}
