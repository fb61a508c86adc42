import Foundation
import HeraldCore
import NIOCore

/// Chat providers posting to the subscriber's own incoming webhook (`docs/providers.md` §Chat): Slack,
/// Discord, Microsoft Teams (connector and Workflows URLs) and Mattermost. The message is `{text}` (Discord
/// `{content}`) with the step's provider overrides deep-merged — Slack `blocks`, Discord `embeds`/`username`, a Teams
/// Adaptive Card `attachments` envelope. A webhook the service reports gone (404/410, Slack `no_service`/
/// `channel_not_found`, Discord unknown webhook) is an `invalidToken`: the engine deactivates that credential.
public struct ChatWebhookProvider: PerMessageProvider {
    public let providerId: String
    public var batchSize: Int { ProviderCatalog.batchLimit(providerId) }
    public let concurrency = 8
    let transport: HTTPTransport
    let clock: any WallClock

    public static let providerIds: Set<String> = ["slack", "discord", "msteams", "mattermost"]

    /// Discord's `content` limit, in characters.
    static let discordContentLimit = 2000
    /// Teams' message size limit.
    static let teamsByteLimit = 28 * 1024

    public init(integration: Integration, transport: HTTPTransport, clock: any WallClock = SystemWallClock()) {
        providerId = integration.providerId
        self.transport = transport
        self.clock = clock
    }

    public func send(_ message: OutboundMessage) async -> DeliveryOutcome {
        var url = message.target.revealed
        let body: JSONValue
        switch Self.request(for: message.content, providerId: providerId) {
        case .success(let built): body = built
        case .failure(let problem): return problem.outcome
        }
        if providerId == "discord" { url = Self.addingQuery(url, "wait=true") }
        let bytes = ByteBuffer(string: body.jsonString())
        if providerId == "msteams", bytes.readableBytes > Self.teamsByteLimit {
            return .badRequest(reason: "Teams message is \(bytes.readableBytes) bytes, over the 28 KB limit")
        }
        do {
            let response = try await transport.post(
                url, headers: [("content-type", "application/json"), ("user-agent", "Herald")], body: bytes)
            return Self.classify(response, providerId: providerId, now: clock.now())
        } catch {
            return HTTPOutcome.transportFailure(error)
        }
    }

    struct Problem: Error {
        var outcome: DeliveryOutcome
    }

    /// The JSON body for a provider, or why it cannot be sent.
    static func request(for content: MessageContent, providerId: String) -> Result<JSONValue, Problem> {
        let overrides = content.overrides.objectValue ?? [:]
        switch providerId {
        case "discord":
            let merged = JSONValue.object(["content": .string(content.body)]).deepMerged(with: .object(overrides))
            if let text = merged.objectValue?["content"]?.stringValue, text.count > discordContentLimit {
                return .failure(
                    Problem(outcome: .badRequest(reason: "Discord content is \(text.count) characters, over \(discordContentLimit)")))
            }
            if let embeds = merged.objectValue?["embeds"]?.arrayValue, embeds.count > 10 {
                return .failure(Problem(outcome: .badRequest(reason: "Discord allows at most 10 embeds")))
            }
            return .success(merged)
        case "msteams":
            // An Adaptive Card envelope in the overrides replaces the text message; anything else merges into it.
            if overrides["attachments"] != nil || overrides["type"] != nil { return .success(.object(overrides)) }
            return .success(JSONValue.object(["text": .string(content.body)]).deepMerged(with: .object(overrides)))
        default:  // slack, mattermost
            return .success(JSONValue.object(["text": .string(content.body)]).deepMerged(with: .object(overrides)))
        }
    }

    static func addingQuery(_ url: String, _ query: String) -> String {
        let (base, fragment) = url.firstIndex(of: "#").map { (String(url[..<$0]), String(url[$0...])) } ?? (url, "")
        if base.contains("wait=") { return url }
        return base + (base.contains("?") ? "&" : "?") + query + fragment
    }

    /// Maps an answer onto the outcome classes (§10–12).
    static func classify(_ response: HTTPTransport.Response, providerId: String, now: Date) -> DeliveryOutcome {
        let text = String(response.text.prefix(200))
        let retryAfter = PushSupport.retryAfter(response, now: now)
        switch response.status {
        case 200..<300:
            let id: String? =
                switch providerId {
                case "slack": response.headers.first(name: "x-slack-req-id")
                case "msteams": response.headers.first(name: "request-id")
                case "discord": PushSupport.json(response)["id"]?.stringValue
                default: nil
                }
            return .delivered(providerMessageId: id)
        case 404, 410:
            return .invalidToken(reason: "\(providerId) webhook gone: HTTP \(response.status) \(text)")
        case 401, 403:
            return .authConfig(reason: "\(providerId) HTTP \(response.status) \(text)")
        case 429:
            // Discord also puts the wait, in float seconds, in the body.
            var after = retryAfter
            if after == nil, case .number(let seconds)? = PushSupport.json(response)["retry_after"], seconds.isFinite, seconds >= 0 {
                after = .milliseconds(Int64(seconds * 1000))
            }
            return .retryLater(reason: "\(providerId) rate limited", after: after)
        case 408, 500..<600:
            return .retryLater(reason: "\(providerId) HTTP \(response.status)", after: retryAfter)
        default:
            return .badRequest(reason: "\(providerId) HTTP \(response.status): \(text)")
        }
    }
}

/// Telegram's Bot API (`sendMessage`): the integration holds the bot token (`apiToken`), the subscriber's credentials
/// the chat id (`chatId`, or `channel`). A chat the bot cannot reach any more (blocked, deleted, kicked, chat not
/// found) is an `invalidToken`, so the engine deactivates that credential.
public struct TelegramProvider: PerMessageProvider {
    public let providerId = "telegram"
    public var batchSize: Int { ProviderCatalog.batchLimit(providerId) }
    public let concurrency = 8
    let endpoint: String
    let transport: HTTPTransport
    let clock: any WallClock

    public init(integration: Integration, transport: HTTPTransport, clock: any WallClock = SystemWallClock()) throws {
        let token = try PushSupport.required(integration, "apiToken")
        endpoint = try PushSupport.baseURL(integration, default: "https://api.telegram.org") + "/bot\(token)/sendMessage"
        self.transport = transport
        self.clock = clock
    }

    public func send(_ message: OutboundMessage) async -> DeliveryOutcome {
        let chat = message.target.revealed
        let chatId: JSONValue = Int64(chat).map { .number(Double($0)) } ?? .string(chat)
        var body: [String: JSONValue] = ["chat_id": chatId, "text": .string(message.content.body)]
        for (key, value) in message.content.overrides.objectValue ?? [:] where key != "chat_id" { body[key] = value }
        guard message.content.body.count <= 4096 else { return .badRequest(reason: "Telegram text is over 4096 characters") }
        do {
            let response = try await transport.post(
                endpoint, headers: [("content-type", "application/json")], body: PushSupport.body(.object(body)))
            return Self.classify(response, now: clock.now())
        } catch {
            return HTTPOutcome.transportFailure(error)
        }
    }

    static func classify(_ response: HTTPTransport.Response, now: Date) -> DeliveryOutcome {
        let object = PushSupport.json(response)
        if response.status == 200, object["ok"]?.boolValue == true {
            let id: String? =
                if case .number(let number)? = object["result"]?.objectValue?["message_id"] { String(Int64(number)) } else { nil }
            return .delivered(providerMessageId: id)
        }
        let description = object["description"]?.stringValue ?? String(response.text.prefix(200))
        let reason = "Telegram \(response.status): \(description)"
        let lower = description.lowercased()
        switch response.status {
        case 401,
            404 where lower.contains("not found") && !lower.contains("chat"):
            return .authConfig(reason: reason)  // the bot token is wrong (the API answers 401 or 404 for it)
        case 403
        where lower.contains("blocked") || lower.contains("deactivated") || lower.contains("kicked")
            || lower.contains("not a member"):
            return .invalidToken(reason: reason)
        case 400 where lower.contains("chat not found") || lower.contains("user not found") || lower.contains("chat_id is empty"):
            return .invalidToken(reason: reason)
        case 429:
            var after = PushSupport.retryAfter(response, now: now)
            if after == nil, case .number(let seconds)? = object["parameters"]?.objectValue?["retry_after"] {
                after = .seconds(Int64(seconds))
            }
            return .retryLater(reason: reason, after: after)
        case 500..<600:
            return .retryLater(reason: reason, after: nil)
        case 403:
            return .authConfig(reason: reason)
        default:
            return .badRequest(reason: reason)
        }
    }
}
