import Foundation
import HeraldCore
import HeraldStore
import HeraldTestSupport
import SQLKit
import Testing

@Suite("Commit durability")
struct DurabilityTests {
    /// The setting a transaction of this durability runs under: SQLite's `synchronous` (2 = FULL, 1 = NORMAL) or
    /// PostgreSQL's `synchronous_commit`.
    static func setting(_ store: SQLStore, _ durability: Durability) async throws -> String {
        try await store.transaction(durability: durability) { session in
            switch session.dialect {
            case .sqlite:
                let row = try await session.db.raw("PRAGMA synchronous").first()
                return String(try row?.decode(column: "synchronous", as: Int.self) ?? -1)
            case .postgres:
                let row = try await session.db.raw("SHOW synchronous_commit").first()
                return try row?.decode(column: "synchronous_commit", as: String.self) ?? "?"
            }
        }
    }

    /// A store whose acknowledged commits flush: PostgreSQL's default, SQLite with `synchronous=full` (the test
    /// databases use `normal`).
    static func withFlushingStore(_ backend: Backend, _ body: @escaping @Sendable (SQLStore) async throws -> Void) async throws {
        guard backend == .sqlite else { return try await withStore(backend) { store, _ in try await body(store) } }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("durability-\(UUID().uuidString).sqlite").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let store = try await SQLStore.open(
            .sqlite(path: path, synchronous: .full), cipher: CredentialCipher(current: .random()), logger: testLogger)
        try await store.withRunning { try await body($0) }
    }

    @Test(
        "acknowledged commits are flushed; the engine's replayable ones are not, yet at most a bounded stretch of them goes unflushed",
        arguments: Backend.available)
    func replayableCommits(backend: Backend) async throws {
        try await Self.withFlushingStore(backend) { store in
            let (flushed, relaxed) = backend == .sqlite ? ("2", "1") : ("on", "off")
            #expect(try await Self.setting(store, .acknowledged) == flushed)
            var sawRelaxed = false
            // Retried: on a loaded machine the pair may straddle the window (every SQLite store of the process shares one thread).
            for _ in 0..<200 where !sawRelaxed {
                _ = try await Self.setting(store, .acknowledged)
                sawRelaxed = try await Self.setting(store, .replayable) == relaxed
            }
            #expect(sawRelaxed, "a replayable commit right after a flushed one skips the flush")
            #expect(try await Self.setting(store, .acknowledged) == flushed, "acknowledged commits always flush")
            if backend == .sqlite {
                // Past the window since the last flush, a replayable commit flushes too (and restarts the window).
                try await Task.sleep(for: Durability.replayableWindow + .milliseconds(20))
                #expect(try await Self.setting(store, .replayable) == flushed)
            }
        }
    }

    @Test("SQLite's WAL is copied into the database beside the writer, not by the commits")
    func backgroundCheckpoint() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("checkpoint-\(UUID().uuidString).sqlite").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        @Sendable func size(_ file: String) -> Int { ((try? FileManager.default.attributesOfItem(atPath: file))?[.size] as? Int) ?? 0 }
        let store = try await SQLStore.open(
            .sqlite(path: path, synchronous: .normal), cipher: CredentialCipher(current: .random()), logger: testLogger)
        try await store.withRunning { store in
            try await store.migrator().migrate()
            try await Task.sleep(for: .milliseconds(600))
            let before = size(path)
            // About 4 MB of jobs: far below the writer's own checkpoint threshold (64 MiB of WAL), so only the
            // checkpointer can have copied them into the database file.
            let payload = String(repeating: "x", count: 2000)
            for _ in 0..<10 {
                try await store.transaction { session in
                    try await session.enqueue((0..<200).map { _ in NewJob(kind: "deliver", payload: payload) })
                }
            }
            var grown = false
            for _ in 0..<50 where !grown {
                try await Task.sleep(for: .milliseconds(100))
                grown = size(path) - before > 3_000_000
            }
            #expect(grown, "the checkpointer copied the WAL into the database file")
        }
    }
}
