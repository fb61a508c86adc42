import Foundation
import HeraldCore
import HeraldStore
import HeraldTestSupport
import SQLKit
import Synchronization
import Testing

@Suite("SQLite read connection")
struct SQLiteReaderTests {
    @Test("reads run beside an open write transaction, see the last commit, and cannot write")
    func readsBesideTheWriter() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("reader-\(UUID().uuidString).sqlite").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let store = try await SQLStore.open(
            .sqlite(path: path, synchronous: .full), cipher: CredentialCipher(current: .random()), logger: testLogger)
        try await store.withRunning { store in
            try await store.migrator().migrate()
            try await store.transaction { try await $0.enqueue([NewJob(kind: "deliver", payload: "{}")]) }
            let committed = Atomic<Bool>(false)
            let opened = AsyncStream<Void>.makeStream()
            let writer = Task {
                try await store.transaction { session in
                    try await session.enqueue([NewJob(kind: "deliver", payload: "{}")])
                    opened.continuation.yield()
                    try await Task.sleep(for: .seconds(2))
                }
                committed.store(true, ordering: .sequentiallyConsistent)
            }
            for await _ in opened.stream { break }
            // The writer holds its transaction (and the write connection) open: the read neither waits for it nor
            // sees its uncommitted job.
            let during = try await store.read { try await $0.jobCounts() }
            let committedBeforeRead = committed.load(ordering: .sequentiallyConsistent)
            #expect(!committedBeforeRead, "the read finished while the write transaction was open")
            #expect(during.ready == 1)
            try await writer.value
            #expect(try await store.read { try await $0.jobCounts() }.ready == 2, "a read sees what was committed before it")
            await #expect(throws: (any Error).self) {
                try await store.read { try await $0.db.raw("DELETE FROM jobs").run() }
            }
            #expect(try await store.read { try await $0.jobCounts() }.ready == 2)
        }
    }
}
