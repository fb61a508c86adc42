import Foundation
import HeraldCore
import HeraldStore
import HeraldTestSupport
import Testing

/// The sent journal (migrations/*/0007_sent_journal.sql): accepted sends written before their job commits, read by
/// the job's next attempt, forgotten by its commit, purged when orphaned. End to end, `scripts/crash-test` bounds the
/// duplicates a SIGKILL leaves by what was on the wire (docs/reliability.md §Crashes).
@Suite("Sent journal")
struct SentJournalTests {
    @Test("journaled sends are found, kept once, forgotten and purged", arguments: Backend.available)
    func lifecycle(backend: Backend) async throws {
        let clock = ManualWallClock(Date(timeIntervalSince1970: 1_800_000_000))
        try await withStore(backend, clock: clock) { store, _ in
            try await store.transaction(durability: .replayable) { session in
                try await session.journalSent([("d1", "provider-1"), ("d2", nil)])
            }
            // A second write of the same delivery (a group retried) keeps the first row.
            try await store.transaction(durability: .replayable) { session in
                try await session.journalSent([("d1", "provider-other"), ("d3", "provider-3")])
            }
            let found = try await store.read { try await $0.journaledSends(["d1", "d2", "d3", "d4"]) }
            #expect(found.count == 3)
            #expect(found["d1"] == .some("provider-1") && found["d2"] == .some(nil) && found["d4"] == nil)

            try await store.transaction { try await $0.forgetJournaledSends(["d1", "d2"]) }
            #expect(try await store.read { try await $0.journaledSends(["d1", "d2", "d3"]) }.keys.sorted() == ["d3"])

            clock.advance(by: .seconds(7200))
            try await store.transaction(durability: .replayable) { try await $0.journalSent([("d5", nil)]) }
            let purged = try await store.transaction { try await $0.purgeSentJournal(before: clock.now().addingTimeInterval(-3600)) }
            #expect(purged == 1)
            #expect(try await store.read { try await $0.journaledSends(["d3", "d5"]) }.keys.sorted() == ["d5"])
        }
    }
}

/// Batch inserts carry any text unchanged: on PostgreSQL a batch of rows is one JSON parameter
/// (`RowInsert`, `json_populate_recordset`), so escaping must be exact.
@Suite("Batch inserts")
struct BatchInsertTests {
    @Test("quotes, backslashes, control characters, JSON and SQL in values come back as they went in", arguments: Backend.available)
    func hostileText(backend: Backend) async throws {
        let texts = [
            "plain", "quote \" inside", "back\\slash \\\"", "new\nline\r\ttab", "bell\u{07} escape\u{1B} unit\u{1F} del\u{7F}",
            "{\"a\": [1, \"b\"]}", "'); DROP TABLE sent_journal; --", "ünïcödé 🙂 \u{2028}\u{2029}", "", "$1::json",
        ]
        try await withStore(backend) { store, _ in
            let rows = texts.enumerated().map { (deliveryId: "d\($0.offset)", providerMessageId: Optional($0.element)) }
            try await store.transaction { try await $0.journalSent(rows + [("null-id", nil)]) }
            let found = try await store.read { try await $0.journaledSends(rows.map(\.deliveryId) + ["null-id"]) }
            for (index, text) in texts.enumerated() { #expect(found["d\(index)"] == .some(text)) }
            #expect(found["null-id"] == .some(nil))
        }
    }
}

/// The journal beside a SQLite file: appended per send, read back across one rotation, dropped after two.
@Suite("Sent journal file")
struct SentJournalFileTests {
    @Test("appends are found; a rotation keeps the window before; the one before that is gone")
    func rotation() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("herald-journal-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = SentJournalFile(path: directory.appendingPathComponent("h.sqlite-sent.journal").path, window: .milliseconds(200))
        try file.append([("d1", "provider-1"), ("d2", nil)])
        #expect(file.lookup(["d1", "d2", "d3"]) == ["d1": .some("provider-1"), "d2": String?.none])
        try await Task.sleep(for: .milliseconds(250))
        try file.append([("d3", "line\nbreak")])  // rotates: d1 and d2 move to the window before
        #expect(file.lookup(["d1", "d3"]) == ["d1": .some("provider-1"), "d3": .some("line break")])
        try await Task.sleep(for: .milliseconds(250))
        try file.append([("d4", nil)])  // rotates again: d1 and d2 are dropped
        #expect(file.lookup(["d1", "d2", "d3", "d4"]) == ["d3": .some("line break"), "d4": String?.none])
    }
}
