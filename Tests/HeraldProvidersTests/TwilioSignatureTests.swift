import Foundation
import HeraldProviders
import Testing

/// Twilio's request signature against the vectors of its documentation and SDKs (docs/webhooks.md §Provider receipts).
@Suite("Twilio request signatures")
struct TwilioSignatureTests {
    static let url = "https://mycompany.com/myapp.php?foo=1&bar=2"

    @Test("the documented vector; several values of one name are sorted and appended once each")
    func vectors() {
        let fields = [
            ("CallSid", "CA1234567890ABCDE"), ("Caller", "+14158675309"), ("Digits", "1234"), ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]
        #expect(TwilioSignature.compute(token: "12345", url: Self.url, parameters: fields) == "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
        #expect(TwilioSignature.isValid("RSOYDt4T1cUTdK1PDd93/VVr8B8=", token: "12345", url: Self.url, parameters: fields))
        #expect(!TwilioSignature.isValid("RSOYDt4T1cUTdK1PDd93/VVr8B8=", token: "12346", url: Self.url, parameters: fields))
        #expect(!TwilioSignature.isValid("RSOYDt4T1cUTdK1PDd93/VVr8B8=", token: "12345", url: Self.url + "&x=1", parameters: fields))
        let repeated = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234"), ("Digits", "1234")]
        #expect(TwilioSignature.compute(token: "12345", url: Self.url, parameters: repeated) == "IK+Dwps556ElfBT0I3Rgjkr1wJU=")
    }

    @Test("form bodies decode + as space and percent escapes")
    func form() {
        #expect(
            TwilioSignature.formFields("To=%2B15550000001&Body=Hello+there&Empty=&Flag").map { [$0.0, $0.1] } == [
                ["To", "+15550000001"], ["Body", "Hello there"], ["Empty", ""], ["Flag", ""],
            ])
    }
}

/// SendGrid's signed Event Webhook against the test vector of its Go library (docs/webhooks.md §Provider receipts).
@Suite("SendGrid event webhook signatures")
struct SendGridSignatureTests {
    static let key =
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA=="
    static let signature = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0="
    static let body = Array(#"{"category":"example_payload","event":"test_event","message_id":"message_id"}"#.utf8)

    @Test("the vector verifies; an altered body, another timestamp or an empty one do not")
    func vector() {
        #expect(SendGridSignature.isValid(signature: Self.signature, timestamp: "1588788367", body: Self.body, verificationKey: Self.key))
        #expect(
            !SendGridSignature.isValid(
                signature: Self.signature, timestamp: "1588788367", body: Self.body + [32], verificationKey: Self.key))
        #expect(
            !SendGridSignature.isValid(
                signature: Self.signature, timestamp: "invalid timestamp", body: Self.body, verificationKey: Self.key))
        #expect(!SendGridSignature.isValid(signature: Self.signature, timestamp: "", body: Self.body, verificationKey: Self.key))
        #expect(!SendGridSignature.isValid(signature: "bm90", timestamp: "1588788367", body: Self.body, verificationKey: Self.key))
    }
}

/// Mailgun's webhook signature against the reference's worked example (docs/webhooks.md §Provider receipts).
@Suite("Mailgun webhook signatures")
struct MailgunSignatureTests {
    @Test("the worked example; another key, timestamp or token does not verify")
    func vector() {
        let token = "e0b5477167110d68991efc6b9f89f0a11066af27834600e123"
        let expected = "3246c9269a07fd5b8bc7acba38c28e1fd4152af05ece3f56374aafe3ac892ac2"
        #expect(MailgunSignature.compute(signingKey: "my-signing-key", timestamp: "1770920772", token: token) == expected)
        #expect(MailgunSignature.isValid(expected, signingKey: "my-signing-key", timestamp: "1770920772", token: token))
        #expect(!MailgunSignature.isValid(expected, signingKey: "other-key", timestamp: "1770920772", token: token))
        #expect(!MailgunSignature.isValid(expected, signingKey: "my-signing-key", timestamp: "1770920773", token: token))
        #expect(!MailgunSignature.isValid(expected, signingKey: "my-signing-key", timestamp: "1770920772", token: ""))
    }
}
