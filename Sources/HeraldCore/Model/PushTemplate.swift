import Foundation

/// One string of a raw send's payload with Centrifugo's template actions (docs/api.md §Personalisation): text with
/// `{{ .device.id }}`, `{{ .device.user }}`, `{{ .device.meta.first_name }}`, `{{ .l10n.greeting }}` and
/// `{{ default "Hello" .l10n.greeting }}` (the fallback may also be written `[[Hello]]`, which needs no escaping in
/// JSON). A subset of Go's text/template, the engine Centrifugo uses: a variable that has no value renders empty,
/// anything else is refused when the send is validated. Pure.
public struct PushTemplate: Sendable, Hashable {
    /// A variable: `device.<field>`, `device.meta.<key>` or `l10n.<key>`.
    public enum Variable: Sendable, Hashable {
        case device(String)
        case meta(String)
        case l10n(String)
    }

    enum Part: Sendable, Hashable {
        case text(String)
        case value(Variable, fallback: String?)
    }

    let parts: [Part]

    /// The device fields a template may read (Centrifugo documents `id` and `user`; the others are what a device has).
    public static let deviceFields: Set<String> = ["id", "user", "platform", "provider", "locale", "timezone"]

    /// Whether a string has any action at all (the fast path: most strings are plain).
    public static func hasActions(_ text: String) -> Bool { text.contains("{{") }

    /// Parses `text`; `allowMeta` is the send's `use_meta`. Throws a message naming what is wrong.
    public init(_ text: String, allowMeta: Bool) throws(PushTemplateError) {
        var parts: [Part] = []
        var rest = Substring(text)
        while let open = rest.range(of: "{{") {
            if open.lowerBound > rest.startIndex { parts.append(.text(String(rest[rest.startIndex..<open.lowerBound]))) }
            guard let close = rest[open.upperBound...].range(of: "}}") else { throw PushTemplateError("an action is not closed with }}") }
            parts.append(try Self.action(rest[open.upperBound..<close.lowerBound], allowMeta: allowMeta))
            rest = rest[close.upperBound...]
        }
        if !rest.isEmpty { parts.append(.text(String(rest))) }
        self.parts = parts
    }

    /// The variables the template reads.
    public var variables: [Variable] {
        parts.compactMap { part in
            if case .value(let variable, _) = part { return variable }
            return nil
        }
    }

    /// The text with every action replaced: `lookup` gives a variable's value (nil or empty: none, so the fallback).
    public func render(_ lookup: (Variable) -> String?) -> String {
        var out = ""
        for part in parts {
            switch part {
            case .text(let text): out += text
            case .value(let variable, let fallback):
                let value = lookup(variable) ?? ""
                out += value.isEmpty ? (fallback ?? "") : value
            }
        }
        return out
    }

    static func action(_ body: Substring, allowMeta: Bool) throws(PushTemplateError) -> Part {
        let trimmed = body.trimmingCharacters(in: .whitespaces)
        if trimmed.hasPrefix("default ") || trimmed.hasPrefix("default\t") {
            var rest = Substring(trimmed.dropFirst("default".count)).drop { $0 == " " || $0 == "\t" }
            let fallback: String
            if rest.hasPrefix("\"") {
                guard let end = rest.dropFirst().firstIndex(of: "\"") else { throw PushTemplateError("a \"string\" is not closed") }
                fallback = String(rest[rest.index(after: rest.startIndex)..<end])
                rest = rest[rest.index(after: end)...]
            } else if rest.hasPrefix("[[") {
                guard let end = rest.range(of: "]]") else { throw PushTemplateError("a [[string]] is not closed with ]]") }
                fallback = String(rest[rest.index(rest.startIndex, offsetBy: 2)..<end.lowerBound])
                rest = rest[end.upperBound...]
            } else {
                throw PushTemplateError("default takes a \"string\" (or [[string]]) and then a variable")
            }
            let path = rest.trimmingCharacters(in: .whitespaces)
            return .value(try variable(path, allowMeta: allowMeta), fallback: fallback)
        }
        return .value(try variable(trimmed, allowMeta: allowMeta), fallback: nil)
    }

    static func variable(_ path: String, allowMeta: Bool) throws(PushTemplateError) -> Variable {
        guard path.hasPrefix(".") else {
            throw PushTemplateError("'\(path)' is not a variable (.device.id, .device.user, .device.meta.<key>, .l10n.<key>) or default")
        }
        let segments = path.dropFirst().split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let valid = segments.allSatisfy { segment in
            !segment.isEmpty
                && segment.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_" || $0 == "-" }
        }
        guard valid else { throw PushTemplateError("'\(path)' is not a variable path") }
        switch (segments.first, segments.count) {
        case ("device", 2) where deviceFields.contains(segments[1]): return .device(segments[1])
        case ("device", 3) where segments[1] == "meta":
            guard allowMeta else { throw PushTemplateError("'\(path)' needs use_meta: true") }
            return .meta(segments[2])
        case ("l10n", 2): return .l10n(segments[1])
        default:
            throw PushTemplateError(
                "unknown variable '\(path)' (.device.id, .device.user, .device.platform, .device.provider, .device.locale, .device.timezone, .device.meta.<key>, .l10n.<key>)"
            )
        }
    }
}

/// Why a template was refused.
public struct PushTemplateError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
