/// A position in a workflow file: 1-based line and column (columns count Unicode scalars, as libyaml does).
public struct SourceLocation: Sendable, Hashable, Comparable {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public static func < (lhs: SourceLocation, rhs: SourceLocation) -> Bool {
        (lhs.line, lhs.column) < (rhs.line, rhs.column)
    }

    /// The start of a file.
    public static let start = SourceLocation(line: 1, column: 1)
}

/// One finding of the workflow front end: where, how bad, which rule, and what to do about it.
public struct Diagnostic: Sendable, Hashable, Comparable, CustomStringConvertible {
    public enum Severity: String, Sendable, Hashable, Codable {
        case error
        case warning
    }

    public var file: String
    public var location: SourceLocation
    public var severity: Severity
    public var rule: Rule
    public var message: String

    public init(file: String, location: SourceLocation, severity: Severity, rule: Rule, message: String) {
        self.file = file
        self.location = location
        self.severity = severity
        self.rule = rule
        self.message = message
    }

    /// `file:line:col: error: message [rule-id]`, the format compilers use and editors understand.
    public var description: String {
        "\(file):\(location.line):\(location.column): \(severity.rawValue): \(message) [\(rule.id)]"
    }

    public static func < (lhs: Diagnostic, rhs: Diagnostic) -> Bool {
        (lhs.file, lhs.location, lhs.rule.id, lhs.message) < (rhs.file, rhs.location, rhs.rule.id, rhs.message)
    }
}

/// Collects diagnostics for one file.
struct DiagnosticSink {
    let file: String
    private(set) var diagnostics: [Diagnostic] = []

    init(file: String) {
        self.file = file
    }

    mutating func error(_ rule: Rule, _ message: String, at location: SourceLocation) {
        diagnostics.append(Diagnostic(file: file, location: location, severity: .error, rule: rule, message: message))
    }

    mutating func warning(_ rule: Rule, _ message: String, at location: SourceLocation) {
        diagnostics.append(Diagnostic(file: file, location: location, severity: .warning, rule: rule, message: message))
    }

    mutating func report(_ rule: Rule, _ message: String, at location: SourceLocation) {
        rule.severity == .error ? error(rule, message, at: location) : warning(rule, message, at: location)
    }

    var hasErrors: Bool { diagnostics.contains { $0.severity == .error } }
}
