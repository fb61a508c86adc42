import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The sent journal of a SQLite database, kept outside it (docs/reliability.md §Crashes): `<database>-sent.journal`,
/// one line per accepted send (`delivery id`, tab, provider message id). SQLite has one writer, which a run's commit
/// holds for tens of milliseconds; journal rows queued behind it were the sends a crash repeated. An append here is
/// one `write(2)` to the page cache, which outlives a killed process (not a power loss — like the engine's replayable
/// commits, whose jobs then run again). Only the one worker process (the SQLite worker lock) writes it.
///
/// The file is rotated every `window`: the current one becomes `…-sent.journal.1` (the one before is dropped), so a
/// lookup reads at most two windows — a re-attempted job runs within seconds of a crash (start-up releases every
/// claim), or after its lease (60 s) at the latest.
public final class SentJournalFile: Sendable {
    public let path: String
    let window: Duration
    private struct State {
        var descriptor: Int32 = -1
        var openedAt: ContinuousClock.Instant = .now
    }
    private let state = Mutex(State())

    public init(path: String, window: Duration = .seconds(90)) {
        self.path = path
        self.window = window
    }

    deinit {
        state.withLock { if $0.descriptor >= 0 { close($0.descriptor) } }
    }

    /// Appends accepted sends (delivery id, provider message id). Errors are returned for the caller to log.
    public func append(_ entries: [(deliveryId: String, providerMessageId: String?)]) throws {
        guard !entries.isEmpty else { return }
        var text = ""
        for entry in entries {
            text += entry.deliveryId + "\t" + (entry.providerMessageId ?? "").replacingOccurrences(of: "\n", with: " ") + "\n"
        }
        try state.withLock { state in
            let now = ContinuousClock.now
            if state.descriptor >= 0, now - state.openedAt >= window {
                close(state.descriptor)
                state.descriptor = -1
                _ = rename(path, path + ".1")
            }
            if state.descriptor < 0 {
                state.descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
                guard state.descriptor >= 0 else { throw JournalFileError(message: "cannot open \(path): errno \(errno)") }
                state.openedAt = now
            }
            let bytes = Array(text.utf8)
            let written = bytes.withUnsafeBytes { write(state.descriptor, $0.baseAddress, $0.count) }
            guard written == bytes.count else { throw JournalFileError(message: "short write to \(path): errno \(errno)") }
        }
    }

    /// The journaled sends among `deliveryIds` (delivery id → provider message id, nil when none was given), from the
    /// current window and the one before.
    public func lookup(_ deliveryIds: [String]) -> [String: String?] {
        let wanted = Set(deliveryIds)
        var found: [String: String?] = [:]
        for file in [path + ".1", path] {
            guard let data = FileManager.default.contents(atPath: file) else { continue }
            for line in data.split(separator: UInt8(ascii: "\n")) {
                guard let tab = line.firstIndex(of: UInt8(ascii: "\t")) else { continue }
                let id = String(decoding: line[line.startIndex..<tab], as: UTF8.self)
                guard wanted.contains(id) else { continue }
                let providerId = String(decoding: line[line.index(after: tab)...], as: UTF8.self)
                found[id] = .some(providerId.isEmpty ? nil : providerId)
            }
        }
        return found
    }
}

struct JournalFileError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
