import HeraldCore
import Testing

@testable import HeraldWorkflow

@Suite("YAML scalars")
struct ScalarTests {
    @Test(
        "plain scalars are typed by the YAML 1.2 core schema",
        arguments: [
            ("", "null"), ("~", "null"), ("null", "null"), ("true", "bool"), ("False", "bool"), ("yes", "string"), ("on", "string"),
            ("0", "integer"), ("-12", "integer"), ("+7", "integer"), ("0x1F", "integer"), ("0o17", "integer"), ("1.5", "float"),
            ("-0.5e3", "float"), (".5", "float"), ("1e9", "float"), (".inf", "float"), ("1.2.3", "string"), ("12abc", "string"),
            ("1h30m", "string"), ("-", "string"), ("1e", "string"), ("e5", "string"), ("1_000", "string"),
        ]
    )
    func classify(text: String, kind: String) {
        #expect("\(YScalar.classify(text))" == kind)
    }

    @Test("quoted scalars stay strings and numbers keep their value")
    func values() {
        let (workflow, diagnostics) = WorkflowParser.parse(
            """
            workflow: t
            active: "true"
            steps:
              - { id: a, type: sms, body: 0x1F }
            """, file: "t.yaml"
        )
        #expect(workflow == nil)
        #expect(diagnostics.map(\.rule) == [.wrongType])
        #expect(YScalar(text: "0x1F", kind: .integer, location: .start, quoted: false, block: false).json == 31)
        #expect(YScalar(text: "-.inf", kind: .float, location: .start, quoted: false, block: false).json == .number(-.infinity))
    }
}
