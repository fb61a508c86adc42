import Foundation
import HeraldCore
import HeraldWorkflow
import Testing

/// The throttle step (docs/workflows.md §Throttle): parsing with located findings, and the executor's side — the
/// count itself is the engine's (the store's counters), so here the decision comes in as `allowed`.
@Suite("Throttle step")
struct ThrottleTests {
    static let workflow = """
        workflow: alerts
        steps:
          - id: limit
            type: throttle
            limit: 3
            window: 1h
            key: "{{subscriber.subscriberId}}-{{payload.kind}}"
          - id: push
            type: push
            body: "alert"
          - id: over
            type: chat
            needs: [limit]
            if: steps.limit.status == 'throttled'
            body: "too many alerts"
        """

    @Test("a throttle step passes: the path runs; over its limit: the path is skipped, a step asking for it runs")
    func executor() throws {
        let workflow = try #require(WorkflowParser.parse(Self.workflow, file: "alerts.yaml").workflow)
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        var passing = WorkflowRun(workflow: workflow, context: ["payload": ["kind": "cpu"], "subscriber": ["subscriberId": "ann"]])
        #expect(passing.start(now: now) == [.throttle(stepId: "limit", key: "ann-cpu", limit: 3, window: .seconds(3600))])
        let passed = passing.finishThrottle("limit", allowed: true, now: now)
        #expect(passed.contains(.send(stepId: "push")) && passed.contains(.skipped(stepId: "over", reason: "step_condition")), "\(passed)")

        var over = WorkflowRun(workflow: workflow, context: ["payload": ["kind": "cpu"], "subscriber": ["subscriberId": "ann"]])
        _ = over.start(now: now)
        let throttled = over.finishThrottle("limit", allowed: false, now: now)
        #expect(over.state.steps["limit"]?.status == .throttled)
        #expect(throttled.contains(.skipped(stepId: "push", reason: "throttled")), "\(throttled)")
        #expect(throttled.contains(.send(stepId: "over")), "a step whose condition reads the throttle runs: \(throttled)")
        #expect(over.evaluationContext.objectValue?["steps"]?.objectValue?["limit"]?.objectValue?["status"] == "throttled")
    }

    @Test("a throttle without limit or window, or with a bad limit, is a located finding")
    func findings() {
        let bad = """
            workflow: bad
            steps:
              - id: a
                type: throttle
                window: 1h
              - id: b
                type: throttle
                limit: 0
                window: 1h
              - id: c
                type: throttle
                limit: 2
                window: soon
                per: user
            """
        let findings = WorkflowParser.parse(bad, file: "bad.yaml").diagnostics.map { "\($0.location.line):\($0.rule.id)" }
        #expect(findings.contains("3:missing-content"), "\(findings)")
        #expect(findings.contains("8:invalid-value"), "\(findings)")
        #expect(findings.contains { $0.hasPrefix("13:") }, "\(findings)")
        #expect(findings.contains("14:unknown-key"), "\(findings)")
    }
}
