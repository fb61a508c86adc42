import Crypto
import Foundation
import HeraldCore
import NIOCore
import _CryptoExtras

/// A Google service account (the JSON file of the Firebase console).
public struct GoogleServiceAccount: Sendable {
    public var projectId: String
    public var clientEmail: String
    public var privateKeyId: String?
    public var tokenURI: String
    let key: _RSA.Signing.PrivateKey

    public static let audience = "https://oauth2.googleapis.com/token"
    public static let messagingScope = "https://www.googleapis.com/auth/firebase.messaging"

    public init(json: String) throws {
        guard case .object(let account)? = try? JSONValue.parse(json) else {
            throw HeraldError(.configuration, "the FCM serviceAccount is not JSON")
        }
        guard let projectId = account["project_id"]?.stringValue, let clientEmail = account["client_email"]?.stringValue,
            let pem = account["private_key"]?.stringValue
        else {
            throw HeraldError(.configuration, "the FCM serviceAccount needs project_id, client_email and private_key")
        }
        guard let key = try? _RSA.Signing.PrivateKey(pemRepresentation: pem) else {
            throw HeraldError(.configuration, "the FCM serviceAccount private_key is not an RSA key in PEM form")
        }
        self.projectId = projectId
        self.clientEmail = clientEmail
        self.privateKeyId = account["private_key_id"]?.stringValue
        self.tokenURI = account["token_uri"]?.stringValue ?? Self.audience
        self.key = key
    }

    /// The RS256 JWT-bearer assertion (`docs/providers.md` §FCM): header `alg, typ, kid`, claims `iss, scope,
    /// aud, iat, exp` (exp = iat + 1 h), compact JSON in that order.
    public func assertion(issuedAt: Int64) throws -> String {
        var header: KeyValuePairs<String, JSONValue> = ["typ": "JWT"]
        if let privateKeyId { header = ["typ": "JWT", "kid": .string(privateKeyId)] }
        return try JWS.sign(
            header: header,
            claims: [
                "iss": .string(clientEmail), "scope": .string(Self.messagingScope), "aud": .string(Self.audience),
                "iat": .number(Double(issuedAt)), "exp": .number(Double(issuedAt + 3600)),
            ], signer: .rs256(key))
    }
}

/// OAuth 2.0 token endpoints (Google's JWT bearer grant, Huawei's client credentials): the answer's
/// `access_token`/`expires_in`, or why there is none. 5xx, 408, 429 and `server_error`-like codes are the
/// endpoint's fault (retry); everything else is ours (authConfig).
enum OAuthTokenEndpoint {
    static func fetch(
        url: String, form: [(String, String)], transport: HTTPTransport, clock: any WallClock
    ) async throws
        -> CachedCredential
    {
        let response: HTTPTransport.Response
        do {
            response = try await transport.post(
                url, headers: [("content-type", "application/x-www-form-urlencoded"), ("accept", "application/json")],
                body: PushSupport.form(form))
        } catch {
            throw CredentialFailure.unavailable("token endpoint unreachable: \(type(of: error))", retryAfter: nil)
        }
        let object = PushSupport.json(response)
        let code = object["error"]?.stringValue ?? ""
        if response.status == 200, let token = object["access_token"]?.stringValue {
            let lifetime: Double =
                switch object["expires_in"] {
                case .number(let seconds)?: seconds
                case .string(let text)?: Double(text) ?? 3600
                default: 3600
                }
            return CachedCredential(value: token, expiresAt: clock.now().addingTimeInterval(lifetime))
        }
        let reason = "token endpoint HTTP \(response.status)\(code.isEmpty ? "" : " \(code)")"
        if [408, 429, 500, 502, 503, 504].contains(response.status)
            || ["internal_failure", "server_error", "temporarily_unavailable"].contains(code)
        {
            throw CredentialFailure.unavailable(reason, retryAfter: PushSupport.retryAfter(response, now: clock.now()))
        }
        throw CredentialFailure.rejected(reason)
    }
}

/// Firebase Cloud Messaging HTTP v1 (`docs/providers.md` §FCM): one request per token, multiplexed over pooled
/// HTTP/2 connections, authorised by an OAuth access token from the service account (cached, renewed 3 min 45 s
/// before expiry and once after a 401).
public struct FCMProvider: DeliveryProvider {
    public let providerId = "fcm"
    public var batchSize: Int { ProviderCatalog.batchLimit(providerId) }
    public let concurrency = 16
    let account: GoogleServiceAccount
    /// The API's base URL and the path of `messages:send`.
    let base: String
    let path: String
    let transport: HTTPTransport
    let clock: any WallClock
    let tokens: CredentialCache

    public init(integration: Integration, transport: HTTPTransport, clock: any WallClock = SystemWallClock()) throws {
        let account = try GoogleServiceAccount(json: try PushSupport.required(integration, "serviceAccount"))
        self.account = account
        self.base = try PushSupport.baseURL(integration, default: "https://fcm.googleapis.com")
        self.path = "/v1/projects/\(account.projectId)/messages:send"
        self.transport = transport
        self.clock = clock
        self.tokens = CredentialCache(refreshMargin: 225, clock: clock) {
            let assertion: String
            do { assertion = try account.assertion(issuedAt: Int64(clock.now().timeIntervalSince1970)) } catch {
                throw CredentialFailure.rejected("cannot sign the service-account assertion")
            }
            return try await OAuthTokenEndpoint.fetch(
                url: account.tokenURI,
                form: [("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", assertion)],
                transport: transport, clock: clock)
        }
    }

    public func send(_ batch: [OutboundMessage]) async -> [DeliveryOutcome] {
        // A message to an FCM topic or condition (from overrides) goes out once per distinct payload in a batch.
        var firstSender: [String: Int] = [:]
        let keys: [String?] = batch.enumerated().map { index, message in
            let overrides = message.content.overrides.objectValue ?? [:]
            guard overrides["topic"] != nil || overrides["condition"] != nil else { return String?.none }
            let key = Self.message(for: message).jsonString()
            if firstSender[key] == nil { firstSender[key] = index }
            return key
        }
        let senders = batch.indices.filter { index in keys[index].map { firstSender[$0] == index } ?? true }
        var outcomes = [DeliveryOutcome?](repeating: nil, count: batch.count)
        for (index, outcome) in zip(senders, await deliver(senders.map { batch[$0] })) { outcomes[index] = outcome }
        for (index, key) in keys.enumerated() {
            if let key, let sender = firstSender[key], sender != index { outcomes[index] = outcomes[sender] }
        }
        return outcomes.map { $0 ?? .retryLater(reason: "not sent", after: nil) }
    }

    public func refreshCredentials() async { await tokens.invalidate() }

    /// Sends one request per message as one write of HTTP/2 streams, all under one access token; the requests whose
    /// token was refused (401 without an FCM error code: revoked or expired early) go once more under a new one.
    func deliver(_ messages: [OutboundMessage]) async -> [DeliveryOutcome] {
        var outcomes = [DeliveryOutcome?](repeating: nil, count: messages.count)
        var pending = messages.indices.map { index in
            (
                index: index,
                request: HTTPBatchRequest(path: path, headers: [], body: PushSupport.body(["message": Self.message(for: messages[index])]))
            )
        }
        var refreshed = false
        while !pending.isEmpty {
            let token: String
            do { token = try await tokens.value() } catch {
                let outcome: DeliveryOutcome =
                    (error as? CredentialFailure)?.outcome ?? .retryLater(reason: "access token: \(type(of: error))", after: nil)
                for (index, _) in pending { outcomes[index] = outcome }
                break
            }
            let headers = [("authorization", "Bearer \(token)"), ("content-type", "application/json")]
            let answers = await transport.send(
                base: base,
                pending.map { _, request in
                    var request = request
                    request.headers = headers
                    return request
                })
            var refused: [(index: Int, request: HTTPBatchRequest)] = []
            for (item, answer) in zip(pending, answers) {
                switch answer {
                case .failure(let error):
                    outcomes[item.index] = HTTPOutcome.transportFailure(error)
                case .success(let response):
                    let outcome = Self.classify(response, now: clock.now())
                    if case .authConfig = outcome, response.status == 401, Self.errorCode(in: response) == nil, !refreshed {
                        refused.append(item)
                    } else {
                        outcomes[item.index] = outcome
                    }
                }
            }
            if !refused.isEmpty { await tokens.invalidate(token) }
            refreshed = true
            pending = refused
        }
        return outcomes.map { $0 ?? .retryLater(reason: "not sent", after: nil) }
    }

    /// The v1 `message` for one delivery: Herald's push fields mapped into `notification`, `data`, `android`,
    /// `apns` and `webpush`, then the provider overrides deep-merged over it. `overrides.type == "data"` sends a
    /// data-only message (title and body move into `data`), as Novu does.
    static func message(for outbound: OutboundMessage) -> JSONValue {
        let content = outbound.content
        if case .object(var raw)? = content.raw {
            // A raw `message` goes out as given; the target is the token unless it names a topic or condition.
            if raw["topic"] == nil && raw["condition"] == nil { raw["token"] = .string(outbound.target.revealed) }
            return .object(raw)
        }
        var overrides = PushSupport.overrides(content)
        var message: [String: JSONValue] = [:]
        if let topic = overrides.removeValue(forKey: "topic")?.stringValue {
            message["topic"] = .string(topic.hasPrefix("/topics/") ? String(topic.dropFirst(8)) : topic)
        } else if let condition = overrides.removeValue(forKey: "condition")?.stringValue {
            message["condition"] = .string(condition)
        } else {
            message["token"] = .string(outbound.target.revealed)
        }
        let dataOnly = content.overrides.objectValue?["type"]?.stringValue == "data"
        var data = content.data
        if dataOnly {
            data["title"] = content.title ?? ""
            data["body"] = content.body
        } else {
            var notification: [String: JSONValue] = ["body": .string(content.body)]
            notification.set("title", content.title)
            notification.set("image", content.image)
            message["notification"] = .object(notification)
        }
        if !data.isEmpty { message["data"] = .object(data.mapValues(JSONValue.string)) }
        var android: [String: JSONValue] = [:]
        android.set("collapse_key", content.collapseKey)
        if let priority = content.priority { android["priority"] = .string(priority == "high" ? "high" : "normal") }
        if let ttl = content.ttl { android["ttl"] = .string("\(min(max(ttl, 0), 2_419_200))s") }
        if let sound = content.sound, !dataOnly { android["notification"] = ["sound": .string(sound)] }
        if !android.isEmpty { message["android"] = .object(android) }
        var apnsHeaders: [String: JSONValue] = [:]
        if let priority = content.priority { apnsHeaders["apns-priority"] = .string(priority == "high" ? "10" : "5") }
        if let collapseKey = content.collapseKey { apnsHeaders["apns-collapse-id"] = .string(collapseKey) }
        var aps: [String: JSONValue] = [:]
        aps.set("sound", content.sound)
        aps.set("badge", content.badge)
        if dataOnly { aps["content-available"] = 1 }
        if !apnsHeaders.isEmpty || !aps.isEmpty {
            var apns: [String: JSONValue] = [:]
            if !apnsHeaders.isEmpty { apns["headers"] = .object(apnsHeaders) }
            if !aps.isEmpty { apns["payload"] = ["aps": .object(aps)] }
            message["apns"] = .object(apns)
        }
        if content.ttl != nil || content.priority != nil {
            var headers: [String: JSONValue] = [:]
            if let ttl = content.ttl { headers["TTL"] = .string(String(max(ttl, 0))) }
            if let priority = content.priority { headers["Urgency"] = .string(priority == "high" ? "high" : "normal") }
            message["webpush"] = ["headers": .object(headers)]
        }
        return JSONValue.object(message).deepMerged(with: .object(overrides))
    }

    /// The FCM error code (`details[FcmError].errorCode`) of an error answer.
    static func errorCode(in response: HTTPTransport.Response) -> String? {
        guard case .object(let error)? = PushSupport.json(response)["error"], case .array(let details)? = error["details"] else {
            return nil
        }
        for detail in details {
            if let object = detail.objectValue, object["@type"]?.stringValue?.hasSuffix("google.firebase.fcm.v1.FcmError") == true {
                return object["errorCode"]?.stringValue
            }
        }
        return nil
    }

    /// Maps an answer onto the outcome classes (`docs/providers.md` §FCM).
    static func classify(_ response: HTTPTransport.Response, now: Date) -> DeliveryOutcome {
        let object = PushSupport.json(response)
        if (200..<300).contains(response.status) {
            return .delivered(providerMessageId: object["name"]?.stringValue)
        }
        let error = object["error"]?.objectValue ?? [:]
        let status = error["status"]?.stringValue ?? ""
        let message = error["message"]?.stringValue ?? ""
        let code = errorCode(in: response) ?? status
        let reason = "FCM \(response.status) \(code)\(message.isEmpty ? "" : ": \(message.prefix(160))")"
        let retryAfter = PushSupport.retryAfter(response, now: now)
        switch (response.status, code) {
        case (404, _), (_, "UNREGISTERED"), (_, "NOT_FOUND"):
            return .invalidToken(reason: reason)
        case (_, "INVALID_ARGUMENT"):
            return message.lowercased().contains("not a valid fcm registration token")
                ? .invalidToken(reason: reason) : .badRequest(reason: reason)
        case (_, "SENDER_ID_MISMATCH"), (_, "THIRD_PARTY_AUTH_ERROR"), (_, "APNS_AUTH_ERROR"), (401, _), (403, _):
            return .authConfig(reason: reason)
        case (429, _), (_, "QUOTA_EXCEEDED"), (_, "RESOURCE_EXHAUSTED"):
            // "Use exponential backoff with a minimum initial delay of 1 minute."
            return .retryLater(reason: reason, after: max(retryAfter ?? .seconds(60), .seconds(60)))
        case (500..<600, _), (_, "UNAVAILABLE"), (_, "INTERNAL"), (_, "UNSPECIFIED_ERROR"):
            return .retryLater(reason: reason, after: retryAfter)
        default:
            return .badRequest(reason: reason)
        }
    }
}
