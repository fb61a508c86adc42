import Foundation
import HeraldCore
import NIOCore

/// Huawei Push Kit (`docs/providers.md` §HMS): OAuth client credentials (token cached, renewed 5 minutes early,
/// one renewal at a time) and `messages:send` with up to 1000 tokens per request for identical payloads. The HTTP
/// status says little: the business `code` decides — `80100000` lists the invalid tokens in `msg` (a JSON string),
/// `80300007` says all are invalid (the engine's mass-deletion guard applies), `80200003` renews the token.
///
/// Credentials: `clientId` (app id), `secretKey` (app secret); `baseUrl` replaces both Huawei hosts (the token
/// endpoint is then `<baseUrl>/oauth2/v3/token`).
public struct HMSProvider: DeliveryProvider {
    public let providerId = "hms"
    public var batchSize: Int { ProviderCatalog.batchLimit(providerId) }
    public let concurrency = 4
    let sendURL: String
    let transport: HTTPTransport
    let clock: any WallClock
    let tokens: CredentialCache

    public init(integration: Integration, transport: HTTPTransport, clock: any WallClock = SystemWallClock()) throws {
        let clientId = try PushSupport.required(integration, "clientId")
        let secret = try PushSupport.required(integration, "secretKey")
        let configured = integration.credentials.string("baseUrl").map { _ in true } ?? false
        let base = try PushSupport.baseURL(integration, default: "https://push-api.cloud.huawei.com")
        let tokenURL = configured ? base + "/oauth2/v3/token" : "https://oauth-login.cloud.huawei.com/oauth2/v3/token"
        sendURL = base + "/v1/\(clientId)/messages:send"
        self.transport = transport
        self.clock = clock
        tokens = CredentialCache(refreshMargin: 300, clock: clock) {
            try await OAuthTokenEndpoint.fetch(
                url: tokenURL, form: [("grant_type", "client_credentials"), ("client_id", clientId), ("client_secret", secret)],
                transport: transport, clock: clock)
        }
    }

    public func refreshCredentials() async { await tokens.invalidate() }

    public func send(_ batch: [OutboundMessage]) async -> [DeliveryOutcome] {
        await HostedPush.sendGroups(batch, maximum: batchSize) { group in await self.sendGroup(group) }
    }

    func sendGroup(_ group: [OutboundMessage]) async -> [DeliveryOutcome] {
        let targets = group.map(\.target.revealed)
        let body = PushSupport.body(["validate_only": false, "message": Self.message(for: group[0].content, tokens: targets)])
        var renewed = false
        while true {
            let token: String
            do { token = try await tokens.value() } catch let failure as CredentialFailure {
                return Array(repeating: failure.outcome, count: group.count)
            } catch { return Array(repeating: .retryLater(reason: "HMS token", after: nil), count: group.count) }
            let response: HTTPTransport.Response
            do {
                response = try await transport.post(
                    sendURL, headers: [("authorization", "Bearer \(token)"), ("content-type", "application/json;charset=UTF-8")], body: body
                )
            } catch {
                return Array(repeating: HTTPOutcome.transportFailure(error), count: group.count)
            }
            let object = PushSupport.json(response)
            let code = object["code"]?.stringValue ?? ""
            if !renewed, response.status == 401 || ["80200001", "80200003"].contains(code) {
                await tokens.invalidate(token)
                renewed = true
                continue
            }
            return Self.classify(response, object: object, targets: targets, now: clock.now())
        }
    }

    static func message(for content: MessageContent, tokens: [String]) -> JSONValue {
        if case .object(var raw)? = content.raw {
            if raw["topic"] == nil && raw["condition"] == nil { raw["token"] = .array(tokens.map(JSONValue.string)) }
            return .object(raw)
        }
        var notification: [String: JSONValue] = ["body": .string(content.body)]
        notification.set("title", content.title)
        notification.set("image", content.image)
        var androidNotification: [String: JSONValue] = ["click_action": ["type": 3]]
        androidNotification.set("sound", content.sound)
        var android: [String: JSONValue] = ["notification": .object(androidNotification)]
        android["ttl"] = .string("\(min(max(content.ttl ?? 86_400, 1), 1_296_000))s")
        if content.priority == "high" { android["urgency"] = "HIGH" } else if content.priority != nil { android["urgency"] = "NORMAL" }
        android.set("collapse_key", content.collapseKey.flatMap(Int.init))
        var message: [String: JSONValue] = [
            "token": .array(tokens.map(JSONValue.string)), "notification": .object(notification), "android": .object(android),
        ]
        if !content.data.isEmpty { message["data"] = .string(PushSupport.data(content).jsonString()) }
        return JSONValue.object(message).deepMerged(with: .object(PushSupport.overrides(content)))
    }

    /// Outcomes per token from an answer (`docs/providers.md` §HMS).
    static func classify(
        _ response: HTTPTransport.Response, object: [String: JSONValue], targets: [String], now: Date
    )
        -> [DeliveryOutcome]
    {
        let code = object["code"]?.stringValue ?? ""
        let reason = "HMS \(response.status) \(code) \(object["msg"]?.stringValue?.prefix(120) ?? "")"
        let all: (DeliveryOutcome) -> [DeliveryOutcome] = { Array(repeating: $0, count: targets.count) }
        let requestId = object["requestId"]?.stringValue
        switch (response.status, code) {
        case (200, "80000000"):
            return all(.delivered(providerMessageId: requestId))
        case (_, "80100000"):
            var invalid: Set<String> = []
            if let text = object["msg"]?.stringValue, case .object(let detail)? = try? JSONValue.parse(text),
                case .array(let tokens)? = detail["illegal_tokens"]
            {
                invalid = Set(tokens.compactMap(\.stringValue))
            }
            return targets.map {
                invalid.contains($0) ? .invalidToken(reason: "HMS illegal token") : .delivered(providerMessageId: requestId)
            }
        case (_, "80300007"):
            return all(.invalidToken(reason: reason))
        case (401, _), (_, "80200001"), (_, "80200003"), (_, "80200005"), (_, "80300002"), (_, "80300011"), (_, "80300013"):
            return all(.authConfig(reason: reason))
        case (500..<600, _), (_, "80100017"), (_, "80600003"), (_, "81000001"):
            return all(.retryLater(reason: reason, after: PushSupport.retryAfter(response, now: now)))
        default:
            return all(.badRequest(reason: reason))
        }
    }
}
