import HeraldCore

/// The condition language of `if:` (`docs/workflows.md` §Conditions): literals, paths, comparisons, `in`, `&&`, `||`, `!`, parentheses
/// and the functions `exists(path)`, `len(x)` and `startsWith(a, b)`.
public indirect enum Expression: Sendable, Equatable {
    /// A literal value; `offset` is its position in the source text (0-based, in characters).
    case literal(JSONValue, offset: Int)
    /// A dotted path such as `payload.order.id` or `steps.push.delivered`.
    case path([String], offset: Int)
    /// `[a, b, c]`, the right side of `in`.
    case list([Expression], offset: Int)
    case not(Expression, offset: Int)
    case binary(BinaryOperator, Expression, Expression, offset: Int)
    case call(String, [Expression], offset: Int)

    /// Where the expression starts in its source text.
    public var offset: Int {
        switch self {
        case .literal(_, let offset), .path(_, let offset), .list(_, let offset), .not(_, let offset), .binary(_, _, _, let offset),
            .call(_, _, let offset):
            offset
        }
    }

    /// Every path the expression reads, with its offset.
    public var paths: [(path: [String], offset: Int)] {
        switch self {
        case .literal: []
        case .path(let path, let offset): [(path, offset)]
        case .list(let items, _): items.flatMap(\.paths)
        case .not(let operand, _): operand.paths
        case .binary(_, let lhs, let rhs, _): lhs.paths + rhs.paths
        case .call(_, let arguments, _): arguments.flatMap(\.paths)
        }
    }
}

/// Binary operators, by precedence: `||` < `&&` < comparisons and `in`.
public enum BinaryOperator: String, Sendable, Equatable {
    case or = "||"
    case and = "&&"
    case equal = "=="
    case notEqual = "!="
    case less = "<"
    case lessOrEqual = "<="
    case greater = ">"
    case greaterOrEqual = ">="
    case `in` = "in"
}

/// A syntax error in a condition, at a character offset of its source.
public struct ExpressionSyntaxError: Error, Sendable, Equatable {
    public var message: String
    public var offset: Int
}

/// The functions conditions may call, with their arities.
enum ExpressionFunction: String, CaseIterable {
    case exists
    case len
    case startsWith

    var arity: Int {
        switch self {
        case .exists, .len: 1
        case .startsWith: 2
        }
    }
}
