import Crypto
import Foundation
import HeraldCore
import HeraldProviders
import Synchronization

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The receipts real providers post back after accepting a message, posted by the email and SMS emulators so that
/// `herald dev` shows the whole loop (docs/webhooks.md §Provider receipts): Twilio's signed status callback to the
/// message's `StatusCallback`; SendGrid's (ECDSA), Resend's (Svix), Mailgun's and Postmark's webhook events to the URL configured for the
/// provider (`POST /_control/receipts`), signed with the secret configured beside it. A message to an address or
/// number that says so bounces (`bounce@…`, a number ending in `0000`); any other is delivered, and an email is then
/// opened. Posted a second after the message, so Herald has recorded it.
public final class ReceiptPoster: Sendable {
    struct Target: Sendable {
        var url: String
        var secret: String
    }
    private let targets = Mutex<[String: Target]>([:])
    private let observers = Mutex<[@Sendable (String, String, String, Int) -> Void]>([])
    /// How long after the message its receipts go out.
    let delay: Duration

    public init(delay: Duration = .seconds(1)) {
        self.delay = delay
    }

    /// Where `provider`'s webhook events go, and the secret that signs them (Resend: `whsec_…`; Mailgun: the signing
    /// key; Postmark: the basic-auth `user:password`).
    public func configure(provider: String, url: String, secret: String) {
        targets.withLock { $0[provider] = Target(url: url, secret: secret) }
    }

    /// Called for every receipt posted: provider, recipient, event, HTTP status of Herald's answer.
    public func observe(_ observer: @escaping @Sendable (String, String, String, Int) -> Void) {
        observers.withLock { $0.append(observer) }
    }

    /// A SendGrid signing key pair: the private key (what ``configure(provider:url:secret:)`` takes for `sendgrid`) and
    /// the verification key Herald checks with (base64 DER, the integration's `inboundWebhookSigningKey`).
    public static func sendGridKeyPair() -> (secret: String, verificationKey: String) {
        let key = P256.Signing.PrivateKey()
        return (key.rawRepresentation.base64EncodedString(), key.publicKey.derRepresentation.base64EncodedString())
    }

    static func bounces(_ address: String) -> Bool {
        address.lowercased().hasPrefix("bounce") || address.hasSuffix("0000")
    }

    /// Posts the receipts of an accepted email, if its provider's webhook is configured.
    func email(provider: String, to: String, deliveryId: String?, messageId: String) {
        guard let target = targets.withLock({ $0[provider] }), let deliveryId else { return }
        let events = Self.bounces(to) ? ["bounce"] : ["delivered", "opened"]
        Task {
            try? await Task.sleep(for: delay)
            for event in events {
                guard
                    let (headers, body) = Self.emailEvent(
                        provider, event, to: to, deliveryId: deliveryId, messageId: messageId, secret: target.secret)
                else { continue }
                await post(provider: provider, to: to, event: event, url: target.url, headers: headers, body: body)
            }
        }
    }

    static func emailEvent(
        _ provider: String, _ event: String, to: String, deliveryId: String, messageId: String, secret: String
    ) -> (headers: [(String, String)], body: [UInt8])? {
        let now = Int64(Date().timeIntervalSince1970)
        switch provider {
        case "resend":
            let type = ["delivered": "email.delivered", "opened": "email.opened", "bounce": "email.bounced"][event]!
            var data: [String: JSONValue] = [
                "email_id": .string(messageId), "to": [.string(to)], "tags": ["herald_delivery": .string(deliveryId)],
            ]
            if event == "bounce" { data["bounce"] = ["type": "Permanent", "subType": "General", "message": "the mailbox does not exist"] }
            let body = Array(
                JSONValue.object(["type": .string(type), "created_at": .string(Date().iso8601Milliseconds), "data": .object(data)])
                    .jsonString().utf8)
            let id = "msg_" + UUID().uuidString.lowercased()
            guard secret.hasPrefix("whsec_"), let key = Data(base64Encoded: String(secret.dropFirst(6))) else { return nil }
            var hmac = HMAC<SHA256>(key: SymmetricKey(data: key))
            hmac.update(data: Array("\(id).\(now).".utf8))
            hmac.update(data: body)
            let signature = "v1," + Data(hmac.finalize()).base64EncodedString()
            return (
                [("content-type", "application/json"), ("svix-id", id), ("svix-timestamp", "\(now)"), ("svix-signature", signature)], body
            )
        case "sendgrid":
            guard let keyBytes = Data(base64Encoded: secret), let key = try? P256.Signing.PrivateKey(rawRepresentation: keyBytes) else {
                return nil
            }
            var record: [String: JSONValue] = [
                "email": .string(to), "event": .string(event == "opened" ? "open" : event), "herald_delivery": .string(deliveryId),
                "sg_message_id": .string(messageId), "sg_event_id": .string(UUID().uuidString.lowercased()),
                "timestamp": .number(Double(now)),
            ]
            if event == "bounce" {
                record["type"] = "bounce"
                record["reason"] = "550 5.1.1 the mailbox does not exist"
            }
            let body = Array(JSONValue.array([.object(record)]).jsonString().utf8)
            let timestamp = "\(now)"
            guard let signature = try? key.signature(for: Array(timestamp.utf8) + body) else { return nil }
            return (
                [
                    ("content-type", "application/json"),
                    ("x-twilio-email-event-webhook-signature", signature.derRepresentation.base64EncodedString()),
                    ("x-twilio-email-event-webhook-timestamp", timestamp),
                ], body
            )
        case "mailgun":
            let token = UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
            let mac = HMAC<SHA256>.authenticationCode(for: Array("\(now)\(token)".utf8), using: SymmetricKey(data: Array(secret.utf8)))
            var eventData: [String: JSONValue] = [
                "event": .string(event == "bounce" ? "failed" : event), "recipient": .string(to),
                "user-variables": ["herald_delivery": .string(deliveryId)], "message": ["headers": ["message-id": .string(messageId)]],
            ]
            if event == "bounce" {
                eventData["severity"] = "permanent"
                eventData["reason"] = "bounce"
                eventData["delivery-status"] = ["message": "the mailbox does not exist", "code": 550]
            }
            let body: JSONValue = [
                "signature": ["timestamp": .string("\(now)"), "token": .string(token), "signature": .string(Hex.encode(Data(mac)))],
                "event-data": .object(eventData),
            ]
            return ([("content-type", "application/json")], Array(body.jsonString().utf8))
        case "postmark":
            var record: [String: JSONValue] = [
                "RecordType": .string(["delivered": "Delivery", "opened": "Open", "bounce": "Bounce"][event]!),
                "MessageID": .string(messageId),
                "Recipient": .string(to), "Email": .string(to), "Metadata": ["herald_delivery": .string(deliveryId)],
            ]
            if event == "bounce" {
                record["Type"] = "HardBounce"
                record["Description"] = "The server was unable to deliver your message"
            }
            let authorization = "Basic " + Data(secret.utf8).base64EncodedString()
            return (
                [("content-type", "application/json"), ("authorization", authorization)], Array(JSONValue.object(record).jsonString().utf8)
            )
        default:
            return nil
        }
    }

    /// Posts Twilio's status callback of an accepted SMS to the `StatusCallback` the request named, signed with the
    /// account's auth token.
    func twilio(callback: String, token: String, accountSid: String, messageSid: String, to: String, from: String) {
        let bounce = Self.bounces(to)
        var parameters: [(String, String)] = [
            ("AccountSid", accountSid), ("MessageSid", messageSid), ("SmsSid", messageSid), ("To", to), ("From", from),
            ("MessageStatus", bounce ? "undelivered" : "delivered"), ("SmsStatus", bounce ? "undelivered" : "delivered"),
            ("ApiVersion", "2010-04-01"),
        ]
        if bounce { parameters.append(("ErrorCode", "30006")) }
        let signature = TwilioSignature.compute(token: token, url: callback, parameters: parameters)
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
        let body = Array(
            parameters.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" }.joined(separator: "&").utf8)
        Task {
            try? await Task.sleep(for: delay)
            await post(
                provider: "twilio", to: to, event: bounce ? "undelivered" : "delivered", url: callback,
                headers: [("content-type", "application/x-www-form-urlencoded"), ("x-twilio-signature", signature)], body: body)
        }
    }

    private func post(provider: String, to: String, event: String, url: String, headers: [(String, String)], body: [UInt8]) async {
        guard let target = URL(string: url) else { return }
        var request = URLRequest(url: target)
        request.httpMethod = "POST"
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        request.httpBody = Data(body)
        let status = (try? await URLSession.shared.data(for: request)).map { ($0.1 as? HTTPURLResponse)?.statusCode ?? 0 } ?? 0
        for observer in observers.withLock({ $0 }) { observer(provider, to, event, status) }
    }
}
