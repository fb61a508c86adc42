import Foundation

/// A header of a received message: the name as sent and the value unfolded and with RFC 2047 encoded-words decoded.
public struct MailHeader: Sendable, Equatable {
    public var name: String
    public var value: String
    /// The value as it was on the wire (unfolded, not decoded).
    public var raw: String
}

/// One leaf part of a received message, its body decoded from its transfer encoding.
public struct MailPart: Sendable, Equatable {
    public var contentType: String
    public var charset: String?
    public var transferEncoding: String
    public var body: String
}

/// A received message parsed the way a mail client reads it (RFC 5322, RFC 2045–2047) — written independently of
/// Herald's encoder so that a test of the two proves the format, not the code. `violations` lists what a strict
/// receiver would object to: lines over 998 octets, bare CR or LF, 8-bit header bytes, missing `From`/`Date`,
/// quoted-printable lines over 76 characters, a multipart body without its closing boundary.
public struct ParsedMail: Sendable, Equatable {
    public var headers: [MailHeader]
    public var parts: [MailPart]
    public var violations: [String]

    public func header(_ name: String) -> String? { headers.first { $0.name.lowercased() == name.lowercased() }?.value }
    public func rawHeader(_ name: String) -> String? { headers.first { $0.name.lowercased() == name.lowercased() }?.raw }
    public var text: String? { parts.first { $0.contentType == "text/plain" }?.body }
    public var html: String? { parts.first { $0.contentType == "text/html" }?.body }

    public init(raw bytes: [UInt8]) {
        var violations: [String] = []
        var lineLength = 0
        for (index, byte) in bytes.enumerated() {
            if byte == 10 {
                if index == 0 || bytes[index - 1] != 13 { violations.append("bare LF at byte \(index)") }
                lineLength = 0
            } else if byte == 13 {
                if index + 1 >= bytes.count || bytes[index + 1] != 10 { violations.append("bare CR at byte \(index)") }
            } else {
                lineLength += 1
                if lineLength == 999 { violations.append("a line longer than 998 octets near byte \(index)") }
            }
        }
        let text = String(decoding: bytes, as: UTF8.self)
        let (headerBlock, body) = Self.split(text)
        if headerBlock.utf8.contains(where: { $0 > 127 }) { violations.append("8-bit bytes in the header section") }
        headers = Self.headers(headerBlock)
        for required in ["From", "Date"] where !headers.contains(where: { $0.name.lowercased() == required.lowercased() }) {
            violations.append("no \(required) header")
        }
        var parts: [MailPart] = []
        Self.collect(headers: headers, body: body, into: &parts, violations: &violations)
        self.parts = parts
        self.violations = violations
    }

    static func split(_ text: String) -> (String, String) {
        if let range = text.range(of: "\r\n\r\n") { return (String(text[..<range.lowerBound]), String(text[range.upperBound...])) }
        return (text, "")
    }

    static func headers(_ block: String) -> [MailHeader] {
        var result: [MailHeader] = []
        for line in block.components(separatedBy: "\r\n") where !line.isEmpty {
            if line.first == " " || line.first == "\t", !result.isEmpty {
                result[result.count - 1].raw += line
                continue
            }
            guard let colon = line.firstIndex(of: ":") else { continue }
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            result.append(MailHeader(name: String(line[..<colon]), value: "", raw: value))
        }
        // Unfolded, a field body's leading white space (a fold right after the colon) is not part of the value.
        for index in result.indices {
            result[index].raw = result[index].raw.trimmingCharacters(in: .whitespaces)
            result[index].value = decodeEncodedWords(result[index].raw)
        }
        return result
    }

    /// Decodes `=?charset?B|Q?…?=` words (UTF-8 and ASCII charsets); white space between adjacent words is dropped.
    static func decodeEncodedWords(_ value: String) -> String {
        let pattern = try! NSRegularExpression(pattern: "=\\?([^?]+)\\?([BbQq])\\?([^?]*)\\?=")
        let source = value as NSString
        var output = ""
        var cursor = 0
        var previousWasWord = false
        for match in pattern.matches(in: value, range: NSRange(location: 0, length: source.length)) {
            let between = source.substring(with: NSRange(location: cursor, length: match.range.location - cursor))
            if !(previousWasWord && between.allSatisfy(\.isWhitespace)) { output += between }
            let encoding = source.substring(with: match.range(at: 2)).uppercased()
            let payload = source.substring(with: match.range(at: 3))
            var bytes: [UInt8] = []
            if encoding == "B" {
                bytes = Data(base64Encoded: payload).map(Array.init) ?? Array(payload.utf8)
            } else {
                bytes = decodeQuotedPrintable(payload.replacingOccurrences(of: "_", with: " "))
            }
            output += String(decoding: bytes, as: UTF8.self)
            cursor = match.range.location + match.range.length
            previousWasWord = true
        }
        output += source.substring(from: cursor)
        return output
    }

    static func decodeQuotedPrintable(_ text: String) -> [UInt8] {
        let bytes = Array(text.utf8)
        var output: [UInt8] = []
        var index = 0
        func hex(_ byte: UInt8) -> UInt8? {
            switch byte {
            case 48...57: byte - 48
            case 65...70: byte - 55
            case 97...102: byte - 87
            default: nil
            }
        }
        while index < bytes.count {
            let byte = bytes[index]
            if byte == 61, index + 2 < bytes.count {
                if bytes[index + 1] == 13, bytes[index + 2] == 10 {
                    index += 3  // soft line break
                    continue
                }
                if let high = hex(bytes[index + 1]), let low = hex(bytes[index + 2]) {
                    output.append(high << 4 | low)
                    index += 3
                    continue
                }
            }
            output.append(byte)
            index += 1
        }
        return output
    }

    /// `type/subtype` and its parameters (`boundary`, `charset`), lower-cased names, quotes removed.
    static func contentType(_ value: String?) -> (String, [String: String]) {
        guard let value else { return ("text/plain", [:]) }
        let pieces = value.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        var parameters: [String: String] = [:]
        for piece in pieces.dropFirst() {
            guard let equals = piece.firstIndex(of: "=") else { continue }
            var parameter = String(piece[piece.index(after: equals)...])
            if parameter.hasPrefix("\""), parameter.hasSuffix("\""), parameter.count >= 2 {
                parameter = String(parameter.dropFirst().dropLast())
            }
            parameters[piece[..<equals].lowercased()] = parameter
        }
        return ((pieces.first ?? "text/plain").lowercased(), parameters)
    }

    static func collect(headers: [MailHeader], body: String, into parts: inout [MailPart], violations: inout [String]) {
        let header = { (name: String) in headers.first { $0.name.lowercased() == name }?.raw }
        let (type, parameters) = contentType(header("content-type"))
        if type.hasPrefix("multipart/") {
            guard let boundary = parameters["boundary"], !boundary.isEmpty else {
                violations.append("multipart without a boundary")
                return
            }
            let delimiter = "--" + boundary
            guard body.contains("\r\n" + delimiter + "--") || body.hasPrefix(delimiter + "--") else {
                violations.append("multipart body without its closing boundary")
                return
            }
            var sections = ("\r\n" + body).components(separatedBy: "\r\n" + delimiter)
            sections.removeFirst()  // the preamble
            for section in sections {
                if section.hasPrefix("--") { break }
                let content = section.hasPrefix("\r\n") ? String(section.dropFirst()) : section  // "\r\n" is one Character
                let (partHeaders, partBody) = split(content)
                collect(headers: Self.headers(partHeaders), body: partBody, into: &parts, violations: &violations)
            }
            return
        }
        let encoding = (header("content-transfer-encoding") ?? "7bit").lowercased()
        let decoded: [UInt8]
        switch encoding {
        case "quoted-printable":
            for line in body.components(separatedBy: "\r\n") where line.utf8.count > 76 {
                violations.append("a quoted-printable line of \(line.utf8.count) characters")
            }
            decoded = decodeQuotedPrintable(body)
        case "base64":
            decoded = Data(base64Encoded: body.filter { !$0.isWhitespace }).map(Array.init) ?? []
        default:
            decoded = Array(body.utf8)
        }
        parts.append(
            MailPart(
                contentType: type, charset: parameters["charset"]?.lowercased(), transferEncoding: encoding,
                body: String(decoding: decoded, as: UTF8.self)))
    }
}
