import Foundation
import HeraldCore
import HeraldStore
import HeraldTestSupport
import Testing

/// Workflow send windows end to end (docs/workflows.md §Send windows): the trigger is accepted at once, each
/// subscriber's push waits durably for 09:00 in their own timezone, and the activity trail says why.
@Suite("Send windows, end to end")
struct SendWindowEngineTests {
    /// A push only between 09:00 and 18:00 in the subscriber's timezone.
    static let morning = """
        workflow: morning
        window: { after: "09:00", before: "18:00" }
        steps:
          - id: push
            type: push
            title: "Good morning"
            body: "News"
        """

    /// 12:00 UTC on 1 July: 13:00 in London (BST, inside the window), 08:00 in New York (EDT), 21:00 in Tokyo.
    static func noonUTC() -> ManualWallClock { ManualWallClock(ISO8601DateFormatter().date(from: "2026-07-01T12:00:00Z")!) }

    @Test(
        "subscribers in three timezones: only the one inside the window gets the push now, the others exactly at their 09:00",
        arguments: Backend.available)
    func windows(_ backend: Backend) async throws {
        let clock = Self.noonUTC()
        try await withEngine(backend, workflows: [Self.morning], clock: clock) { herald in
            try await herald.webhookIntegration("push-webhook", channel: "push", identifier: "hook")
            for (subscriber, zone) in [("lon", "Europe/London"), ("nyc", "America/New_York"), ("tyo", "Asia/Tokyo")] {
                try await herald.trigger("morning", toDeviceOf: subscriber, profile: ["timezone": .string(zone)])
            }
            try await herald.settle()
            #expect(herald.emulator.deliveries(to: "tok-lon") == 1)
            #expect(herald.emulator.deliveries(to: "tok-nyc") == 0 && herald.emulator.deliveries(to: "tok-tyo") == 0)
            #expect(try await herald.scheduledJobs() == 2)
            let activity = try await herald.call(.get, "/v1/notifications?subscriberIds=nyc").json()
            let job = activity.objectValue?["data"]?.arrayValue?.first?.objectValue?["jobs"]?.arrayValue?.first?.objectValue
            #expect(job?["status"] == "delayed")
            let details = job?["executionDetails"]?.arrayValue?.compactMap { $0.objectValue?["detail"]?.stringValue } ?? []
            #expect(details.contains("send_window_wait"), "\(details)")
            clock.advance(by: .seconds(3600))  // 13:00 UTC = 09:00 in New York
            herald.store.jobSignal.signal()
            try await herald.eventually("New York's morning") { herald.emulator.deliveries(to: "tok-nyc") == 1 }
            try await herald.settle()
            #expect(herald.emulator.deliveries(to: "tok-tyo") == 0)
            clock.advance(by: .seconds(11 * 3600))  // 00:00 UTC = 09:00 in Tokyo
            herald.store.jobSignal.signal()
            try await herald.eventually("Tokyo's morning") { herald.emulator.deliveries(to: "tok-tyo") == 1 }
            try await herald.settle()
            #expect(herald.emulator.deliveries(to: "tok-lon") == 1 && herald.emulator.deliveries(to: "tok-nyc") == 1)
        }
    }

    @Test(
        "translations: each subscriber gets the texts of its locale, falling back to the language and the default",
        arguments: Backend.available)
    func translations(_ backend: Backend) async throws {
        let workflow = """
            workflow: hello
            locale: en
            translations:
              en: { greeting: "Hello", body: "Welcome" }
              fr: { greeting: "Bonjour", body: "Bienvenue" }
              fr-CA: { greeting: "Allô" }
            steps:
              - id: push
                type: push
                title: "{{t.greeting}}"
                body: "{{t.body}}"
            """
        try await withEngine(backend, workflows: [workflow]) { herald in
            try await herald.webhookIntegration("push-webhook", channel: "push", identifier: "hook")
            for (subscriber, locale) in [("qc", "fr-CA"), ("paris", "fr"), ("berlin", "de-DE"), ("plain", "")] {
                try await herald.trigger("hello", toDeviceOf: subscriber, profile: locale.isEmpty ? [:] : ["locale": .string(locale)])
            }
            try await herald.settle()
            let received = Dictionary(
                uniqueKeysWithValues: herald.emulator.requests().compactMap { request -> (String, String)? in
                    guard let target = request.target, let body = request.body.objectValue else { return nil }
                    return (target, "\(body["title"]?.stringValue ?? "") / \(body["content"]?.stringValue ?? "")")
                })
            #expect(
                received == [
                    "tok-qc": "Allô / Bienvenue", "tok-paris": "Bonjour / Bienvenue", "tok-berlin": "Hello / Welcome",
                    "tok-plain": "Hello / Welcome",
                ])
        }
    }

    @Test(
        "a topic trigger to subscribers in three timezones wakes up once per timezone, not once per subscriber",
        arguments: Backend.available)
    func topicBuckets(_ backend: Backend) async throws {
        let clock = Self.noonUTC()
        try await withEngine(backend, workflows: [Self.morning], clock: clock) { herald in
            try await herald.webhookIntegration("push-webhook", channel: "push", identifier: "hook")
            let zones = ["Europe/London", "America/New_York", "Asia/Tokyo"]
            let members = (0..<30).map { "m\($0)" }
            try await herald.store.transaction { session in
                let env = herald.environment.id
                _ = try await session.upsertTopic(environmentId: env, key: "all", name: "All")
                for (index, member) in members.enumerated() {
                    var profile = SubscriberProfile()
                    profile.timezone = zones[index % 3]
                    _ = try await session.upsertSubscriber(
                        environmentId: env, subscriberId: member, patch: SubscriberProfilePatch(setting: profile))
                    _ = try await session.registerDevice(
                        environmentId: env,
                        DeviceRegistration(provider: "push-webhook", token: Secret("tok-\(member)"), subscriberId: member))
                }
                _ = try await session.subscribe(environmentId: env, topicKey: "all", subscriberIds: members)
            }
            try await herald.trigger(["name": "morning", "to": [["type": "Topic", "topicKey": "all"]]])
            try await herald.settle()
            #expect(herald.emulator.stats().total == 10, "London's ten now")
            #expect(try await herald.scheduledJobs() == 2, "one wake-up for New York's ten, one for Tokyo's ten")
            clock.advance(by: .seconds(3600))
            herald.store.jobSignal.signal()
            try await herald.eventually("New York's ten") { herald.emulator.stats().total == 20 }
            try await herald.settle()
            clock.advance(by: .seconds(11 * 3600))
            herald.store.jobSignal.signal()
            try await herald.eventually("Tokyo's ten") { herald.emulator.stats().total == 30 }
            try await herald.settle()
            #expect(herald.emulator.stats().duplicates == 0)
        }
    }
}
