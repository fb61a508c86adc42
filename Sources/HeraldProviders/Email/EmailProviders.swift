import Foundation
import HeraldCore
import NIOCore

/// The email HTTP APIs (`docs/providers.md` §Email): SendGrid v3 Mail Send, Mailgun (US/EU regions,
/// form-encoded), Postmark and Resend. The subject is the step's `subject`, HTML its `body`, plain text its `text`;
/// `from`/`senderName` come from the integration unless the step sets them. An address the service reports
/// suppressed (Postmark 406 inactive recipient) is an `invalidToken`: the delivery is final and the address is
/// marked, without retry or failover.
public struct EmailAPIProvider: PerMessageProvider {
    public let providerId: String
    public var batchSize: Int { ProviderCatalog.batchLimit(providerId) }
    public let concurrency = 8
    let endpoint: String
    let apiKey: String
    let from: String
    let senderName: String?
    let transport: HTTPTransport
    let clock: any WallClock

    public static let providerIds: Set<String> = ["sendgrid", "mailgun", "postmark", "resend"]

    public init(integration: Integration, transport: HTTPTransport, clock: any WallClock = SystemWallClock()) throws {
        providerId = integration.providerId
        apiKey = try PushSupport.required(integration, "apiKey")
        from = try PushSupport.required(integration, "from")
        senderName = integration.credentials.string("senderName")
        let eu = integration.credentials.string("region")?.lowercased() == "eu"
        switch providerId {
        case "sendgrid":
            endpoint =
                try PushSupport.baseURL(integration, default: eu ? "https://api.eu.sendgrid.com" : "https://api.sendgrid.com")
                + "/v3/mail/send"
        case "mailgun":
            let domain = try PushSupport.required(integration, "domain")
            endpoint =
                try PushSupport.baseURL(integration, default: eu ? "https://api.eu.mailgun.net" : "https://api.mailgun.net")
                + "/v3/\(domain)/messages"
        case "postmark":
            endpoint = try PushSupport.baseURL(integration, default: "https://api.postmarkapp.com") + "/email"
        default:
            endpoint = try PushSupport.baseURL(integration, default: "https://api.resend.com") + "/emails"
        }
        self.transport = transport
        self.clock = clock
    }

    /// `Name <address>` when there is a sender name (quoted when it needs to be).
    static func mailbox(_ address: String, name: String?) -> String {
        guard let name, !name.isEmpty else { return address }
        let safe = name.allSatisfy { $0.isLetter || $0.isNumber || $0 == " " }
        return safe
            ? "\(name) <\(address)>"
            : "\"\(name.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\""))\" <\(address)>"
    }

    public func send(_ message: OutboundMessage) async -> DeliveryOutcome {
        let content = message.content
        let to = message.target.revealed
        let sender = content.from ?? from
        let name = content.senderName ?? senderName
        let subject = content.title ?? ""
        let overrides = content.overrides.objectValue ?? [:]
        // RFC 8058 one-click unsubscribe and other engine header fields, in each API's custom-header form.
        let extra = EmailHeaders.engineFields(content)
        let extraObject = JSONValue.object(
            Dictionary(extra.map { ($0.0, JSONValue.string($0.1)) }, uniquingKeysWith: { first, _ in first }))
        var headers: [(String, String)] = []
        let body: ByteBuffer
        switch providerId {
        case "sendgrid":
            var contents: [JSONValue] = []
            if let text = content.text { contents.append(["type": "text/plain", "value": .string(text)]) }
            contents.append(["type": "text/html", "value": .string(content.body)])
            var fromObject: [String: JSONValue] = ["email": .string(sender)]
            if let name { fromObject["name"] = .string(name) }
            var request: [String: JSONValue] = [
                "personalizations": [["to": [["email": .string(to)]]]], "from": .object(fromObject), "subject": .string(subject),
                "content": .array(contents),
                // Echoed at the top level of every Event Webhook event: how a receipt finds its delivery
                // (docs/webhooks.md §Provider receipts).
                "custom_args": ["herald_delivery": .string(message.deliveryId)],
            ]
            if !extra.isEmpty { request["headers"] = extraObject }
            body = PushSupport.body(JSONValue.object(request).deepMerged(with: .object(overrides)))
            headers = [("authorization", "Bearer \(apiKey)"), ("content-type", "application/json")]
        case "mailgun":
            var fields = [("from", Self.mailbox(sender, name: name)), ("to", to), ("subject", subject), ("html", content.body)]
            if let text = content.text { fields.append(("text", text)) }
            // A custom variable, echoed in every webhook event's `user-variables`: how a receipt finds its delivery.
            fields.append(("v:herald_delivery", message.deliveryId))
            for (name, value) in extra { fields.append(("h:\(name)", value)) }
            for (key, value) in overrides { if let text = value.stringValue { fields.append((key, text)) } }
            body = PushSupport.form(fields)
            headers = [
                ("authorization", "Basic " + Data("api:\(apiKey)".utf8).base64EncodedString()),
                ("content-type", "application/x-www-form-urlencoded"),
            ]
        case "postmark":
            var request: [String: JSONValue] = [
                "From": .string(Self.mailbox(sender, name: name)), "To": .string(to), "Subject": .string(subject),
                "HtmlBody": .string(content.body), "MessageStream": "outbound",
                // Echoed in every webhook of the message: how a receipt finds its delivery.
                "Metadata": ["herald_delivery": .string(message.deliveryId)],
            ]
            if let text = content.text { request["TextBody"] = .string(text) }
            if !extra.isEmpty { request["Headers"] = .array(extra.map { ["Name": .string($0.0), "Value": .string($0.1)] }) }
            body = PushSupport.body(JSONValue.object(request).deepMerged(with: .object(overrides)))
            headers = [("x-postmark-server-token", apiKey), ("accept", "application/json"), ("content-type", "application/json")]
        default:  // resend
            var request: [String: JSONValue] = [
                "from": .string(Self.mailbox(sender, name: name)), "to": [.string(to)], "subject": .string(subject),
                "html": .string(content.body),
                // Echoed in every webhook event's `data.tags`: how a receipt finds its delivery (docs/webhooks.md).
                "tags": [["name": "herald_delivery", "value": .string(message.deliveryId)]],
            ]
            if let text = content.text { request["text"] = .string(text) }
            if !extra.isEmpty { request["headers"] = extraObject }
            body = PushSupport.body(JSONValue.object(request).deepMerged(with: .object(overrides)))
            headers = [
                ("authorization", "Bearer \(apiKey)"), ("content-type", "application/json"), ("idempotency-key", message.deliveryId),
            ]
        }
        do {
            let response = try await transport.post(endpoint, headers: headers, body: body)
            return Self.classify(response, providerId: providerId, now: clock.now())
        } catch {
            return HTTPOutcome.transportFailure(error)
        }
    }

    static func classify(_ response: HTTPTransport.Response, providerId: String, now: Date) -> DeliveryOutcome {
        let object = PushSupport.json(response)
        let retryAfter = PushSupport.retryAfter(response, now: now)
        let detail =
            object["message"]?.stringValue ?? object["Message"]?.stringValue
            ?? object["errors"]?.arrayValue?.first?.objectValue?["message"]?.stringValue ?? String(response.text.prefix(160))
        let reason = "\(providerId) \(response.status): \(detail)"
        if (200..<300).contains(response.status) {
            let id =
                switch providerId {
                case "sendgrid": response.headers.first(name: "x-message-id")
                case "postmark": object["MessageID"]?.stringValue
                default: object["id"]?.stringValue
                }
            return .delivered(providerMessageId: id)
        }
        if providerId == "postmark", response.status == 422, case .number(let code)? = object["ErrorCode"] {
            switch Int(code) {
            case 406: return .invalidToken(reason: reason)
            case 10, 400, 401, 405: return .authConfig(reason: reason)
            default: return .badRequest(reason: reason)
            }
        }
        // Mailgun answers 404 for an unknown sending domain: configuration.
        let classes = HTTPStatusClasses(auth: providerId == "mailgun" ? [401, 403, 404] : [401, 403], retry: [408, 429])
        return classes.outcome(status: response.status, reason: reason, retryAfter: retryAfter)
    }
}
