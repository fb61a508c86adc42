import Foundation
import HeraldCore

/// The JSON-Schema subset trigger payloads are validated against: `type`, `properties`, `required`, `enum`,
/// `items`, `minLength`/`maxLength`, `minimum`/`maximum`, `pattern`, `format` (`date-time`, `email`, `uri`),
/// `default`, `additionalProperties`, plus `title` and `description`.
public final class PayloadSchema: Sendable {
    /// Allowed JSON types (`integer` included); nil allows any.
    public let types: [String]?
    public let properties: [(name: String, schema: PayloadSchema)]
    public let required: [String]
    public let enumValues: [JSONValue]?
    public let items: PayloadSchema?
    public let minLength: Int?
    public let maxLength: Int?
    public let minimum: Double?
    public let maximum: Double?
    let pattern: CompiledPattern?
    public let format: String?
    public let defaultValue: JSONValue?
    /// false forbids undeclared properties; a schema validates them; nil allows them.
    public let additionalProperties: AdditionalProperties?

    public enum AdditionalProperties: Sendable {
        case allowed(Bool)
        case schema(PayloadSchema)
    }

    init(
        types: [String]?, properties: [(name: String, schema: PayloadSchema)], required: [String], enumValues: [JSONValue]?,
        items: PayloadSchema?,
        minLength: Int?, maxLength: Int?, minimum: Double?, maximum: Double?, pattern: CompiledPattern?, format: String?,
        defaultValue: JSONValue?,
        additionalProperties: AdditionalProperties?
    ) {
        self.types = types
        self.properties = properties
        self.required = required
        self.enumValues = enumValues
        self.items = items
        self.minLength = minLength
        self.maxLength = maxLength
        self.minimum = minimum
        self.maximum = maximum
        self.pattern = pattern
        self.format = format
        self.defaultValue = defaultValue
        self.additionalProperties = additionalProperties
    }

    static let knownTypes = ["string", "number", "integer", "boolean", "object", "array", "null"]
    static let knownFormats = ["date-time", "email", "uri"]
    static let keywords = [
        "type", "properties", "required", "enum", "items", "minLength", "maxLength", "minimum", "maximum", "pattern", "format", "default",
        "additionalProperties", "title", "description",
    ]

    /// The schema of a declared property.
    public func property(_ name: String) -> PayloadSchema? { properties.first { $0.name == name }?.schema }

    /// Whether a payload path (`["order", "id"]`) is declared, and its type when it is.
    func lookup(_ path: ArraySlice<String>) -> (declared: Bool, type: StaticType?) {
        guard let first = path.first else {
            return (true, types?.count == 1 ? StaticType(schemaType: types![0]) : nil)
        }
        if let property = property(first) { return property.lookup(path.dropFirst()) }
        if let items, Int(first) != nil { return items.lookup(path.dropFirst()) }
        if case .schema(let schema) = additionalProperties { return schema.lookup(path.dropFirst()) }
        if case .allowed(true) = additionalProperties { return (true, nil) }
        return (false, nil)
    }
}

extension StaticType {
    init?(schemaType: String) {
        switch schemaType {
        case "integer", "number": self = .number
        case "boolean": self = .boolean
        default: self.init(rawValue: schemaType)
        }
    }
}

/// A compiled `pattern`. `NSRegularExpression` is immutable and documented as safe to use from several threads.
final class CompiledPattern: @unchecked Sendable {
    let source: String
    let regex: NSRegularExpression

    init(_ source: String) throws {
        self.source = source
        self.regex = try NSRegularExpression(pattern: source)
    }

    func matches(_ text: String) -> Bool {
        regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }
}

/// One payload field that fails the schema, as the trigger API reports it (`PAYLOAD_VALIDATION_ERROR`).
public struct SchemaViolation: Sendable, Equatable, CustomStringConvertible {
    /// Where in the payload: `orderId`, `items[0].sku`; empty for the payload itself.
    public var field: String
    public var message: String
    /// The offending value, when there is one.
    public var value: JSONValue?
    /// The schema keyword that failed, as a JSON pointer into the schema (`#/properties/orderId/type`).
    public var schemaPath: String

    public var description: String { field.isEmpty ? message : "\(field): \(message)" }
}

extension PayloadSchema {
    /// Every violation of `value`, in document order. An empty result means the payload is valid.
    public func validate(_ value: JSONValue) -> [SchemaViolation] {
        var violations: [SchemaViolation] = []
        validate(value, field: "", schemaPath: "#", into: &violations)
        return violations
    }

    /// `value` with the defaults of missing properties filled in (recursively).
    public func applyingDefaults(to value: JSONValue) -> JSONValue {
        guard case .object(var object) = value else { return value }
        for (name, schema) in properties {
            if let present = object[name] {
                object[name] = schema.applyingDefaults(to: present)
            } else if let defaultValue = schema.defaultValue {
                object[name] = defaultValue
            }
        }
        return .object(object)
    }

    private func validate(_ value: JSONValue, field: String, schemaPath: String, into violations: inout [SchemaViolation]) {
        func fail(_ message: String, _ keyword: String) {
            violations.append(SchemaViolation(field: field, message: message, value: value, schemaPath: "\(schemaPath)/\(keyword)"))
        }
        if let types, !types.contains(where: { Self.matches(value, type: $0) }) {
            fail("must be \(types.count == 1 ? "of type \(types[0])" : "one of the types \(types.joined(separator: ", "))")", "type")
            return
        }
        if let enumValues, !enumValues.contains(value) {
            fail("must be one of \(enumValues.map { $0.jsonString() }.joined(separator: ", "))", "enum")
        }
        switch value {
        case .string(let text):
            let length = text.count
            if let minLength, length < minLength { fail("must be at least \(minLength) characters long", "minLength") }
            if let maxLength, length > maxLength { fail("must be at most \(maxLength) characters long", "maxLength") }
            if let pattern, !pattern.matches(text) { fail("must match the pattern \(pattern.source)", "pattern") }
            if let format, !Self.conforms(text, format: format) { fail("must be a valid \(format)", "format") }
        case .number(let number):
            if let minimum, number < minimum { fail("must be at least \(Self.format(minimum))", "minimum") }
            if let maximum, number > maximum { fail("must be at most \(Self.format(maximum))", "maximum") }
        case .array(let elements):
            if let items {
                for (index, element) in elements.enumerated() {
                    items.validate(element, field: "\(field)[\(index)]", schemaPath: "\(schemaPath)/items", into: &violations)
                }
            }
        case .object(let object):
            for name in required where object[name] == nil || object[name] == .null && property(name)?.types?.contains("null") != true {
                violations.append(
                    SchemaViolation(
                        field: field.isEmpty ? name : "\(field).\(name)", message: "is required", value: nil,
                        schemaPath: "\(schemaPath)/required"
                    )
                )
            }
            for (name, schema) in properties {
                guard let child = object[name], !(child == .null && required.contains(name) && schema.types?.contains("null") != true)
                else { continue }
                schema.validate(
                    child, field: field.isEmpty ? name : "\(field).\(name)", schemaPath: "\(schemaPath)/properties/\(name)",
                    into: &violations)
            }
            let declared = Set(properties.map(\.name))
            for name in object.keys.sorted() where !declared.contains(name) {
                let childField = field.isEmpty ? name : "\(field).\(name)"
                switch additionalProperties {
                case .allowed(false)?:
                    violations.append(
                        SchemaViolation(
                            field: childField, message: "is not an allowed property", value: object[name],
                            schemaPath: "\(schemaPath)/additionalProperties")
                    )
                case .schema(let schema)?:
                    schema.validate(object[name]!, field: childField, schemaPath: "\(schemaPath)/additionalProperties", into: &violations)
                default:
                    break
                }
            }
        default:
            break
        }
    }

    static func matches(_ value: JSONValue, type: String) -> Bool {
        switch (type, value) {
        case ("string", .string), ("boolean", .bool), ("object", .object), ("array", .array), ("null", .null), ("number", .number): true
        case ("integer", .number(let number)): number.rounded() == number && abs(number) < 9.0e15
        default: false
        }
    }

    static func conforms(_ text: String, format: String) -> Bool {
        switch format {
        case "date-time":
            return (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text)) != nil
                || (try? Date.ISO8601FormatStyle().parse(text)) != nil
        case "email":
            let parts = text.split(separator: "@", omittingEmptySubsequences: false)
            return parts.count == 2 && !parts[0].isEmpty && parts[1].contains(".") && !parts[1].hasPrefix(".") && !parts[1].hasSuffix(".")
                && !text.contains(where: \.isWhitespace)
        case "uri":
            guard let url = URL(string: text), let scheme = url.scheme, !scheme.isEmpty else { return false }
            return !text.contains(where: \.isWhitespace)
        default:
            return true
        }
    }

    static func format(_ number: Double) -> String {
        number.rounded() == number ? String(Int64(number)) : String(number)
    }
}
