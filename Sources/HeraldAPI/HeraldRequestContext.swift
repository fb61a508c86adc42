import Foundation
import HeraldCore
import HeraldStore
import Hummingbird
import Logging

/// Per-request state: Hummingbird's core context plus the environment the API key resolved to.
public struct HeraldRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by ``AuthMiddleware`` on authenticated routes.
    public var environment: HeraldCore.Environment?
    /// Largest request body accepted, in bytes (see ``APIConfiguration/maxBodyBytes``).
    public var maxUploadSize: Int
    /// The peer's IP address (the console's sign-in limiter counts failures by it).
    public var remoteAddress: String?
    /// Set by the console's middleware on signed-in console pages.
    public var consoleSession: ConsoleSession?
    /// A console POST's form fields, read (and its CSRF token checked) by the console's middleware.
    var consoleForm: FormBody?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.environment = nil
        self.maxUploadSize = APIConfiguration.defaultMaxBodyBytes
        self.remoteAddress = source.channel.remoteAddress?.ipAddress
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

    /// The operator console (`/console`, docs/console.md); `--console off` leaves it out of the router.
    public var console: Bool
    /// How long a console session lasts after sign-in (default 12 h).
    public var consoleSessionLifetime: TimeInterval
    /// Whether console cookies carry `Secure` (set when `--public-url` is https; a request forwarded with
    /// `X-Forwarded-Proto: https` gets it too).
    public var secureCookies: Bool

    public init(
        maxBodyBytes: Int = APIConfiguration.defaultMaxBodyBytes, console: Bool = true, consoleSessionLifetime: TimeInterval = 12 * 3600,
        secureCookies: Bool = false
    ) {
        self.maxBodyBytes = maxBodyBytes
        self.console = console
        self.consoleSessionLifetime = consoleSessionLifetime
        self.secureCookies = secureCookies
    }
}
