import Foundation
import HeraldCore
import HeraldWorkflow
import Testing

/// The resolution table of README §Preferences, row by row, plus the `preferences:` block of the workflow language.
@Suite("Preference resolution")
struct PreferenceResolverTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    static func layer(_ workflowId: String?, enabled: Bool? = nil, _ channels: [Channel: Bool] = [:]) -> SubscriberPreference {
        SubscriberPreference(workflowId: workflowId, enabled: enabled, channels: channels, updatedAt: now)
    }

    struct Row: Sendable, CustomTestStringConvertible {
        var name: String
        var critical = false
        var defaults = WorkflowPreferences()
        var subscriber = SubscriberPreferences.none
        var expected: PreferenceDecision
        var testDescription: String { name }
    }

    static let rows: [Row] = [
        Row(
            name: "1 critical sends although everything says no", critical: true,
            defaults: WorkflowPreferences(enabled: false, readOnly: true, channels: [.email: false]),
            subscriber: SubscriberPreferences(
                global: layer(nil, [.email: false]), workflows: ["w": layer("w", enabled: false, [.email: false])]),
            expected: PreferenceDecision(true, .critical)),
        Row(
            name: "2 read-only: the workflow's channel default, subscribers ignored",
            defaults: WorkflowPreferences(readOnly: true, channels: [.email: false]),
            subscriber: SubscriberPreferences(workflows: ["w": layer("w", [.email: true])]),
            expected: PreferenceDecision(false, .readOnly)),
        Row(
            name: "2 read-only: all.enabled when the channel has no default",
            defaults: WorkflowPreferences(enabled: false, readOnly: true),
            subscriber: SubscriberPreferences(global: layer(nil, [.email: true])),
            expected: PreferenceDecision(false, .readOnly)),
        Row(
            name: "3 the subscriber's per-workflow channel beats their workflow switch and global setting",
            defaults: WorkflowPreferences(channels: [.email: false]),
            subscriber: SubscriberPreferences(
                global: layer(nil, [.email: false]), workflows: ["w": layer("w", enabled: false, [.email: true])]),
            expected: PreferenceDecision(true, .subscriberWorkflowChannel)),
        Row(
            name: "4 the subscriber's per-workflow enabled beats their global channel",
            subscriber: SubscriberPreferences(global: layer(nil, [.email: true]), workflows: ["w": layer("w", enabled: false)]),
            expected: PreferenceDecision(false, .subscriberWorkflow)),
        Row(
            name: "4 a per-workflow layer for another channel falls through to enabled",
            subscriber: SubscriberPreferences(
                global: layer(nil, [.email: false]), workflows: ["w": layer("w", enabled: true, [.sms: false])]),
            expected: PreferenceDecision(true, .subscriberWorkflow)),
        Row(
            name: "5 the subscriber's global channel beats the workflow's default",
            defaults: WorkflowPreferences(channels: [.email: true]),
            subscriber: SubscriberPreferences(global: layer(nil, [.email: false]), workflows: ["other": layer("other", [.email: true])]),
            expected: PreferenceDecision(false, .subscriberGlobalChannel)),
        Row(
            name: "6 the workflow's channel default",
            defaults: WorkflowPreferences(enabled: true, channels: [.email: false]),
            subscriber: SubscriberPreferences(global: layer(nil, [.sms: false])),
            expected: PreferenceDecision(false, .workflowDefault)),
        Row(
            name: "6 the workflow's all.enabled",
            defaults: WorkflowPreferences(enabled: false),
            expected: PreferenceDecision(false, .workflowDefault)),
        Row(name: "7 nothing says anything: enabled", expected: PreferenceDecision(true, .standard)),
    ]

    @Test("each row of the table", arguments: rows)
    func row(_ row: Row) {
        let decision = PreferenceResolver.resolve(
            .email, critical: row.critical, defaults: row.defaults, workflowId: "w", subscriber: row.subscriber)
        #expect(decision == row.expected)
    }

    @Test("the preferences block parses, and validate flags unknown channels, bad types and unused channels with positions")
    func block() {
        let good = """
            workflow: digest
            preferences:
              all: { enabled: true, readOnly: false }
              channels:
                email: { enabled: false }
            steps:
              - id: email
                type: email
                subject: s
                body: "<a href='{{unsubscribeUrl}}'>unsubscribe</a>"
            """
        let (workflow, diagnostics) = WorkflowParser.parse(good, file: "digest.yaml")
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        #expect(workflow?.preferences == WorkflowPreferences(enabled: true, readOnly: false, channels: [.email: false]))
        #expect(workflow?.subscriberEditable == true)

        let bad = """
            workflow: digest
            preferences:
              all: { enabled: "yes", readOnly: false }
              channels:
                emial: { enabled: false }
                sms: { enabled: false }
                push: true
            steps:
              - id: email
                type: email
                subject: s
                body: b
              - id: chat
                type: chat
                body: "{{unsubscribeUrl}}"
            """
        let findings = WorkflowParser.parse(bad, file: "digest.yaml").diagnostics.map {
            "\($0.location.line):\($0.location.column) \($0.rule.id)"
        }
        #expect(
            findings == [
                "3:19 wrong-type", "5:5 unknown-key", "6:5 unused-preference", "7:11 wrong-type", "15:12 unknown-variable",
            ], "\(findings)")
    }
}
