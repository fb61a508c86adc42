import Foundation

/// What a raw send asks beyond one payload for all (Centrifugo PRO's personalisation, docs/api.md
/// §Personalisation): per-device templating (`use_templating`, `use_meta`, `localizations`) and the limit strategy
/// (`limit_strategy.time_limit`, `limit_strategy.rate_limit`). Every part needs a `filter` recipient: it reads each
/// device. Pure: parsing, window arithmetic, rendering.
public struct PushPersonalization: Sendable, Equatable {
    /// Whether payload strings are templates (`use_templating`, or any `localizations`).
    public var templating = false
    /// Whether templates may read `.device.meta.*` (`use_meta`).
    public var useMeta = false
    /// Translations by normalised locale tag (`pt-br`, `pt`).
    public var localizations: [String: [String: String]] = [:]
    public var timeLimit: PushTimeLimit?
    public var rateLimit: PushRateLimit?

    public init() {}

    /// Whether the send needs per-device work at all.
    public var isEmpty: Bool { !templating && timeLimit == nil && rateLimit == nil }

    /// The translations for a device's locale: the exact tag, else its language, else none (the payload's own text
    /// or the template's `default` then applies).
    public func translations(locale: String?) -> [String: String] {
        guard let locale, !locale.isEmpty, !localizations.isEmpty else { return [:] }
        let tag = Self.normalised(locale)
        if let exact = localizations[tag] { return exact }
        if let language = tag.split(separator: "-").first, let translations = localizations[String(language)] { return translations }
        return [:]
    }

    /// `pt_BR` and `PT-br` are `pt-br`.
    public static func normalised(_ locale: String) -> String {
        locale.replacingOccurrences(of: "_", with: "-").lowercased()
    }

    /// Parses the personalisation fields of a `send_push_notification` request (each error names its field).
    init(root: [String: JSONValue]) throws {
        if let value = root["use_templating"], value != .null {
            guard let flag = value.boolValue else { throw PushSendRequest.problem("use_templating", "must be a boolean") }
            templating = flag
        }
        if let value = root["use_meta"], value != .null {
            guard let flag = value.boolValue else { throw PushSendRequest.problem("use_meta", "must be a boolean") }
            useMeta = flag
        }
        if let value = root["localizations"], value != .null {
            guard case .object(let languages) = value else { throw PushSendRequest.problem("localizations", "must be an object") }
            for (tag, entry) in languages {
                let path = "localizations.\(tag)"
                guard !tag.isEmpty, tag.count <= 35 else { throw PushSendRequest.problem(path, "is not a locale tag") }
                guard case .object(let fields) = entry else { throw PushSendRequest.problem(path, "must be an object with translations") }
                var translations: [String: String] = [:]
                if let value = fields["translations"], value != .null {
                    guard case .object(let entries) = value else {
                        throw PushSendRequest.problem("\(path).translations", "must be an object")
                    }
                    for (key, text) in entries {
                        guard let string = text.stringValue else {
                            throw PushSendRequest.problem("\(path).translations.\(key)", "must be a string")
                        }
                        translations[key] = string
                    }
                }
                localizations[Self.normalised(tag)] = translations
            }
            // Centrifugo: setting localizations turns templating on.
            if !localizations.isEmpty { templating = true }
        }
        if let value = root["limit_strategy"], value != .null {
            guard case .object(let strategy) = value else { throw PushSendRequest.problem("limit_strategy", "must be an object") }
            if let time = strategy["time_limit"], time != .null {
                timeLimit = try PushTimeLimit(json: time, path: "limit_strategy.time_limit")
            }
            if let rate = strategy["rate_limit"], rate != .null {
                rateLimit = try PushRateLimit(json: rate, path: "limit_strategy.rate_limit", allowMeta: useMeta)
            }
        }
    }
}

/// `limit_strategy.time_limit`: send inside `[after, before)` of each device's local day (a window may cross
/// midnight); devices without a timezone are sent at once with `no_tz_send_now`, else skipped.
public struct PushTimeLimit: Sendable, Equatable {
    /// Seconds after local midnight.
    public var after: Int
    public var before: Int
    public var noTimezoneSendNow: Bool

    public init(after: Int, before: Int, noTimezoneSendNow: Bool) {
        self.after = after
        self.before = before
        self.noTimezoneSendNow = noTimezoneSendNow
    }

    init(json: JSONValue, path: String) throws {
        guard case .object(let fields) = json else { throw PushSendRequest.problem(path, "must be an object") }
        func time(_ name: String) throws -> Int {
            guard let text = fields[name]?.stringValue, let seconds = Self.secondsOfDay(text) else {
                throw PushSendRequest.problem("\(path).\(name)", "must be a time HH:MM:SS")
            }
            return seconds
        }
        after = try time("send_after_time")
        before = try time("send_before_time")
        guard after != before else { throw PushSendRequest.problem(path, "send_after_time and send_before_time must differ") }
        if let value = fields["no_tz_send_now"], value != .null {
            guard let flag = value.boolValue else { throw PushSendRequest.problem("\(path).no_tz_send_now", "must be a boolean") }
            noTimezoneSendNow = flag
        } else {
            noTimezoneSendNow = false
        }
    }

    /// `HH:MM:SS` (or `HH:MM`) as seconds after midnight.
    public static func secondsOfDay(_ text: String) -> Int? { LocalTimeWindow.secondsOfDay(text) }

    /// The window as a ``LocalTimeWindow`` (every day).
    public var window: LocalTimeWindow { LocalTimeWindow(after: after, before: before) }

    /// Whether the window is open at `date` in `zone`.
    public func isOpen(at date: Date, in zone: TimeZone) -> Bool { window.isOpen(at: date, in: zone) }

    /// When the window is next open in `timeZone` at or after `now` (``LocalTimeWindow/nextOpening(after:in:)``).
    public func nextOpening(after now: Date, in timeZone: TimeZone) -> Date { window.nextOpening(after: now, in: timeZone) }
}

/// `limit_strategy.rate_limit`: at most `rate` pushes per `interval` for each key (a template over the device,
/// default the device id), for every policy; over the limit a push is dropped (`drop_if_rate_limited`) or delayed to
/// the next interval with room.
public struct PushRateLimit: Sendable, Equatable {
    public struct Policy: Sendable, Equatable {
        public var rate: Int
        public var intervalMilliseconds: Int64
        public init(rate: Int, intervalMilliseconds: Int64) {
            self.rate = rate
            self.intervalMilliseconds = intervalMilliseconds
        }
    }

    public var key: PushTemplate?
    public var policies: [Policy]
    public var drop: Bool

    public init(key: PushTemplate?, policies: [Policy], drop: Bool) {
        self.key = key
        self.policies = policies
        self.drop = drop
    }

    init(json: JSONValue, path: String, allowMeta: Bool) throws {
        guard case .object(let fields) = json else { throw PushSendRequest.problem(path, "must be an object") }
        if let text = fields["key"]?.stringValue, !text.isEmpty {
            do { key = try PushTemplate(text, allowMeta: allowMeta) } catch {
                throw PushSendRequest.problem("\(path).key", error.message)
            }
        } else if let value = fields["key"], value != .null, value.stringValue == nil {
            throw PushSendRequest.problem("\(path).key", "must be a string")
        } else {
            key = nil
        }
        guard case .array(let items)? = fields["policies"], !items.isEmpty, items.count <= 10 else {
            throw PushSendRequest.problem("\(path).policies", "required: 1 to 10 {rate, interval_ms}")
        }
        policies = try items.enumerated().map { index, item in
            let itemPath = "\(path).policies[\(index)]"
            guard case .object(let policy) = item, case .number(let rate)? = policy["rate"],
                case .number(let interval)? = policy["interval_ms"],
                rate >= 1, rate <= 1_000_000, rate.rounded() == rate, interval >= 1, interval <= 31 * 86_400_000,
                interval.rounded() == interval
            else {
                throw PushSendRequest.problem(itemPath, "needs rate (1–1000000) and interval_ms (1 ms to 31 days), whole numbers")
            }
            return Policy(rate: Int(rate), intervalMilliseconds: Int64(interval))
        }
        if let value = fields["drop_if_rate_limited"], value != .null {
            guard let flag = value.boolValue else { throw PushSendRequest.problem("\(path).drop_if_rate_limited", "must be a boolean") }
            drop = flag
        } else {
            drop = false
        }
    }

    /// The earliest instant at or after `now` when every policy has room for one more, given the counts already
    /// taken per window start (`counts[policy index][window start ms]`), or nil when dropping and there is no room
    /// now. Looks ahead at most 10,000 windows of the longest policy.
    public func slot(now: Int64, counts: [[Int64: Int]]) -> Int64? {
        var at = now
        for _ in 0..<10_000 {
            var moved = false
            for (index, policy) in policies.enumerated() {
                let start = at - at % policy.intervalMilliseconds
                if (counts[index][start] ?? 0) >= policy.rate {
                    if drop { return nil }
                    at = start + policy.intervalMilliseconds
                    moved = true
                }
            }
            if !moved { return at }
        }
        return nil
    }
}
