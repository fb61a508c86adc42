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
/// provider call returns) — one group at a time, by the task that reports the outcome crossing the line.
///
/// The sends accepted but not yet journaled are bounded: beyond ``maxUnjournaled`` (a group being written and one
/// gathering), a task reporting another accepted send waits until the group under way is written. A crash therefore
/// repeats at most the requests on the wire plus ``maxUnjournaled`` (docs/reliability.md §Crashes) however slow the
/// database's commits get, and a slow database slows the senders instead of piling up concurrent journal commits that
/// would starve the pool (and the worker's heartbeat) of connections.
final class SentJournalWriter: Sendable {
    struct Entry: Sendable {
        var deliveryId: String
        var providerMessageId: String?
        var journal: SentJournal
    }

    static let groupSize = 100
    static let groupAge: Duration = .milliseconds(20)
    static let maxUnjournaled = 2 * groupSize

    /// Where the journal lives: the file beside a SQLite database, else the `sent_journal` table.
    enum Backend {
        case file(SentJournalFile)
        case table
    }

    /// The gathering group, the size of the group being written, and the tasks waiting for room.
    private struct State {
        var entries: [Entry] = []
        var since = ContinuousClock.now
        var writing = 0
        var flushRequested = false
        var waiters: [CheckedContinuation<Void, Never>] = []

        var unjournaled: Int { entries.count + writing }

        func isDue(at now: ContinuousClock.Instant) -> Bool {
            entries.count >= SentJournalWriter.groupSize
                || (!entries.isEmpty && (flushRequested || now - since >= SentJournalWriter.groupAge))
        }

        /// Takes the gathering group for writing.
        mutating func take() -> [Entry] {
            defer {
                entries.removeAll(keepingCapacity: true)
                flushRequested = false
            }
            writing = entries.count
            return entries
        }
    }

    let store: SQLStore
    let backend: Backend
    private let logger: Logger
    private let state = Mutex(State())

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
        enum Action {
            case none, wait
            case write([Entry])
        }
        let now = ContinuousClock.now
        let action = state.withLock { state -> Action in
            if state.entries.isEmpty { state.since = now }
            state.entries.append(entry)
            if state.writing == 0 && state.isDue(at: now) { return .write(state.take()) }
            return state.unjournaled > Self.maxUnjournaled ? .wait : .none
        }
        switch action {
        case .none: return
        case .write(let group): await drain(group)
        case .wait:
            // A group is being written (nothing waits otherwise): its writer wakes us when there is room.
            await withCheckedContinuation { continuation in
                let room = state.withLock { state -> Bool in
                    guard state.unjournaled > Self.maxUnjournaled else { return true }
                    state.waiters.append(continuation)
                    return false
                }
                if room { continuation.resume() }
            }
        }
    }

    /// Writes what has gathered (a provider call returned), or has the write under way write it next.
    func flush() async {
        let group = state.withLock { state -> [Entry] in
            guard !state.entries.isEmpty else { return [] }
            guard state.writing == 0 else {
                state.flushRequested = true
                return []
            }
            return state.take()
        }
        if !group.isEmpty { await drain(group) }
    }

    /// Writes `group`, then every group that became due meanwhile, waking the tasks waiting for room.
    private func drain(_ group: [Entry]) async {
        var group = group
        while !group.isEmpty {
            await write(group)
            let now = ContinuousClock.now
            let (next, wake) = state.withLock { state -> ([Entry], [CheckedContinuation<Void, Never>]) in
                state.writing = 0
                let next = state.isDue(at: now) ? state.take() : []
                guard state.unjournaled <= Self.maxUnjournaled else { return (next, []) }
                defer { state.waiters.removeAll() }
                return (next, state.waiters)
            }
            for continuation in wake { continuation.resume() }
            group = next
        }
    }

    private func write(_ entries: [Entry]) async {
        let rows = entries.map { (deliveryId: $0.deliveryId, providerMessageId: $0.providerMessageId) }
        do {
            if store.dialect == .postgres {
                // An unlogged table (migration 0018): one statement, committed without a WAL flush.
                try await store.autocommit { try await $0.journalSent(rows) }
            } else {
                try await store.transaction(durability: .replayable) { try await $0.journalSent(rows) }
            }
            for group in Dictionary(grouping: entries, by: { ObjectIdentifier($0.journal) }).values {
                group[0].journal.markWritten(group.map(\.deliveryId))
            }
        } catch {
            logger.debug("sent journal not written", metadata: ["error": "\(error)", "deliveries": "\(entries.count)"])
        }
    }
}
