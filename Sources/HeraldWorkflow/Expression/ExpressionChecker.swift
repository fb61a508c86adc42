import HeraldCore

/// What a path resolves to at validation time.
enum PathCheck {
    /// A known path of this type (`nil`: known, but its type is not fixed).
    case valid(StaticType?)
    /// A finding about the path (a warning still yields an unknown type).
    case finding(Rule, String)
}

/// Types conditions can be checked with before any payload exists.
enum StaticType: String {
    case string, number, boolean, null, array, object

    init?(_ value: JSONValue) {
        switch value {
        case .null: self = .null
        case .bool: self = .boolean
        case .number: self = .number
        case .string: self = .string
        case .array: self = .array
        case .object: self = .object
        }
    }
}

/// Type-checks a condition: function names and arities, comparisons between values of known, different types,
/// and (through `resolvePath`) every path it reads.
struct ExpressionChecker {
    let resolvePath: ([String]) -> PathCheck
    var findings: [(Rule, String, Int)] = []

    mutating func check(_ expression: Expression) {
        _ = type(of: expression)
    }

    private mutating func type(of expression: Expression) -> StaticType? {
        switch expression {
        case .literal(let value, _):
            return StaticType(value)
        case .path(let segments, let offset):
            switch resolvePath(segments) {
            case .valid(let type): return type
            case .finding(let rule, let message):
                findings.append((rule, message, offset))
                return nil
            }
        case .list(let items, _):
            for item in items { _ = type(of: item) }
            return .array
        case .not(let operand, _):
            _ = type(of: operand)
            return .boolean
        case .binary(let op, let lhs, let rhs, let offset):
            let left = type(of: lhs)
            let right = type(of: rhs)
            switch op {
            case .and, .or:
                return .boolean
            case .equal, .notEqual:
                if let left, let right, left != right, left != .null, right != .null {
                    findings.append(
                        (
                            .expressionType,
                            "'\(op.rawValue)' compares a \(left.rawValue) with a \(right.rawValue); it is never \(op == .equal ? "true" : "false")",
                            offset
                        ))
                }
            case .less, .lessOrEqual, .greater, .greaterOrEqual:
                for side in [left, right] {
                    if let side, side != .number, side != .string {
                        findings.append((.expressionType, "'\(op.rawValue)' orders numbers or strings, not a \(side.rawValue)", offset))
                    }
                }
                if let left, let right, left != right, [left, right].allSatisfy({ $0 == .number || $0 == .string }) {
                    findings.append((.expressionType, "'\(op.rawValue)' compares a \(left.rawValue) with a \(right.rawValue)", offset))
                }
            case .in:
                if let right, ![.array, .string, .object].contains(right) {
                    findings.append(
                        (.expressionType, "the right side of 'in' must be a list, a string or an object, not a \(right.rawValue)", offset))
                }
            }
            return .boolean
        case .call(let name, let arguments, let offset):
            let types = arguments.map { type(of: $0) }
            guard let function = ExpressionFunction(rawValue: name) else {
                let known = ExpressionFunction.allCases.map(\.rawValue).joined(separator: ", ")
                findings.append((.unknownFunction, "unknown function '\(name)' (known: \(known))", offset))
                return nil
            }
            guard arguments.count == function.arity else {
                findings.append(
                    (
                        .unknownFunction,
                        "\(name) takes \(function.arity) argument\(function.arity == 1 ? "" : "s"), not \(arguments.count)", offset
                    ))
                return nil
            }
            switch function {
            case .exists:
                if case .path = arguments[0] {
                } else {
                    findings.append((.expressionType, "exists() takes a path such as payload.orderId", offset))
                }
                return .boolean
            case .len:
                if let type = types[0], ![.string, .array, .object].contains(type) {
                    findings.append((.expressionType, "len() measures strings, lists and objects, not a \(type.rawValue)", offset))
                }
                return .number
            case .startsWith:
                for type in types.compactMap({ $0 }) where type != .string {
                    findings.append((.expressionType, "startsWith() takes two strings, not a \(type.rawValue)", offset))
                }
                return .boolean
            }
        }
    }
}
