import HeraldCore
import Hummingbird
import Logging

/// Per-request state: Hummingbird's core context plus the environment the API key resolved to.
public struct HeraldRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by ``AuthMiddleware`` on authenticated routes.
    public var environment: HeraldCore.Environment?
    /// Largest request body accepted, in bytes (see ``APIConfiguration/maxBodyBytes``).
    public var maxUploadSize: Int

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.environment = nil
        self.maxUploadSize = APIConfiguration.defaultMaxBodyBytes
    }

    /// The caller's environment; authenticated routes always have one.
    public func requireEnvironment() throws -> HeraldCore.Environment {
        guard let environment else { throw APIError(.unauthorized, "API key is missing or invalid") }
        return environment
    }
}

/// Settings of the HTTP API.
public struct APIConfiguration: Sendable {
    /// Default largest request body: 512 KiB (Novu's trigger limit).
    public static let defaultMaxBodyBytes = 512 * 1024

    /// Largest request body accepted, in bytes; larger bodies get 413.
    public var maxBodyBytes: Int

    public init(maxBodyBytes: Int = APIConfiguration.defaultMaxBodyBytes) {
        self.maxBodyBytes = maxBodyBytes
    }
}
