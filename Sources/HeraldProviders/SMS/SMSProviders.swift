import Foundation
import HeraldCore
import NIOCore

/// Twilio Programmable Messaging (`docs/providers.md` §Twilio): a form-encoded `POST …/Accounts/{sid}/Messages.json`
/// with basic auth (`accountSid`:`token`), `To`, `From` (or `MessagingServiceSid` when `from` is an `MG…` id) and
/// `Body` (≤ 1,600 characters). Error codes map to outcomes: 21211/21614 (not a valid mobile number) and 21610 (the
/// recipient replied STOP) are `invalidToken` — the engine marks the address, it is not retried — and 21408/21606/
/// 21212/20003 are configuration problems.
public struct TwilioProvider: PerMessageProvider {
    public let providerId = "twilio"
    public var batchSize: Int { ProviderCatalog.batchLimit(providerId) }
    public let concurrency = 8
    let endpoint: String
    let authorization: String
    let from: String
    let transport: HTTPTransport
    let clock: any WallClock
    /// Herald's receipt route for this integration (docs/webhooks.md §Provider receipts), when Herald knows its public
    /// URL: each message's `StatusCallback`, with the delivery id, so Twilio's status callbacks find their delivery.
    let receiptURL: String?

    public init(
        integration: Integration, transport: HTTPTransport, clock: any WallClock = SystemWallClock(), publicURL: String? = nil
    ) throws {
        receiptURL = publicURL.map {
            $0 + "/v2/inbound-webhooks/delivery-providers/\(integration.environmentId)/\(integration.id)"
        }
        let sid = try PushSupport.required(integration, "accountSid")
        let token = try PushSupport.required(integration, "token")
        from = try PushSupport.required(integration, "from")
        endpoint = try PushSupport.baseURL(integration, default: "https://api.twilio.com") + "/2010-04-01/Accounts/\(sid)/Messages.json"
        authorization = "Basic " + Data("\(sid):\(token)".utf8).base64EncodedString()
        self.transport = transport
        self.clock = clock
    }

    public func send(_ message: OutboundMessage) async -> DeliveryOutcome {
        let to = message.target.revealed
        guard PhoneNumber.isE164(to) else { return .invalidToken(reason: "not an E.164 phone number") }
        guard message.content.body.count <= 1600 else { return .badRequest(reason: "SMS body over 1600 characters") }
        let sender = message.content.from ?? from
        var fields = [("To", to), (sender.hasPrefix("MG") ? "MessagingServiceSid" : "From", sender), ("Body", message.content.body)]
        let overrides = message.content.overrides.objectValue ?? [:]
        for (key, value) in overrides {
            if let text = value.stringValue, !["To", "Body"].contains(key) { fields.append((key, text)) }
        }
        if let receiptURL, overrides["StatusCallback"] == nil {
            fields.append(("StatusCallback", receiptURL + "?delivery=" + message.deliveryId))
        }
        do {
            let response = try await transport.post(
                endpoint, headers: [("authorization", authorization), ("content-type", "application/x-www-form-urlencoded")],
                body: PushSupport.form(fields))
            return Self.classify(response, now: clock.now())
        } catch {
            return HTTPOutcome.transportFailure(error)
        }
    }

    static func classify(_ response: HTTPTransport.Response, now: Date) -> DeliveryOutcome {
        let object = PushSupport.json(response)
        if (200..<300).contains(response.status) { return .delivered(providerMessageId: object["sid"]?.stringValue) }
        let code: Int? = if case .number(let number)? = object["code"] { Int(number) } else { nil }
        let reason = "Twilio \(response.status) \(code.map(String.init) ?? ""): \(object["message"]?.stringValue ?? "")"
        switch (response.status, code) {
        case (_, 21211?), (_, 21614?), (_, 21610?), (_, 21612?):
            return .invalidToken(reason: reason)
        case (_, 21408?), (_, 21606?), (_, 21212?), (_, 20003?), (401, _), (403, _):
            return .authConfig(reason: reason)
        case (429, _), (_, 20429?):
            return .retryLater(reason: reason, after: PushSupport.retryAfter(response, now: now))
        case (500..<600, _):
            return .retryLater(reason: reason, after: PushSupport.retryAfter(response, now: now))
        default:
            return .badRequest(reason: reason)
        }
    }
}

/// Vonage (Nexmo) SMS API: form-encoded `POST /sms/json` with `api_key`, `api_secret`, `from`, `to` (digits, no `+`)
/// and `text`. The answer is HTTP 200 with a per-message `status`: 0 sent, 1 throttled and 5 internal error retried,
/// 4/8/9/15/29 configuration problems, 6/7 (barred or invalid destination) `invalidToken`, others bad requests.
public struct NexmoProvider: PerMessageProvider {
    public let providerId = "nexmo"
    public var batchSize: Int { ProviderCatalog.batchLimit(providerId) }
    public let concurrency = 8
    let endpoint: String
    let apiKey: String
    let apiSecret: String
    let from: String
    let transport: HTTPTransport
    let clock: any WallClock

    public init(integration: Integration, transport: HTTPTransport, clock: any WallClock = SystemWallClock()) throws {
        apiKey = try PushSupport.required(integration, "apiKey")
        apiSecret = try PushSupport.required(integration, "secretKey")
        from = try PushSupport.required(integration, "from")
        endpoint = try PushSupport.baseURL(integration, default: "https://rest.nexmo.com") + "/sms/json"
        self.transport = transport
        self.clock = clock
    }

    public func send(_ message: OutboundMessage) async -> DeliveryOutcome {
        let to = message.target.revealed
        guard PhoneNumber.isE164(to) else { return .invalidToken(reason: "not an E.164 phone number") }
        let fields = [
            ("api_key", apiKey), ("api_secret", apiSecret), ("from", message.content.from ?? from), ("to", String(to.dropFirst())),
            ("text", message.content.body),
        ]
        do {
            let response = try await transport.post(
                endpoint, headers: [("content-type", "application/x-www-form-urlencoded")], body: PushSupport.form(fields))
            return Self.classify(response, now: clock.now())
        } catch {
            return HTTPOutcome.transportFailure(error)
        }
    }

    static func classify(_ response: HTTPTransport.Response, now: Date) -> DeliveryOutcome {
        guard response.status == 200 else {
            return response.status == 401 ? .authConfig(reason: "Vonage 401") : HTTPOutcome.classify(response, now: now)
        }
        let first = PushSupport.json(response)["messages"]?.arrayValue?.first?.objectValue ?? [:]
        let status = first["status"]?.stringValue ?? "-1"
        let reason = "Vonage status \(status): \(first["error-text"]?.stringValue ?? "")"
        switch status {
        case "0": return .delivered(providerMessageId: first["message-id"]?.stringValue)
        case "1", "5": return .retryLater(reason: reason, after: status == "1" ? .seconds(1) : nil)
        case "4", "8", "9", "15", "29": return .authConfig(reason: reason)
        case "6", "7": return .invalidToken(reason: reason)
        default: return .badRequest(reason: reason)
        }
    }
}
