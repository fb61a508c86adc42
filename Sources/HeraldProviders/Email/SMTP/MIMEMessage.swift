import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An e-mail in Internet Message Format (RFC 5322) with MIME (RFC 2045–2047): headers with non-ASCII text as
/// RFC 2047 `B` encoded-words, a `multipart/alternative` body with a plain-text and an HTML part in quoted-printable
/// UTF-8 — 7-bit clean, so any SMTP server takes it without `8BITMIME` — CRLF line ends and no line over 78
/// characters.
struct MIMEMessage: Sendable {
    var fromAddress: String
    var fromName: String?
    var to: String
    var subject: String
    var html: String
    /// The plain-text alternative; derived from the HTML when the step has none.
    var text: String?
    /// Stable per delivery (`<delivery id@sender domain>`), so a retried message is recognisably the same one.
    var messageId: String
    var date: Date
    var replyTo: String?
    /// Further headers from step overrides (`headers`); structural ones cannot be replaced.
    var extraHeaders: [(String, String)] = []

    /// Headers that overrides may not set: they describe the message's structure or identity.
    static let reservedHeaders: Set<String> = [
        "from", "to", "subject", "date", "message-id", "mime-version", "content-type", "content-transfer-encoding", "bcc",
    ]

    /// The message as bytes, with `boundary` separating the parts. The boundary contains `=_`, which quoted-printable
    /// output never does, so it cannot occur inside a part.
    func rendered(boundary: String = "=_herald_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()) -> [UInt8] {
        var out = ""
        func header(_ name: String, _ value: String) { out += Self.fold("\(name): \(value)") + "\r\n" }
        header("From", Self.mailbox(fromAddress, name: fromName))
        header("To", "<\(to)>")
        header("Subject", Self.encodeHeaderText(subject, prefixLength: "Subject: ".count))
        header("Date", Self.rfc5322Date(date))
        header("Message-ID", messageId)
        if let replyTo { header("Reply-To", "<\(replyTo)>") }
        for (name, value) in extraHeaders where !Self.reservedHeaders.contains(name.lowercased()) {
            header(name, Self.encodeHeaderText(value, prefixLength: name.count + 2))
        }
        header("MIME-Version", "1.0")
        header("Content-Type", "multipart/alternative; boundary=\"\(boundary)\"")
        out += "\r\n"
        let plain = text ?? Self.plainText(fromHTML: html)
        for (type, content) in [("text/plain", plain), ("text/html", html)] {
            out += "--\(boundary)\r\n"
            out += "Content-Type: \(type); charset=utf-8\r\n"
            out += "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            out += Self.quotedPrintable(content) + "\r\n"
        }
        out += "--\(boundary)--\r\n"
        return Array(out.utf8)
    }

    // MARK: - Headers

    /// `Name <address>`: the name as an atom phrase, a quoted string, or encoded-words when it is not ASCII.
    static func mailbox(_ address: String, name: String?) -> String {
        guard let name, !name.isEmpty else { return "<\(address)>" }
        if !name.unicodeScalars.allSatisfy({ $0.isASCII && $0.value >= 0x20 && $0.value < 0x7F }) {
            return encodedWords(name, firstLinePrefix: 6) + " <\(address)>"
        }
        let atext = name.unicodeScalars.allSatisfy { scalar in
            CharacterSet.alphanumerics.contains(scalar) || " !#$%&'*+-/=?^_`{|}~".unicodeScalars.contains(scalar)
        }
        if atext, !name.hasPrefix(" "), !name.hasSuffix(" ") { return "\(name) <\(address)>" }
        let quoted = name.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        return "\"\(quoted)\" <\(address)>"
    }

    /// Unstructured header text: as it is when it is printable ASCII without `=?`, else RFC 2047 encoded-words.
    static func encodeHeaderText(_ text: String, prefixLength: Int) -> String {
        let clean = text.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ")
        if clean.unicodeScalars.allSatisfy({ $0.isASCII && $0.value >= 0x20 && $0.value < 0x7F }), !clean.contains("=?") {
            return clean
        }
        return encodedWords(clean, firstLinePrefix: prefixLength)
    }

    /// `=?UTF-8?B?…?=` words of at most 75 characters, each holding whole characters (RFC 2047 §5), separated by
    /// folding white space.
    static func encodedWords(_ text: String, firstLinePrefix: Int) -> String {
        // 45 bytes → 60 base64 characters + 12 of `=?UTF-8?B?` and `?=` = 72 ≤ 75; the first word leaves room for the
        // header name so that the first line stays within 78 characters too.
        var words: [String] = []
        var chunk: [UInt8] = []
        for character in text {
            let bytes = Array(String(character).utf8)
            let limit = words.isEmpty ? max(6, (76 - firstLinePrefix - 12) / 4 * 3) : 45
            if chunk.count + bytes.count > limit, !chunk.isEmpty {
                words.append("=?UTF-8?B?" + Data(chunk).base64EncodedString() + "?=")
                chunk = []
            }
            chunk += bytes
        }
        if !chunk.isEmpty || words.isEmpty { words.append("=?UTF-8?B?" + Data(chunk).base64EncodedString() + "?=") }
        return words.joined(separator: "\r\n ")
    }

    /// Folds a header line longer than 78 characters at spaces (RFC 5322 §2.2.3). Lines already folded (encoded
    /// words) are kept; an unbreakable run stays as it is (the hard limit is 998).
    static func fold(_ line: String) -> String {
        guard line.count > 78, !line.contains("\r\n") else { return line }
        var result = ""
        var current = ""
        for word in line.split(separator: " ", omittingEmptySubsequences: false) {
            if current.isEmpty {
                current = String(word)
            } else if current.count + 1 + word.count > 78 {
                result += current + "\r\n"
                current = " " + word
            } else {
                current += " " + word
            }
        }
        return result + current
    }

    /// `Mon, 23 Nov 2026 10:00:00 +0000`.
    static func rfc5322Date(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(days[Int(parts.tm_wday)]), \(parts.tm_mday) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) +0000"
    }

    // MARK: - Bodies

    /// Quoted-printable (RFC 2045 §6.7) of UTF-8 text: line breaks become CRLF, `=` and non-printable bytes `=XX`,
    /// white space before a line break encoded, soft breaks keep every line at 76 characters or fewer.
    static func quotedPrintable(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count + text.utf8.count / 8)
        let normalized = text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        for (index, line) in normalized.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if index > 0 { out += [13, 10] }
            var length = 0
            let bytes = Array(line.utf8)
            for (position, byte) in bytes.enumerated() {
                let last = position == bytes.count - 1
                var encoded: [UInt8]
                if (byte == 32 || byte == 9) && last {
                    encoded = [61, hex[Int(byte >> 4)], hex[Int(byte & 15)]]
                } else if byte == 61 || byte < 32 && byte != 9 || byte > 126 {
                    encoded = [61, hex[Int(byte >> 4)], hex[Int(byte & 15)]]
                } else {
                    encoded = [byte]
                }
                // Room for a trailing `=` soft break unless this is the line's last piece.
                if length + encoded.count > (last ? 76 : 75) {
                    out += [61, 13, 10]
                    length = 0
                }
                out += encoded
                length += encoded.count
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A readable plain-text rendering of HTML for the text alternative: scripts and styles dropped, block ends and
    /// `<br>` as line breaks, links as `text (url)`, tags removed, common entities decoded.
    static func plainText(fromHTML html: String) -> String {
        var text = html
        for pattern in ["(?is)<(script|style|head)[^>]*>.*?</\\1>", "(?s)<!--.*?-->"] {
            text = text.replacingOccurrences(of: pattern, with: "", options: .regularExpression)
        }
        text = text.replacingOccurrences(
            of: "(?is)<a\\s[^>]*href\\s*=\\s*[\"']([^\"']*)[\"'][^>]*>(.*?)</a>", with: "$2 ($1)", options: .regularExpression)
        text = text.replacingOccurrences(of: "(?i)<br\\s*/?>", with: "\n", options: .regularExpression)
        text = text.replacingOccurrences(of: "(?i)</(p|div|h[1-6]|li|tr|table|ul|ol)>", with: "\n", options: .regularExpression)
        text = text.replacingOccurrences(of: "(?i)<li[^>]*>", with: "- ", options: .regularExpression)
        text = text.replacingOccurrences(of: "<[^>]*>", with: "", options: .regularExpression)
        for (entity, value) in [("&nbsp;", " "), ("&lt;", "<"), ("&gt;", ">"), ("&quot;", "\""), ("&#39;", "'"), ("&apos;", "'")] {
            text = text.replacingOccurrences(of: entity, with: value)
        }
        text = text.replacingOccurrences(of: "&amp;", with: "&")
        text = text.replacingOccurrences(of: "[ \\t]+\\n", with: "\n", options: .regularExpression)
        text = text.replacingOccurrences(of: "\\n{3,}", with: "\n\n", options: .regularExpression)
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    // MARK: - SMTP transparency

    /// The DATA section for `message` (RFC 5321 §4.5.2): CRLF line ends, a `.` doubled at the start of any line,
    /// and the `CRLF.CRLF` terminator.
    static func dotStuffed(_ message: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(message.count + 64)
        var lineStart = true
        var previous: UInt8 = 0
        for byte in message {
            if byte == 10, previous != 13 { out.append(13) }  // bare LF → CRLF
            if lineStart, byte == 46 { out.append(46) }
            out.append(byte)
            lineStart = byte == 10
            previous = byte
        }
        if !lineStart { out += [13, 10] }
        out += [46, 13, 10]
        return out
    }
}
