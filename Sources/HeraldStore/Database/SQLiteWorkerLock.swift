import HeraldCore
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One process runs queue workers on a SQLite database. A worker process holds an exclusive `flock` on
/// `<database>-workers.lock` for as long as it runs; a second process that tries gets a clear error instead of
/// becoming a silent second worker (several processes need PostgreSQL). Within one process the lock is shared
/// (counted), so tests and a process with several stores on one file work as before.
enum SQLiteWorkerLock {
    private static let held = Mutex<[String: (descriptor: Int32, count: Int)]>([:])

    /// Takes the lock of the database at `path`, or throws when another process holds it.
    static func acquire(path: String) throws {
        let lockPath = path + "-workers.lock"
        try held.withLock { held in
            if let entry = held[lockPath] {
                held[lockPath] = (entry.descriptor, entry.count + 1)
                return
            }
            let descriptor = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            guard descriptor >= 0 else {
                throw HeraldError(.configuration, "cannot open the worker lock \(lockPath): errno \(errno)")
            }
            guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
                close(descriptor)
                throw HeraldError(
                    .configuration,
                    "another Herald process runs queue workers on the SQLite database \(path): SQLite allows one worker process "
                        + "(start this one with --role api, or use PostgreSQL for several)")
            }
            held[lockPath] = (descriptor, 1)
        }
    }

    /// Gives back one acquisition; the last one releases the lock.
    static func release(path: String) {
        let lockPath = path + "-workers.lock"
        held.withLock { held in
            guard let entry = held[lockPath] else { return }
            if entry.count > 1 {
                held[lockPath] = (entry.descriptor, entry.count - 1)
            } else {
                held[lockPath] = nil
                close(entry.descriptor)
            }
        }
    }
}
