import Crypto
import Foundation
import HeraldCore
import HeraldStore
import Logging
import Synchronization

/// The provider-accepted sends of one job attempt, written as they come back (docs/reliability.md §Duplicates).
///
/// A `run` or `deliver` job sends outside any transaction and records every outcome in one commit at its end. If its
/// worker dies before that commit, the job's next attempt would send everything again. So every accepted delivery is
/// journaled as its answer arrives (through the process's ``SentJournalWriter``, in small groups), and an attempt after
/// the first reads the journal before it sends: what is there counts as delivered and is not sent again. The job's
/// commit deletes its rows (``forget(in:)``).
///
/// Run deliveries have ids derived from what they send (``deliveryId(notification:step:integration:target:)``), so a
/// re-planned run finds its first attempt's sends. Journaling failures are logged and ignored: they cost at most a
/// duplicate after a crash, never a lost send.
final class SentJournal: Sendable {
    private let writer: SentJournalWriter
    /// Journaled by an earlier attempt: delivery id → provider message id.
    private let earlier: [String: String?]
    private let written = Mutex<Set<String>>([])

    private init(writer: SentJournalWriter, earlier: [String: String?]) {
        self.writer = writer
        self.earlier = earlier
    }

    /// The journal of a job attempt; `attempt` > 1 reads what earlier attempts journaled for `deliveryIds`.
    static func open(writer: SentJournalWriter, attempt: Int, deliveryIds: [String]) async throws -> SentJournal {
        guard attempt > 1, !deliveryIds.isEmpty else { return SentJournal(writer: writer, earlier: [:]) }
        return SentJournal(writer: writer, earlier: try await writer.lookup(deliveryIds))
    }

    /// Whether an earlier attempt saw the delivery accepted, with the provider's message id.
    func sentEarlier(_ deliveryId: String) -> String?? { earlier[deliveryId] }

    /// Notes one outcome as it arrives; an accepted one goes to the writer.
    func note(_ message: OutboundMessage, _ outcome: DeliveryOutcome) async {
        guard case .delivered(let providerMessageId) = outcome else { return }
        await writer.add(SentJournalWriter.Entry(deliveryId: message.deliveryId, providerMessageId: providerMessageId, journal: self))
    }

    /// Writes what the writer holds (a provider call returned).
    func flush() async { await writer.flush() }

    func markWritten(_ ids: [String]) { written.withLock { $0.formUnion(ids) } }

    /// Deletes the journal rows of this job (its outcomes are committing in `session`).
    func forget(in session: StoreSession) async throws {
        guard case .table = writer.backend else { return }  // the file is rotated instead
        let ids = written.withLock { $0 }.union(earlier.keys)
        guard !ids.isEmpty else { return }
        try await session.forgetJournaledSends(ids.sorted())
    }

    /// The id of a delivery a run plans: the notification's time prefix and a digest of what it sends, so that a run
    /// planned again after a crash plans the same ids. The target (a token or address) enters only through the digest.
    static func deliveryId(notification: String, step: String, integration: String, target: String) -> String {
        var hash = SHA256()
        for part in [notification, step, integration, target] {
            hash.update(data: Data(part.utf8))
            hash.update(data: Data([0]))
        }
        return String(notification.prefix(8)) + Hex.encode(Array(hash.finalize().prefix(8)))
    }
}

/// The process's writer of the sent journal. On a SQLite file each accepted send is appended at once to the file beside
/// it (``SentJournalFile``). On PostgreSQL accepted sends of every job gather here and are written in groups — when
/// ``groupSize`` have gathered or the oldest has waited ``groupAge`` (checked as outcomes arrive, and whenever a
/// provider call returns) — by the task that reports the outcome crossing the line. A crash therefore repeats at most
/// the requests on the wire plus one group (docs/reliability.md §Duplicates), at the cost of one small commit per
/// group.
final class SentJournalWriter: Sendable {
    struct Entry: Sendable {
        var deliveryId: String
        var providerMessageId: String?
        var journal: SentJournal
    }

    static let groupSize = 100
    static let groupAge: Duration = .milliseconds(20)

    /// Where the journal lives: the file beside a SQLite database, else the `sent_journal` table.
    enum Backend {
        case file(SentJournalFile)
        case table
    }

    let store: SQLStore
    let backend: Backend
    private let logger: Logger
    private let pending = Mutex<(entries: [Entry], since: ContinuousClock.Instant)>(([], .now))

    init(store: SQLStore, logger: Logger) {
        self.store = store
        self.backend = store.sentJournalFile.map(Backend.file) ?? .table
        self.logger = logger
    }

    /// What earlier attempts journaled among `deliveryIds`.
    func lookup(_ deliveryIds: [String]) async throws -> [String: String?] {
        switch backend {
        case .file(let file): file.lookup(deliveryIds)
        case .table: try await store.read { try await $0.journaledSends(deliveryIds) }
        }
    }

    func add(_ entry: Entry) async {
        // Beside a SQLite file: one append per send, at once (no group, no wait for the database's writer).
        if case .file(let file) = backend {
            do {
                try file.append([(entry.deliveryId, entry.providerMessageId)])
            } catch {
                logger.debug("sent journal not written", metadata: ["error": "\(error)"])
            }
            return
        }
        let now = ContinuousClock.now
        let due = pending.withLock { pending -> [Entry] in
            if pending.entries.isEmpty { pending.since = now }
            pending.entries.append(entry)
            guard pending.entries.count >= Self.groupSize || now - pending.since >= Self.groupAge else { return [] }
            defer { pending.entries.removeAll(keepingCapacity: true) }
            return pending.entries
        }
        await write(due)
    }

    func flush() async {
        await write(
            pending.withLock { pending in
                defer { pending.entries.removeAll(keepingCapacity: true) }
                return pending.entries
            })
    }

    private func write(_ entries: [Entry]) async {
        guard !entries.isEmpty else { return }
        let rows = entries.map { (deliveryId: $0.deliveryId, providerMessageId: $0.providerMessageId) }
        do {
            try await store.transaction(durability: .replayable) { try await $0.journalSent(rows) }
            for group in Dictionary(grouping: entries, by: { ObjectIdentifier($0.journal) }).values {
                group[0].journal.markWritten(group.map(\.deliveryId))
            }
        } catch {
            logger.debug("sent journal not written", metadata: ["error": "\(error)", "deliveries": "\(entries.count)"])
        }
    }
}
