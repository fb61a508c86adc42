import Foundation
import HeraldWorkflow
import Testing

/// The repository root, found from this file's path.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The example workflows users copy from.
func exampleSources() throws -> [(path: String, contents: String)] {
    try WorkflowFiles.read([repositoryRoot.appendingPathComponent("workflows").path])
}

@Suite("Golden diagnostics")
struct GoldenTests {
    static let fixtures = Bundle.module.url(forResource: "Fixtures/invalid", withExtension: nil)!

    /// `expected.txt`: one `file:line:col: severity [rule]` per expected finding.
    static func expectations() throws -> [String: [String]] {
        let text = try String(contentsOf: fixtures.appendingPathComponent("expected.txt"), encoding: .utf8)
        var result: [String: [String]] = [:]
        for line in text.split(separator: "\n") {
            let file = String(line.prefix(while: { $0 != ":" }))
            result[file, default: []].append(String(line.dropFirst(file.count + 1)))
        }
        return result
    }

    static func fixtureNames() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: fixtures.path)) ?? []).filter { $0.hasSuffix(".yaml") }.sorted()
    }

    @Test("the corpus has at least 40 invalid workflows, each with expectations")
    func corpusSize() throws {
        let names = Self.fixtureNames()
        #expect(names.count >= 40)
        let expected = try Self.expectations()
        for name in names { #expect(expected[name]?.isEmpty == false, "\(name) has expectations") }
    }

    @Test("each invalid workflow yields exactly its expected findings", arguments: fixtureNames())
    func fixture(name: String) throws {
        let text = try String(contentsOf: Self.fixtures.appendingPathComponent(name), encoding: .utf8)
        let (workflow, diagnostics) = WorkflowParser.parse(text, file: name)
        let actual = diagnostics.map { "\($0.location.line):\($0.location.column): \($0.severity.rawValue) [\($0.rule.id)]" }
        #expect(actual == (try Self.expectations()[name] ?? []))
        if diagnostics.contains(where: { $0.severity == .error }) { #expect(workflow == nil) }
        for diagnostic in diagnostics {
            #expect(!diagnostic.message.isEmpty)
            #expect(Rule.all.contains(diagnostic.rule))
        }
    }

    @Test("every example in workflows/ validates without findings")
    func examplesAreClean() throws {
        let sources = try exampleSources()
        #expect(sources.count >= 6)
        for (path, contents) in sources {
            let (workflow, diagnostics) = WorkflowParser.parse(contents, file: path)
            #expect(diagnostics.isEmpty, "\(path): \(diagnostics)")
            #expect(workflow != nil)
        }
    }

    @Test("every rule is documented in docs/workflow-rules.md with an example")
    func rulesDocumented() throws {
        let docs = try String(contentsOf: repositoryRoot.appendingPathComponent("docs/workflow-rules.md"), encoding: .utf8)
        for rule in Rule.all {
            #expect(docs.contains("## `\(rule.id)`"), "\(rule.id) documented")
        }
    }
}

@Suite("Robustness")
struct RobustnessTests {
    /// A small deterministic generator (SplitMix64), so failures reproduce.
    struct SeededGenerator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static func mutate(_ text: String, using generator: inout SeededGenerator) -> String {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        switch Int.random(in: 0..<6, using: &generator) {
        case 0 where !lines.isEmpty:  // delete a line
            lines.remove(at: Int.random(in: 0..<lines.count, using: &generator))
        case 1 where !lines.isEmpty:  // change a line's indentation
            let index = Int.random(in: 0..<lines.count, using: &generator)
            lines[index] = Bool.random(using: &generator) ? "  " + lines[index] : String(lines[index].drop(while: { $0 == " " }))
        case 2:  // truncate
            let scalars = Array(text.unicodeScalars)
            return String(String.UnicodeScalarView(scalars.prefix(Int.random(in: 0...scalars.count, using: &generator))))
        case 3:  // random bytes somewhere
            var scalars = Array(text.unicodeScalars)
            for _ in 0..<Int.random(in: 1...8, using: &generator) {
                let byte = Unicode.Scalar(UInt8.random(in: 0...255, using: &generator))
                scalars.insert(byte, at: Int.random(in: 0...scalars.count, using: &generator))
            }
            return String(String.UnicodeScalarView(scalars))
        case 4 where lines.count > 1:  // swap two lines
            let a = Int.random(in: 0..<lines.count, using: &generator)
            let b = Int.random(in: 0..<lines.count, using: &generator)
            lines.swapAt(a, b)
        default:  // YAML-significant characters
            let index = Int.random(in: 0..<max(1, lines.count), using: &generator)
            let insert = ["{", "}", "[", "]", ":", "- ", "&a ", "*a", "{{", "}}", "\"", "'", "|", "#", "!!str ", "? "].randomElement(
                using: &generator)!
            if lines.isEmpty {
                lines = [insert]
            } else {
                let line = lines[index]
                let position = Int.random(in: 0...line.count, using: &generator)
                lines[index] = String(line.prefix(position)) + insert + String(line.dropFirst(position))
            }
        }
        return lines.joined(separator: "\n")
    }

    @Test("thousands of seeded mutations never crash and always yield a workflow or diagnostics")
    func mutations() throws {
        let examples = try exampleSources()
        var generator = SeededGenerator(state: 20_261_123)
        var outcomes = (valid: 0, invalid: 0)
        for iteration in 0..<4000 {
            let (path, contents) = examples[iteration % examples.count]
            var text = contents
            for _ in 0..<Int.random(in: 1...3, using: &generator) { text = Self.mutate(text, using: &generator) }
            let (workflow, diagnostics) = WorkflowParser.parse(text, file: path)
            if workflow == nil {
                #expect(diagnostics.contains { $0.severity == .error }, "iteration \(iteration): no workflow and no error")
                outcomes.invalid += 1
            } else {
                #expect(!diagnostics.contains { $0.severity == .error })
                outcomes.valid += 1
            }
        }
        #expect(outcomes.invalid > 1000)
    }

    @Test("hostile inputs are refused quickly")
    func hostile() {
        let big = "workflow: big\nsteps:\n" + String(repeating: "  - id: a\n    type: sms\n    body: hi\n", count: 10_000)
        #expect(WorkflowParser.parse(big, file: "big.yaml").diagnostics.first?.rule == .fileTooLarge)
        let deep = "workflow: deep\nsteps: " + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000)
        #expect(WorkflowParser.parse(deep, file: "deep.yaml").diagnostics.first?.rule == .nestingTooDeep)
        var bomb = "workflow: bomb\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for level in 1..<20 {
            bomb += "a\(level): &a\(level) [" + Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ") + "]\n"
        }
        bomb += "steps: [{id: a, type: sms, body: hi}]\n"
        let start = ContinuousClock.now
        let result = WorkflowParser.parse(bomb, file: "bomb.yaml")
        #expect(result.diagnostics.contains { $0.rule == .aliasNotAllowed })
        #expect(ContinuousClock.now - start < .seconds(1))
        #expect(WorkflowParser.parse("", file: "empty.yaml").diagnostics.first?.rule == .missingField)
        #expect(WorkflowParser.parse("\u{0}\u{1}\u{2}", file: "binary.yaml").workflow == nil)
    }
}
