import Foundation
import HTTPTypes
import HeraldCore
import Hummingbird
import NIOCore
import Synchronization

/// An email an HTTP email API emulator received.
public struct EmailRecord: Sendable {
    public var provider: String
    public var to: String
    public var from: String
    public var subject: String
    public var html: String?
    public var text: String?
    public var status: Int
    /// The request as sent (JSON, or the form fields as an object).
    public var request: JSONValue
}

/// A fault program: mail of `provider` to `to` (any when nil) is answered with `status` and `body`.
public struct EmailFault: Sendable, Codable, Equatable {
    public var provider: String
    public var to: String?
    public var status: Int
    public var body: String
    public var times: Int?

    public init(provider: String, to: String? = nil, status: Int, body: String, times: Int? = nil) {
        self.provider = provider
        self.to = to
        self.status = status
        self.body = body
        self.times = times
    }
}

/// SendGrid v3 (bearer key, personalizations, 202 + `X-Message-Id`), Mailgun (basic `api:<key>`, domain in the path,
/// form fields), Postmark (`X-Postmark-Server-Token`, 422 `ErrorCode` bodies) and Resend (bearer key,
/// `Idempotency-Key` replays) — each checks its auth and required fields and answers in its own shapes.
public final class EmailEmulator: Sendable {
    private struct State {
        var records: [EmailRecord] = []
        var faults: [EmailFault] = []
        var keys: [String: String] = [:]
        var mailgunDomains: Set<String> = []
        var idempotent: [String: String] = [:]
    }
    private let state = Mutex(State())
    /// The webhook events this emulator posts back (herald dev's loop; configured through `POST /_control/receipts`).
    public let receipts: ReceiptPoster

    public init(receipts: ReceiptPoster = ReceiptPoster()) {
        self.receipts = receipts
    }

    public func registerKey(provider: String, key: String) { state.withLock { $0.keys[provider] = key } }
    public func registerMailgunDomain(_ domain: String) { _ = state.withLock { $0.mailgunDomains.insert(domain) } }
    public func addFault(_ fault: EmailFault) { state.withLock { $0.faults.append(fault) } }

    public func messages(provider: String? = nil) -> [EmailRecord] {
        state.withLock { state in state.records.filter { provider == nil || $0.provider == provider } }
    }

    private func take(_ provider: String, to: String) -> EmailFault? {
        state.withLock { $0.faults.take { $0.provider == provider && ($0.to == nil || $0.to == to) } }
    }

    private func key(_ provider: String) -> String? { state.withLock { $0.keys[provider] } }

    /// Records (or plays a fault for) an accepted request; nil means "answer success".
    private func accept(_ record: EmailRecord) -> Response? {
        if let fault = take(record.provider, to: record.to) {
            var failed = record
            failed.status = fault.status
            state.withLock { $0.records.append(failed) }
            return PushEmulator.json(fault.status, (try? JSONValue.parse(fault.body)) ?? .string(fault.body))
        }
        state.withLock { $0.records.append(record) }
        observers.notify(record)
        return nil
    }

    private let observers = Observers<EmailRecord>()
    /// Calls `observer` for every message accepted from now on.
    public func observe(_ observer: @escaping @Sendable (EmailRecord) -> Void) { observers.add(observer) }

    public func register<Context: RequestContext>(on router: Router<Context>) {
        router.post("/sendgrid/v3/mail/send") { request, _ -> Response in
            func error(_ status: Int, _ message: String, field: String? = nil) -> Response {
                var entry: [String: JSONValue] = ["message": .string(message)]
                if let field { entry["field"] = .string(field) }
                return PushEmulator.json(status, ["errors": [.object(entry)]])
            }
            guard let key = self.key("sendgrid"), request.headers[.authorization] == "Bearer \(key)" else {
                return error(401, "The provided authorization grant is invalid, expired, or revoked")
            }
            guard case .object(let body)? = try? JSONValue.parse(bytes: try await PushEmulator.body(request)) else {
                return error(400, "Bad Request")
            }
            guard
                let to = body["personalizations"]?.arrayValue?.first?.objectValue?["to"]?.arrayValue?.first?.objectValue?["email"]?
                    .stringValue
            else {
                return error(
                    400, "The personalizations field is required and must have at least one personalization.", field: "personalizations")
            }
            guard let from = body["from"]?.objectValue?["email"]?.stringValue else {
                return error(400, "The from object must be provided", field: "from")
            }
            let contents = body["content"]?.arrayValue?.compactMap(\.objectValue) ?? []
            guard !contents.isEmpty else {
                return error(400, "Unless a valid template_id is provided, the content parameter is required.", field: "content")
            }
            guard let subject = body["subject"]?.stringValue, !subject.isEmpty else {
                return error(400, "The subject is required.", field: "subject")
            }
            let html = contents.first { $0["type"]?.stringValue == "text/html" }?["value"]?.stringValue
            let text = contents.first { $0["type"]?.stringValue == "text/plain" }?["value"]?.stringValue
            if let failure = self.accept(
                EmailRecord(
                    provider: "sendgrid", to: to, from: from, subject: subject, html: html, text: text, status: 202, request: .object(body))
            ) {
                return failure
            }
            var headers: HTTPFields = [:]
            let messageId = UUID().uuidString.lowercased()
            headers[HTTPField.Name("x-message-id")!] = messageId
            self.receipts.email(
                provider: "sendgrid", to: to, deliveryId: body["custom_args"]?.objectValue?["herald_delivery"]?.stringValue,
                messageId: messageId)
            return Response(status: .accepted, headers: headers)
        }
        router.post("/mailgun/v3/:domain/messages") { request, context -> Response in
            let domain = context.parameters.get("domain") ?? ""
            guard let key = self.key("mailgun"), request.headers[.authorization] == "Basic " + Data("api:\(key)".utf8).base64EncodedString()
            else { return Self.text(401, "Forbidden") }
            guard self.state.withLock({ $0.mailgunDomains.contains(domain) }) else {
                return PushEmulator.json(404, ["message": .string("Domain not found: \(domain)")])
            }
            let fields = PushEmulator.form(try await PushEmulator.body(request))
            guard let from = fields["from"] else { return PushEmulator.json(400, ["message": "from parameter is missing"]) }
            guard let to = fields["to"] else { return PushEmulator.json(400, ["message": "to parameter is missing"]) }
            guard fields["html"] != nil || fields["text"] != nil else {
                return PushEmulator.json(400, ["message": "Need at least one of 'text' or 'html' parameters specified"])
            }
            if let failure = self.accept(
                EmailRecord(
                    provider: "mailgun", to: to, from: from, subject: fields["subject"] ?? "", html: fields["html"], text: fields["text"],
                    status: 200,
                    request: .object(fields.mapValues(JSONValue.string))))
            {
                return failure
            }
            let id = "<\(UUID().uuidString.lowercased())@\(domain)>"
            self.receipts.email(provider: "mailgun", to: to, deliveryId: fields["v:herald_delivery"], messageId: id)
            return PushEmulator.json(200, ["id": .string(id), "message": "Queued. Thank you."])
        }
        router.post("/postmark/email") { request, _ -> Response in
            guard let key = self.key("postmark"), request.headers[HTTPField.Name("x-postmark-server-token")!] == key else {
                return PushEmulator.json(
                    401, ["ErrorCode": 10, "Message": "No Account or Server API tokens were supplied in the HTTP headers."])
            }
            guard case .object(let body)? = try? JSONValue.parse(bytes: try await PushEmulator.body(request)),
                let from = body["From"]?.stringValue, let to = body["To"]?.stringValue
            else { return PushEmulator.json(422, ["ErrorCode": 300, "Message": "Invalid email request"]) }
            guard body["HtmlBody"] != nil || body["TextBody"] != nil else {
                return PushEmulator.json(422, ["ErrorCode": 300, "Message": "Provide either email TextBody or HtmlBody or both."])
            }
            if let failure = self.accept(
                EmailRecord(
                    provider: "postmark", to: to, from: from, subject: body["Subject"]?.stringValue ?? "",
                    html: body["HtmlBody"]?.stringValue,
                    text: body["TextBody"]?.stringValue, status: 200, request: .object(body)))
            {
                return failure
            }
            let messageId = UUID().uuidString.lowercased()
            self.receipts.email(
                provider: "postmark", to: to, deliveryId: body["Metadata"]?.objectValue?["herald_delivery"]?.stringValue,
                messageId: messageId)
            return PushEmulator.json(
                200,
                [
                    "To": .string(to), "SubmittedAt": .string(Date().iso8601Milliseconds), "MessageID": .string(messageId), "ErrorCode": 0,
                    "Message": "OK",
                ])
        }
        router.post("/resend/emails") { request, _ -> Response in
            guard let key = self.key("resend"), request.headers[.authorization] == "Bearer \(key)" else {
                return PushEmulator.json(
                    401, ["statusCode": 401, "name": "missing_api_key", "message": "Missing API key in the authorization header"])
            }
            let bytes = try await PushEmulator.body(request)
            if let idempotency = request.headers[HTTPField.Name("idempotency-key")!],
                let id = self.state.withLock({ $0.idempotent[idempotency] })
            {
                return PushEmulator.json(200, ["id": .string(id)])
            }
            guard case .object(let body)? = try? JSONValue.parse(bytes: bytes), let from = body["from"]?.stringValue,
                let to = body["to"]?.arrayValue?.first?.stringValue ?? body["to"]?.stringValue,
                let subject = body["subject"]?.stringValue
            else {
                return PushEmulator.json(
                    422, ["statusCode": 422, "name": "validation_error", "message": "Missing `to`, `from` or `subject` field."])
            }
            if let failure = self.accept(
                EmailRecord(
                    provider: "resend", to: to, from: from, subject: subject, html: body["html"]?.stringValue,
                    text: body["text"]?.stringValue,
                    status: 200, request: .object(body)))
            {
                return failure
            }
            let id = UUID().uuidString.lowercased()
            if let idempotency = request.headers[HTTPField.Name("idempotency-key")!] {
                self.state.withLock { $0.idempotent[idempotency] = id }
            }
            let tag = body["tags"]?.arrayValue?.compactMap(\.objectValue).first { $0["name"]?.stringValue == "herald_delivery" }
            self.receipts.email(provider: "resend", to: to, deliveryId: tag?["value"]?.stringValue, messageId: id)
            return PushEmulator.json(200, ["id": .string(id)])
        }
    }

    static func text(_ status: Int, _ text: String) -> Response {
        Response(status: .init(code: status), headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
