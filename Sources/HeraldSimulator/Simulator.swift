import Foundation
import HeraldCore
import Hummingbird
import Logging
import ServiceLifecycle

/// The provider emulators in one HTTP server (DESIGN §3, `HeraldSimulator`). Tests, benchmarks, the crash test and
/// `herald dev` run it on `127.0.0.1` and an ephemeral port.
public struct Simulator: Sendable {
    public let webhooks: WebhookEmulator

    public init(webhooks: WebhookEmulator = WebhookEmulator()) {
        self.webhooks = webhooks
    }

    /// The HTTP application serving every emulator; `onRunning` receives the bound port.
    public func application(
        host: String = "127.0.0.1", port: Int = 0, logger: Logger, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let router = Router()
        webhooks.register(on: router)
        router.get("/_control/health") { _, _ in "ok" }
        return Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "HeraldSimulator"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) }, logger: logger)
    }
}
