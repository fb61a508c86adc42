import Foundation
import HeraldCore

/// Reads a `payload:` schema from YAML, checking that it is a valid schema of the supported subset.
enum SchemaParser {
    static func parse(_ node: YNode, path: String, sink: inout DiagnosticSink) -> PayloadSchema? {
        guard case .mapping(let pairs, _) = node else {
            sink.error(
                .invalidSchema, "\(path) must be a schema mapping (type, properties, required, …), not \(node.kindName)", at: node.location)
            return nil
        }
        var ok = true
        var fields: [String: YPair] = [:]
        for pair in pairs {
            guard PayloadSchema.keywords.contains(pair.key) else {
                let hint = suggestion(for: pair.key, among: PayloadSchema.keywords).map { "; did you mean '\($0)'?" } ?? ""
                sink.error(.unknownKey, "unknown schema keyword '\(pair.key)' in \(path)\(hint)", at: pair.keyLocation)
                ok = false
                continue
            }
            fields[pair.key] = pair
        }
        func fail(_ message: String, _ node: YNode) {
            sink.error(.invalidSchema, "\(path): \(message)", at: node.location)
            ok = false
        }
        func nonNegativeInteger(_ key: String) -> Int? {
            guard let pair = fields[key] else { return nil }
            guard case .scalar(let scalar) = pair.value, scalar.kind == .integer, let value = Int(scalar.text), value >= 0 else {
                fail("`\(key)` must be a non-negative integer", pair.value)
                return nil
            }
            return value
        }
        func number(_ key: String) -> Double? {
            guard let pair = fields[key] else { return nil }
            guard case .scalar(let scalar) = pair.value, scalar.kind == .integer || scalar.kind == .float, let value = Double(scalar.text)
            else {
                fail("`\(key)` must be a number", pair.value)
                return nil
            }
            return value
        }

        var types: [String]? = nil
        if let pair = fields["type"] {
            switch pair.value {
            case .scalar(let scalar) where scalar.kind == .string:
                types = [scalar.text]
            case .sequence(let items, _):
                types = items.compactMap { item in
                    if case .scalar(let scalar) = item { return scalar.text }
                    return nil
                }
            default:
                fail("`type` must be a type name or a list of them", pair.value)
            }
            for type in types ?? [] where !PayloadSchema.knownTypes.contains(type) {
                let hint = suggestion(for: type, among: PayloadSchema.knownTypes).map { "; did you mean '\($0)'?" } ?? ""
                fail("unknown type '\(type)' (\(PayloadSchema.knownTypes.joined(separator: ", ")))\(hint)", pair.value)
            }
        }
        var properties: [(name: String, schema: PayloadSchema)] = []
        if let pair = fields["properties"] {
            if case .mapping(let entries, _) = pair.value {
                for entry in entries {
                    if let child = parse(entry.value, path: "\(path).\(entry.key)", sink: &sink) {
                        properties.append((entry.key, child))
                    } else {
                        ok = false
                    }
                }
            } else {
                fail("`properties` must map property names to schemas", pair.value)
            }
        }
        var required: [String] = []
        if let pair = fields["required"] {
            if case .sequence(let items, _) = pair.value {
                for item in items {
                    guard case .scalar(let scalar) = item, scalar.kind == .string else {
                        fail("`required` lists property names", item)
                        continue
                    }
                    if fields["properties"] != nil, !properties.contains(where: { $0.name == scalar.text }) {
                        sink.error(
                            .invalidSchema, "\(path): required property '\(scalar.text)' is not declared in `properties`",
                            at: scalar.location)
                        ok = false
                    }
                    required.append(scalar.text)
                }
            } else {
                fail("`required` must be a list of property names", pair.value)
            }
        }
        var enumValues: [JSONValue]? = nil
        if let pair = fields["enum"] {
            if case .sequence(let items, _) = pair.value, !items.isEmpty {
                enumValues = items.map(\.json)
            } else {
                fail("`enum` must be a non-empty list of values", pair.value)
            }
        }
        var items: PayloadSchema? = nil
        if let pair = fields["items"] {
            items = parse(pair.value, path: "\(path)[]", sink: &sink)
            if items == nil { ok = false }
        }
        let minLength = nonNegativeInteger("minLength")
        let maxLength = nonNegativeInteger("maxLength")
        if let minLength, let maxLength, minLength > maxLength, let pair = fields["maxLength"] {
            fail("`maxLength` is smaller than `minLength`", pair.value)
        }
        let minimum = number("minimum")
        let maximum = number("maximum")
        if let minimum, let maximum, minimum > maximum, let pair = fields["maximum"] {
            fail("`maximum` is smaller than `minimum`", pair.value)
        }
        var pattern: CompiledPattern? = nil
        if let pair = fields["pattern"] {
            if case .scalar(let scalar) = pair.value, let compiled = try? CompiledPattern(scalar.text) {
                pattern = compiled
            } else {
                fail("`pattern` must be a valid regular expression", pair.value)
            }
        }
        var format: String? = nil
        if let pair = fields["format"] {
            if case .scalar(let scalar) = pair.value, PayloadSchema.knownFormats.contains(scalar.text) {
                format = scalar.text
            } else {
                fail("`format` must be one of \(PayloadSchema.knownFormats.joined(separator: ", "))", pair.value)
            }
        }
        var additional: PayloadSchema.AdditionalProperties? = nil
        if let pair = fields["additionalProperties"] {
            if case .scalar(let scalar) = pair.value, scalar.kind == .bool {
                additional = .allowed(scalar.json.boolValue ?? true)
            } else if let schema = parse(pair.value, path: "\(path).*", sink: &sink) {
                additional = .schema(schema)
            } else {
                ok = false
            }
        }
        for key in ["title", "description"] {
            if let pair = fields[key], case .scalar = pair.value {
            } else if let pair = fields[key] {
                fail("`\(key)` must be text", pair.value)
            }
        }
        guard ok else { return nil }
        let schema = PayloadSchema(
            types: types, properties: properties, required: required, enumValues: enumValues, items: items, minLength: minLength,
            maxLength: maxLength, minimum: minimum, maximum: maximum, pattern: pattern, format: format, defaultValue: nil,
            additionalProperties: additional
        )
        guard let defaultPair = fields["default"] else { return schema }
        let defaultValue = defaultPair.value.json
        let violations = schema.validate(defaultValue)
        if let first = violations.first {
            sink.error(
                .invalidSchema, "\(path): the default value does not match its own schema (\(first))", at: defaultPair.value.location)
            return nil
        }
        return PayloadSchema(
            types: types, properties: properties, required: required, enumValues: enumValues, items: items, minLength: minLength,
            maxLength: maxLength, minimum: minimum, maximum: maximum, pattern: pattern, format: format, defaultValue: defaultValue,
            additionalProperties: additional
        )
    }
}
