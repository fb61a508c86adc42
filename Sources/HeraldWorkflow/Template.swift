import Foundation
import HeraldCore
import Mustache
import Synchronization

/// A Mustache template compiled at load time (`{{payload.orderId}}`, sections, inverted sections).
///
/// Text channels (push, chat, SMS, subjects) render values verbatim; email bodies HTML-escape them, so payload
/// text can never inject markup. Payload values are data: a `{{…}}` inside a value is printed, never evaluated.
public struct Template: Sendable {
    public let source: String
    public let location: SourceLocation
    /// Whether values are HTML-escaped.
    public let escapesHTML: Bool
    let body: Body

    /// How a template renders: templates made only of text and plain variables (the vast majority) are split into
    /// segments at load time and render without Mustache's machinery; anything else (sections, partials, lambdas,
    /// custom delimiters) goes through swift-mustache.
    enum Body: Sendable {
        case segments([Segment])
        case mustache(MustacheTemplate)
    }

    /// A piece of a simple template.
    enum Segment: Sendable, Equatable {
        case text(String)
        /// A variable; `escaped` is false for `{{{…}}}` and `{{&…}}`.
        case variable([String], escaped: Bool)
    }
    /// The variables the template reads, with their positions, outside sections only (inside a section, names
    /// resolve against the section's item first).
    let variables: [(path: [String], location: SourceLocation)]

    /// The pragma that switches swift-mustache to plain-text output.
    private static let textPragma = "{{% CONTENT_TYPE: TEXT }}"

    /// Compiles `source`, or explains where its syntax is wrong.
    static func compile(
        _ source: String, escapesHTML: Bool, at location: SourceLocation, contentStart: SourceLocation
    ) -> Result<Template, TemplateSyntaxError> {
        if let segments = simpleSegments(source) {
            return .success(
                Template(
                    source: source, location: location, escapesHTML: escapesHTML, body: .segments(segments),
                    variables: scanVariables(source, contentStart: contentStart)
                )
            )
        }
        let text = escapesHTML ? source : textPragma + source
        do {
            let compiled = try MustacheTemplate(string: text)
            return .success(
                Template(
                    source: source, location: location, escapesHTML: escapesHTML, body: .mustache(compiled),
                    variables: scanVariables(source, contentStart: contentStart)
                )
            )
        } catch let error as MustacheTemplate.ParserError {
            let line = error.context.lineNumber
            var column = error.context.columnNumber
            if !escapesHTML, line == 1 { column = max(1, column - textPragma.count) }
            let position = SourceLocation(
                line: contentStart.line + line - 1, column: line == 1 ? contentStart.column + column - 1 : column
            )
            return .failure(TemplateSyntaxError(message: "template syntax: \(describe(error.error))", location: position))
        } catch {
            return .failure(TemplateSyntaxError(message: "template syntax: \(error)", location: contentStart))
        }
    }

    /// Renders with the context object (`payload`, `subscriber`, `steps`, `tenant`, `workflow`).
    public func render(_ context: JSONValue) -> String {
        switch body {
        case .mustache(let compiled):
            return compiled.render(Self.mustacheValue(context) ?? [String: Any]())
        case .segments(let segments):
            var output = ""
            for segment in segments {
                switch segment {
                case .text(let text): output += text
                case .variable(let path, let escaped):
                    let text = Self.text(of: context.value(at: path))
                    output += escaped && escapesHTML ? Self.escapeHTML(text) : text
                }
            }
            return output
        }
    }

    /// How a value prints inside text: strings as they are, whole numbers without a fraction, missing as nothing,
    /// lists and objects as compact JSON.
    static func text(of value: JSONValue) -> String {
        switch value {
        case .null: ""
        case .string(let text): text
        case .bool(let bool): bool ? "true" : "false"
        case .number(let number): number.rounded() == number && abs(number) < 9.0e15 ? String(Int64(number)) : String(number)
        case .array, .object: value.jsonString()
        }
    }

    /// The escaping swift-mustache applies to HTML: `< > & " '` (also used for Herald's own pages).
    public static func escapeHTML(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 == 0x3C || $0 == 0x3E || $0 == 0x26 || $0 == 0x22 || $0 == 0x27 }) else { return text }
        var output = ""
        output.reserveCapacity(text.utf8.count + 16)
        for character in text.unicodeScalars {
            switch character {
            case "<": output += "&lt;"
            case ">": output += "&gt;"
            case "&": output += "&amp;"
            case "\"": output += "&quot;"
            case "'": output += "&#39;"
            default: output.unicodeScalars.append(character)
            }
        }
        return output
    }

    /// Splits a template made only of text and `{{name}}`, `{{{name}}}` or `{{&name}}` tags; nil for anything else.
    /// Works on UTF-8 bytes: the braces and name characters it looks for are all ASCII.
    static func simpleSegments(_ source: String) -> [Segment]? {
        let bytes = Array(source.utf8)
        let open = UInt8(ascii: "{")
        let close = UInt8(ascii: "}")
        var segments: [Segment] = []
        var textStart = 0
        var index = 0
        func isNameByte(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
                || byte == UInt8(ascii: ".")
        }
        while index + 1 < bytes.count {
            guard bytes[index] == open, bytes[index + 1] == open else {
                index += 1
                continue
            }
            if index > textStart { segments.append(.text(String(decoding: bytes[textStart..<index], as: UTF8.self))) }
            var cursor = index + 2
            var escaped = true
            var closing = 2
            if cursor < bytes.count, bytes[cursor] == open {
                escaped = false
                closing = 3
                cursor += 1
            } else if cursor < bytes.count, bytes[cursor] == UInt8(ascii: "&") {
                escaped = false
                cursor += 1
            }
            while cursor < bytes.count, bytes[cursor] == UInt8(ascii: " ") { cursor += 1 }
            let nameStart = cursor
            while cursor < bytes.count, isNameByte(bytes[cursor]) { cursor += 1 }
            let nameEnd = cursor
            while cursor < bytes.count, bytes[cursor] == UInt8(ascii: " ") { cursor += 1 }
            guard nameEnd > nameStart, cursor + closing <= bytes.count, bytes[cursor..<(cursor + closing)].allSatisfy({ $0 == close })
            else {
                return nil
            }
            let name = bytes[nameStart..<nameEnd]
            guard name.first != UInt8(ascii: "."), name.last != UInt8(ascii: ".") else { return nil }
            let path = name.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false).map {
                String(decoding: $0, as: UTF8.self)
            }
            guard !path.contains(where: \.isEmpty) else { return nil }
            segments.append(.variable(path, escaped: escaped))
            index = cursor + closing
            textStart = index
        }
        if textStart < bytes.count { segments.append(.text(String(decoding: bytes[textStart...], as: UTF8.self))) }
        return segments
    }

    private static func describe(_ error: any Error) -> String {
        switch error as? MustacheTemplate.Error {
        case .sectionCloseNameIncorrect?: "a section is closed with the wrong name"
        case .unfinishedName?: "a tag is not closed with }}"
        case .expectedSectionEnd?: "a section is never closed ({{/name}} missing)"
        case .invalidSetDelimiter?: "invalid set-delimiter tag"
        case .invalidConfigVariableSyntax?, .unrecognisedConfigVariable?: "invalid {{% … }} pragma"
        default: "\(error)"
        }
    }

    /// Converts JSON into the values swift-mustache walks: dictionaries, arrays, strings, numbers, booleans.
    static func mustacheValue(_ value: JSONValue) -> Any? {
        switch value {
        case .null: nil
        case .bool(let bool): bool
        case .number(let number): number.rounded() == number && abs(number) < 9.0e15 ? Int64(number) as Any : number
        case .string(let string): string
        case .array(let items): items.map { mustacheValue($0) ?? "" }
        case .object(let object): object.compactMapValues { mustacheValue($0) }
        }
    }

    /// Finds `{{name}}`, `{{{name}}}`, `{{&name}}` and section openers with their positions, tracking section depth.
    static func scanVariables(_ source: String, contentStart: SourceLocation) -> [(path: [String], location: SourceLocation)] {
        var result: [(path: [String], location: SourceLocation)] = []
        let characters = Array(source)
        var index = 0
        var line = 0
        var lineStart = 0
        var sectionDepth = 0
        func position(_ offset: Int) -> SourceLocation {
            line == 0
                ? SourceLocation(line: contentStart.line, column: contentStart.column + offset)
                : SourceLocation(line: contentStart.line + line, column: offset - lineStart + 1 + (contentStart.column - 1))
        }
        while index < characters.count {
            if characters[index] == "\n" {
                line += 1
                lineStart = index + 1
                index += 1
                continue
            }
            guard characters[index] == "{", index + 1 < characters.count, characters[index + 1] == "{" else {
                index += 1
                continue
            }
            let tagStart = index
            index += 2
            var sigil: Character? = nil
            if index < characters.count, "{&#^/!>%=".contains(characters[index]) {
                sigil = characters[index]
                index += 1
            }
            if sigil == "=" { return result }  // custom delimiters: stop checking rather than guess
            var name = ""
            while index < characters.count, characters[index] != "}" {
                name.append(characters[index])
                index += 1
            }
            while index < characters.count, characters[index] == "}" { index += 1 }
            let trimmed = String(Substring(name).trimmingASCIIWhitespace())
            switch sigil {
            case "!", ">", "%": continue
            case "/": sectionDepth = max(0, sectionDepth - 1)
            case "#", "^":
                if sectionDepth == 0, !trimmed.isEmpty, trimmed != "." {
                    result.append((trimmed.split(separator: ".").map(String.init), position(tagStart)))
                }
                sectionDepth += 1
            default:
                if sectionDepth == 0, !trimmed.isEmpty, trimmed != "." {
                    result.append((trimmed.split(separator: ".").map(String.init), position(tagStart)))
                }
            }
        }
        return result
    }
}

/// Why a template did not compile, and where.
struct TemplateSyntaxError: Error {
    var message: String
    var location: SourceLocation
}

extension Substring {
    /// Without leading and trailing spaces and tabs (cheaper than Foundation's `trimmingCharacters`).
    func trimmingASCIIWhitespace() -> Substring {
        var result = self
        while let first = result.first, first == " " || first == "\t" { result = result.dropFirst() }
        while let last = result.last, last == " " || last == "\t" { result = result.dropLast() }
        return result
    }
}

extension Template {
    /// Compiled templates of override strings, by source (overrides are few and repeat for every recipient).
    private static let overrideCache = Mutex<[String: Template]>([:])

    /// `value` with every string that holds a template rendered (provider overrides are request fragments whose
    /// strings may use `{{payload…}}` like any step field). Strings whose template does not compile stay as written.
    public static func renderStrings(in value: JSONValue, context: JSONValue) -> JSONValue {
        switch value {
        case .string(let text) where text.contains("{{"):
            var template = overrideCache.withLock { $0[text] }
            if template == nil {
                let start = SourceLocation(line: 1, column: 1)
                guard case .success(let compiled) = compile(text, escapesHTML: false, at: start, contentStart: start) else { return value }
                template = compiled
                overrideCache.withLock { cache in
                    if cache.count > 10_000 { cache.removeAll() }
                    cache[text] = compiled
                }
            }
            return .string(template!.render(context))
        case .array(let items):
            return .array(items.map { renderStrings(in: $0, context: context) })
        case .object(let entries):
            return .object(entries.mapValues { renderStrings(in: $0, context: context) })
        default:
            return value
        }
    }
}
