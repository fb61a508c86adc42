import Dispatch
import Foundation
import Synchronization

/// A task executor backed by one dedicated thread.
///
/// SQLite work is serial (one connection, one lock). Lock holders run with this executor as their preference
/// (SE-0417): between statements they resume at once on a thread that does nothing else, instead of queueing on the
/// cooperative pool behind rendering, HTTP and JSON while every other database user waits for the lock; the statements
/// themselves run right here (``SQLiteHandle``), so a transaction never leaves this thread.
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
