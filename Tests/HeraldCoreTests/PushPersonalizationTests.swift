import Foundation
import Testing

@testable import HeraldCore

/// The pure parts of raw-send personalisation: templates, locale fallback, time windows (midnight, DST) and
/// rate-limit slots.
@Suite("Push personalisation")
struct PushPersonalizationTests {
    static let device = Device(
        id: "d1", environmentId: "e", provider: "web-push", token: Secret("t"), platform: "web", subscriberId: "ann",
        meta: ["name": "Ann"], timezone: "Europe/Paris", locale: "fr-CA", createdAt: Date(), updatedAt: Date())

    @Test(
        "templates render device fields, meta and translations; default falls back; plain text stays",
        arguments: [
            ("Hi {{.device.user}}", "Hi ann"),
            ("{{ .device.id }}/{{.device.platform}}/{{.device.provider}}", "d1/web/webpush"),
            ("{{.device.meta.name}}", "Ann"),
            ("{{.device.meta.missing}}!", "!"),
            ("{{default [[Hello]] .l10n.greeting}}", "Bonjour"),
            ("{{default \"Bye\" .l10n.farewell}}", "Bye"),
            ("{{ .device.locale }} {{.device.timezone}}", "fr-CA Europe/Paris"),
            ("no actions at all", "no actions at all"),
        ])
    func renders(template: String, expected: String) throws {
        let parsed = try PushTemplate(template, allowMeta: true)
        let translations = ["greeting": "Bonjour"]
        #expect(parsed.render { PushRenderer.value($0, device: Self.device, translations: translations) } == expected)
    }

    @Test(
        "template mistakes are refused with a reason",
        arguments: [
            ("{{.device.user", "not closed"),
            ("{{.nope}}", "unknown variable"),
            ("{{device.user}}", "is not a variable"),
            ("{{.device.meta.name}}", "needs use_meta"),
            ("{{default Hello .l10n.x}}", "default takes"),
            ("{{default \"x .l10n.x}}", "not closed"),
            ("{{.l10n.a.b}}", "unknown variable"),
        ])
    func refuses(template: String, reason: String) {
        #expect(throws: PushTemplateError.self) { try PushTemplate(template, allowMeta: false) }
        do { _ = try PushTemplate(template, allowMeta: false) } catch { #expect(error.message.contains(reason), "\(error.message)") }
    }

    @Test("translations: the exact tag, else the language, else none; tags are case- and separator-insensitive")
    func localeFallback() {
        var personalization = PushPersonalization()
        personalization.localizations = ["fr": ["g": "Bonjour"], "pt-br": ["g": "Olá"]]
        #expect(personalization.translations(locale: "fr-CA") == ["g": "Bonjour"])
        #expect(personalization.translations(locale: "pt_BR") == ["g": "Olá"])
        #expect(personalization.translations(locale: "PT-br") == ["g": "Olá"])
        #expect(personalization.translations(locale: "pt") == [:])
        #expect(personalization.translations(locale: "de") == [:])
        #expect(personalization.translations(locale: nil) == [:])
    }

    static func date(_ text: String) -> Date { ISO8601DateFormatter().date(from: text)! }

    @Test(
        "time windows: open now, later today, tomorrow, across midnight, and across a DST change",
        arguments: [
            // (after, before, zone, now, next opening)
            ("09:00:00", "18:00:00", "UTC", "2026-07-01T12:00:00Z", "2026-07-01T12:00:00Z"),
            ("09:00:00", "18:00:00", "America/New_York", "2026-07-01T12:00:00Z", "2026-07-01T13:00:00Z"),
            ("09:00:00", "18:00:00", "Asia/Tokyo", "2026-07-01T12:00:00Z", "2026-07-02T00:00:00Z"),
            // Across midnight: 22:00–06:00 is open at 23:30 and at 05:00, closed at 07:00 until 22:00.
            ("22:00:00", "06:00:00", "UTC", "2026-07-01T23:30:00Z", "2026-07-01T23:30:00Z"),
            ("22:00:00", "06:00:00", "UTC", "2026-07-02T05:00:00Z", "2026-07-02T05:00:00Z"),
            ("22:00:00", "06:00:00", "UTC", "2026-07-02T07:00:00Z", "2026-07-02T22:00:00Z"),
            // New York springs forward on 8 March 2026 (02:00 EST → 03:00 EDT): 08:00 local is 13:00 UTC the day before
            // and 12:00 UTC on the day.
            ("08:00:00", "09:00:00", "America/New_York", "2026-03-07T14:00:00Z", "2026-03-08T12:00:00Z"),
            // A window opening at 02:30, a time that does not exist that day, opens at 03:00 EDT (07:00 UTC).
            ("02:30:00", "04:00:00", "America/New_York", "2026-03-08T05:00:00Z", "2026-03-08T07:00:00Z"),
            // Falls back on 1 November 2026: 08:00 EST is 13:00 UTC.
            ("08:00:00", "09:00:00", "America/New_York", "2026-10-31T13:00:00Z", "2026-11-01T13:00:00Z"),
        ])
    func windows(after: String, before: String, zone: String, now: String, expected: String) {
        let window = PushTimeLimit(
            after: PushTimeLimit.secondsOfDay(after)!, before: PushTimeLimit.secondsOfDay(before)!, noTimezoneSendNow: false)
        #expect(window.nextOpening(after: Self.date(now), in: TimeZone(identifier: zone)!) == Self.date(expected))
    }

    @Test("rate-limit slots: room now, the next window with room across policies, or none when dropping")
    func slots() {
        let minute: Int64 = 60_000
        let limit = PushRateLimit(
            key: nil, policies: [.init(rate: 1, intervalMilliseconds: minute), .init(rate: 2, intervalMilliseconds: 10 * minute)],
            drop: false)
        #expect(limit.slot(now: 5_000, counts: [[:], [:]]) == 5_000)
        #expect(limit.slot(now: 5_000, counts: [[0: 1], [0: 1]]) == minute)
        // The ten-minute policy is full too: the next ten-minute window.
        #expect(limit.slot(now: 5_000, counts: [[0: 1, minute: 1], [0: 2]]) == 10 * minute)
        var dropping = limit
        dropping.drop = true
        #expect(dropping.slot(now: 5_000, counts: [[0: 1], [0: 1]]) == nil)
        #expect(dropping.slot(now: 5_000, counts: [[:], [0: 1]]) == 5_000)
    }
}
