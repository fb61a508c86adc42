import HeraldCore
import Mustache
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

@Suite("Template fast path")
struct TemplateFastPathTests {
    static let context: JSONValue = [
        "payload": ["name": "Tom & <Jerry> \"q\" 'a'", "count": 3, "price": 2.5, "flag": true, "nested": ["deep": "x"]],
        "subscriber": ["firstName": "Ann"],
    ]

    @Test(
        "plain-variable templates render exactly as swift-mustache does",
        arguments: [
            "Hello {{subscriber.firstName}}", "{{payload.name}}", "{{{payload.name}}}", "{{&payload.name}}", "{{ payload.count }} items",
            "{{payload.price}}", "{{payload.flag}}", "{{payload.missing}}|", "{{payload.nested.deep}}", "no tags at all",
            "a {{payload.count}}{{payload.count}} b",
        ]
    )
    func parity(source: String) throws {
        #expect(Template.simpleSegments(source) != nil)
        for html in [true, false] {
            let fast = try Template.compile(source, escapesHTML: html, at: .start, contentStart: .start).get()
            let text = html ? source : "{{% CONTENT_TYPE: TEXT }}" + source
            let mustache = try MustacheTemplate(string: text).render(Template.mustacheValue(Self.context) ?? [:])
            #expect(fast.render(Self.context) == mustache, "\(source) html=\(html)")
        }
    }

    @Test(
        "sections, comments and partials take the Mustache path",
        arguments: ["{{#payload.flag}}yes{{/payload.flag}}", "{{! note }}x", "{{> part}}", "{{=<% %>=}}"])
    func fallback(source: String) {
        #expect(Template.simpleSegments(source) == nil)
    }
}
