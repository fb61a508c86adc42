import HeraldCore

extension Expression {
    /// Evaluates against a context object with `payload`, `subscriber`, `steps`, `tenant` and `workflow`. A missing
    /// path is `null`, never an error; comparing values of different types is false (`!=` true).
    public func evaluate(in context: JSONValue) -> JSONValue {
        switch self {
        case .literal(let value, _):
            return value
        case .path(let segments, _):
            return context.value(at: segments)
        case .list(let items, _):
            return .array(items.map { $0.evaluate(in: context) })
        case .not(let operand, _):
            return .bool(!operand.evaluate(in: context).isTruthy)
        case .binary(.and, let lhs, let rhs, _):
            return .bool(lhs.evaluate(in: context).isTruthy && rhs.evaluate(in: context).isTruthy)
        case .binary(.or, let lhs, let rhs, _):
            return .bool(lhs.evaluate(in: context).isTruthy || rhs.evaluate(in: context).isTruthy)
        case .binary(let op, let lhs, let rhs, _):
            return .bool(Self.compare(op, lhs.evaluate(in: context), rhs.evaluate(in: context)))
        case .call(let name, let arguments, _):
            let values = arguments.map { $0.evaluate(in: context) }
            switch ExpressionFunction(rawValue: name) {
            case .exists:
                return .bool(!(values.first ?? .null).isNull)
            case .len:
                switch values.first {
                case .string(let text): return .number(Double(text.count))
                case .array(let items): return .number(Double(items.count))
                case .object(let object): return .number(Double(object.count))
                default: return .number(0)
                }
            case .startsWith:
                guard values.count == 2, case .string(let text) = values[0], case .string(let prefix) = values[1] else {
                    return .bool(false)
                }
                return .bool(text.hasPrefix(prefix))
            case nil:
                return .null
            }
        }
    }

    /// Evaluates as a condition.
    public func isSatisfied(in context: JSONValue) -> Bool {
        evaluate(in: context).isTruthy
    }

    static func compare(_ op: BinaryOperator, _ lhs: JSONValue, _ rhs: JSONValue) -> Bool {
        switch op {
        case .equal: return lhs == rhs
        case .notEqual: return lhs != rhs
        case .in:
            switch rhs {
            case .array(let items): return items.contains(lhs)
            case .string(let text):
                guard case .string(let needle) = lhs else { return false }
                return text.contains(needle)
            case .object(let object):
                guard case .string(let key) = lhs else { return false }
                return object[key] != nil
            default: return false
            }
        case .less, .lessOrEqual, .greater, .greaterOrEqual:
            let ordering: Int
            switch (lhs, rhs) {
            case (.number(let a), .number(let b)): ordering = a < b ? -1 : (a > b ? 1 : 0)
            case (.string(let a), .string(let b)): ordering = a < b ? -1 : (a > b ? 1 : 0)
            default: return false
            }
            switch op {
            case .less: return ordering < 0
            case .lessOrEqual: return ordering <= 0
            case .greater: return ordering > 0
            default: return ordering >= 0
            }
        case .and, .or:
            return false
        }
    }
}

extension JSONValue {
    /// Truthiness of conditions: false, null, 0, "" and empty collections are false.
    public var isTruthy: Bool {
        switch self {
        case .null: false
        case .bool(let value): value
        case .number(let value): value != 0
        case .string(let value): !value.isEmpty
        case .array(let value): !value.isEmpty
        case .object(let value): !value.isEmpty
        }
    }

    /// The value at a dotted path; `null` where the path leads nowhere. Numeric segments index arrays.
    public func value(at path: some Collection<String>) -> JSONValue {
        var current = self
        for segment in path {
            switch current {
            case .object(let object): current = object[segment] ?? .null
            case .array(let items):
                guard let index = Int(segment), items.indices.contains(index) else { return .null }
                current = items[index]
            default: return .null
            }
        }
        return current
    }
}
