import Dispatch
import Foundation
import Synchronization

/// A task executor backed by one dedicated thread.
///
/// SQLite work is serial (one connection, one lock), and every statement suspends while SQLiteNIO runs it on its
/// thread pool. On the global cooperative pool the lock holder's continuation then queues behind whatever else is
/// runnable — rendering, HTTP, JSON — so a transaction of forty statements spends most of its time waiting to be
/// resumed while every other database user waits for its lock. Running lock holders with this executor as their
/// preference (SE-0417) resumes them at once on a thread that does nothing else.
final class SerialThreadExecutor: TaskExecutor, Sendable {
    /// The executor of every SQLite driver in the process (one thread, started on first use).
    static let sqlite = SerialThreadExecutor(name: "herald-sqlite")

    private let jobs = Mutex<[UnownedJob]>([])
    private let available = DispatchSemaphore(value: 0)

    init(name: String) {
        let thread = Thread { [self] in self.loop() }
        thread.name = name
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        jobs.withLock { $0.append(unowned) }
        available.signal()
    }

    private func loop() {
        var batch: [UnownedJob] = []
        while true {
            available.wait()
            jobs.withLock { swap(&$0, &batch) }
            // One signal per job: the others of this batch consume theirs without work.
            for (index, job) in batch.enumerated() {
                if index > 0 { available.wait() }
                job.runSynchronously(on: asUnownedTaskExecutor())
            }
            batch.removeAll(keepingCapacity: true)
        }
    }
}
