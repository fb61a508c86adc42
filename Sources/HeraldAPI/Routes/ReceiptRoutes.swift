import Crypto
import Foundation
import HTTPTypes
import HeraldCore
import HeraldEngine
import HeraldProviders
import HeraldStore
import Hummingbird

/// Provider receipts (docs/webhooks.md §Provider receipts): `POST /v2/inbound-webhooks/delivery-providers/{environmentId}/
/// {integrationId}` — Novu's route — takes a provider's own status callbacks. It needs no API key (providers do not
/// have one): the provider's signature is the authorisation, checked with the integration's credentials before
/// anything is read. A bad signature is a 401 that changes nothing; a receipt for a message Herald does not know is
/// accepted and ignored (providers retry anything else). Twilio, SendGrid, Mailgun, Postmark and Resend.
struct ReceiptRoutes {
    let store: SQLStore
    let engine: Engine
    let metrics: EngineMetrics

    static let pathPrefix = "/v2/inbound-webhooks/delivery-providers/"

    /// Twilio error codes of an `undelivered`/`failed` message that mean the number will never take a message: the
    /// number joins the suppression list (30003 "unreachable" and carrier filtering are left out: they pass).
    static let permanentTwilioErrors: Set<String> = ["21211", "21610", "21612", "21614", "30005", "30006"]

    func register(on router: Router<HeraldRequestContext>) {
        router.post("/v2/inbound-webhooks/delivery-providers/{environmentId}/{integrationId}") { request, context in
            let environmentId = try context.parameters.require("environmentId")
            let integrationId = try context.parameters.require("integrationId")
            guard let integration = try await store.read({ try await $0.integration(environmentId: environmentId, id: integrationId) })
            else { throw APIError(.notFound, "Integration \(integrationId) was not found") }
            let buffer = try await request.body.collect(upTo: context.maxUploadSize)
            switch integration.providerId {
            case "twilio":
                return try await twilio(request, body: String(buffer: buffer), integration: integration, context: context)
            case "sendgrid":
                return try await sendGrid(request, body: Array(buffer.readableBytesView), integration: integration, context: context)
            case "mailgun":
                return try await mailgun(body: String(buffer: buffer), integration: integration, context: context)
            case "postmark":
                return try await postmark(request, body: String(buffer: buffer), integration: integration, context: context)
            case "resend":
                return try await resend(request, body: Array(buffer.readableBytesView), integration: integration, context: context)
            default:
                throw APIError(
                    .unprocessableContent, "receipts from \(integration.providerId) are not supported yet (docs/webhooks.md)")
            }
        }
    }

    /// A Twilio message status callback: form fields signed with the account's auth token over the exact URL Twilio
    /// requested, which Herald rebuilds from `--public-url` (the URL it gave Twilio as `StatusCallback`).
    func twilio(_ request: Request, body: String, integration: Integration, context: HeraldRequestContext) async throws -> Response {
        guard let publicURL = engine.publicURL else {
            throw APIError(.unauthorized, "Twilio receipts need --public-url: the signature covers the URL Twilio called")
        }
        let fields = TwilioSignature.formFields(body)
        guard let token = integration.credentials.string("token"), let signature = request.headers[.twilioSignature],
            TwilioSignature.isValid(signature, token: token, url: publicURL + request.uri.description, parameters: fields)
        else {
            context.logger.warning(
                "a Twilio receipt with a missing or wrong signature was refused", metadata: ["integration": "\(integration.id)"])
            throw APIError(.unauthorized, "the X-Twilio-Signature does not match")
        }
        let values = Dictionary(fields, uniquingKeysWith: { first, _ in first })
        guard let deliveryId = request.uri.queryParameters.get("delivery").map({ String($0) }), let sid = values["MessageSid"],
            let status = values["MessageStatus"]
        else { return Self.accepted([]) }
        let errorCode = values["ErrorCode"].flatMap { $0.isEmpty ? nil : $0 }
        var raw: [String: JSONValue] = ["MessageStatus": .string(status), "MessageSid": .string(sid)]
        if let errorCode { raw["ErrorCode"] = .string(errorCode) }
        let effect: Receipt.Effect
        switch status {
        case "delivered": effect = .delivered
        case "undelivered", "failed":
            effect = .failed(
                reason: "Twilio \(status)" + (errorCode.map { " \($0)" } ?? ""),
                suppress: errorCode.map(Self.permanentTwilioErrors.contains) ?? false, kind: .messageFailed)
        default:
            // queued, sending, sent, accepted…: steps on the way, nothing to record.
            return Self.accepted([])
        }
        let receipt = Receipt(deliveryId: deliveryId, providerMessageId: sid, effect: effect, providerStatus: status, raw: raw)
        return Self.accepted(try await apply([receipt], integration: integration))
    }

    /// SendGrid's signed Event Webhook: a JSON array of events, each naming its delivery through the `herald_delivery`
    /// custom argument Herald sends; verified with the integration's `inboundWebhookSigningKey` (the account's
    /// verification key) over the timestamp header and the raw body. A timestamp older than SendGrid's 24 hours of
    /// retries (plus an hour) is refused as stale.
    func sendGrid(_ request: Request, body: [UInt8], integration: Integration, context: HeraldRequestContext) async throws -> Response {
        let signature = request.headers[.sendGridSignature] ?? ""
        let timestamp = request.headers[.sendGridTimestamp] ?? ""
        guard let key = integration.credentials.string("inboundWebhookSigningKey"),
            SendGridSignature.isValid(signature: signature, timestamp: timestamp, body: body, verificationKey: key)
        else {
            context.logger.warning(
                "a SendGrid receipt with a missing or wrong signature was refused", metadata: ["integration": "\(integration.id)"])
            throw APIError(.unauthorized, "the X-Twilio-Email-Event-Webhook-Signature does not match")
        }
        guard let seconds = Double(timestamp), abs(store.clock.now().timeIntervalSince1970 - seconds) <= 25 * 3600 else {
            throw APIError(.unauthorized, "the X-Twilio-Email-Event-Webhook-Timestamp is stale")
        }
        guard case .array(let items)? = try? JSONValue.parse(String(decoding: body, as: UTF8.self)) else {
            throw APIError(.badRequest, "SendGrid events are a JSON array")
        }
        var receipts: [Receipt] = []
        for item in items.prefix(1000) {
            guard let event = item.objectValue, let deliveryId = event["herald_delivery"]?.stringValue,
                let kind = event["event"]?.stringValue
            else { continue }
            let reason = [event["reason"]?.stringValue, event["status"]?.stringValue].compactMap { $0 }.joined(separator: " ")
            var raw: [String: JSONValue] = ["event": .string(kind)]
            for field in ["type", "reason", "status", "sg_event_id", "url"] { if let value = event[field] { raw[field] = value } }
            let effect: Receipt.Effect
            switch (kind, event["type"]?.stringValue) {
            case ("delivered", _): effect = .delivered
            case ("bounce", "blocked"): effect = .failed(reason: "SendGrid blocked: \(reason)", suppress: false, kind: .messageBounced)
            case ("bounce", _): effect = .failed(reason: "SendGrid bounce: \(reason)", suppress: true, kind: .messageBounced)
            case ("dropped", _): effect = .failed(reason: "SendGrid dropped: \(reason)", suppress: false, kind: .messageFailed)
            case ("spamreport", _): effect = .note(kind: .messageComplained, suppress: true, attributes: [:])
            case ("open", _): effect = .note(kind: .messageOpened, suppress: false, attributes: [:])
            case ("click", _):
                effect = .note(kind: .messageClicked, suppress: false, attributes: event["url"]?.stringValue.map { ["url": $0] } ?? [:])
            default: continue  // processed, deferred, unsubscribe…: nothing to record
            }
            receipts.append(Receipt(deliveryId: deliveryId, providerMessageId: nil, effect: effect, providerStatus: kind, raw: raw))
        }
        return Self.accepted(try await apply(receipts, integration: integration))
    }

    /// A Mailgun webhook: one JSON event, `{"signature": {timestamp, token, signature}, "event-data": {…}}`, signed
    /// with the domain's HTTP webhook signing key (the integration's `inboundWebhookSigningKey`); a timestamp more than
    /// 9 hours away (Mailgun retries for 8) is stale. The event names its delivery through the `herald_delivery`
    /// variable Herald sends (`user-variables`).
    func mailgun(body: String, integration: Integration, context: HeraldRequestContext) async throws -> Response {
        let json = (try? JSONValue.parse(body))?.objectValue ?? [:]
        let signature = json["signature"]?.objectValue ?? [:]
        let timestamp = signature["timestamp"]?.stringValue ?? ""
        guard let key = integration.credentials.string("inboundWebhookSigningKey"),
            MailgunSignature.isValid(
                signature["signature"]?.stringValue ?? "", signingKey: key, timestamp: timestamp,
                token: signature["token"]?.stringValue ?? "")
        else {
            context.logger.warning(
                "a Mailgun receipt with a missing or wrong signature was refused", metadata: ["integration": "\(integration.id)"])
            throw APIError(.unauthorized, "the Mailgun webhook signature does not match")
        }
        guard let seconds = Double(timestamp), abs(store.clock.now().timeIntervalSince1970 - seconds) <= 9 * 3600 else {
            throw APIError(.unauthorized, "the Mailgun webhook timestamp is stale")
        }
        guard let event = json["event-data"]?.objectValue, let kind = event["event"]?.stringValue,
            let deliveryId = event["user-variables"]?.objectValue?["herald_delivery"]?.stringValue
        else { return Self.accepted([]) }
        let status = event["delivery-status"]?.objectValue
        let reason = [event["reason"]?.stringValue, status?["message"]?.stringValue, status?["description"]?.stringValue]
            .compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: " ")
        var raw: [String: JSONValue] = ["event": .string(kind)]
        for field in ["severity", "reason", "id", "url"] { if let value = event[field] { raw[field] = value } }
        let effect: Receipt.Effect
        switch (kind, event["severity"]?.stringValue) {
        case ("delivered", _): effect = .delivered
        case ("failed", "permanent"): effect = .failed(reason: "Mailgun failed: \(reason)", suppress: true, kind: .messageBounced)
        case ("rejected", _): effect = .failed(reason: "Mailgun rejected: \(reason)", suppress: false, kind: .messageFailed)
        case ("complained", _): effect = .note(kind: .messageComplained, suppress: true, attributes: [:])
        case ("opened", _): effect = .note(kind: .messageOpened, suppress: false, attributes: [:])
        case ("clicked", _):
            effect = .note(kind: .messageClicked, suppress: false, attributes: event["url"]?.stringValue.map { ["url": $0] } ?? [:])
        default: return Self.accepted([])  // accepted, temporary failures (Mailgun retries them), unsubscribed…
        }
        let receipt = Receipt(deliveryId: deliveryId, providerMessageId: nil, effect: effect, providerStatus: kind, raw: raw)
        return Self.accepted(try await apply([receipt], integration: integration))
    }

    /// A Postmark webhook: one JSON record. Postmark signs nothing, so the webhook is configured with HTTP basic auth
    /// (`https://user:password@…`, or its `HttpAuth`) or a custom header `X-Herald-Webhook-Secret`, holding the
    /// integration's `inboundWebhookSigningKey` (`user:password` for basic auth); compared in constant time. The record
    /// names its delivery in `Metadata.herald_delivery` (Herald sends it).
    func postmark(_ request: Request, body: String, integration: Integration, context: HeraldRequestContext) async throws -> Response {
        let secret = integration.credentials.string("inboundWebhookSigningKey") ?? ""
        var presented = request.headers[.heraldWebhookSecret] ?? ""
        if presented.isEmpty, let authorization = request.headers[.authorization], authorization.lowercased().hasPrefix("basic "),
            let decoded = Data(base64Encoded: String(authorization.dropFirst(6)).trimmingCharacters(in: .whitespaces))
        {
            presented = String(decoding: decoded, as: UTF8.self)
        }
        // Digests compare in constant time (swift-crypto), whatever the lengths of the two strings.
        guard !secret.isEmpty, SHA256.hash(data: Array(presented.utf8)) == SHA256.hash(data: Array(secret.utf8)) else {
            context.logger.warning(
                "a Postmark receipt without the integration's webhook secret was refused", metadata: ["integration": "\(integration.id)"])
            throw APIError(.unauthorized, "the Postmark webhook credentials do not match")
        }
        guard let record = (try? JSONValue.parse(body))?.objectValue, let type = record["RecordType"]?.stringValue,
            let deliveryId = record["Metadata"]?.objectValue?["herald_delivery"]?.stringValue
        else { return Self.accepted([]) }
        let bounceType = record["Type"]?.stringValue ?? ""
        let reason = [bounceType, record["Description"]?.stringValue, record["Details"]?.stringValue].compactMap { $0 }
            .filter { !$0.isEmpty }.joined(separator: ": ")
        var raw: [String: JSONValue] = ["RecordType": .string(type)]
        for field in ["Type", "TypeCode", "MessageID", "Description", "OriginalLink"] {
            if let value = record[field] { raw[field] = value }
        }
        let effect: Receipt.Effect
        switch (type, bounceType) {
        case ("Delivery", _): effect = .delivered
        case ("Bounce", "HardBounce"), ("Bounce", "BadEmailAddress"):
            effect = .failed(reason: "Postmark bounce: \(reason)", suppress: true, kind: .messageBounced)
        case ("Bounce", "Blocked"), ("Bounce", "DMARCPolicy"), ("Bounce", "ManuallyDeactivated"):
            effect = .failed(reason: "Postmark bounce: \(reason)", suppress: false, kind: .messageBounced)
        case ("SpamComplaint", _): effect = .note(kind: .messageComplained, suppress: true, attributes: [:])
        case ("Open", _): effect = .note(kind: .messageOpened, suppress: false, attributes: [:])
        case ("Click", _):
            effect = .note(
                kind: .messageClicked, suppress: false, attributes: record["OriginalLink"]?.stringValue.map { ["url": $0] } ?? [:])
        default: return Self.accepted([])  // soft and transient bounces, subscription changes…
        }
        let receipt = Receipt(deliveryId: deliveryId, providerMessageId: nil, effect: effect, providerStatus: type, raw: raw)
        return Self.accepted(try await apply([receipt], integration: integration))
    }

    /// A Resend webhook (Svix, the Standard Webhooks scheme): `svix-id`, `svix-timestamp` and `svix-signature`
    /// (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, space-separated) with the webhook's `whsec_` secret kept as
    /// the integration's `inboundWebhookSigningKey`; at most 5 minutes old. The event names its delivery in
    /// `data.tags.herald_delivery` (Herald sends the tag).
    func resend(_ request: Request, body: [UInt8], integration: Integration, context: HeraldRequestContext) async throws -> Response {
        let header = { (name: String) in
            request.headers[HTTPField.Name(name)!] ?? request.headers[HTTPField.Name("webhook-" + name.dropFirst(5))!] ?? ""
        }
        let id = header("svix-id")
        let timestamp = header("svix-timestamp")
        let presented = header("svix-signature").split(separator: " ").map(String.init)
        guard let secret = integration.credentials.string("inboundWebhookSigningKey"), let seconds = Int64(timestamp), !id.isEmpty
        else {
            context.logger.warning(
                "a Resend receipt without its signature headers was refused", metadata: ["integration": "\(integration.id)"])
            throw APIError(.unauthorized, "the Resend webhook signature does not match")
        }
        let expected = WebhookSigner.signature(secret: secret, id: id, timestamp: seconds, body: body)
        // Digests compare in constant time (swift-crypto), whatever the lengths of the strings.
        let matches = presented.contains { SHA256.hash(data: Array($0.utf8)) == SHA256.hash(data: Array(expected.utf8)) }
        guard matches else {
            context.logger.warning("a Resend receipt with a wrong signature was refused", metadata: ["integration": "\(integration.id)"])
            throw APIError(.unauthorized, "the Resend webhook signature does not match")
        }
        guard abs(store.clock.now().timeIntervalSince1970 - Double(seconds)) <= 300 else {
            throw APIError(.unauthorized, "the Resend webhook timestamp is stale")
        }
        guard let event = (try? JSONValue.parse(bytes: body))?.objectValue, let type = event["type"]?.stringValue,
            let data = event["data"]?.objectValue, let deliveryId = Self.resendTag(data["tags"], "herald_delivery")
        else { return Self.accepted([]) }
        var raw: [String: JSONValue] = ["type": .string(type)]
        for field in ["email_id", "bounce", "click", "failed", "suppressed"] { if let value = data[field] { raw[field] = value } }
        let bounce = data["bounce"]?.objectValue
        let detail = [
            bounce?["type"]?.stringValue, bounce?["subType"]?.stringValue, bounce?["message"]?.stringValue,
            data["failed"]?.objectValue?["reason"]?.stringValue, data["suppressed"]?.objectValue?["message"]?.stringValue,
        ]
        .compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ": ")
        let effect: Receipt.Effect
        switch type {
        case "email.delivered": effect = .delivered
        case "email.bounced": effect = .failed(reason: "Resend bounce: \(detail)", suppress: true, kind: .messageBounced)
        case "email.suppressed": effect = .failed(reason: "Resend suppressed: \(detail)", suppress: true, kind: .messageBounced)
        case "email.failed": effect = .failed(reason: "Resend failed: \(detail)", suppress: false, kind: .messageFailed)
        case "email.complained": effect = .note(kind: .messageComplained, suppress: true, attributes: [:])
        case "email.opened": effect = .note(kind: .messageOpened, suppress: false, attributes: [:])
        case "email.clicked":
            effect = .note(
                kind: .messageClicked, suppress: false,
                attributes: data["click"]?.objectValue?["link"]?.stringValue.map { ["url": $0] } ?? [:])
        default: return Self.accepted([])  // sent, scheduled, delivery_delayed (Resend retries), inbound, contacts…
        }
        let receipt = Receipt(
            deliveryId: deliveryId, providerMessageId: data["email_id"]?.stringValue, effect: effect, providerStatus: type, raw: raw)
        return Self.accepted(try await apply([receipt], integration: integration))
    }

    /// A tag of a Resend event: `tags` as an object (`{"name": "value"}`) or as Resend's send form (`[{name, value}]`).
    static func resendTag(_ tags: JSONValue?, _ name: String) -> String? {
        switch tags {
        case .object(let entries)?: return entries[name]?.stringValue
        case .array(let items)?:
            return items.lazy.compactMap { $0.objectValue }.first { $0["name"]?.stringValue == name }?["value"]?.stringValue
        default: return nil
        }
    }

    /// What a receipt does to its delivery.
    struct Receipt {
        enum Effect {
            /// The provider delivered it: a trail entry and `message.delivered`.
            case delivered
            /// It did not arrive: the delivery and message fail; the address is suppressed when `suppress`.
            case failed(reason: String, suppress: Bool, kind: DomainEvent.Kind)
            /// Something happened to a delivered message (complaint, open, click): a trail entry and the event.
            case note(kind: DomainEvent.Kind, suppress: Bool, attributes: [String: String])
        }
        var deliveryId: String
        /// When set, the delivery must carry this provider message id (a receipt cannot be moved to another delivery).
        var providerMessageId: String?
        var effect: Effect
        var providerStatus: String
        var raw: [String: JSONValue]
    }

    /// Applies receipts of `integration` in one transaction, with their status events; receipts for deliveries Herald
    /// does not know (or of another integration) are ignored. Returns the events.
    func apply(_ receipts: [Receipt], integration: Integration) async throws -> [DomainEvent] {
        guard !receipts.isEmpty else { return [] }
        let events = try await store.transaction { session -> [DomainEvent] in
            let deliveries = Dictionary(
                try await session.deliveries(ids: Array(Set(receipts.map(\.deliveryId)))).map { ($0.id, $0) },
                uniquingKeysWith: { first, _ in first })
            let messages = try await session.messages(ids: Array(Set(deliveries.values.compactMap(\.messageId))), content: false)
            let now = session.now
            var events: [DomainEvent] = []
            var details: [ExecutionDetail] = []
            var suppressions: [Suppression] = []
            // Written once for the whole batch (SendGrid posts up to 1,000 events at a time): the last receipt of a
            // delivery wins.
            var failedDeliveries: [String: DeliveryRecord] = [:]
            var failedMessages: [String: (id: String, status: MessageStatus, errorId: String?, errorText: String?)] = [:]
            for receipt in receipts {
                guard var delivery = failedDeliveries[receipt.deliveryId] ?? deliveries[receipt.deliveryId],
                    delivery.environmentId == integration.environmentId,
                    delivery.integrationId == integration.id,
                    receipt.providerMessageId == nil || delivery.providerMessageId == receipt.providerMessageId,
                    let messageId = delivery.messageId, let message = messages[messageId]
                else { continue }
                func detail(_ outcome: ExecutionDetail.Status, _ code: String) -> ExecutionDetail {
                    ExecutionDetail(
                        id: session.newId(), environmentId: message.environmentId, notificationId: message.notificationId,
                        messageId: message.id, deliveryId: delivery.id, stepId: message.stepId, providerId: delivery.providerId,
                        status: outcome, detail: code, source: .webhook, isRetry: false, raw: JSONValue.object(receipt.raw).jsonString(),
                        createdAt: now)
                }
                var event = DomainEvent(
                    .messageDelivered, notificationId: message.notificationId, workflowId: message.workflowId, messageId: message.id,
                    deliveryId: delivery.id, stepId: message.stepId, channel: message.channel, integrationId: delivery.integrationId,
                    providerId: delivery.providerId, attributes: ["providerStatus": receipt.providerStatus])
                var suppress = false
                switch receipt.effect {
                case .delivered:
                    details.append(detail(.success, "provider_delivered"))
                case .failed(let reason, let permanent, let kind):
                    delivery.status = .failed
                    delivery.outcome = "undelivered"
                    delivery.errorCode = "undelivered"
                    delivery.errorText = String(reason.prefix(500))
                    failedDeliveries[delivery.id] = delivery
                    failedMessages[message.id] = (message.id, .error, "undelivered", delivery.errorText)
                    details.append(detail(.failed, "provider_undelivered"))
                    event.kind = kind
                    event.reason = delivery.errorText
                    suppress = permanent
                case .note(let kind, let permanent, let attributes):
                    details.append(detail(.success, "provider_" + kind.rawValue.replacingOccurrences(of: "message.", with: "")))
                    event.kind = kind
                    event.attributes.merge(attributes) { first, _ in first }
                    suppress = permanent
                }
                if suppress {
                    suppressions.append(
                        Suppression(
                            environmentId: message.environmentId, channel: message.channel, address: delivery.target.revealed,
                            reason: event.reason ?? receipt.providerStatus, providerId: delivery.providerId, createdAt: now))
                }
                events.append(event)
            }
            try await session.updateDeliveries(Array(failedDeliveries.values))
            try await session.updateMessages(Array(failedMessages.values))
            try await session.appendDetails(details)
            try await session.insertSuppressions(suppressions)
            try await engine.stageEvents(events, environmentId: integration.environmentId, session: session)
            return events
        }
        metrics.record(events)
        return events
    }

    /// Novu's answer: one `WebhookResultDto` per event applied.
    static func accepted(_ events: [DomainEvent]) -> Response {
        JSONResponse.make(
            .array(
                events.map { event in
                    [
                        "id": .string(event.messageId ?? ""),
                        "event": [
                            "status": .string(event.kind.rawValue.replacingOccurrences(of: "message.", with: "")),
                            "date": .string(Date().iso8601Milliseconds),
                        ],
                    ]
                }))
    }
}

extension HTTPField.Name {
    static let twilioSignature = HTTPField.Name("X-Twilio-Signature")!
    static let sendGridSignature = HTTPField.Name("X-Twilio-Email-Event-Webhook-Signature")!
    static let sendGridTimestamp = HTTPField.Name("X-Twilio-Email-Event-Webhook-Timestamp")!
    static let heraldWebhookSecret = HTTPField.Name("X-Herald-Webhook-Secret")!
}
