/// Finds where JSON text first goes wrong, for error messages: Foundation's decoder says only that the data "was not
/// valid JSON". A strict RFC 8259 scanner that stops at the first problem and reports its 1-based line and column.
public enum JSONSyntax {
    /// The first syntax error in `bytes`, or nil when the text is valid JSON.
    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        public var line: Int
        public var column: Int
        public var message: String
        public var description: String { "\(message) at line \(line), column \(column)" }
    }

    /// Nesting deeper than this is reported as a problem (the decoders refuse it too).
    public static let maxDepth = 512

    public static func firstProblem(in bytes: some Collection<UInt8>) -> Problem? {
        var scanner = Scanner(bytes: Array(bytes))
        do throws(Problem) {
            scanner.skipWhitespace()
            try scanner.value(depth: 0)
            scanner.skipWhitespace()
            if scanner.index < scanner.bytes.count { throw scanner.problem("unexpected text after the JSON value") }
            return nil
        } catch {
            return error
        }
    }

    /// Where a string in `bytes` (valid JSON) holds U+0000, written `\u0000`: PostgreSQL cannot store it in text or
    /// `jsonb`, so Herald refuses it at the door on every database rather than failing later (README §API contract).
    public static func firstNUL(in bytes: some Collection<UInt8>) -> Problem? {
        func scan(_ p: UnsafeBufferPointer<UInt8>) -> Problem? {
            let backslash = UInt8(ascii: "\\")
            let zero = UInt8(ascii: "0")
            var index = 0
            while index + 5 < p.count {
                defer { index += 1 }
                guard p[index] == backslash, p[index + 1] == UInt8(ascii: "u"), p[index + 2] == zero, p[index + 3] == zero,
                    p[index + 4] == zero, p[index + 5] == zero
                else { continue }
                // An escape only if an odd run of backslashes ends here (`\\u0000` is a backslash and text).
                var run = 1
                while index - run >= 0, p[index - run] == backslash { run += 1 }
                guard run % 2 == 1 else { continue }
                var line = 1
                var column = 1
                for byte in p[..<index] {
                    if byte == UInt8(ascii: "\n") {
                        line += 1
                        column = 1
                    } else if byte & 0xC0 != 0x80 {
                        column += 1
                    }
                }
                return Problem(line: line, column: column, message: "strings must not contain U+0000 (\\u0000)")
            }
            return nil
        }
        if let found = bytes.withContiguousStorageIfAvailable(scan) { return found }
        return Array(bytes).withUnsafeBufferPointer(scan)
    }

    private struct Scanner {
        let bytes: [UInt8]
        var index = 0

        func problem(_ message: String) -> Problem {
            var line = 1
            var column = 1
            for byte in bytes[..<min(index, bytes.count)] {
                if byte == UInt8(ascii: "\n") {
                    line += 1
                    column = 1
                } else if byte & 0xC0 != 0x80 {
                    column += 1
                }
            }
            return Problem(line: line, column: column, message: message)
        }

        var current: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipWhitespace() {
            while let byte = current, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { index += 1 }
        }

        mutating func value(depth: Int) throws(Problem) {
            guard depth <= JSONSyntax.maxDepth else { throw problem("nesting deeper than \(JSONSyntax.maxDepth) levels") }
            guard let byte = current else { throw problem("unexpected end of input, expected a value") }
            switch byte {
            case UInt8(ascii: "{"): try object(depth: depth + 1)
            case UInt8(ascii: "["): try array(depth: depth + 1)
            case UInt8(ascii: "\""): try string()
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try number()
            default: throw problem("unexpected character '\(Character(Unicode.Scalar(byte)))', expected a value")
            }
        }

        mutating func object(depth: Int) throws(Problem) {
            index += 1
            skipWhitespace()
            if current == UInt8(ascii: "}") {
                index += 1
                return
            }
            while true {
                skipWhitespace()
                guard current == UInt8(ascii: "\"") else { throw problem("expected a property name in double quotes") }
                try string()
                skipWhitespace()
                guard current == UInt8(ascii: ":") else { throw problem("expected ':' after the property name") }
                index += 1
                skipWhitespace()
                try value(depth: depth)
                skipWhitespace()
                switch current {
                case UInt8(ascii: ","): index += 1
                case UInt8(ascii: "}"):
                    index += 1
                    return
                case nil: throw problem("unexpected end of input, expected ',' or '}'")
                default: throw problem("expected ',' or '}' after a property value")
                }
            }
        }

        mutating func array(depth: Int) throws(Problem) {
            index += 1
            skipWhitespace()
            if current == UInt8(ascii: "]") {
                index += 1
                return
            }
            while true {
                skipWhitespace()
                try value(depth: depth)
                skipWhitespace()
                switch current {
                case UInt8(ascii: ","): index += 1
                case UInt8(ascii: "]"):
                    index += 1
                    return
                case nil: throw problem("unexpected end of input, expected ',' or ']'")
                default: throw problem("expected ',' or ']' after an array element")
                }
            }
        }

        mutating func string() throws(Problem) {
            index += 1
            while let byte = current {
                switch byte {
                case UInt8(ascii: "\""):
                    index += 1
                    return
                case UInt8(ascii: "\\"):
                    index += 1
                    guard let escaped = current else { break }
                    if escaped == UInt8(ascii: "u") {
                        for _ in 0..<4 {
                            index += 1
                            guard let hex = current, Hex.value(of: hex) != nil else { throw problem("invalid \\u escape in a string") }
                        }
                    } else if !"\"\\/bfnrt".utf8.contains(escaped) {
                        throw problem("invalid escape in a string")
                    }
                    index += 1
                case 0..<0x20: throw problem("control character in a string (escape it)")
                default: index += 1
                }
            }
            throw problem("unterminated string")
        }

        mutating func literal(_ word: String) throws(Problem) {
            let start = index
            for expected in word.utf8 {
                guard current == expected else {
                    index = start  // point at the start of the bad word
                    throw problem("invalid literal, expected '\(word)'")
                }
                index += 1
            }
        }

        mutating func number() throws(Problem) {
            if current == UInt8(ascii: "-") { index += 1 }
            guard let first = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { throw problem("invalid number") }
            if first == UInt8(ascii: "0") { index += 1 } else { digits() }
            if current == UInt8(ascii: ".") {
                index += 1
                guard let next = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(next) else {
                    throw problem("invalid number: expected digits after '.'")
                }
                digits()
            }
            if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                index += 1
                if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
                guard let next = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(next) else {
                    throw problem("invalid number: expected exponent digits")
                }
                digits()
            }
        }

        mutating func digits() {
            while let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { index += 1 }
        }
    }
}
