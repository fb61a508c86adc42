import Foundation
import HeraldCore

/// Where a step of one run stands.
public enum StepStatus: String, Sendable, Codable, Equatable {
    /// Waiting for the steps it needs.
    case pending
    /// A channel step whose deliveries are in flight.
    case running
    /// A delay or digest waiting for its time.
    case waiting
    /// Done; for a channel step at least one delivery succeeded.
    case completed
    /// A channel step where nothing was delivered.
    case failed
    /// Not run: its condition was false or there was nothing to send to (``StepState/reason`` says which).
    case skipped
    /// Not run because the run was cancelled or merged into a digest.
    case canceled
    /// A throttle step over its limit: the steps after it are skipped (unless their `if:` says otherwise).
    case throttled

    /// Whether the step will not change any more.
    public var isTerminal: Bool {
        switch self {
        case .completed, .failed, .skipped, .canceled, .throttled: true
        case .pending, .running, .waiting: false
        }
    }
}

/// One step's result as later conditions and templates see it (`steps.<id>.status|delivered|failed|count|events`).
public struct StepState: Sendable, Codable, Equatable {
    public var status: StepStatus
    public var delivered: Int
    public var failed: Int
    /// Why the step was skipped (`step_condition`, `missing_push_token`, …), failed or was cancelled.
    public var reason: String?
    /// The reason of steps cancelled because their run's event joined another run's digest.
    public static let mergedIntoDigest = "merged"
    /// The reason of a channel step the subscriber's preferences turned off (README §Preferences).
    public static let preferenceDisabled = "preference_disabled"
    /// The reason of a throttle step over its limit, and of the steps skipped behind it.
    public static let throttled = "throttled"
    /// The reason of a channel step waiting for its send window to open (`window:`).
    public static let sendWindow = "send_window"
    /// The reason of an email or SMS step whose address is on the suppression list (docs/webhooks.md).
    public static let suppressed = "suppressed"
    /// When a waiting step resumes.
    public var resumeAt: Date?
    /// Digest: how many events were collected, and their payloads.
    public var count: Int?
    public var events: [JSONValue]?

    public init(
        status: StepStatus, delivered: Int = 0, failed: Int = 0, reason: String? = nil, resumeAt: Date? = nil, count: Int? = nil,
        events: [JSONValue]? = nil
    ) {
        self.status = status
        self.delivered = delivered
        self.failed = failed
        self.reason = reason
        self.resumeAt = resumeAt
        self.count = count
        self.events = events
    }

    /// The value conditions and templates see.
    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "status": .string(status.rawValue), "delivered": .number(Double(delivered)), "failed": .number(Double(failed)),
        ]
        if let reason { object["reason"] = .string(reason) }
        if let count { object["count"] = .number(Double(count)) }
        if let events { object["events"] = .array(events) }
        return .object(object)
    }
}

/// The persisted state of one run (one trigger × one subscriber): every step's state. Stored as JSON with the
/// notification, so a run resumes after a delay, a digest window or a restart exactly where it stopped.
public struct RunState: Sendable, Codable, Equatable {
    public var steps: [String: StepState]

    public init(steps: [String: StepState] = [:]) { self.steps = steps }

    /// Whether every step is terminal.
    public func isFinished(_ workflow: Workflow) -> Bool {
        workflow.steps.allSatisfy { steps[$0.id]?.status.isTerminal ?? false }
    }

    /// `steps` for the condition and template context.
    public var json: JSONValue { .object(steps.mapValues(\.json)) }

    /// The stored form.
    public var stored: String {
        JSONValue.object(
            steps.mapValues { state in
                var object = state.json.objectValue ?? [:]
                if let resumeAt = state.resumeAt { object["resumeAt"] = .number(Double(resumeAt.millisecondsSince1970)) }
                return .object(object)
            }
        ).jsonString()
    }

    /// Reads the stored form; an unreadable state is empty.
    public init(stored text: String) {
        var steps: [String: StepState] = [:]
        for (id, value) in (try? JSONValue.parse(text))?.objectValue ?? [:] {
            let object = value.objectValue ?? [:]
            func integer(_ key: String) -> Int? {
                if case .number(let number)? = object[key], number.isFinite { return Int(number) }
                return nil
            }
            guard let status = object["status"]?.stringValue.flatMap(StepStatus.init(rawValue:)) else { continue }
            steps[id] = StepState(
                status: status, delivered: integer("delivered") ?? 0, failed: integer("failed") ?? 0, reason: object["reason"]?.stringValue,
                resumeAt: integer("resumeAt").map { Date(millisecondsSince1970: Int64($0)) }, count: integer("count"),
                events: object["events"]?.arrayValue)
        }
        self.steps = steps
    }
}

/// What the engine must do next for a run.
public enum RunDirective: Sendable, Equatable {
    /// Select integrations, render and send this channel step; report back with ``WorkflowRun/finish(_:with:)``.
    case send(stepId: String)
    /// A delay step: resume it at `until` with ``WorkflowRun/resume(_:events:)``.
    case wait(stepId: String, until: Date)
    /// A digest step: collect events for `window` (grouped by the rendered key), then resume it with the events.
    case digest(stepId: String, window: Duration, key: String)
    /// A step was skipped (condition false); the engine records the reason.
    case skipped(stepId: String, reason: String)
    /// A throttle step: count this run against `key` (at most `limit` per `window`), then report with
    /// ``WorkflowRun/finishThrottle(_:allowed:now:)``.
    case throttle(stepId: String, key: String, limit: Int, window: Duration)
    /// Every step is terminal.
    case finished
}

/// The workflow executor: a pure state machine over a workflow's step graph (`docs/architecture.md` §Engine). Events go in (start, a
/// channel step finished, a wait resumed, cancel); directives come out. It evaluates `if` conditions against the
/// run's context, starts every step whose dependencies are terminal — so independent branches run in parallel —
/// and never does I/O: the engine performs the directives and persists ``RunState``.
public struct WorkflowRun: Sendable {
    public let workflow: Workflow
    public private(set) var state: RunState
    /// `payload`, `subscriber`, `tenant`, `workflow` (without `steps`, which comes from the state).
    public let context: [String: JSONValue]

    public init(workflow: Workflow, state: RunState = RunState(), context: [String: JSONValue]) {
        self.workflow = workflow
        self.state = state
        self.context = context
    }

    /// The full context for conditions and templates.
    public var evaluationContext: JSONValue {
        var object = context
        object["steps"] = state.json
        return .object(object)
    }

    /// Starts the run: every step pending, then ``advance(now:)``.
    public mutating func start(now: Date) -> [RunDirective] {
        for step in workflow.steps where state.steps[step.id] == nil {
            state.steps[step.id] = StepState(status: .pending)
        }
        return advance(now: now)
    }

    /// Records a channel step's outcome: completed when anything was delivered, failed otherwise (unless a reason
    /// marks it skipped), then advances.
    public mutating func finish(_ stepId: String, with result: StepState, now: Date) -> [RunDirective] {
        state.steps[stepId] = result
        return advance(now: now)
    }

    /// The subscriber's timezone (`subscriber.timezone`, IANA), else the workflow's `timezone`, else UTC.
    public var subscriberTimeZone: TimeZone {
        if let name = context["subscriber"]?.objectValue?["timezone"]?.stringValue, let zone = TimeZone(identifier: name) { return zone }
        return workflow.timezone.flatMap(TimeZone.init(identifier:)) ?? TimeZone(identifier: "UTC")!
    }

    /// Resumes a waiting delay or digest step (a digest passes the events it kept and how many it collected), or a
    /// channel step whose send window has opened: that one is sent now.
    public mutating func resume(_ stepId: String, events: [JSONValue]? = nil, count: Int? = nil, now: Date) -> [RunDirective] {
        guard let current = state.steps[stepId], current.status == .waiting else { return [] }
        if current.reason == StepState.sendWindow {
            state.steps[stepId] = StepState(status: .running)
            return [.send(stepId: stepId)] + advance(now: now)
        }
        state.steps[stepId] = StepState(status: .completed, count: count ?? events.map(\.count), events: events)
        return advance(now: now)
    }

    /// Records a throttle step's decision: passed (completed) or over the limit (throttled), then advances.
    public mutating func finishThrottle(_ stepId: String, allowed: Bool, now: Date) -> [RunDirective] {
        guard state.steps[stepId]?.status == .running else { return [] }
        state.steps[stepId] = allowed ? StepState(status: .completed) : StepState(status: .throttled, reason: StepState.throttled)
        return advance(now: now)
    }

    /// Cancels every step that has not finished (a cancelled transaction, or a run merged into another run's digest).
    public mutating func cancel(reason: String) {
        for step in workflow.steps where !(state.steps[step.id]?.status.isTerminal ?? false) {
            state.steps[step.id] = StepState(status: .canceled, reason: reason)
        }
    }

    /// Starts every pending step whose dependencies are all terminal, repeating while skips unblock more steps.
    /// A step after a cancelled one is cancelled too; a failed or skipped channel step does not stop the run.
    public mutating func advance(now: Date) -> [RunDirective] {
        var directives: [RunDirective] = []
        var progressed = true
        while progressed {
            progressed = false
            for step in workflow.steps where state.steps[step.id]?.status == .pending {
                let needs = step.needs.compactMap { state.steps[$0] }
                guard needs.count == step.needs.count, needs.allSatisfy(\.status.isTerminal) else { continue }
                progressed = true
                if needs.contains(where: { $0.status == .canceled }) {
                    state.steps[step.id] = StepState(status: .canceled, reason: "execution_stopped")
                    continue
                }
                // Behind a throttled step the path stops, unless the step asks (`if:`) — a fallback for throttled runs.
                if step.condition == nil, needs.contains(where: { $0.status == .throttled }) {
                    state.steps[step.id] = StepState(status: .skipped, reason: StepState.throttled)
                    directives.append(.skipped(stepId: step.id, reason: StepState.throttled))
                    continue
                }
                if let condition = step.condition, !condition.expression.isSatisfied(in: evaluationContext) {
                    state.steps[step.id] = StepState(status: .skipped, reason: "step_condition")
                    directives.append(.skipped(stepId: step.id, reason: "step_condition"))
                    continue
                }
                switch step.action {
                case .push, .chat, .email, .sms:
                    // A send window in the subscriber's timezone: outside it the step waits, durably, for the opening.
                    if let window = step.action.channelOptions?.window ?? workflow.window {
                        let opening = window.nextOpening(after: now, in: subscriberTimeZone)
                        if opening > now {
                            state.steps[step.id] = StepState(status: .waiting, reason: StepState.sendWindow, resumeAt: opening)
                            directives.append(.wait(stepId: step.id, until: opening))
                            continue
                        }
                    }
                    state.steps[step.id] = StepState(status: .running)
                    directives.append(.send(stepId: step.id))
                case .delay(let spec):
                    let until: Date
                    switch spec {
                    case .duration(let duration):
                        until = now.addingTimeInterval(TimeInterval(duration.seconds))
                    case .until(let template):
                        // An unparseable or past time resumes at once rather than never.
                        until = Self.parseDate(template.render(evaluationContext)).map { max($0, now) } ?? now
                    }
                    state.steps[step.id] = StepState(status: .waiting, resumeAt: until)
                    directives.append(.wait(stepId: step.id, until: until))
                case .throttle(let spec):
                    let subscriber = context["subscriber"]?.objectValue?["subscriberId"]?.stringValue ?? ""
                    let key = spec.key?.render(evaluationContext) ?? subscriber
                    state.steps[step.id] = StepState(status: .running)
                    directives.append(.throttle(stepId: step.id, key: key, limit: spec.limit, window: spec.window.duration))
                case .digest(let spec):
                    let key = spec.key?.render(evaluationContext) ?? ""
                    state.steps[step.id] = StepState(status: .waiting, resumeAt: now.addingTimeInterval(TimeInterval(spec.window.seconds)))
                    directives.append(.digest(stepId: step.id, window: spec.window.duration, key: key))
                }
            }
        }
        if state.isFinished(workflow) { directives.append(.finished) }
        return directives
    }

    /// Parses an RFC 3339 timestamp (with or without fractional seconds) or epoch milliseconds.
    static func parseDate(_ text: String) -> Date? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let milliseconds = Int64(trimmed) { return Date(millisecondsSince1970: milliseconds) }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: trimmed) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: trimmed)
    }
}
