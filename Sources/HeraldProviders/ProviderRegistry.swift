import Foundation
import HeraldCore

/// The providers Herald ships, behind the ``ProviderFactory`` interface the engine uses. Provider issues add their
/// clients here; the engine does not change.
public struct StandardProviderFactory: ProviderFactory {
    let transport: HTTPTransport
    let clock: any WallClock

    public init(transport: HTTPTransport, clock: any WallClock = SystemWallClock()) {
        self.transport = transport
        self.clock = clock
    }

    public func supports(_ providerId: String) -> Bool {
        WebhookProvider.providerIds.contains(providerId)
    }

    public func makeProvider(for integration: Integration) throws -> any DeliveryProvider {
        switch integration.providerId {
        case let id where WebhookProvider.providerIds.contains(id):
            return try WebhookProvider(integration: integration, transport: transport, clock: clock)
        default:
            throw HeraldError(.configuration, "provider \(integration.providerId) is not available in this build")
        }
    }
}
