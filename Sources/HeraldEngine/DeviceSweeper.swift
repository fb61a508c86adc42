import Foundation
import HeraldCore
import HeraldStore
import Logging
import ServiceLifecycle

/// Token hygiene beyond invalid-token answers (`--device-ttl`, off by default): removes devices that had no
/// successful delivery and no re-registration for `ttl`, in chunks of 1000, every `interval` (a tenth of the TTL,
/// at most an hour).
public struct DeviceSweeper: Service {
    let store: SQLStore
    let ttl: Duration
    let interval: Duration
    let logger: Logger
    /// Awaited before the first sweep (the server opens it once migrations are applied).
    let ready: @Sendable () async -> Void

    public init(store: SQLStore, ttl: Duration, logger: Logger, ready: @escaping @Sendable () async -> Void = {}) {
        self.store = store
        self.ttl = ttl
        self.interval = min(max(ttl / 10, .seconds(1)), .seconds(3600))
        self.logger = logger
        self.ready = ready
    }

    public func run() async throws {
        await ready()
        while !Task.isCancelledOrShuttingDown {
            do {
                let removed = try await sweep()
                if removed > 0 { logger.info("removed inactive devices", metadata: ["count": "\(removed)", "ttl": "\(ttl)"]) }
            } catch {
                logger.error("device sweep failed", metadata: ["error": "\(String(reflecting: error))"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }

    /// One pass: removes every device inactive for longer than the TTL; returns how many.
    public func sweep() async throws -> Int {
        let seconds = Double(ttl.components.seconds) + Double(ttl.components.attoseconds) / 1e18
        let cutoff = store.clock.now().addingTimeInterval(-seconds)
        var total = 0
        while true {
            let removed = try await store.transaction(durability: .replayable) {
                try await $0.removeInactiveDevices(before: cutoff, limit: 1000)
            }
            total += removed
            if removed < 1000 { return total }
        }
    }
}

extension Task where Success == Never, Failure == Never {
    static var isCancelledOrShuttingDown: Bool { Task.isCancelled || Task.isShuttingDownGracefully }
}
