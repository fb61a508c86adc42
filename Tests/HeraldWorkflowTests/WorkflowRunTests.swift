import Foundation
import HeraldCore
import HeraldWorkflow
import Testing

/// The executor state machine, driven directly: events in, directives out, no database.
@Suite("WorkflowRun")
struct WorkflowRunTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    static func workflow(_ steps: String) -> Workflow {
        let text = "workflow: test\nsteps:\n" + steps
        let parsed = WorkflowParser.parse(text, file: "test.yaml")
        guard let workflow = parsed.workflow else {
            Issue.record("workflow does not parse: \(parsed.diagnostics)")
            fatalError("unparseable test workflow")
        }
        return workflow
    }

    static func run(_ steps: String, subscriber: [String: JSONValue] = ["subscriberId": "ann"], payload: JSONValue = [:]) -> WorkflowRun {
        WorkflowRun(workflow: workflow(steps), context: ["payload": payload, "subscriber": .object(subscriber)])
    }

    static let pushThenFallback = """
          - id: push
            type: push
            body: "hi"
          - id: sms
            type: sms
            if: steps.push.delivered == 0
            body: "hi"
        """

    static let diamond = """
          - id: a
            type: push
            body: "a"
          - id: b
            type: chat
            needs: []
            body: "b"
          - id: c
            type: email
            needs: [a, b]
            subject: "c"
            body: "c"
        """

    /// One event of a scripted run.
    enum Event: Sendable, CustomStringConvertible {
        case start
        case finish(String, StepStatus, delivered: Int)
        case resume(String, count: Int?)
        case cancel

        var description: String {
            switch self {
            case .start: "start"
            case .finish(let id, let status, let delivered): "finish(\(id), \(status), delivered: \(delivered))"
            case .resume(let id, let count): "resume(\(id), count: \(count.map(String.init) ?? "nil"))"
            case .cancel: "cancel"
            }
        }
    }

    /// A script: a workflow, events, and the directives and step statuses expected after the last event.
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var steps: String
        var events: [Event]
        var directives: [RunDirective]
        var statuses: [String: StepStatus]
        var description: String { name }
    }

    static let cases: [Case] = [
        Case(
            name: "start sends the first step only (steps run in order)", steps: pushThenFallback, events: [.start],
            directives: [.send(stepId: "push")], statuses: ["push": .running, "sms": .pending]),
        Case(
            name: "a fallback runs when the push reached nobody", steps: pushThenFallback,
            events: [.start, .finish("push", .failed, delivered: 0)], directives: [.send(stepId: "sms")],
            statuses: ["push": .failed, "sms": .running]),
        Case(
            name: "a fallback is skipped when the push was delivered, and the run finishes", steps: pushThenFallback,
            events: [.start, .finish("push", .completed, delivered: 2)],
            directives: [.skipped(stepId: "sms", reason: "step_condition"), .finished], statuses: ["push": .completed, "sms": .skipped]),
        Case(
            name: "independent branches start together",
            steps: diamond,
            events: [.start], directives: [.send(stepId: "a"), .send(stepId: "b")],
            statuses: ["a": .running, "b": .running, "c": .pending]),
        Case(
            name: "a join waits for every branch",
            steps: diamond,
            events: [.start, .finish("a", .completed, delivered: 1)], directives: [],
            statuses: ["a": .completed, "b": .running, "c": .pending]),
        Case(
            name: "a skipped step does not stop the steps after it",
            steps: """
                  - id: never
                    type: push
                    if: payload.flag == true
                    body: "x"
                  - id: after
                    type: sms
                    body: "y"
                """,
            events: [.start], directives: [.skipped(stepId: "never", reason: "step_condition"), .send(stepId: "after")],
            statuses: ["never": .skipped, "after": .running]),
        Case(
            name: "a condition reads an earlier step's skip",
            steps: """
                  - id: email
                    type: email
                    if: payload.flag == true
                    subject: "s"
                    body: "b"
                  - id: sms
                    type: sms
                    if: steps.email.status == "skipped"
                    body: "b"
                """,
            events: [.start], directives: [.skipped(stepId: "email", reason: "step_condition"), .send(stepId: "sms")],
            statuses: ["email": .skipped, "sms": .running]),
        Case(
            name: "a delay waits, then resumes into the next step",
            steps: """
                  - id: wait
                    type: delay
                    for: 10m
                  - id: push
                    type: push
                    body: "later"
                """,
            events: [.start, .resume("wait", count: nil)], directives: [.send(stepId: "push")],
            statuses: ["wait": .completed, "push": .running]),
        Case(
            name: "a digest collects, then its count feeds the condition after it",
            steps: """
                  - id: collect
                    type: digest
                    window: 5m
                  - id: push
                    type: push
                    if: steps.collect.count > 1
                    body: "many"
                """,
            events: [.start, .resume("collect", count: 1)],
            directives: [.skipped(stepId: "push", reason: "step_condition"), .finished],
            statuses: ["collect": .completed, "push": .skipped]),
        Case(
            name: "cancel stops every unfinished step, running ones included", steps: pushThenFallback,
            events: [.start, .cancel], directives: [], statuses: ["push": .canceled, "sms": .canceled]),
        Case(
            name: "resuming a step that is not waiting does nothing",
            steps: """
                  - id: push
                    type: push
                    body: "x"
                """,
            events: [.start, .resume("push", count: nil)], directives: [], statuses: ["push": .running]),
    ]

    @Test("scripted runs", arguments: cases)
    func scripted(_ script: Case) {
        var run = Self.run(script.steps)
        var directives: [RunDirective] = []
        for event in script.events {
            switch event {
            case .start: directives = run.start(now: Self.now)
            case .finish(let id, let status, let delivered):
                directives = run.finish(id, with: StepState(status: status, delivered: delivered), now: Self.now)
            case .resume(let id, let count): directives = run.resume(id, count: count, now: Self.now)
            case .cancel:
                run.cancel(reason: "execution_canceled_by_user")
                directives = []
            }
        }
        #expect(directives == script.directives)
        #expect(run.state.steps.mapValues(\.status) == script.statuses)
    }

    @Test("a delay waits for its duration; a past 'until' resumes at once")
    func delayTimes() {
        var run = Self.run(
            """
              - id: wait
                type: delay
                for: 1h30m
            """)
        #expect(run.start(now: Self.now) == [.wait(stepId: "wait", until: Self.now.addingTimeInterval(5400))])
        var past = Self.run(
            """
              - id: wait
                type: delay
                until: "{{payload.at}}"
            """)
        past = WorkflowRun(workflow: past.workflow, context: ["payload": ["at": "2020-01-01T00:00:00Z"]])
        #expect(past.start(now: Self.now) == [.wait(stepId: "wait", until: Self.now)])
    }

    @Test("a digest's key is rendered from the run's context")
    func digestKey() {
        var run = WorkflowRun(
            workflow: Self.workflow(
                """
                  - id: collect
                    type: digest
                    window: 10m
                    key: "{{payload.postId}}"
                """), context: ["payload": ["postId": "p-7"]])
        #expect(run.start(now: Self.now) == [.digest(stepId: "collect", window: .seconds(600), key: "p-7")])
    }

    @Test("a step after a cancelled one is cancelled with execution_stopped")
    func cancelPropagates() {
        var run = Self.run(Self.pushThenFallback)
        _ = run.start(now: Self.now)
        let directives = run.finish("push", with: StepState(status: .canceled, reason: "merged"), now: Self.now)
        #expect(directives == [.finished])
        #expect(run.state.steps["sms"] == StepState(status: .canceled, reason: "execution_stopped"))
    }

    @Test("the state round-trips through its stored form")
    func storedState() {
        var run = Self.run(Self.pushThenFallback)
        _ = run.start(now: Self.now)
        _ = run.finish("push", with: StepState(status: .failed, delivered: 0, failed: 3), now: Self.now)
        #expect(RunState(stored: run.state.stored) == run.state)
    }
}
