import HeraldCore
import Yams

/// A YAML document as a tree whose every value keeps its position. Built from Yams' composed nodes after the
/// safety checks: no anchors or aliases (no alias bombs), bounded nesting, no duplicate keys.
indirect enum YNode {
    case scalar(YScalar)
    case mapping([YPair], SourceLocation)
    case sequence([YNode], SourceLocation)

    var location: SourceLocation {
        switch self {
        case .scalar(let scalar): scalar.location
        case .mapping(_, let location), .sequence(_, let location): location
        }
    }

    /// A short name of the value's kind for messages ("a string", "a list", …).
    var kindName: String {
        switch self {
        case .scalar(let scalar):
            switch scalar.kind {
            case .string: "a string"
            case .integer, .float: "a number"
            case .bool: "a boolean"
            case .null: "null"
            }
        case .mapping: "a mapping"
        case .sequence: "a list"
        }
    }

    /// The value as JSON (keys as strings, scalars by their resolved type).
    var json: JSONValue {
        switch self {
        case .scalar(let scalar): scalar.json
        case .mapping(let pairs, _): .object(Dictionary(pairs.map { ($0.key, $0.value.json) }, uniquingKeysWith: { first, _ in first }))
        case .sequence(let items, _): .array(items.map(\.json))
        }
    }
}

/// A scalar with its resolved type.
struct YScalar {
    enum Kind { case string, integer, float, bool, null }

    var text: String
    var kind: Kind
    var location: SourceLocation
    /// Whether the scalar was quoted (its content starts one column after ``location``).
    var quoted: Bool
    /// Whether the scalar was a block (`|` or `>`): its content starts on the next line.
    var block: Bool

    /// Types a plain (unquoted) scalar by the YAML 1.2 core schema: `null`/`~`/empty, `true`/`false`, integers
    /// (decimal, `0x`, `0o`) and floats (including `.inf` and `.nan`); everything else is a string.
    static func classify(_ text: String) -> Kind {
        switch text {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE", "false", "False", "FALSE": return .bool
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN": return .float
        default: break
        }
        var bytes = Substring(text).utf8[...]
        if bytes.first == UInt8(ascii: "-") || bytes.first == UInt8(ascii: "+") { bytes = bytes.dropFirst() }
        guard let first = bytes.first else { return .string }
        func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }
        if bytes.starts(with: "0x".utf8), bytes.count > 2, bytes.dropFirst(2).allSatisfy({ Hex.value(of: $0) != nil }) { return .integer }
        if bytes.starts(with: "0o".utf8), bytes.count > 2,
            bytes.dropFirst(2).allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "7")).contains($0) })
        {
            return .integer
        }
        guard isDigit(first) || first == UInt8(ascii: ".") else { return .string }
        var sawDigit = false
        var sawDot = false
        var sawExponent = false
        var previous: UInt8 = 0
        for byte in bytes {
            if isDigit(byte) {
                sawDigit = true
            } else if byte == UInt8(ascii: "."), !sawDot, !sawExponent {
                sawDot = true
            } else if byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E"), sawDigit, !sawExponent {
                sawExponent = true
            } else if byte == UInt8(ascii: "-") || byte == UInt8(ascii: "+"), previous == UInt8(ascii: "e") || previous == UInt8(ascii: "E")
            {
            } else {
                return .string
            }
            previous = byte
        }
        guard sawDigit, isDigit(previous) || (sawDot && !sawExponent) else { return .string }
        return sawDot || sawExponent ? .float : .integer
    }

    var json: JSONValue {
        switch kind {
        case .null: return .null
        case .bool: return .bool(text.lowercased() == "true")
        case .integer:
            if text.hasPrefix("0x") || text.hasPrefix("0o") {
                return Int(text.dropFirst(2), radix: text.hasPrefix("0x") ? 16 : 8).map { .number(Double($0)) } ?? .string(text)
            }
            return Double(text).map(JSONValue.number) ?? .string(text)
        case .float:
            let lowered = text.lowercased()
            if lowered.hasSuffix(".inf") { return .number(lowered.hasPrefix("-") ? -.infinity : .infinity) }
            if lowered == ".nan" { return .string(text) }  // JSON has no NaN
            return Double(text).map(JSONValue.number) ?? .string(text)
        case .string: return .string(text)
        }
    }
}

/// A mapping entry.
struct YPair {
    var key: String
    var keyLocation: SourceLocation
    var value: YNode
}

enum YAMLTree {
    /// Largest file accepted, in bytes.
    static let maxBytes = 256 * 1024
    /// Deepest nesting accepted.
    static let maxDepth = 64

    /// Parses `text` into a tree, or records why it cannot.
    static func parse(_ text: String, sink: inout DiagnosticSink, maxBytes: Int = maxBytes) -> YNode? {
        guard text.utf8.count <= maxBytes else {
            sink.error(
                .fileTooLarge,
                maxBytes == Self.maxBytes
                    ? "file is \(text.utf8.count) bytes; workflow files are at most \(maxBytes) bytes (256 KiB)"
                    : "file is \(text.utf8.count) bytes; at most \(maxBytes) bytes are read", at: .start)
            return nil
        }
        let node: Node?
        do {
            // Resolver.basic tags every scalar as a string without running Yams' regular expressions (the
            // costliest part of composing); `ScalarKind.classify` types plain scalars by hand instead.
            let parser = try Parser(yaml: text, resolver: .basic, encoding: .utf8)
            node = try parser.singleRoot()
        } catch YamlError.duplicatedKeysInMapping(let duplicates, let context) {
            // Yams refuses duplicate keys while composing; point at each repeated occurrence, not at the first one.
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            for key in duplicates {
                var location = SourceLocation(line: context.mark.line, column: context.mark.column)
                for index in context.mark.line..<lines.count {
                    let line = lines[index].unicodeScalars
                    let column = context.mark.column - 1
                    guard line.count > column else { continue }
                    let rest = String(String.UnicodeScalarView(line.dropFirst(column)))
                    if rest.hasPrefix("\(key):") || rest.hasPrefix("\"\(key)\":") || rest.hasPrefix("'\(key)':")
                        || rest.hasPrefix("\(key) :")
                    {
                        location = SourceLocation(line: index + 1, column: context.mark.column)
                        break
                    }
                }
                sink.error(
                    .duplicateKey, "duplicate key '\(key)' in a mapping (its first definition starts at line \(context.mark.line))",
                    at: location)
            }
            return nil
        } catch let error as YamlError {
            // libyaml itself stops at 1000 levels before anything recursive runs; deeper than 64 is refused below.
            let (message, location) = describe(error)
            if message.contains("Maximum nesting level") {
                sink.error(.nestingTooDeep, "nesting deeper than \(maxDepth) levels", at: location)
            } else if message.contains("expected a single document") {
                sink.error(
                    .multipleDocuments, "a workflow file holds one YAML document; remove the '---' separated documents after the first",
                    at: location)
            } else {
                sink.error(.yamlSyntax, message, at: location)
            }
            return nil
        } catch {
            sink.error(.yamlSyntax, "\(error)", at: .start)
            return nil
        }
        guard let node else {
            sink.error(.missingField, "the file is empty; a workflow needs at least `workflow` and `steps`", at: .start)
            return nil
        }
        var builder = Builder(sink: sink)
        let tree = builder.build(node, depth: 0)
        sink = builder.sink
        return builder.failed ? nil : tree
    }

    private static func describe(_ error: YamlError) -> (String, SourceLocation) {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _):
            let prefix = context.map { "\($0.text) at line \($0.mark.line): " } ?? ""
            return (prefix + problem, SourceLocation(line: mark.line, column: mark.column))
        case .composer(let context, let problem, let mark, _):
            let prefix = context.map { "\($0.text): " } ?? ""
            return (prefix + problem, SourceLocation(line: mark.line, column: mark.column))
        case .reader(let problem, let offset, _, _):
            return ("cannot read the file: \(problem)" + (offset.map { " (byte \($0))" } ?? ""), .start)
        default:
            return ("\(error)", .start)
        }
    }

    private struct Builder {
        var sink: DiagnosticSink
        var failed = false
        /// Positions of the nodes seen so far, per kind. Yams replaces an alias with a copy of the anchored node,
        /// mark included, so a position seen twice is an alias: refusing it at once keeps alias bombs linear.
        var seenMappings = Set<SourceLocation>()
        var seenSequences = Set<SourceLocation>()
        var seenScalars = Set<SourceLocation>()

        mutating func firstVisit(_ location: SourceLocation, _ set: WritableKeyPath<Builder, Set<SourceLocation>>) -> Bool {
            guard self[keyPath: set].insert(location).inserted else {
                sink.error(
                    .aliasNotAllowed,
                    "YAML anchors and aliases are not allowed in workflows (the node defined here is reused through an alias)", at: location
                )
                failed = true
                return false
            }
            return true
        }

        func location(_ mark: Mark?) -> SourceLocation {
            mark.map { SourceLocation(line: $0.line, column: $0.column) } ?? .start
        }

        mutating func build(_ node: Node, depth: Int) -> YNode? {
            guard depth <= YAMLTree.maxDepth else {
                sink.error(.nestingTooDeep, "nesting deeper than \(YAMLTree.maxDepth) levels", at: location(node.mark))
                failed = true
                return nil
            }
            switch node {
            case .alias(let alias):
                sink.error(
                    .aliasNotAllowed, "YAML aliases (*\(alias.anchor.rawValue)) are not allowed in workflows", at: location(alias.mark))
                failed = true
                return nil
            case .scalar(let scalar):
                if let anchor = scalar.anchor { return rejectAnchor(anchor, at: scalar.mark) }
                guard firstVisit(location(scalar.mark), \.seenScalars) else { return nil }
                let plain = scalar.style == .plain || scalar.style == .any
                let kind: YScalar.Kind = plain ? YScalar.classify(scalar.string) : .string
                return .scalar(
                    YScalar(
                        text: scalar.string, kind: kind, location: location(scalar.mark),
                        quoted: scalar.style == .singleQuoted || scalar.style == .doubleQuoted,
                        block: scalar.style == .literal || scalar.style == .folded
                    )
                )
            case .sequence(let sequence):
                if let anchor = sequence.anchor { return rejectAnchor(anchor, at: sequence.mark) }
                guard firstVisit(location(sequence.mark), \.seenSequences) else { return nil }
                var items: [YNode] = []
                for item in sequence {
                    guard let built = build(item, depth: depth + 1) else { return nil }
                    items.append(built)
                }
                return .sequence(items, location(sequence.mark))
            case .mapping(let mapping):
                if let anchor = mapping.anchor { return rejectAnchor(anchor, at: mapping.mark) }
                guard firstVisit(location(mapping.mark), \.seenMappings) else { return nil }
                var pairs: [YPair] = []
                var seen: [String: SourceLocation] = [:]
                for (key, value) in mapping {
                    guard case .scalar(let keyScalar) = key else {
                        sink.error(.wrongType, "mapping keys must be plain strings", at: location(key.mark))
                        failed = true
                        return nil
                    }
                    let keyLocation = location(keyScalar.mark)
                    if let first = seen[keyScalar.string] {
                        sink.error(
                            .duplicateKey, "duplicate key '\(keyScalar.string)' (first defined at line \(first.line))", at: keyLocation)
                        continue
                    }
                    seen[keyScalar.string] = keyLocation
                    guard let built = build(value, depth: depth + 1) else { return nil }
                    pairs.append(YPair(key: keyScalar.string, keyLocation: keyLocation, value: built))
                }
                return .mapping(pairs, location(mapping.mark))
            }
        }

        mutating func rejectAnchor(_ anchor: Anchor, at mark: Mark?) -> YNode? {
            sink.error(.aliasNotAllowed, "YAML anchors (&\(anchor.rawValue)) and aliases are not allowed in workflows", at: location(mark))
            failed = true
            return nil
        }
    }
}
