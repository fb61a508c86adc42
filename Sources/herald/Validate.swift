import ArgumentParser
import Foundation
import HeraldWorkflow

struct Validate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check workflow files and report every finding.",
        discussion: """
            Prints `file:line:col: error|warning: message [rule-id]` sorted by file and position, then a summary.
            Exit status: 0 clean (warnings allowed unless --strict), 1 findings that fail, 2 usage or I/O error.
            Rules are listed in docs/workflow-rules.md.
            """
    )

    @Argument(help: "Workflow files or directories (searched recursively for *.yaml and *.yml). [default: ./workflows]")
    var paths: [String] = []

    @Option(help: "Output format: text or json (an array of {file,line,column,severity,rule,message}).")
    var format: OutputFormat = .text

    @Flag(help: "Fail on warnings too.")
    var strict = false

    enum OutputFormat: String, ExpressibleByArgument {
        case text, json
    }

    func run() async throws {
        let targets = paths.isEmpty ? ["./workflows"] : paths
        let sources: [(path: String, contents: String)]
        do {
            sources = try WorkflowFiles.read(targets)
        } catch {
            FileHandle.standardError.write(Data("herald: \(error)\n".utf8))
            throw ExitCode(2)
        }
        var catalog = WorkflowCatalog()
        catalog.update(sources)
        let diagnostics = catalog.diagnostics
        let errors = diagnostics.filter { $0.severity == .error }.count
        let warnings = diagnostics.count - errors
        switch format {
        case .text:
            var output = diagnostics.map(\.description).joined(separator: "\n")
            if !output.isEmpty { output += "\n" }
            output +=
                "\(sources.count) file\(sources.count == 1 ? "" : "s") checked: \(errors) error\(errors == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s")\n"
            FileHandle.standardOutput.write(Data(output.utf8))
        case .json:
            let objects = diagnostics.map { diagnostic -> [String: Any] in
                [
                    "file": diagnostic.file, "line": diagnostic.location.line, "column": diagnostic.location.column,
                    "severity": diagnostic.severity.rawValue, "rule": diagnostic.rule.id, "message": diagnostic.message,
                ]
            }
            let data = try JSONSerialization.data(withJSONObject: objects, options: [.sortedKeys, .withoutEscapingSlashes])
            FileHandle.standardOutput.write(data + Data("\n".utf8))
        }
        if errors > 0 || (strict && warnings > 0) { throw ExitCode(1) }
    }
}

struct Graph: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a workflow's step graph with step types and conditions.")

    @Argument(help: "A workflow file.") var file: String
    @Option(help: "mermaid or dot.") var format: String = "mermaid"

    func run() async throws {
        guard let graphFormat = GraphFormat(rawValue: format) else {
            FileHandle.standardError.write(Data("herald: unknown graph format '\(format)' (mermaid or dot)\n".utf8))
            throw ExitCode(2)
        }
        let sources: [(path: String, contents: String)]
        do {
            sources = try WorkflowFiles.read([file])
        } catch {
            FileHandle.standardError.write(Data("herald: \(error)\n".utf8))
            throw ExitCode(2)
        }
        guard let source = sources.first else { throw ExitCode(2) }
        let (workflow, diagnostics) = WorkflowParser.parse(source.contents, file: source.path)
        guard let workflow else {
            FileHandle.standardError.write(Data((diagnostics.map(\.description).joined(separator: "\n") + "\n").utf8))
            throw ExitCode(1)
        }
        FileHandle.standardOutput.write(Data(workflow.graphDescription(graphFormat).utf8))
    }
}
