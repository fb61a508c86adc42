import Foundation
import Synchronization

/// A monotonically increasing count, optionally split by label values.
public final class CounterFamily: Sendable {
    let name: String
    let help: String
    let labelNames: [String]
    private let values = Mutex<[[String]: Double]>([:])

    init(_ name: String, help: String, labels: [String] = []) {
        self.name = name
        self.help = help
        self.labelNames = labels
    }

    public func increment(by amount: Int = 1, _ labels: String...) {
        values.withLock { $0[labels, default: 0] += Double(amount) }
    }

    public func value(_ labels: String...) -> Double { values.withLock { $0[labels] ?? 0 } }

    func render(into text: inout String) {
        text += "# HELP \(name) \(help)\n# TYPE \(name) counter\n"
        let snapshot = values.withLock { $0 }
        if snapshot.isEmpty && labelNames.isEmpty { text += "\(name) 0\n" }
        for (labels, value) in snapshot.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
            text += "\(name)\(Self.labelText(labelNames, labels)) \(Self.format(value))\n"
        }
    }

    static func labelText(_ names: [String], _ values: [String]) -> String {
        guard !names.isEmpty else { return "" }
        let pairs = zip(names, values).map { name, value in
            "\(name)=\"\(value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n"))\""
        }
        return "{\(pairs.joined(separator: ","))}"
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}

/// A distribution of durations in seconds, split by label values.
public final class HistogramFamily: Sendable {
    let name: String
    let help: String
    let labelNames: [String]
    let buckets: [Double]
    private struct Series {
        var counts: [Int]
        var sum: Double = 0
        var count: Int = 0
    }
    private let series = Mutex<[[String]: Series]>([:])

    init(_ name: String, help: String, labels: [String], buckets: [Double]) {
        self.name = name
        self.help = help
        self.labelNames = labels
        self.buckets = buckets
    }

    public func observe(_ duration: Duration, _ labels: String...) {
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        let bucketCount = buckets.count
        let index = buckets.firstIndex { seconds <= $0 } ?? bucketCount
        series.withLock { all in
            var entry = all[labels] ?? Series(counts: Array(repeating: 0, count: bucketCount + 1))
            entry.counts[index] += 1
            entry.sum += seconds
            entry.count += 1
            all[labels] = entry
        }
    }

    func render(into text: inout String) {
        text += "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        let snapshot = series.withLock { $0 }
        for (labels, entry) in snapshot.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
            var cumulative = 0
            for (index, bound) in buckets.enumerated() {
                cumulative += entry.counts[index]
                text += "\(name)_bucket\(CounterFamily.labelText(labelNames + ["le"], labels + [String(bound)])) \(cumulative)\n"
            }
            text += "\(name)_bucket\(CounterFamily.labelText(labelNames + ["le"], labels + ["+Inf"])) \(entry.count)\n"
            text += "\(name)_sum\(CounterFamily.labelText(labelNames, labels)) \(entry.sum)\n"
            text += "\(name)_count\(CounterFamily.labelText(labelNames, labels)) \(entry.count)\n"
        }
    }
}

/// Herald's Prometheus metrics (`GET /metrics`, text format 0.0.4). Counters live in the process; queue gauges are
/// read from the database at scrape time, so every process reports the shared queue.
public final class EngineMetrics: Sendable {
    public let triggersAccepted = CounterFamily("herald_triggers_accepted_total", help: "Triggers committed.")
    public let triggerGroupSplits = CounterFamily(
        "herald_trigger_group_splits_total",
        help: "Group commits of triggers that failed as a whole and were committed again one request per transaction.")
    public let triggersRejected = CounterFamily(
        "herald_triggers_rejected_total", help: "Triggers refused before commit, by reason.", labels: ["reason"])
    public let deliveries = CounterFamily(
        "herald_deliveries_total", help: "Provider call outcomes, by provider and outcome class.", labels: ["provider", "outcome"])
    public let tokensRemoved = CounterFamily(
        "herald_tokens_removed_total", help: "Devices removed because the provider reported the token invalid.", labels: ["provider"])
    public let tokenRemovalsWithheld = CounterFamily(
        "herald_token_removals_withheld_total", help: "Invalid-token removals held back by the mass-deletion guard.", labels: ["provider"])
    public let deadDeliveries = CounterFamily(
        "herald_deliveries_dead_total", help: "Deliveries that exhausted their retries.", labels: ["provider"])
    public let domainEvents = CounterFamily(
        "herald_events_total", help: "Domain events committed (message.sent, message.failed, message.dead, device.removed, …), by kind.",
        labels: ["kind"])
    public let pushNotifications = CounterFamily(
        "herald_push_notification_count", help: "Push provider call outcomes, by provider, device platform and outcome class.",
        labels: ["provider", "platform", "outcome"])
    public let pushSends = CounterFamily(
        "herald_push_sends_total", help: "Raw push sends (send_push_notification) accepted, by recipient type.", labels: ["recipient_type"])
    public let jobsReleased = CounterFamily(
        "herald_jobs_released_total", help: "Claimed jobs made due again because their worker died (or left them at a crash).")
    public let jobs = CounterFamily("herald_jobs_processed_total", help: "Jobs run, by kind and result.", labels: ["kind", "result"])
    public let providerCallSeconds = HistogramFamily(
        "herald_provider_call_duration_seconds", help: "Duration of one provider batch call.", labels: ["provider"],
        buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30])
    public let jobSeconds = HistogramFamily(
        "herald_job_duration_seconds", help: "Duration of one job.", labels: ["kind"],
        buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30])
    private let inFlight = Atomic<Int>(0)

    public init() {}

    /// Counts committed domain events.
    public func record(_ events: [DomainEvent]) {
        guard !events.isEmpty else { return }
        // Counted per kind first: one locked increment per kind and batch, not per event.
        var kinds: [DomainEvent.Kind: Int] = [:]
        for event in events {
            kinds[event.kind, default: 0] += 1
            switch event.kind {
            case .messageDead: deadDeliveries.increment(event.providerId ?? "unknown")
            case .deviceRemoved: tokensRemoved.increment(event.providerId ?? "unknown")
            case .deviceRemovalWithheld: tokenRemovalsWithheld.increment(event.providerId ?? "unknown")
            case .messageSent, .messageDelivered, .messageBounced, .messageComplained, .messageOpened, .messageClicked, .messageFailed,
                .notificationCompleted, .stepSkipped, .pushInteracted,
                .subscriberUnsubscribed:
                break
            }
        }
        for (kind, count) in kinds { domainEvents.increment(by: count, kind.rawValue) }
    }

    func jobStarted() { inFlight.add(1, ordering: .relaxed) }
    func jobFinished() { inFlight.subtract(1, ordering: .relaxed) }

    /// The exposition text, with the queue gauges given.
    public func render(queue: (ready: Int, running: Int, scheduled: Int), lag: Duration) -> String {
        var text = ""
        for counter in [
            triggersAccepted, triggerGroupSplits, triggersRejected, deliveries, pushNotifications, pushSends, tokensRemoved,
            tokenRemovalsWithheld,
            deadDeliveries, domainEvents, jobsReleased, jobs,
        ] {
            counter.render(into: &text)
        }
        providerCallSeconds.render(into: &text)
        jobSeconds.render(into: &text)
        text += "# HELP herald_jobs Jobs in the queue, by state.\n# TYPE herald_jobs gauge\n"
        text += "herald_jobs{state=\"ready\"} \(queue.ready)\nherald_jobs{state=\"running\"} \(queue.running)\n"
        text += "herald_jobs{state=\"scheduled\"} \(queue.scheduled)\n"
        let lagSeconds = Double(lag.components.seconds) + Double(lag.components.attoseconds) / 1e18
        text += "# HELP herald_queue_lag_seconds Age of the oldest due job not yet claimed.\n# TYPE herald_queue_lag_seconds gauge\n"
        text += "herald_queue_lag_seconds \(lagSeconds)\n"
        text += "# HELP herald_jobs_in_flight Jobs this process is running.\n# TYPE herald_jobs_in_flight gauge\n"
        text += "herald_jobs_in_flight \(inFlight.load(ordering: .relaxed))\n"
        return text
    }
}
