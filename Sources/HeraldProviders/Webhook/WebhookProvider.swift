import Crypto
import Foundation
import HeraldCore
import NIOCore

/// The four webhook providers of Novu's catalogue: `push-webhook`, `chat-webhook`, `email-webhook`, `generic-sms`.
/// Each POSTs the rendered message as JSON and signs the exact body bytes:
///
/// * `X-Herald-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secretKey, "<t>.<body>")>` — the timestamp resists
///   replay (`docs/providers.md` §Webhooks);
/// * `X-Novu-Signature: <hex HMAC-SHA256(secretKey, body)>` — what Novu's push-webhook sends, for receivers written
///   for Novu.
///
/// Push, email and SMS post to the integration's `webhookUrl` with the device token, address or number in the body;
/// chat posts to the subscriber's own `webhookUrl` (the target).
public struct WebhookProvider: PerMessageProvider {
    public let providerId: String
    public var batchSize: Int { ProviderCatalog.batchLimit(providerId) }
    public let concurrency = 8
    let url: String?
    let secretKey: String?
    let transport: HTTPTransport
    let clock: any WallClock

    public static let providerIds: Set<String> = ["push-webhook", "chat-webhook", "email-webhook", "generic-sms"]

    public init(integration: Integration, transport: HTTPTransport, clock: any WallClock = SystemWallClock()) throws {
        providerId = integration.providerId
        url = integration.credentials.string("webhookUrl") ?? integration.credentials.string("baseUrl")
        secretKey = integration.credentials.string("secretKey")
        self.transport = transport
        self.clock = clock
        if providerId != "chat-webhook" {
            guard let url else {
                throw HeraldError(.configuration, "\(providerId) integration \(integration.identifier) has no webhookUrl")
            }
            try Self.checkURL(url)
        }
    }

    public func send(_ message: OutboundMessage) async -> DeliveryOutcome {
        let destination: String
        if providerId == "chat-webhook" {
            destination = message.target.revealed
            do { try Self.checkURL(destination) } catch { return .invalidToken(reason: "webhook URL is not http(s)") }
        } else {
            destination = url ?? ""
        }
        let body = ByteBuffer(string: Self.body(for: message, providerId: providerId).jsonString())
        var headers: [(String, String)] = [
            ("content-type", "application/json"), ("user-agent", "Herald"), ("x-herald-delivery", message.deliveryId),
        ]
        if let secretKey {
            let timestamp = String(Int64(clock.now().timeIntervalSince1970))
            headers += WebhookSignature.headers(secret: secretKey, timestamp: timestamp, body: body.readableBytesView)
        }
        do {
            let response = try await transport.post(destination, headers: headers, body: body)
            return HTTPOutcome.classify(response, now: clock.now())
        } catch {
            return HTTPOutcome.transportFailure(error)
        }
    }

    /// The JSON posted for a message. Push follows Novu's push-webhook body (`target`, `title`, `content`,
    /// `overrides`, `payload` with `subscriber` and `step`); the other channels use their own field names.
    static func body(for message: OutboundMessage, providerId: String) -> JSONValue {
        let content = message.content
        var body: [String: JSONValue] = [
            "deliveryId": .string(message.deliveryId), "channel": .string(content.channel.rawValue), "content": .string(content.body),
            "overrides": content.overrides, "payload": content.context,
        ]
        switch providerId {
        case "push-webhook":
            body["target"] = .array([.string(message.target.revealed)])
            body["title"] = content.title.map(JSONValue.string) ?? .null
            body["data"] = .object(content.data.mapValues(JSONValue.string))
            if let image = content.image { body["image"] = .string(image) }
            if let sound = content.sound { body["sound"] = .string(sound) }
            if let badge = content.badge { body["badge"] = .number(Double(badge)) }
            if let ttl = content.ttl { body["ttl"] = .number(Double(ttl)) }
            if let priority = content.priority { body["priority"] = .string(priority) }
            if let collapseKey = content.collapseKey { body["collapseKey"] = .string(collapseKey) }
        case "email-webhook":
            body["to"] = .array([.string(message.target.revealed)])
            body["subject"] = content.title.map(JSONValue.string) ?? .null
            body["html"] = .string(content.body)
            if let text = content.text { body["text"] = .string(text) }
            if let from = content.from { body["from"] = .string(from) }
            if let senderName = content.senderName { body["senderName"] = .string(senderName) }
        case "generic-sms":
            body["to"] = .string(message.target.revealed)
        default:  // chat-webhook
            body["text"] = .string(content.body)
        }
        return .object(body)
    }

    static func checkURL(_ url: String) throws {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
            scheme == "https" || scheme == "http",
            let host = components.host, !host.isEmpty
        else {
            throw HeraldError(.configuration, "webhook URLs must be absolute http(s) URLs")
        }
    }
}

/// Signing and checking of webhook bodies.
public enum WebhookSignature {
    /// The signature headers for `body` sent at `timestamp`.
    public static func headers(secret: String, timestamp: String, body: some Sequence<UInt8>) -> [(String, String)] {
        let key = SymmetricKey(data: Data(secret.utf8))
        let bytes = Array(body)
        var timed = HMAC<SHA256>(key: key)
        timed.update(data: Data(timestamp.utf8))
        timed.update(data: Data(".".utf8))
        timed.update(data: bytes)
        let novu = HMAC<SHA256>.authenticationCode(for: bytes, using: key)
        return [
            ("x-herald-signature", "t=\(timestamp),v1=\(Hex.encode(Array(timed.finalize())))"),
            ("x-novu-signature", Hex.encode(Array(novu))),
        ]
    }

    /// Novu's `X-Novu-Signature` for `body`: hex HMAC-SHA256 of the body alone.
    public static func novuSignature(secret: String, body: [UInt8]) -> String {
        Hex.encode(Array(HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Data(secret.utf8)))))
    }

    /// Whether `header` (`t=…,v1=…`) signs `body` with `secret`. Constant-time comparison.
    public static func verify(header: String, secret: String, body: [UInt8]) -> Bool {
        var timestamp: String?
        var signature: String?
        for part in header.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1).map(String.init)
            guard pair.count == 2 else { continue }
            if pair[0] == "t" { timestamp = pair[1] } else if pair[0] == "v1" { signature = pair[1] }
        }
        guard let timestamp, let signature, let expected = Hex.decode(signature) else { return false }
        let message = Array(timestamp.utf8) + Array(".".utf8) + body
        return HMAC<SHA256>.isValidAuthenticationCode(expected, authenticating: message, using: SymmetricKey(data: Data(secret.utf8)))
    }
}
