import Foundation
import HeraldCore
import Testing

@testable import HeraldProviders
@testable import HeraldSimulator

/// The message format and reply rules of the SMTP client, checked against the RFCs' own rules and against the
/// simulator's independent parser.
@Suite struct SMTPFormatTests {
    @Test func quotedPrintableFollowsRFC2045() {
        #expect(MIMEMessage.quotedPrintable("a=b") == "a=3Db")
        #expect(MIMEMessage.quotedPrintable("café") == "caf=C3=A9")
        // White space at the end of a line is encoded, inside a line it is not.
        #expect(MIMEMessage.quotedPrintable("a b \nc\t") == "a b=20\r\nc=09")
        // Soft breaks keep every line within 76 characters, and decoding restores the text exactly.
        let long = String(repeating: "é and = and plain text ", count: 30)
        let encoded = MIMEMessage.quotedPrintable(long)
        #expect(encoded.components(separatedBy: "\r\n").allSatisfy { $0.utf8.count <= 76 })
        #expect(String(decoding: ParsedMail.decodeQuotedPrintable(encoded), as: UTF8.self) == long)
    }

    @Test func encodedWordsHoldWholeCharactersWithinLimits() {
        let subject = String(repeating: "Grüße 👋🏽 — ", count: 12)
        let encoded = MIMEMessage.encodeHeaderText(subject, prefixLength: 9)
        let lines = ("Subject: " + encoded).components(separatedBy: "\r\n")
        #expect(lines.allSatisfy { $0.utf8.count <= 78 }, "\(lines.map(\.count))")
        for word in encoded.split(whereSeparator: \.isWhitespace) {
            #expect(word.count <= 75 && word.hasPrefix("=?UTF-8?B?") && word.hasSuffix("?="))
            let payload = word.dropFirst(10).dropLast(2)
            #expect(String(validating: Data(base64Encoded: String(payload))!, as: UTF8.self) != nil)
        }
        #expect(ParsedMail.decodeEncodedWords(encoded) == subject)
        // ASCII stays readable; a CR/LF in a subject cannot start a new header.
        #expect(MIMEMessage.encodeHeaderText("Plain", prefixLength: 9) == "Plain")
        #expect(MIMEMessage.encodeHeaderText("Hi\r\nBcc: victim@example.com", prefixLength: 9) == "Hi  Bcc: victim@example.com")
    }

    @Test func mailboxesQuoteOrEncodeNames() {
        #expect(MIMEMessage.mailbox("a@x.io", name: nil) == "<a@x.io>")
        #expect(MIMEMessage.mailbox("a@x.io", name: "Herald Team") == "Herald Team <a@x.io>")
        #expect(MIMEMessage.mailbox("a@x.io", name: "Herald, Inc. \"HQ\"") == #""Herald, Inc. \"HQ\"" <a@x.io>"#)
        #expect(ParsedMail.decodeEncodedWords(MIMEMessage.mailbox("a@x.io", name: "Zoë")) == "Zoë <a@x.io>")
    }

    @Test func dotStuffingAndTerminator() {
        let stuffed = MIMEMessage.dotStuffed(Array(".start\r\nmid\r\n.\r\n..two\nbare".utf8))
        #expect(String(decoding: stuffed, as: UTF8.self) == "..start\r\nmid\r\n..\r\n...two\r\nbare\r\n.\r\n")
    }

    @Test func renderedMessageParsesCleanly() {
        let message = MIMEMessage(
            fromAddress: "hello@herald.local", fromName: "Équipe", to: "ann@example.com",
            subject: "Ünïcode and a very long subject line "
                + String(repeating: "word ", count: 20), html: "<p>=Hi=</p>\n" + String(repeating: "x", count: 300), text: nil,
            messageId: "<d1@herald.local>", date: Date(timeIntervalSince1970: 1_795_000_000), replyTo: "support@herald.local",
            extraHeaders: [("X-Campaign", "spring"), ("Bcc", "sneaky@example.com"), ("Content-Type", "text/plain")])
        let mail = ParsedMail(raw: message.rendered())
        #expect(mail.violations.isEmpty, "\(mail.violations)")
        #expect(mail.header("Date") == "Wed, 18 Nov 2026 11:06:40 +0000")
        #expect(mail.header("Reply-To") == "<support@herald.local>" && mail.header("X-Campaign") == "spring")
        #expect(mail.header("Bcc") == nil, "overrides cannot add structural headers")
        #expect(mail.headers.filter { $0.name == "Content-Type" }.count == 1)
        #expect(mail.html == "<p>=Hi=</p>\r\n" + String(repeating: "x", count: 300))
        #expect(mail.text == "=Hi=\r\n\r\n" + String(repeating: "x", count: 300))
    }

    @Test func repliesMapToOutcomes() {
        func outcome(_ line: String, _ stage: SMTPProvider.Stage) -> String {
            let code = Int(line.prefix(3))!
            let reply = SMTPReply(code: code, lines: [String(line.dropFirst(4))])
            return switch SMTPProvider.classify(reply, stage: stage) {
            case .delivered: "delivered"
            case .invalidToken: "invalidToken"
            case .retryLater: "retryLater"
            case .badRequest: "badRequest"
            case .authConfig: "authConfig"
            }
        }
        let table: [(String, SMTPProvider.Stage, String)] = [
            ("421 4.7.0 Try again later, closing connection", .mail, "retryLater"),
            ("451 4.3.0 Local error", .data, "retryLater"),
            ("452 4.2.2 Mailbox full", .rcpt, "retryLater"),
            ("550 5.1.1 User unknown", .rcpt, "invalidToken"),
            ("550 5.1.2 Bad destination system", .rcpt, "invalidToken"),
            ("553 5.1.3 Bad address syntax", .rcpt, "invalidToken"),
            ("550 5.2.1 Mailbox disabled", .rcpt, "invalidToken"),
            ("550 User unknown", .rcpt, "invalidToken"),
            ("552 5.2.2 Mailbox full", .rcpt, "badRequest"),
            ("553 5.1.8 Sender domain does not exist", .mail, "authConfig"),
            ("550 5.7.1 Relaying denied", .rcpt, "authConfig"),
            ("530 5.7.0 Authentication required", .mail, "authConfig"),
            ("554 5.7.1 Message rejected as spam", .data, "badRequest"),
            ("552 5.3.4 Message too big", .data, "badRequest"),
            ("554 Transaction failed", .data, "badRequest"),
        ]
        for (line, stage, expected) in table { #expect(outcome(line, stage) == expected, "\(line)") }
        #expect(SMTPProvider.queueId(SMTPReply(code: 250, lines: ["2.0.0 Ok: queued as 4F1A2B"])) == "4F1A2B")
        #expect(SMTPProvider.queueId(SMTPReply(code: 250, lines: ["2.0.0 <id@mx> accepted"])) == "<id@mx> accepted")
    }

    @Test func addressesCannotBreakOutOfTheEnvelope() {
        #expect(SMTPProvider.isAddress("ann@example.com"))
        for hostile in ["ann@example.com>\r\nRCPT TO:<x@y.z", "a b@x.io", "@x.io", "ann@", "<a@x.io>", "a@x.io,b@y.io"] {
            #expect(!SMTPProvider.isAddress(hostile), "\(hostile)")
        }
    }
}
