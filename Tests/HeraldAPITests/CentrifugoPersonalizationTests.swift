import Foundation
import HeraldCore
import HeraldStore
import HeraldTestSupport
import Testing

/// Centrifugo PRO's personalisation of raw sends, end to end through the FCM emulator with an injected clock
/// (docs/api.md §Personalisation): time windows per device timezone, rate limits per key, templates with meta and
/// localisations.
@Suite("Centrifugo personalisation")
struct CentrifugoPersonalizationTests {
    typealias API = CentrifugoPushTests

    static func register(
        _ herald: EngineHarness, _ token: String, user: String, timezone: String? = nil, locale: String? = nil,
        meta: [String: String] = [:]
    ) async throws {
        var body: [String: JSONValue] = [
            "provider": "fcm", "token": .string(token), "platform": "android", "user": .string(user),
            "meta": .object(meta.mapValues(JSONValue.string)),
        ]
        if let timezone { body["timezone"] = .string(timezone) }
        if let locale { body["locale"] = .string(locale) }
        let reply = try await API.api(herald, "device_register", .object(body))
        #expect(reply.objectValue?["id"] != nil, "\(reply.jsonString())")
    }

    static let plain: JSONValue = ["fcm": ["message": ["notification": ["title": "Sale", "body": "today"]]]]

    static func targets(_ herald: EngineHarness) -> [String] { herald.push.messages(provider: "fcm").map(\.target).sorted() }

    @Test(
        "time_limit: of devices in three timezones only those inside the window get the push now, the others exactly when theirs opens; no timezone is skipped",
        arguments: Backend.available)
    func timeWindows(_ backend: Backend) async throws {
        // 12:00 UTC: 08:00 in New York (EDT), 21:00 in Tokyo, 12:00 in UTC.
        let clock = ManualWallClock(ISO8601DateFormatter().date(from: "2026-07-01T12:00:00Z")!)
        try await withEngine(backend, workflows: [], clock: clock) { herald in
            try await herald.pushIntegrations(only: ["fcm"])
            try await Self.register(herald, "fcm-utc", user: "a", timezone: "UTC")
            try await Self.register(herald, "fcm-ny", user: "b", timezone: "America/New_York")
            try await Self.register(herald, "fcm-tokyo", user: "c", timezone: "Asia/Tokyo")
            try await Self.register(herald, "fcm-none", user: "d")
            let sent = try await API.api(
                herald, "send_push_notification",
                [
                    "recipient": ["filter": ["users": ["a", "b", "c", "d"]]], "notification": Self.plain, "uid": "window",
                    "optimize_for_reliability": true,
                    "limit_strategy": [
                        "time_limit": ["send_after_time": "09:00:00", "send_before_time": "18:00:00", "no_tz_send_now": false]
                    ],
                ])
            #expect(sent == ["uid": "window"])
            try await herald.settle()
            #expect(Self.targets(herald) == ["fcm-utc"])
            let stats = try await API.stats(herald, "window")
            #expect(stats["totals"]?.objectValue?["pending"] == 2, "deferred devices count as pending")
            #expect(stats["skipped"] == 1, "the device without a timezone is skipped")
            // The two deferred devices are in two timezone buckets: one job each.
            #expect(try await herald.scheduledJobs() == 2)
            clock.advance(by: .seconds(3599))
            herald.store.jobSignal.signal()
            try await Task.sleep(for: .milliseconds(300))
            #expect(Self.targets(herald) == ["fcm-utc"])
            clock.advance(by: .seconds(1))  // 13:00 UTC = 09:00 in New York
            herald.store.jobSignal.signal()
            try await herald.eventually("New York's window") { Self.targets(herald) == ["fcm-ny", "fcm-utc"] }
            // The job records its outcome before the clock jumps: a jump past a running job's lease would hand it to
            // another worker (at-least-once), which is not what this test is about.
            try await herald.settle()
            clock.advance(by: .seconds(11 * 3600 - 1))  // 23:59:59 UTC = 08:59:59 in Tokyo
            herald.store.jobSignal.signal()
            try await Task.sleep(for: .milliseconds(300))
            #expect(Self.targets(herald).count == 2)
            clock.advance(by: .seconds(1))
            herald.store.jobSignal.signal()
            try await herald.eventually("Tokyo's window") { Self.targets(herald) == ["fcm-ny", "fcm-tokyo", "fcm-utc"] }
            try await herald.settle()
            #expect(try await API.stats(herald, "window")["totals"]?.objectValue?["sent"] == 3)
        }
    }

    @Test(
        "rate_limit: per user, one a minute; over the limit a push waits for the next free minute, or is dropped when asked",
        arguments: Backend.available)
    func rateLimits(_ backend: Backend) async throws {
        let clock = ManualWallClock(ISO8601DateFormatter().date(from: "2026-07-01T12:00:10Z")!)
        try await withEngine(backend, workflows: [], clock: clock) { herald in
            try await herald.pushIntegrations(only: ["fcm"])
            for token in ["fcm-1", "fcm-2", "fcm-3"] { try await Self.register(herald, token, user: "u") }
            try await Self.register(herald, "fcm-other", user: "v")
            let limit: JSONValue = ["key": "{{.device.user}}", "policies": [["rate": 1, "interval_ms": 60_000]]]
            try await API.api(
                herald, "send_push_notification",
                [
                    "recipient": ["filter": ["users": ["u", "v"]]], "notification": Self.plain, "uid": "delay",
                    "limit_strategy": ["rate_limit": limit],
                ])
            try await herald.settle()
            // One of u's devices and v's device now; u's other two in the next two minutes.
            #expect(herald.push.messages(provider: "fcm").count == 2)
            #expect(Self.targets(herald).contains("fcm-other"))
            #expect(try await herald.scheduledJobs() == 2)
            // A second send that drops: u and v are at their limit this minute, so nothing goes out.
            var dropping = limit.objectValue!
            dropping["drop_if_rate_limited"] = true
            try await API.api(
                herald, "send_push_notification",
                [
                    "recipient": ["filter": ["users": ["u", "v"]]], "notification": Self.plain, "uid": "drop",
                    "limit_strategy": ["rate_limit": .object(dropping)],
                ])
            try await herald.settle()
            #expect(try await API.stats(herald, "drop")["skipped"] == 4)
            #expect(herald.push.messages(provider: "fcm").count == 2, "\(Self.targets(herald))")
            clock.advance(by: .seconds(50))  // 12:01:00
            herald.store.jobSignal.signal()
            try await herald.eventually("u's second push") { herald.push.messages(provider: "fcm").count == 3 }
            try await herald.settle()  // before the clock jumps past the job's lease
            clock.advance(by: .seconds(60))  // 12:02:00
            herald.store.jobSignal.signal()
            try await herald.eventually("u's third push") { herald.push.messages(provider: "fcm").count == 4 }
            try await herald.settle()
            #expect(Self.targets(herald) == ["fcm-1", "fcm-2", "fcm-3", "fcm-other"])
        }
    }

    @Test(
        "templating: device fields, meta and translations by locale with fallback to the language, then the default; devices that render alike share one rendering",
        arguments: Backend.available)
    func templating(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: []) { herald in
            try await herald.pushIntegrations(only: ["fcm"])
            try await Self.register(herald, "fcm-fr-ca", user: "ann", locale: "fr-CA", meta: ["name": "Ann"])
            try await Self.register(herald, "fcm-fr", user: "bob", locale: "fr", meta: ["name": "Bob"])
            try await Self.register(herald, "fcm-de", user: "cy", locale: "de_DE", meta: ["name": "Cy"])
            try await Self.register(herald, "fcm-none", user: "di", meta: ["name": "<b>Di</b>"])
            try await API.api(
                herald, "send_push_notification",
                [
                    "recipient": ["filter": ["users": ["ann", "bob", "cy", "di"]]], "uid": "hello", "use_templating": true,
                    "use_meta": true,
                    "localizations": ["fr": ["translations": ["greeting": "Bonjour"]], "de-DE": ["translations": ["greeting": "Hallo"]]],
                    "notification": [
                        "fcm": [
                            "message": [
                                "notification": [
                                    "title": "{{default [[Hello]] .l10n.greeting}} {{.device.meta.name}}", "body": "for {{ .device.user }}",
                                ],
                                "data": ["static": "as is"],
                            ]
                        ]
                    ],
                ])
            try await herald.settle()
            let titles = Dictionary(
                uniqueKeysWithValues: herald.push.messages(provider: "fcm").map {
                    ($0.target, $0.payload.objectValue?["notification"]?.objectValue?["title"]?.stringValue ?? "")
                })
            #expect(titles == ["fcm-fr-ca": "Bonjour Ann", "fcm-fr": "Bonjour Bob", "fcm-de": "Hallo Cy", "fcm-none": "Hello <b>Di</b>"])
            let message = try #require(herald.push.messages(provider: "fcm").first { $0.target == "fcm-fr" })
            #expect(message.payload.objectValue?["notification"]?.objectValue?["body"] == "for bob")
            #expect(message.payload.objectValue?["data"] == ["static": "as is"])
        }
    }
}
