import NIOCore
import Synchronization

/// Bounds the single requests outstanding to one origin: sent, or waiting for a pooled connection, and their answer not
/// yet back with the task that asked (docs/reliability.md §Crashes).
///
/// The connection pool alone bounds only what is on the wire at one moment. A connection is free again as soon as its
/// answer is read on the event loop, and the pool sends the next queued request on it at once, while the task that
/// awaits the first answer may still wait for a thread (a busy process resumes it many milliseconds later). A
/// `run` job queues hundreds of requests, so a killed process could have had several hundred answered requests whose
/// outcomes no task had seen yet — and so had not journaled — all of which its job's next attempt sent again. With a
/// permit per outstanding request, held until the task has the answer, a crash repeats at most ``limit`` requests
/// per origin, whatever the process's load (96 for the shared transport, ``HTTPTransport/outstanding``).
final class OutstandingRequests: Sendable {
    let limit: Int

    private struct Waiter {
        var id: UInt64
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct Origin {
        var active = 0
        var waiters = CircularBuffer<Waiter>()
    }

    private struct State {
        var origins: [String: Origin] = [:]
        var nextWaiter: UInt64 = 0
    }

    private let state = Mutex(State())

    init(limit: Int) {
        self.limit = max(1, limit)
    }

    /// Runs `body` holding one of the origin's permits, waiting for one when ``limit`` are held.
    func withPermit<T>(_ origin: String, _ body: () async throws -> T) async throws -> T {
        try await acquire(origin)
        defer { release(origin) }
        return try await body()
    }

    private func acquire(_ origin: String) async throws {
        let id = state.withLock { state -> UInt64? in
            if state.origins[origin, default: Origin()].active < limit {
                state.origins[origin, default: Origin()].active += 1
                return nil
            }
            state.nextWaiter += 1
            return state.nextWaiter
        }
        guard let id else { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let granted = state.withLock { state -> Bool in
                    // Released meanwhile: take the permit at once.
                    if state.origins[origin, default: Origin()].active < limit {
                        state.origins[origin, default: Origin()].active += 1
                        return true
                    }
                    state.origins[origin, default: Origin()].waiters.append(Waiter(id: id, continuation: continuation))
                    return false
                }
                if granted { continuation.resume() }
            }
        } onCancel: {
            let cancelled = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                guard let index = state.origins[origin]?.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.origins[origin]!.waiters.remove(at: index).continuation
            }
            cancelled?.resume(throwing: CancellationError())
        }
    }

    /// Hands the permit to the first waiter, or returns it.
    private func release(_ origin: String) {
        let next = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            guard var entry = state.origins[origin] else { return nil }
            if let waiter = entry.waiters.popFirst() {
                state.origins[origin] = entry
                return waiter.continuation
            }
            entry.active -= 1
            state.origins[origin] = entry.active == 0 ? nil : entry
            return nil
        }
        next?.resume()
    }

    /// Permits held per origin (tests).
    func active(_ origin: String) -> Int { state.withLock { $0.origins[origin]?.active ?? 0 } }
}
