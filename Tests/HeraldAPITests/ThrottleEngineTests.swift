import Foundation
import HeraldCore
import HeraldTestSupport
import Testing

/// The throttle step end to end: counted in the store per key and window, across runs (and so across processes).
@Suite("Throttle step, end to end")
struct ThrottleEngineTests {
    @Test(
        "at most two alerts an hour per subscriber: the third run is throttled, the next window passes again", arguments: Backend.available)
    func throttles(_ backend: Backend) async throws {
        let workflow = """
            workflow: alerts
            steps:
              - id: limit
                type: throttle
                limit: 2
                window: 1h
              - id: push
                type: push
                title: "Alert"
                body: "{{payload.n}}"
            """
        let clock = ManualWallClock(ISO8601DateFormatter().date(from: "2026-07-01T12:10:00Z")!)
        try await withEngine(backend, workflows: [workflow], clock: clock) { herald in
            try await herald.webhookIntegration("push-webhook", channel: "push", identifier: "hook")
            func alert(_ n: Int, to subscriber: String = "ann") async throws {
                try await herald.trigger(
                    "alerts", toDeviceOf: subscriber, payload: ["n": .number(Double(n))], transactionId: "alert-\(subscriber)-\(n)")
                try await herald.settle()
            }
            for n in 1...3 { try await alert(n) }
            try await alert(1, to: "bob")  // another key
            #expect(herald.emulator.deliveries(to: "tok-ann") == 2)
            #expect(herald.emulator.deliveries(to: "tok-bob") == 1)
            let activity = try await herald.call(.get, "/v1/notifications?transactionId=alert-ann-3").json()
            let jobs = activity.objectValue?["data"]?.arrayValue?.first?.objectValue?["jobs"]?.arrayValue ?? []
            #expect(jobs.compactMap { $0.objectValue?["result"]?.objectValue?["status"]?.stringValue } == ["throttled", "skipped"])
            let details = jobs.first?.objectValue?["executionDetails"]?.arrayValue?.compactMap { $0.objectValue?["detail"]?.stringValue }
            #expect(details == ["throttled"])
            clock.advance(by: .seconds(50 * 60))  // 13:00: a new window
            try await alert(4)
            #expect(herald.emulator.deliveries(to: "tok-ann") == 3)
        }
    }
}
