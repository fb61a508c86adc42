import Foundation
import HeraldCore
import Synchronization

/// One provider client per integration version: clients keep connections and access tokens between batches, and
/// a changed integration (new credentials) gets a new client while the old one is shut down.
public final class ProviderPool: Sendable {
    let factory: any ProviderFactory
    private struct Entry {
        var updatedAt: Date
        var provider: any DeliveryProvider
    }
    private let clients = Mutex<[String: Entry]>([:])

    public init(factory: any ProviderFactory) {
        self.factory = factory
    }

    /// The client for this integration version; throws a configuration error for unusable credentials.
    public func provider(for integration: Integration) throws -> any DeliveryProvider {
        if let entry = clients.withLock({ $0[integration.id] }), entry.updatedAt == integration.updatedAt { return entry.provider }
        let provider = try factory.makeProvider(for: integration)
        let replaced = clients.withLock { clients -> (any DeliveryProvider)? in
            let old = clients[integration.id]
            clients[integration.id] = Entry(updatedAt: integration.updatedAt, provider: provider)
            return old?.provider
        }
        if let replaced { Task { await replaced.shutdown() } }
        return provider
    }

    /// Shuts every client down.
    public func shutdown() async {
        let all = clients.withLock { clients in
            defer { clients.removeAll() }
            return clients.values.map(\.provider)
        }
        for provider in all { await provider.shutdown() }
    }
}
