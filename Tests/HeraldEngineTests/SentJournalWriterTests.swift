import Foundation
import HeraldCore
import HeraldStore
import HeraldTestSupport
import SQLKit
import Synchronization
import Testing

@testable import HeraldEngine

/// What a crash repeats on PostgreSQL is bounded by the accepted sends not yet journaled (docs/reliability.md
/// §Crashes): however slow the journal's commits, senders wait rather than pile more up.
@Suite("Sent journal writer")
struct SentJournalWriterTests {
    @Test(
        "while the journal cannot be written, at most maxUnjournaled sends go unjournaled; all are written after",
        arguments: Backend.postgresOnly)
    func boundedWhileTheDatabaseIsSlow(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            let writer = SentJournalWriter(store: store, logger: testLogger)
            guard case .table = writer.backend else {
                Issue.record("PostgreSQL journals in its table")
                return
            }
            let journal = try await SentJournal.open(writer: writer, attempt: 1, deliveryIds: [])
            let locked = Flag()
            let release = Flag()
            let returned = Counter()
            let sends = 500
            try await withThrowingTaskGroup(of: Void.self) { group in
                // Another transaction holds the journal table: every group write waits for it.
                group.addTask {
                    try await store.transaction { session in
                        try await session.db.raw("LOCK TABLE sent_journal IN ACCESS EXCLUSIVE MODE").run()
                        locked.set()
                        while !release.isSet { try await Task.sleep(for: .milliseconds(10)) }
                    }
                }
                while !locked.isSet { try await Task.sleep(for: .milliseconds(10)) }
                for index in 0..<sends {
                    group.addTask {
                        await writer.add(.init(deliveryId: "d\(index)", providerMessageId: "p\(index)", journal: journal))
                        returned.increment()
                    }
                }
                try await Task.sleep(for: .milliseconds(500))
                let early = returned.value
                #expect(early <= SentJournalWriter.maxUnjournaled, "senders went on while \(early) sends were unjournaled")
                #expect(early >= SentJournalWriter.groupSize - 1, "senders waited before a group had gathered")
                release.set()
                try await group.waitForAll()
            }
            #expect(returned.value == sends)
            await writer.flush()
            let found = try await store.read { try await $0.journaledSends((0..<sends).map { "d\($0)" }) }
            #expect(found.count == sends)
            #expect(found["d7"] == .some("p7"))
        }
    }
}

/// A flag one task sets and others poll.
private final class Flag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}

/// A count tasks add to.
private final class Counter: Sendable {
    private let count = Mutex(0)
    var value: Int { count.withLock { $0 } }
    func increment() { count.withLock { $0 += 1 } }
}
