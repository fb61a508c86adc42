import Foundation
import HTTPTypes
import HeraldCore
import Hummingbird
import NIOCore
import Synchronization

/// A chat message an emulator accepted or refused.
public struct ChatRecord: Sendable {
    public var provider: String
    /// The webhook path (`/slack/services/T/B/x`) or the Telegram chat id.
    public var target: String
    public var body: JSONValue
    public var query: String
    public var status: Int

    /// The message's readable text, as the chat would show it: `text` (Slack, Teams, Mattermost, Telegram) or
    /// `content` (Discord), else the first block, embed or Adaptive Card text block.
    public var text: String {
        let object = body.objectValue ?? [:]
        if let text = (object["text"] ?? object["content"])?.stringValue, !text.isEmpty { return text }
        if let block = object["blocks"]?.arrayValue?.first?.objectValue?["text"] {
            return block.objectValue?["text"]?.stringValue ?? block.stringValue ?? ""
        }
        if let embed = object["embeds"]?.arrayValue?.first?.objectValue {
            return (embed["title"] ?? embed["description"])?.stringValue ?? ""
        }
        let card = object["attachments"]?.arrayValue?.first?.objectValue?["content"]?.objectValue
        return card?["body"]?.arrayValue?.first?.objectValue?["text"]?.stringValue ?? ""
    }
}

/// A fault program for the chat emulators: requests of `provider` for `target` (any when nil) get `status` with the
/// provider's own error `body` (Slack's text, Discord's JSON…), at most `times` times.
public struct ChatFault: Sendable, Codable, Equatable {
    public var provider: String
    public var target: String?
    public var status: Int
    public var body: String?
    public var retryAfter: String?
    public var times: Int?

    public init(provider: String, target: String? = nil, status: Int, body: String? = nil, retryAfter: String? = nil, times: Int? = nil) {
        self.provider = provider
        self.target = target
        self.status = status
        self.body = body
        self.retryAfter = retryAfter
        self.times = times
    }
}

/// Slack, Discord, Microsoft Teams and Mattermost incoming webhooks and Telegram's Bot API (`docs/providers.md`
/// §Chat, §Emulators), checking what the services check: Slack needs `text` or `blocks` and answers the literal `ok`;
/// Discord needs `content` (≤ 2000 characters) or `embeds` (≤ 10), answers 204 or, with `wait=true`, the message
/// with its id, and puts `retry_after` in its 429 body; Teams refuses bodies over 28 KB with 413 and needs `text` or
/// an `attachments` card (Workflows URLs answer 202); Mattermost needs `text`; Telegram checks the bot token, `chat_id`
/// and `text` and answers `{"ok":…}` envelopes.
public final class ChatEmulator: Sendable {
    private struct State {
        var records: [ChatRecord] = []
        var faults: [ChatFault] = []
        var bots: Set<String> = []
    }
    private let state = Mutex(State())

    public init() {}

    public func registerTelegramBot(token: String) { _ = state.withLock { $0.bots.insert(token) } }
    public func addFault(_ fault: ChatFault) { state.withLock { $0.faults.append(fault) } }
    public func clearFaults() { state.withLock { $0.faults.removeAll() } }
    public func reset() { state.withLock { $0.records.removeAll() } }

    /// Accepted and refused messages, oldest first, optionally of one provider.
    public func messages(provider: String? = nil) -> [ChatRecord] {
        state.withLock { state in state.records.filter { provider == nil || $0.provider == provider } }
    }

    private func takeFault(provider: String, target: String) -> ChatFault? {
        state.withLock { $0.faults.take { $0.provider == provider && ($0.target == nil || $0.target == target) } }
    }

    private func record(_ provider: String, _ target: String, _ body: JSONValue, _ query: String, _ status: Int) {
        let record = ChatRecord(provider: provider, target: target, body: body, query: query, status: status)
        state.withLock { $0.records.append(record) }
        if (200..<300).contains(status) { observers.notify(record) }
    }

    private let observers = Observers<ChatRecord>()
    /// Calls `observer` for every message accepted from now on.
    public func observe(_ observer: @escaping @Sendable (ChatRecord) -> Void) { observers.add(observer) }

    static func answer(_ status: Int, _ text: String, json: Bool = false, retryAfter: String? = nil) -> Response {
        var headers: HTTPFields = [.contentType: json ? "application/json" : "text/plain"]
        if let retryAfter { headers[.retryAfter] = retryAfter }
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// Handles one webhook call: parse, check, play a fault, record, answer.
    private func webhook(
        _ provider: String, _ request: Request, check: (JSONValue, Int) -> Response?, success: (JSONValue, String) -> Response
    ) async throws -> Response {
        let buffer = try await request.body.collect(upTo: 1 << 20)
        let path = request.uri.path
        let query = request.uri.query ?? ""
        guard request.headers[.contentType]?.hasPrefix("application/json") == true,
            let body = try? JSONValue.parse(String(buffer: buffer)), body.objectValue != nil
        else {
            record(provider, path, .null, query, 400)
            return Self.answer(400, provider == "slack" ? "invalid_payload" : #"{"message":"Cannot send an empty message"}"#)
        }
        if let refused = check(body, buffer.readableBytes) {
            record(provider, path, body, query, Int(refused.status.code))
            return refused
        }
        if let fault = takeFault(provider: provider, target: path) {
            record(provider, path, body, query, fault.status)
            return Self.answer(fault.status, fault.body ?? "", json: fault.body?.hasPrefix("{") == true, retryAfter: fault.retryAfter)
        }
        record(provider, path, body, query, 200)
        return success(body, query)
    }

    public func register<Context: RequestContext>(on router: Router<Context>) {
        router.post("/slack/services/:team/:bot/:secret") { request, _ in
            try await self.webhook(
                "slack", request,
                check: { body, _ in
                    let object = body.objectValue ?? [:]
                    return object["text"]?.stringValue?.isEmpty == false || object["blocks"]?.arrayValue?.isEmpty == false
                        ? nil : Self.answer(400, "invalid_payload")
                },
                success: { _, _ in
                    var response = Self.answer(200, "ok")
                    response.headers[HTTPField.Name("x-slack-req-id")!] = UUID().uuidString.lowercased()
                    return response
                })
        }
        router.post("/discord/api/webhooks/:id/:token") { request, _ in
            try await self.webhook(
                "discord", request,
                check: { body, _ in
                    let object = body.objectValue ?? [:]
                    let content = object["content"]?.stringValue ?? ""
                    let embeds = object["embeds"]?.arrayValue ?? []
                    if content.isEmpty && embeds.isEmpty {
                        return Self.answer(400, #"{"message":"Cannot send an empty message","code":50006}"#, json: true)
                    }
                    if content.count > 2000 || embeds.count > 10 {
                        return Self.answer(400, #"{"message":"Invalid Form Body","code":50035}"#, json: true)
                    }
                    return nil
                },
                success: { _, query in
                    guard query.contains("wait=true") else { return Response(status: .noContent) }
                    let message: JSONValue = [
                        "id": .string(String(UInt64.random(in: 1 << 60..<1 << 61))), "timestamp": .string(Date().iso8601Milliseconds),
                    ]
                    return Self.answer(200, message.jsonString(), json: true)
                })
        }
        for path in ["/teams/:id", "/teams/workflows/:id"] {
            router.post(RouterPath(path)) { request, _ in
                try await self.webhook(
                    "msteams", request,
                    check: { body, size in
                        if size > 28 * 1024 { return Self.answer(413, "Message too large") }
                        let object = body.objectValue ?? [:]
                        return object["text"] != nil || object["attachments"]?.arrayValue?.isEmpty == false
                            ? nil : Self.answer(400, "Bad payload received by generic incoming webhook.")
                    },
                    success: { _, _ in
                        var response = Self.answer(path.contains("workflows") ? 202 : 200, path.contains("workflows") ? "" : "1")
                        response.headers[HTTPField.Name("request-id")!] = UUID().uuidString.lowercased()
                        return response
                    })
            }
        }
        router.post("/mattermost/hooks/:id") { request, _ in
            try await self.webhook(
                "mattermost", request,
                check: { body, _ in
                    body.objectValue?["text"]?.stringValue?.isEmpty == false
                        ? nil : Self.answer(400, #"{"id":"web.incoming_webhook.text.app_error","status_code":400}"#, json: true)
                },
                success: { _, _ in Self.answer(200, "ok") })
        }
        router.post("/telegram/:bot/sendMessage") { request, context -> Response in
            let bot = context.parameters.get("bot") ?? ""
            let buffer = try await request.body.collect(upTo: 1 << 20)
            func failure(_ code: Int, _ description: String, extra: [String: JSONValue] = [:]) -> Response {
                var body: [String: JSONValue] = ["ok": false, "error_code": .number(Double(code)), "description": .string(description)]
                for (key, value) in extra { body[key] = value }
                return Self.answer(code, JSONValue.object(body).jsonString(), json: true)
            }
            guard bot.hasPrefix("bot"), self.state.withLock({ $0.bots.contains(String(bot.dropFirst(3))) }) else {
                return failure(401, "Unauthorized")
            }
            guard case .object(let body)? = try? JSONValue.parse(String(buffer: buffer)) else {
                return failure(400, "Bad Request: invalid JSON")
            }
            let chat: String
            switch body["chat_id"] {
            case .number(let number)?: chat = String(Int64(number))
            case .string(let text)? where !text.isEmpty: chat = text
            default: return failure(400, "Bad Request: chat_id is empty")
            }
            guard let text = body["text"]?.stringValue, !text.isEmpty else { return failure(400, "Bad Request: message text is empty") }
            guard text.count <= 4096 else { return failure(400, "Bad Request: message is too long") }
            if let fault = self.takeFault(provider: "telegram", target: chat) {
                self.record("telegram", chat, .object(body), "", fault.status)
                let description = fault.body ?? "emulated"
                return failure(
                    fault.status, description,
                    extra: fault.status == 429 ? ["parameters": ["retry_after": .number(Double(fault.retryAfter ?? "1") ?? 1)]] : [:])
            }
            self.record("telegram", chat, .object(body), "", 200)
            let message: JSONValue = [
                "ok": true, "result": ["message_id": .number(Double(Int.random(in: 1...1_000_000))), "chat": ["id": body["chat_id"]!]],
            ]
            return Self.answer(200, message.jsonString(), json: true)
        }
        router.get("/_control/chat/messages") { request, _ -> Response in
            let provider = request.uri.queryParameters.get("provider").map { String($0) }
            let list: [JSONValue] = self.messages(provider: provider).map {
                [
                    "provider": .string($0.provider), "target": .string($0.target), "body": $0.body, "status": .number(Double($0.status)),
                ]
            }
            return Self.answer(200, JSONValue.object(["data": .array(list)]).jsonString(), json: true)
        }
        router.post("/_control/chat/faults") { request, _ -> HTTPResponse.Status in
            let buffer = try await request.body.collect(upTo: 1 << 20)
            self.addFault(try JSONDecoder().decode(ChatFault.self, from: Data(buffer.readableBytesView)))
            return .noContent
        }
    }
}
