import Synchronization

/// Wakes idle workers when jobs are enqueued, instead of letting them sleep until their next poll.
///
/// In-process: ``signal()`` after a commit that enqueued jobs. Across processes on PostgreSQL, a `LISTEN` loop calls
/// ``signal()`` for every `NOTIFY herald_jobs`. Waiters always pass a timeout, so a lost signal costs one poll
/// interval, never a stuck job.
public final class JobSignal: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var nextWaiter = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    /// Increments on every signal; pass it to ``wait(after:timeout:)`` to not miss a signal that arrives between
    /// checking for work and starting to wait.
    public var generation: UInt64 { state.withLock { $0.generation } }

    /// Wakes every waiter.
    public func signal() {
        let waiters = state.withLock { state in
            state.generation &+= 1
            let waiters = state.waiters.values
            state.waiters.removeAll()
            return Array(waiters)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns when a signal arrives after `generation` was read, when `timeout` passes, or when the task is
    /// cancelled, whichever is first.
    public func wait(after generation: UInt64, timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForSignal(after: generation) }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForSignal(after generation: UInt64) async {
        let id = state.withLock { state -> Int in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.generation != generation || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume()
        }
    }
}
