import HeraldCore

/// Parses condition text into an ``Expression``. Recursive descent with one token of look-ahead; nesting is
/// limited so that hostile input cannot exhaust the stack.
public struct ExpressionParser {
    enum Token: Equatable {
        case identifier(String)  // dotted path or function name; may contain '-' inside segments
        case string(String)
        case number(Double)
        case symbol(String)  // == != < <= > >= && || ! ( ) [ ] ,
        case end
    }

    private let tokens: [(Token, Int)]
    private var position = 0
    private var depth = 0

    /// Deepest nesting of parentheses, lists and `!` accepted.
    static let maxDepth = 32
    /// Longest condition accepted, in characters.
    static let maxLength = 4096

    /// Parses `source`.
    public static func parse(_ source: String) throws(ExpressionSyntaxError) -> Expression {
        guard source.count <= maxLength else {
            throw ExpressionSyntaxError(message: "condition is longer than \(maxLength) characters", offset: 0)
        }
        var parser = ExpressionParser(tokens: try tokenize(source))
        let expression = try parser.parseOr()
        guard case .end = parser.current.0 else {
            throw ExpressionSyntaxError(
                message: "unexpected \(describe(parser.current.0)) after the end of the condition", offset: parser.current.1)
        }
        return expression
    }

    private init(tokens: [(Token, Int)]) {
        self.tokens = tokens
    }

    private var current: (Token, Int) { tokens[position] }

    private mutating func advance() { if position < tokens.count - 1 { position += 1 } }

    private mutating func parseOr() throws(ExpressionSyntaxError) -> Expression {
        var lhs = try parseAnd()
        while current.0 == .symbol("||") {
            let offset = current.1
            advance()
            lhs = .binary(.or, lhs, try parseAnd(), offset: offset)
        }
        return lhs
    }

    private mutating func parseAnd() throws(ExpressionSyntaxError) -> Expression {
        var lhs = try parseComparison()
        while current.0 == .symbol("&&") {
            let offset = current.1
            advance()
            lhs = .binary(.and, lhs, try parseComparison(), offset: offset)
        }
        return lhs
    }

    private mutating func parseComparison() throws(ExpressionSyntaxError) -> Expression {
        let lhs = try parseUnary()
        let op: BinaryOperator? =
            switch current.0 {
            case .symbol(let symbol): BinaryOperator(rawValue: symbol).flatMap { [.or, .and].contains($0) ? nil : $0 }
            case .identifier("in"): .in
            default: nil
            }
        guard let op else { return lhs }
        let offset = current.1
        advance()
        let rhs = try parseUnary()
        if case .symbol(let symbol) = current.0, let next = BinaryOperator(rawValue: symbol), ![.or, .and].contains(next) {
            throw ExpressionSyntaxError(message: "comparisons cannot be chained; use && between them", offset: current.1)
        }
        if case .identifier("in") = current.0 {
            throw ExpressionSyntaxError(message: "comparisons cannot be chained; use && between them", offset: current.1)
        }
        return .binary(op, lhs, rhs, offset: offset)
    }

    private mutating func parseUnary() throws(ExpressionSyntaxError) -> Expression {
        if current.0 == .symbol("!") {
            let offset = current.1
            advance()
            return try nested { (parser: inout ExpressionParser) throws(ExpressionSyntaxError) in
                .not(try parser.parseUnary(), offset: offset)
            }
        }
        return try parsePrimary()
    }

    private mutating func nested(
        _ body: (inout ExpressionParser) throws(ExpressionSyntaxError) -> Expression
    ) throws(ExpressionSyntaxError) -> Expression {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maxDepth else {
            throw ExpressionSyntaxError(message: "condition is nested more than \(Self.maxDepth) levels deep", offset: current.1)
        }
        return try body(&self)
    }

    private mutating func parsePrimary() throws(ExpressionSyntaxError) -> Expression {
        let (token, offset) = current
        switch token {
        case .string(let value):
            advance()
            return .literal(.string(value), offset: offset)
        case .number(let value):
            advance()
            return .literal(.number(value), offset: offset)
        case .identifier("true"):
            advance()
            return .literal(.bool(true), offset: offset)
        case .identifier("false"):
            advance()
            return .literal(.bool(false), offset: offset)
        case .identifier("null"):
            advance()
            return .literal(.null, offset: offset)
        case .identifier("in"):
            throw ExpressionSyntaxError(message: "expected a value before 'in'", offset: offset)
        case .identifier(let name):
            advance()
            if current.0 == .symbol("(") {
                advance()
                var arguments: [Expression] = []
                if current.0 != .symbol(")") {
                    while true {
                        arguments.append(
                            try nested { (parser: inout ExpressionParser) throws(ExpressionSyntaxError) in try parser.parseOr() })
                        if current.0 == .symbol(",") {
                            advance()
                            continue
                        }
                        break
                    }
                }
                guard current.0 == .symbol(")") else {
                    throw ExpressionSyntaxError(message: "expected ')' to close the call of \(name)", offset: current.1)
                }
                advance()
                return .call(name, arguments, offset: offset)
            }
            let segments = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            guard !segments.contains(where: \.isEmpty) else {
                throw ExpressionSyntaxError(message: "invalid path '\(name)'", offset: offset)
            }
            return .path(segments, offset: offset)
        case .symbol("("):
            advance()
            let inner = try nested { (parser: inout ExpressionParser) throws(ExpressionSyntaxError) in try parser.parseOr() }
            guard current.0 == .symbol(")") else {
                throw ExpressionSyntaxError(message: "expected ')'", offset: current.1)
            }
            advance()
            return inner
        case .symbol("["):
            advance()
            var items: [Expression] = []
            if current.0 != .symbol("]") {
                while true {
                    items.append(try nested { (parser: inout ExpressionParser) throws(ExpressionSyntaxError) in try parser.parseUnary() })
                    if current.0 == .symbol(",") {
                        advance()
                        continue
                    }
                    break
                }
            }
            guard current.0 == .symbol("]") else {
                throw ExpressionSyntaxError(message: "expected ']' to close the list", offset: current.1)
            }
            advance()
            return .list(items, offset: offset)
        case .end:
            throw ExpressionSyntaxError(message: "unexpected end of the condition, expected a value", offset: offset)
        default:
            throw ExpressionSyntaxError(message: "unexpected \(Self.describe(token)), expected a value", offset: offset)
        }
    }

    static func describe(_ token: Token) -> String {
        switch token {
        case .identifier(let name): "'\(name)'"
        case .string(let value): "string \"\(value)\""
        case .number(let value): "number \(value)"
        case .symbol(let symbol): "'\(symbol)'"
        case .end: "end of the condition"
        }
    }

    static func tokenize(_ source: String) throws(ExpressionSyntaxError) -> [(Token, Int)] {
        let characters = Array(source)
        var tokens: [(Token, Int)] = []
        var index = 0
        func isIdentifierStart(_ c: Character) -> Bool { c.isASCII && (c.isLetter || c == "_") }
        func isIdentifierPart(_ c: Character) -> Bool { c.isASCII && (c.isLetter || c.isNumber || c == "_" || c == "-" || c == ".") }
        while index < characters.count {
            let c = characters[index]
            if c.isWhitespace {
                index += 1
                continue
            }
            let start = index
            if isIdentifierStart(c) {
                while index < characters.count, isIdentifierPart(characters[index]) { index += 1 }
                tokens.append((.identifier(String(characters[start..<index])), start))
                continue
            }
            if c.isASCII, c.isNumber || (c == "-" && index + 1 < characters.count && characters[index + 1].isNumber) {
                index += 1
                while index < characters.count, characters[index].isASCII, characters[index].isNumber || characters[index] == "." {
                    index += 1
                }
                let text = String(characters[start..<index])
                guard let value = Double(text) else { throw ExpressionSyntaxError(message: "invalid number '\(text)'", offset: start) }
                tokens.append((.number(value), start))
                continue
            }
            if c == "\"" || c == "'" {
                index += 1
                var value = ""
                var closed = false
                while index < characters.count {
                    let next = characters[index]
                    if next == "\\", index + 1 < characters.count {
                        value.append(characters[index + 1])
                        index += 2
                        continue
                    }
                    index += 1
                    if next == c {
                        closed = true
                        break
                    }
                    value.append(next)
                }
                guard closed else { throw ExpressionSyntaxError(message: "unterminated string", offset: start) }
                tokens.append((.string(value), start))
                continue
            }
            let two = index + 1 < characters.count ? String(characters[index...index + 1]) : ""
            if ["==", "!=", "<=", ">=", "&&", "||"].contains(two) {
                tokens.append((.symbol(two), start))
                index += 2
                continue
            }
            if "<>!()[],".contains(c) {
                tokens.append((.symbol(String(c)), start))
                index += 1
                continue
            }
            if c == "=" {
                throw ExpressionSyntaxError(message: "'=' is not an operator; compare with '=='", offset: start)
            }
            if c == "&" || c == "|" {
                throw ExpressionSyntaxError(message: "'\(c)' is not an operator; use '\(c)\(c)'", offset: start)
            }
            throw ExpressionSyntaxError(message: "unexpected character '\(c)'", offset: start)
        }
        tokens.append((.end, characters.count))
        return tokens
    }
}
