import Foundation
import HeraldCore
import HeraldEngine
import HeraldStore
import HeraldTestSupport
import Testing

/// `--device-ttl`: devices with neither a successful delivery nor a re-registration within the TTL are removed.
@Suite("Device inactivity TTL")
struct DeviceTTLTests {
    @Test("the sweeper removes only devices idle for longer than the TTL", arguments: Backend.available)
    func sweep(_ backend: Backend) async throws {
        let clock = ManualWallClock()
        try await withStore(backend, clock: clock) { store, _ in
            let environment = try await store.transaction { try await $0.createEnvironment(named: "development") }
            func register(_ token: String) async throws -> Device {
                try await store.transaction {
                    try await $0.registerDevice(
                        environmentId: environment.id, DeviceRegistration(provider: "fcm", token: Secret(token), subscriberId: "ann"))
                }
            }
            let idle = try await register("idle")
            let reached = try await register("reached")
            _ = try await register("reregistered")
            clock.advance(by: .seconds(80 * 86_400))
            try await store.transaction { try await $0.markDevicesReached(ids: [reached.id]) }
            _ = try await register("reregistered")  // the app registered it again
            clock.advance(by: .seconds(20 * 86_400))
            let sweeper = DeviceSweeper(store: store, ttl: .seconds(90 * 86_400), logger: testLogger)
            #expect(try await sweeper.sweep() == 1)
            let left = try await store.read { try await $0.devices(environmentId: environment.id, subscriberId: "ann") }
            #expect(Set(left.map(\.token.revealed)) == ["reached", "reregistered"])
            #expect(!left.contains { $0.id == idle.id })
            #expect(try await sweeper.sweep() == 0)
        }
    }
}
