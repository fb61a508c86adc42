import HeraldCore

/// A YAML file other than a workflow read as JSON, with the checks workflow files get (no anchors or aliases,
/// nesting of at most 64 levels, no duplicate keys) and scalars typed by the YAML 1.2 core schema — so that `yes`
/// stays a string and a date stays text (Herald's OpenAPI document is read this way).
public enum YAMLDocument {
    /// A document that could not be read: every finding, as `file:line:col: message`.
    public struct Invalid: Error, CustomStringConvertible {
        public let findings: [String]
        public var description: String { findings.joined(separator: "\n") }
    }

    public static func json(_ text: String, file: String, maxBytes: Int) throws -> JSONValue {
        var sink = DiagnosticSink(file: file)
        guard let tree = YAMLTree.parse(text, sink: &sink, maxBytes: maxBytes) else {
            throw Invalid(findings: sink.diagnostics.map(\.description))
        }
        return tree.json
    }
}
