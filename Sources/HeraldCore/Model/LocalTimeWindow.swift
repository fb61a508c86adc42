import Foundation

/// A window of the local day — `[after, before)` seconds after midnight, crossing midnight when `after > before` —
/// optionally only on some weekdays: when a recipient may be sent to in their own timezone. Workflow send windows
/// (`window:`, docs/workflows.md) and Centrifugo's `limit_strategy.time_limit` both use it. Pure; the calendar of
/// the zone does the arithmetic, so a DST change moves the window with the wall clock.
public struct LocalTimeWindow: Sendable, Hashable {
    /// Seconds after local midnight.
    public var after: Int
    public var before: Int
    /// The weekdays the window opens on (1 Sunday … 7 Saturday, as `Calendar`); nil: every day. A window crossing
    /// midnight belongs to the day it opens.
    public var days: Set<Int>?

    public init(after: Int, before: Int, days: Set<Int>? = nil) {
        self.after = after
        self.before = before
        self.days = days
    }

    /// Weekday names as workflows write them, by `Calendar` weekday number.
    public static let weekdays: [String: Int] = ["sun": 1, "mon": 2, "tue": 3, "wed": 4, "thu": 5, "fri": 6, "sat": 7]

    /// `HH:MM` or `HH:MM:SS` as seconds after midnight.
    public static func secondsOfDay(_ text: String) -> Int? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map { part in part.count == 2 ? Int(part) : nil }
        guard (2...3).contains(parts.count), parts.allSatisfy({ $0 != nil }) else { return nil }
        let (hours, minutes, seconds) = (parts[0]!, parts[1]!, parts.count == 3 ? parts[2]! : 0)
        guard (0...23).contains(hours), (0...59).contains(minutes), (0...59).contains(seconds) else { return nil }
        return hours * 3600 + minutes * 60 + seconds
    }

    private func opensOn(_ weekday: Int) -> Bool { days?.contains(weekday) ?? true }

    private static func calendar(_ zone: TimeZone) -> Calendar {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        return calendar
    }

    /// Whether the window is open at `date` in `zone`.
    public func isOpen(at date: Date, in zone: TimeZone) -> Bool {
        let parts = Self.calendar(zone).dateComponents([.weekday, .hour, .minute, .second], from: date)
        let second = (parts.hour ?? 0) * 3600 + (parts.minute ?? 0) * 60 + (parts.second ?? 0)
        let weekday = parts.weekday ?? 1
        if after < before { return opensOn(weekday) && after <= second && second < before }
        let yesterday = weekday == 1 ? 7 : weekday - 1
        return (second >= after && opensOn(weekday)) || (second < before && opensOn(yesterday))
    }

    /// When the window is next open at or after `now`: `now` itself when open. A local opening time skipped by a DST
    /// jump opens at the first instant after the gap.
    public func nextOpening(after now: Date, in zone: TimeZone) -> Date {
        if isOpen(at: now, in: zone) { return now }
        let calendar = Self.calendar(zone)
        let startOfToday = calendar.startOfDay(for: now)
        let time = DateComponents(hour: after / 3600, minute: (after % 3600) / 60, second: after % 60)
        for dayOffset in 0...8 {
            guard let day = calendar.date(byAdding: .day, value: dayOffset, to: startOfToday),
                opensOn(calendar.component(.weekday, from: day)),
                let opening = calendar.nextDate(
                    after: day.addingTimeInterval(-1), matching: time, matchingPolicy: .nextTime, direction: .forward)
            else { continue }
            if opening > now { return opening }
        }
        return now.addingTimeInterval(7 * 86_400)
    }
}
