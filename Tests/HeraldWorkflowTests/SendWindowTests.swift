import Foundation
import HeraldCore
import HeraldWorkflow
import Testing

/// Send windows (`window:`, docs/workflows.md §Send windows): parsing with located findings, the window arithmetic
/// (weekdays, midnight, DST), and the executor waiting for the opening in the subscriber's timezone.
@Suite("Send windows")
struct SendWindowTests {
    static func date(_ text: String) -> Date { ISO8601DateFormatter().date(from: text)! }

    static let workflow = """
        workflow: digest
        timezone: Europe/Paris
        window: { after: "08:00", before: "21:00" }
        steps:
          - id: push
            type: push
            body: "hi"
          - id: mail
            type: email
            needs: []
            subject: "s"
            body: "b"
            window: { after: "22:00", before: "06:00", days: [mon, tue, wed, thu, fri] }
          - id: after
            type: chat
            needs: [push]
            if: steps.push.status == 'completed'
            body: "done"
        """

    @Test("workflow and step windows and the default timezone parse")
    func parses() throws {
        let (workflow, diagnostics) = WorkflowParser.parse(Self.workflow, file: "digest.yaml")
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        let parsed = try #require(workflow)
        #expect(parsed.window == LocalTimeWindow(after: 8 * 3600, before: 21 * 3600))
        #expect(parsed.timezone == "Europe/Paris")
        #expect(
            parsed.step("mail")?.action.channelOptions?.window
                == LocalTimeWindow(after: 22 * 3600, before: 6 * 3600, days: [2, 3, 4, 5, 6]))
    }

    @Test("mistakes are located findings")
    func findings() {
        let bad = """
            workflow: bad
            timezone: Mars/Olympus
            window: { after: "8am", before: "21:00" }
            steps:
              - id: push
                type: push
                body: "hi"
                window: { after: "09:00", before: "09:00", days: [funday] }
              - id: sms
                type: sms
                body: "hi"
                window: { before: "10:00", every: day }
            """
        let findings = WorkflowParser.parse(bad, file: "bad.yaml").diagnostics.map { "\($0.location.line):\($0.rule.id):\($0.message)" }
        #expect(findings.contains { $0.hasPrefix("2:invalid-value:timezone 'Mars/Olympus'") }, "\(findings)")
        #expect(findings.contains { $0.hasPrefix("3:invalid-value:`window.after` '8am'") }, "\(findings)")
        #expect(findings.contains { $0.hasPrefix("8:invalid-value:unknown day 'funday'") }, "\(findings)")
        #expect(findings.contains { $0.hasPrefix("8:invalid-value:`window` opens and closes at the same time") }, "\(findings)")
        #expect(findings.contains { $0.hasPrefix("12:unknown-key:unknown key 'every'") }, "\(findings)")
        #expect(findings.contains { $0.hasPrefix("12:missing-field:`window` needs `after`") }, "\(findings)")
    }

    @Test(
        "windows with weekdays, across midnight and across DST",
        arguments: [
            // Mon–Fri 22:00–06:00 in Paris. 2026-12-05 is a Saturday: Friday night's window is still open at 01:00 Saturday,
            (22, 6, "2026-12-05T00:00:00Z", "2026-12-05T00:00:00Z"),
            // but closed at 07:00 Saturday until Monday 22:00 (21:00 UTC).
            (22, 6, "2026-12-05T06:00:00Z", "2026-12-07T21:00:00Z"),
            // Europe/Paris springs forward on 29 March 2026 (02:00 → 03:00): 22:00 Sunday 29 March is 20:00 UTC.
            (22, 6, "2026-03-29T12:00:00Z", "2026-03-30T20:00:00Z"),
        ])
    func weekdays(after: Int, before: Int, now: String, expected: String) {
        let window = LocalTimeWindow(after: after * 3600, before: before * 3600, days: [2, 3, 4, 5, 6])
        #expect(window.nextOpening(after: Self.date(now), in: TimeZone(identifier: "Europe/Paris")!) == Self.date(expected))
    }

    @Test("a channel step outside its window waits for the opening in the subscriber's timezone, then sends; its dependants follow")
    func executorWaits() throws {
        let workflow = try #require(WorkflowParser.parse(Self.workflow, file: "digest.yaml").workflow)
        // 05:00 UTC: 07:00 in Paris (the workflow's timezone), 14:00 in Tokyo.
        let now = Self.date("2026-07-01T05:00:00Z")
        var paris = WorkflowRun(workflow: workflow, context: ["payload": [:], "subscriber": ["subscriberId": "ann"]])
        let directives = paris.start(now: now)
        #expect(directives.contains(.wait(stepId: "push", until: Self.date("2026-07-01T06:00:00Z"))), "\(directives)")
        // Wednesday 07:00 in Paris is outside 22:00–06:00 too: the mail waits until 22:00 local.
        #expect(directives.contains(.wait(stepId: "mail", until: Self.date("2026-07-01T20:00:00Z"))), "\(directives)")
        #expect(paris.state.steps["push"]?.reason == StepState.sendWindow)
        let opened = paris.resume("push", now: Self.date("2026-07-01T06:00:00Z"))
        #expect(opened == [.send(stepId: "push")])
        let finished = paris.finish("push", with: StepState(status: .completed, delivered: 1), now: Self.date("2026-07-01T06:00:01Z"))
        #expect(finished.contains(.send(stepId: "after")), "\(finished)")

        var tokyo = WorkflowRun(
            workflow: workflow, context: ["payload": [:], "subscriber": ["subscriberId": "bo", "timezone": "Asia/Tokyo"]])
        let started = tokyo.start(now: now)
        #expect(started.contains(.send(stepId: "push")), "inside 08:00–21:00 in Tokyo: sent at once; \(started)")
    }
}
