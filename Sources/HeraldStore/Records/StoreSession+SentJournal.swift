import Foundation
import HeraldCore
import SQLKit

extension StoreSession {
    // MARK: Sent journal (migrations/*/0007_sent_journal.sql, docs/reliability.md §Duplicates)

    /// Records deliveries a provider accepted before the run that sent them commits; ids already journaled are kept.
    public func journalSent(_ sent: [(deliveryId: String, providerMessageId: String?)]) async throws {
        let now = nowMilliseconds
        for start in stride(from: 0, to: sent.count, by: 250) {
            var insert = RowInsert(into: "sent_journal", columns: ["delivery_id", "provider_message_id", "created_at"])
            for entry in sent[start..<min(start + 250, sent.count)] {
                insert.row(entry.deliveryId, entry.providerMessageId, now)
            }
            insert.suffix = "ON CONFLICT (delivery_id) DO NOTHING"
            _ = try await run(insert)
        }
    }

    /// The journaled sends among `deliveryIds`: delivery id → the provider's message id (nil when it gave none).
    public func journaledSends(_ deliveryIds: [String]) async throws -> [String: String?] {
        var result: [String: String?] = [:]
        for start in stride(from: 0, to: deliveryIds.count, by: 500) {
            let chunk = Array(deliveryIds[start..<min(start + 500, deliveryIds.count)])
            for row in try await db.raw(
                "SELECT delivery_id, provider_message_id FROM sent_journal WHERE delivery_id IN (\(binds: chunk))"
            ).all() {
                result[try row.decode(column: "delivery_id", as: String.self)] = .some(
                    try row.decode(column: "provider_message_id", as: String?.self))
            }
        }
        return result
    }

    /// Forgets journaled sends once their outcomes are committed with the run.
    public func forgetJournaledSends(_ deliveryIds: [String]) async throws {
        for start in stride(from: 0, to: deliveryIds.count, by: 500) {
            let chunk = Array(deliveryIds[start..<min(start + 500, deliveryIds.count)])
            try await db.raw("DELETE FROM sent_journal WHERE delivery_id IN (\(binds: chunk))").run()
        }
    }

    /// Deletes journal rows older than `cutoff`: left by a run whose deliveries never committed (its runs were
    /// cancelled, or recorded by another attempt).
    @discardableResult
    public func purgeSentJournal(before cutoff: Date) async throws -> Int {
        try await db.raw("DELETE FROM sent_journal WHERE created_at < \(bind: cutoff.millisecondsSince1970) RETURNING delivery_id")
            .all().count
    }
}
