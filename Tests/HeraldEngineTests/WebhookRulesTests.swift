import Foundation
import HeraldCore
import Testing

@testable import HeraldEngine

/// The pure parts of status webhooks (docs/webhooks.md): signing, subscription patterns, retry timing.
@Suite("Status webhook rules")
struct WebhookRulesTests {
    @Test("signatures match the Standard Webhooks specification's test vector")
    func signatureVector() {
        let body = Array(#"{"test": 2432232314}"#.utf8)
        let signature = WebhookSigner.signature(
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330, body: body)
        #expect(signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        let secret = WebhookSigner.newSecret()
        #expect(WebhookSigner.isValidSecret(secret) && secret.hasPrefix("whsec_") && secret != WebhookSigner.newSecret())
    }

    @Test(
        "only permanent refusals of the recipient alone suppress an address",
        arguments: [
            ("twilio", "Twilio 400 21610: Attempt to send to unsubscribed recipient", true),
            ("twilio", "Twilio 400 21211: The 'To' number is not a valid phone number", true),
            ("twilio", "Twilio 400 21612: The 'To' phone number is not currently reachable via SMS from this sender", false),
            ("twilio", "not an E.164 phone number", false),
            ("nexmo", "Vonage status 6: Unroutable message", true),
            ("nodemailer", "SMTP RCPT TO: 550 5.1.1 <ann@example.com>: Recipient address rejected: User unknown", true),
            ("nodemailer", "SMTP RCPT TO: 550 Relaying denied", false),
            ("email-webhook", "HTTP 404", false),
            ("generic-sms", "HTTP 410", false),
        ])
    func suppressionRules(provider: String, reason: String, suppressed: Bool) {
        #expect(SuppressionRules.isPermanentRecipientRefusal(providerId: provider, reason: reason) == suppressed)
    }

    @Test("after a rotation both secrets sign until the overlap ends, the new one first")
    func rotation() {
        let now = Date(timeIntervalSince1970: 1_000_000)
        var endpoint = WebhookEndpoint(
            id: "e", environmentId: "env", url: "https://x.example", eventTypes: ["*"],
            secret: Secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            createdAt: now, updatedAt: now)
        #expect(endpoint.signingSecrets(at: now).map(\.revealed) == ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])
        endpoint.previousSecret = endpoint.secret
        endpoint.previousSecretExpiresAt = now.addingTimeInterval(86400)
        endpoint.secret = Secret(WebhookSigner.newSecret())
        let secrets = endpoint.signingSecrets(at: now).map(\.revealed)
        #expect(secrets == [endpoint.secret.revealed, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])
        let header = WebhookSigner.signature(
            secrets: secrets, id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330, body: Array(#"{"test": 2432232314}"#.utf8))
        #expect(header.split(separator: " ").last == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        #expect(header.split(separator: " ").count == 2)
        #expect(endpoint.signingSecrets(at: now.addingTimeInterval(86401)).count == 1)
    }

    @Test(
        "event types match exact names, prefix.* and *",
        arguments: [
            ("*", "message.sent", true), ("message.*", "message.dead", true), ("message.*", "device.removed", false),
            ("message.sent", "message.sent", true), ("message.sent", "message.failed", false), ("messages.*", "message.sent", false),
        ])
    func patterns(pattern: String, type: String, matches: Bool) {
        #expect(WebhookEndpoint.pattern(pattern, matches: type) == matches)
    }

    @Test("subscription entries must name a known type or prefix")
    func validPatterns() {
        for valid in ["*", "message.*", "device.*", "message.sent", "notification.completed", "push.*", "subscriber.unsubscribed"] {
            #expect(WebhookEndpoint.isValidPattern(valid))
        }
        for invalid in ["", "message", "message.bogus", "m.*", ".*", "*.*", "device.removal_withheld"] {
            #expect(!WebhookEndpoint.isValidPattern(invalid), "\(invalid)")
        }
    }

    @Test("a workflow filter passes only events of its workflows")
    func workflowFilter() {
        let endpoint = WebhookEndpoint(
            id: "e", environmentId: "env", url: "https://x.example", eventTypes: ["message.*"], workflowIds: ["order-shipped"],
            secret: Secret("whsec_x"), createdAt: Date(), updatedAt: Date())
        #expect(endpoint.accepts(type: "message.sent", workflowId: "order-shipped"))
        #expect(!endpoint.accepts(type: "message.sent", workflowId: "other"))
        #expect(!endpoint.accepts(type: "message.sent", workflowId: nil))
        #expect(!endpoint.accepts(type: "notification.completed", workflowId: "order-shipped"))
    }

    @Test("retries follow the schedule with ±20 % jitter, honour Retry-After up to its cap")
    func retryTiming() {
        let policy = WebhookRetryPolicy()
        let now = Date(timeIntervalSince1970: 1_000_000)
        var low = RandomSource.constant(0)
        var high = RandomSource.constant(.max)
        #expect(policy.nextAttempt(after: 1, retryAfter: nil, now: now, random: &low).timeIntervalSince(now) == 4)
        #expect(abs(policy.nextAttempt(after: 1, retryAfter: nil, now: now, random: &high).timeIntervalSince(now) - 6) < 0.001)
        #expect(policy.nextAttempt(after: 3, retryAfter: nil, now: now, random: &low).timeIntervalSince(now) == 96)
        // Past the schedule's end the last delay repeats.
        #expect(policy.nextAttempt(after: 40, retryAfter: nil, now: now, random: &low).timeIntervalSince(now) == 28800 * 0.8)
        #expect(policy.nextAttempt(after: 1, retryAfter: .seconds(120), now: now, random: &low).timeIntervalSince(now) == 120)
        #expect(policy.nextAttempt(after: 1, retryAfter: .seconds(86400), now: now, random: &low).timeIntervalSince(now) == 3600)
    }
}
