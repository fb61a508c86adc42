import Synchronization

/// A FIFO mutual-exclusion lock for async code: the holder may suspend while holding it.
///
/// SQLite gets one connection per process (a single writer); every statement or transaction holds this lock so that
/// one task's `BEGIN … COMMIT` never interleaves with another task's statements on the same connection.
///
/// Not an actor on purpose: taking and releasing an actor-based lock hops to the global pool twice per transaction,
/// and under load (thousands of HTTP tasks queued there) the database sat idle at each hand-off. Here an uncontended
/// lock is taken in place, and a release resumes the next waiter directly — it continues on its own executor (the
/// store's SQLite thread), owning the lock.
final class AsyncMutex: Sendable {
    private struct State {
        var locked = false
        var waiters: [CheckedContinuation<Void, Never>] = []
        var head = 0
    }

    private let state = Mutex(State())

    func lock() async {
        let acquired = state.withLock { state in
            if state.locked { return false }
            state.locked = true
            return true
        }
        if acquired { return }
        await withCheckedContinuation { continuation in
            let acquiredNow = state.withLock { state in
                if !state.locked {
                    state.locked = true
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if acquiredNow { continuation.resume() }
        }
    }

    /// Releases the lock, handing it to the longest waiter if there is one.
    func unlock() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard state.head < state.waiters.count else {
                state.waiters.removeAll(keepingCapacity: true)
                state.head = 0
                state.locked = false
                return nil
            }
            let next = state.waiters[state.head]
            state.head += 1
            if state.head > 64, state.head * 2 > state.waiters.count {
                state.waiters.removeFirst(state.head)
                state.head = 0
            }
            return next
        }
        next?.resume()
    }

    /// Runs `body` while holding the lock.
    func withLock<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        await lock()
        do {
            let result = try await body()
            unlock()
            return result
        } catch {
            unlock()
            throw error
        }
    }
}
