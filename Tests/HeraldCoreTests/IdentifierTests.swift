import Foundation
import HeraldCore
import Testing

@Suite("Core values")
struct CoreValueTests {
    @Test("ids are 24 hex characters and sort by creation second")
    func objectIds() {
        var generator = SystemRandomNumberGenerator()
        let early = ObjectIDGenerator.make(seconds: 1_700_000_000, using: &generator)
        let late = ObjectIDGenerator.make(seconds: 1_700_000_001, using: &generator)
        #expect(ObjectIDGenerator.isValid(early))
        #expect(early < late)
        #expect(early.hasPrefix("6553f100"))
        #expect(!ObjectIDGenerator.isValid("xyz"))
        #expect(Set((0..<1000).map { _ in ObjectIDGenerator().next() }).count == 1000)
    }

    @Test("secrets never show their value")
    func secretRedaction() {
        let secret = Secret("hk_0123456789abcdef0123456789")
        #expect(!"\(secret)".contains("0123456789abcdef"))
        #expect(!String(reflecting: secret).contains("0123456789abcdef"))
        #expect("\(secret)".hasPrefix("hk_0"))
        #expect("\(Secret("short"))" == "<redacted 5 chars>")
        let credentials: IntegrationCredentials = ["apiKey": "very-secret-value"]
        #expect(!"\(credentials)".contains("very-secret-value"))
    }

    @Test("timestamps render as Novu writes them")
    func timestamps() {
        let date = Date(millisecondsSince1970: 1_735_689_600_123)
        #expect(date.iso8601Milliseconds == "2025-01-01T00:00:00.123Z")
        #expect(date.millisecondsSince1970 == 1_735_689_600_123)
    }

    @Test("PATCH fields keep, clear or set")
    func patchSemantics() {
        var patch = SubscriberProfilePatch()
        patch.email = .clear
        patch.firstName = .set("Bo")
        let result = patch.applied(to: SubscriberProfile(firstName: "Al", lastName: "Lee", email: "a@b.c"))
        #expect(result == SubscriberProfile(firstName: "Bo", lastName: "Lee", email: nil))
    }

    @Test("JSON values round-trip with stable key order")
    func jsonValues() throws {
        let value = try JSONValue.parse(#"{"b":[1,2.5,true,null],"a":"x"}"#)
        #expect(value.jsonString() == #"{"a":"x","b":[1,2.5,true,null]}"#)
    }
}

@Suite("JSON syntax errors")
struct JSONSyntaxTests {
    @Test(
        "the first problem is located",
        arguments: [
            ("{\"a\": 1,}", 1, 9, "expected a property name"),
            ("{\"a\" 1}", 1, 6, "expected ':'"),
            ("[1, 2", 1, 6, "unexpected end of input"),
            ("{\n  \"a\": tru\n}", 2, 8, "expected 'true'"),
            ("{\"a\": \"x\ny\"}", 1, 9, "control character"),
            ("{\"é\": 01}", 1, 8, "expected ',' or '}'"),
            ("", 1, 1, "unexpected end of input"),
            ("{} x", 1, 4, "unexpected text after"),
            ("{\"a\": 1.}", 1, 9, "expected digits after '.'"),
            ("{\"a\": \"\\q\"}", 1, 9, "invalid escape"),
        ]
    )
    func located(text: String, line: Int, column: Int, message: String) throws {
        let problem = try #require(JSONSyntax.firstProblem(in: Array(text.utf8)))
        #expect(problem.line == line)
        #expect(problem.column == column)
        #expect(problem.message.contains(message), "\(problem)")
    }

    @Test("valid JSON has no problem", arguments: ["{}", "[]", "null", " {\"a\": [1, -2.5e10, \"\\u00e9\", {\"b\": false}]} ", "\"x\""])
    func valid(text: String) {
        #expect(JSONSyntax.firstProblem(in: Array(text.utf8)) == nil)
    }

    @Test("deep nesting is a problem, not a stack overflow")
    func deepNesting() {
        let text = String(repeating: "[", count: 100_000)
        #expect(JSONSyntax.firstProblem(in: Array(text.utf8))?.message.contains("nesting") == true)
    }
}
