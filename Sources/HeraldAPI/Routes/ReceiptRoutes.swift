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
/// accepted and ignored (providers retry anything else). Today: Twilio's message status callbacks.
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
        let events = try await store.transaction { session -> [DomainEvent] in
            guard let delivery = try await session.deliveries(ids: [deliveryId]).first,
                delivery.environmentId == integration.environmentId, delivery.integrationId == integration.id,
                delivery.providerMessageId == sid, let messageId = delivery.messageId,
                let message = try await session.messages(ids: [messageId], content: false)[messageId]
            else { return [] }
            let now = session.now
            func detail(_ outcome: ExecutionDetail.Status, _ code: String) -> ExecutionDetail {
                var raw: [String: JSONValue] = ["MessageStatus": .string(status), "MessageSid": .string(sid)]
                if let errorCode { raw["ErrorCode"] = .string(errorCode) }
                return ExecutionDetail(
                    id: session.newId(), environmentId: message.environmentId, notificationId: message.notificationId,
                    messageId: message.id, deliveryId: delivery.id, stepId: message.stepId, providerId: delivery.providerId,
                    status: outcome, detail: code, source: .webhook, isRetry: false, raw: JSONValue.object(raw).jsonString(),
                    createdAt: now)
            }
            var event = DomainEvent(
                .messageDelivered, notificationId: message.notificationId, workflowId: message.workflowId, messageId: message.id,
                deliveryId: delivery.id, stepId: message.stepId, channel: message.channel, integrationId: delivery.integrationId,
                providerId: delivery.providerId, attributes: ["providerStatus": status])
            switch status {
            case "delivered":
                try await session.appendDetails([detail(.success, "provider_delivered")])
            case "undelivered", "failed":
                var failed = delivery
                failed.status = .failed
                failed.outcome = "undelivered"
                failed.errorCode = "undelivered"
                failed.errorText = "Twilio \(status)" + (errorCode.map { " \($0)" } ?? "")
                try await session.updateDeliveries([failed])
                try await session.updateMessages([(message.id, .error, "undelivered", failed.errorText)])
                try await session.appendDetails([detail(.failed, "provider_undelivered")])
                if let errorCode, Self.permanentTwilioErrors.contains(errorCode) {
                    try await session.insertSuppressions([
                        Suppression(
                            environmentId: message.environmentId, channel: message.channel, address: delivery.target.revealed,
                            reason: failed.errorText ?? "undelivered", providerId: delivery.providerId, createdAt: now)
                    ])
                }
                event.kind = .messageFailed
                event.reason = failed.errorText
            default:
                // queued, sending, sent, accepted…: steps on the way, nothing to record.
                return []
            }
            try await engine.stageEvents([event], environmentId: message.environmentId, session: session)
            return [event]
        }
        metrics.record(events)
        return Self.accepted(events)
    }

    /// Novu's answer: one `WebhookResultDto` per event applied.
    static func accepted(_ events: [DomainEvent]) -> Response {
        JSONResponse.make(
            .array(
                events.map { event in
                    [
                        "id": .string(event.messageId ?? ""),
                        "event": [
                            "status": .string(event.kind == .messageDelivered ? "delivered" : "undelivered"),
                            "date": .string(Date().iso8601Milliseconds),
                        ],
                    ]
                }))
    }
}

extension HTTPField.Name {
    static let twilioSignature = HTTPField.Name("X-Twilio-Signature")!
}
