import Foundation
import HTTPTypes
import HeraldCore
import Hummingbird
import NIOCore
import Synchronization

/// An SMS an emulator received.
public struct SMSRecord: Sendable {
    public var provider: String
    public var to: String
    public var from: String
    public var body: String
    public var status: Int
}

/// A fault program: messages of `provider` to `to` (any when nil) fail with the provider's error `code`.
public struct SMSFault: Sendable, Codable, Equatable {
    public var provider: String
    public var to: String?
    public var status: Int
    public var code: Int
    public var times: Int?

    public init(provider: String, to: String? = nil, status: Int, code: Int, times: Int? = nil) {
        self.provider = provider
        self.to = to
        self.status = status
        self.code = code
        self.times = times
    }
}

/// Twilio's Messages API (basic auth against the registered account, form fields `To`/`From` or
/// `MessagingServiceSid`/`Body`, E.164 numbers, 1,600-character bodies, 201 with the Message resource, error bodies
/// `{code, message, more_info, status}`) and Vonage's `/sms/json` (key and secret, digits-only `to`, HTTP 200 with
/// a per-message `status`).
public final class SMSEmulator: Sendable {
    private struct State {
        var records: [SMSRecord] = []
        var faults: [SMSFault] = []
        var twilio: [String: String] = [:]
        var vonage: [String: String] = [:]
    }
    private let state = Mutex(State())
    /// Twilio's status callbacks, posted back to each message's `StatusCallback` (herald dev's loop).
    public let receipts: ReceiptPoster

    public init(receipts: ReceiptPoster = ReceiptPoster()) {
        self.receipts = receipts
    }

    public func registerTwilioAccount(sid: String, token: String) { state.withLock { $0.twilio[sid] = token } }
    public func registerVonageAccount(key: String, secret: String) { state.withLock { $0.vonage[key] = secret } }
    public func addFault(_ fault: SMSFault) { state.withLock { $0.faults.append(fault) } }

    public func messages(provider: String? = nil) -> [SMSRecord] {
        state.withLock { state in state.records.filter { provider == nil || $0.provider == provider } }
    }

    private func take(provider: String, to: String) -> SMSFault? {
        state.withLock { $0.faults.take { $0.provider == provider && ($0.to == nil || $0.to == to) } }
    }

    private func record(_ record: SMSRecord) {
        state.withLock { $0.records.append(record) }
        if (200..<300).contains(record.status) { observers.notify(record) }
    }

    private let observers = Observers<SMSRecord>()
    /// Calls `observer` for every message accepted from now on.
    public func observe(_ observer: @escaping @Sendable (SMSRecord) -> Void) { observers.add(observer) }

    public func register<Context: RequestContext>(on router: Router<Context>) {
        router.post("/twilio/2010-04-01/Accounts/:sid/Messages.json") { request, context -> Response in
            let sid = context.parameters.get("sid") ?? ""
            func error(_ status: Int, _ code: Int, _ message: String) -> Response {
                PushEmulator.json(
                    status,
                    [
                        "code": .number(Double(code)), "message": .string(message),
                        "more_info": .string("https://www.twilio.com/docs/errors/\(code)"), "status": .number(Double(status)),
                    ])
            }
            let expected = self.state.withLock { $0.twilio[sid] }.map { "Basic " + Data("\(sid):\($0)".utf8).base64EncodedString() }
            guard let expected, request.headers[.authorization] == expected else { return error(401, 20003, "Authenticate") }
            let fields = PushEmulator.form(try await PushEmulator.body(request))
            guard let to = fields["To"], PhoneNumber.isE164(to) else {
                return error(400, 21211, "The 'To' number is not a valid phone number.")
            }
            guard let sender = fields["From"] ?? fields["MessagingServiceSid"] else {
                return error(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required")
            }
            guard let body = fields["Body"], !body.isEmpty else { return error(400, 21602, "Message body is required.") }
            guard body.count <= 1600 else { return error(400, 21617, "The concatenated message body exceeds the 1600 character limit.") }
            if let fault = self.take(provider: "twilio", to: to) {
                self.record(SMSRecord(provider: "twilio", to: to, from: sender, body: body, status: fault.status))
                return error(fault.status, fault.code, "emulated error \(fault.code)")
            }
            self.record(SMSRecord(provider: "twilio", to: to, from: sender, body: body, status: 201))
            let id = "SM" + (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
            if let callback = fields["StatusCallback"], let token = self.state.withLock({ $0.twilio[sid] }) {
                self.receipts.twilio(callback: callback, token: token, accountSid: sid, messageSid: id, to: to, from: sender)
            }
            return PushEmulator.json(
                201,
                [
                    "sid": .string(id), "status": "queued", "to": .string(to), "from": .string(sender), "body": .string(body),
                    "num_segments": .string(String(max(1, (body.count + 152) / 153))), "error_code": .null,
                ])
        }
        router.post("/vonage/sms/json") { request, _ -> Response in
            let fields = PushEmulator.form(try await PushEmulator.body(request))
            func answer(_ status: String, _ text: String, id: String? = nil, to: String = "") -> Response {
                var message: [String: JSONValue] = ["to": .string(to), "status": .string(status)]
                if let id { message["message-id"] = .string(id) } else { message["error-text"] = .string(text) }
                return PushEmulator.json(200, ["message-count": "1", "messages": [.object(message)]])
            }
            guard let key = fields["api_key"], self.state.withLock({ $0.vonage[key] }) == fields["api_secret"], fields["api_secret"] != nil
            else { return answer("4", "Bad Credentials") }
            guard let to = fields["to"], !to.isEmpty, to.allSatisfy(\.isNumber) else { return answer("3", "Invalid to number") }
            guard let from = fields["from"], let text = fields["text"], !text.isEmpty else { return answer("2", "Missing params", to: to) }
            if let fault = self.take(provider: "nexmo", to: "+" + to) {
                self.record(SMSRecord(provider: "nexmo", to: "+" + to, from: from, body: text, status: fault.code))
                return answer(String(fault.code), "emulated status \(fault.code)", to: to)
            }
            self.record(SMSRecord(provider: "nexmo", to: "+" + to, from: from, body: text, status: 0))
            return answer("0", "", id: UUID().uuidString.lowercased(), to: to)
        }
    }
}
