import Crypto
import Foundation
import HeraldCore
import NIOCore

/// A browser's PushSubscription (the device token of `web-push`).
public struct WebPushSubscription: Sendable {
    public var endpoint: String
    public var p256dh: [UInt8]
    public var auth: [UInt8]

    public init?(token: String) {
        guard case .object(let object)? = try? JSONValue.parse(token), let endpoint = object["endpoint"]?.stringValue,
            let keys = object["keys"]?.objectValue, let p256dh = keys["p256dh"]?.stringValue.flatMap(Base64URL.decode),
            let auth = keys["auth"]?.stringValue.flatMap(Base64URL.decode)
        else { return nil }
        self.endpoint = endpoint
        self.p256dh = Array(p256dh)
        self.auth = Array(auth)
    }

    /// `scheme://host[:port]` of the endpoint: the VAPID audience.
    public var origin: String? {
        guard let url = URLComponents(string: endpoint), let scheme = url.scheme, let host = url.host else { return nil }
        let bracketed = host.contains(":") ? "[\(host)]" : host
        return "\(scheme)://\(bracketed)" + (url.port.map { ":\($0)" } ?? "")
    }
}

/// Web Push (`docs/providers.md` §Web Push): the payload encrypted for the subscription (RFC 8291, `aes128gcm`) and
/// posted to its endpoint with a VAPID authorization (RFC 8292) — one ES256 JWT per push-service origin, reused
/// until an hour before its 12-hour expiry.
///
/// Credentials: `vapidPublicKey`, `vapidPrivateKey` (base64url, raw P-256), `vapidSubject` (`mailto:` or `https:`).
public struct WebPushProvider: PerMessageProvider {
    public let providerId = "web-push"
    public var batchSize: Int { ProviderCatalog.batchLimit(providerId) }
    public let concurrency = 16
    let key: P256.Signing.PrivateKey
    let publicKey: String
    let subject: String
    let transport: HTTPTransport
    let clock: any WallClock
    let tokens: VAPIDTokens

    public init(integration: Integration, transport: HTTPTransport, clock: any WallClock = SystemWallClock()) throws {
        guard let raw = Base64URL.decode(try PushSupport.required(integration, "vapidPrivateKey")),
            let key = try? P256.Signing.PrivateKey(rawRepresentation: raw)
        else {
            throw HeraldError(.configuration, "web-push integration \(integration.identifier): vapidPrivateKey is not a P-256 key")
        }
        self.key = key
        self.publicKey = Base64URL.encode(key.publicKey.x963Representation)
        self.subject = try PushSupport.required(integration, "vapidSubject")
        self.transport = transport
        self.clock = clock
        self.tokens = VAPIDTokens(key: key, subject: subject, clock: clock)
    }

    public func refreshCredentials() async { await tokens.clear() }

    public func send(_ message: OutboundMessage) async -> DeliveryOutcome {
        guard let subscription = WebPushSubscription(token: message.target.revealed), let origin = subscription.origin else {
            return .invalidToken(reason: "not a PushSubscription")
        }
        let (plaintext, headerOverrides) = Self.payload(for: message.content)
        let body: [UInt8]
        do {
            body = try WebPushCrypto.encrypt(plaintext, p256dh: subscription.p256dh, auth: subscription.auth)
        } catch WebPushCrypto.Failure.tooLarge {
            return .badRequest(reason: "Web Push payload over \(WebPushCrypto.maximumPlaintext) bytes")
        } catch {
            return .invalidToken(reason: "subscription keys are not usable")
        }
        let jwt: String
        do { jwt = try await tokens.token(audience: origin) } catch { return .authConfig(reason: "cannot sign the VAPID token") }
        var headers: [(String, String)] = [
            ("ttl", headerOverrides["ttl"].flatMap { Int($0) }.map { String(max($0, 0)) } ?? String(max(message.content.ttl ?? 86_400, 0))),
            ("content-encoding", "aes128gcm"),
            ("content-type", "application/octet-stream"), ("authorization", "vapid t=\(jwt), k=\(publicKey)"),
        ]
        if let priority = headerOverrides["urgency"] ?? message.content.priority.map({ $0 == "high" ? "high" : "normal" }) {
            headers.append(("urgency", priority))
        }
        if let topic = headerOverrides["topic"] ?? message.content.collapseKey, Self.isValidTopic(topic) {
            headers.append(("topic", topic))
        }
        do {
            let response = try await transport.post(subscription.endpoint, headers: headers, body: ByteBuffer(bytes: body))
            return Self.classify(response, now: clock.now())
        } catch {
            return HTTPOutcome.transportFailure(error)
        }
    }

    /// The bytes the service worker receives — the JSON `title`, `body`, `image`, `data`, plus overrides (`headers`
    /// in overrides sets `ttl`/`urgency`/`topic` instead) — and the header values asked for, by lower-cased name. A
    /// raw `{headers, payload}` sends its payload as given (a string as its text, anything else as JSON) with a
    /// four-week TTL unless its headers say otherwise (Centrifugo's default).
    static func payload(for content: MessageContent) -> ([UInt8], [String: String]) {
        func lowercased(_ headers: JSONValue?) -> [String: String] {
            (headers?.objectValue ?? [:]).reduce(into: [String: String]()) {
                if let text = $1.value.stringValue { $0[$1.key.lowercased()] = text }
            }
        }
        if let raw = content.raw?.objectValue {
            var headers = lowercased(raw["headers"])
            if headers["ttl"] == nil { headers["ttl"] = "2419200" }
            let payload = raw["payload"] ?? ""
            return (Array((payload.stringValue ?? payload.jsonString()).utf8), headers)
        }
        var overrides = PushSupport.overrides(content)
        let headers = lowercased(overrides.removeValue(forKey: "headers"))
        var payload: [String: JSONValue] = ["body": .string(content.body)]
        payload.set("title", content.title)
        payload.set("image", content.image)
        payload.set("badge", content.badge)
        if !content.data.isEmpty { payload["data"] = PushSupport.data(content) }
        return (Array(JSONValue.object(payload).deepMerged(with: .object(overrides)).jsonString().utf8), headers)
    }

    static func isValidTopic(_ topic: String) -> Bool {
        !topic.isEmpty && topic.count <= 32 && topic.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
    }

    /// Maps an answer onto the outcome classes (`docs/providers.md` §Web Push).
    static func classify(_ response: HTTPTransport.Response, now: Date) -> DeliveryOutcome {
        let text = "Web Push \(response.status)"
        switch response.status {
        case 200..<300: return .delivered(providerMessageId: response.headers.first(name: "location"))
        case 400 where response.text.lowercased().contains("vapid") || response.text.contains("UnauthorizedRegistration"):
            return .authConfig(reason: text)
        default:
            return HTTPStatusClasses(invalid: [404, 410]).outcome(
                status: response.status, reason: text, detail: String(response.text.prefix(160)),
                retryAfter: PushSupport.retryAfter(response, now: now))
        }
    }
}

/// VAPID JWTs per audience, renewed an hour before their 12-hour expiry.
actor VAPIDTokens {
    private var cache: [String: CachedCredential] = [:]
    let key: P256.Signing.PrivateKey
    let subject: String
    let clock: any WallClock

    init(key: P256.Signing.PrivateKey, subject: String, clock: any WallClock) {
        self.key = key
        self.subject = subject
        self.clock = clock
    }

    func token(audience: String) throws -> String {
        let now = clock.now()
        if let cached = cache[audience], cached.expiresAt.timeIntervalSince(now) > 3600 { return cached.value }
        let expiry = Int64(now.timeIntervalSince1970) + 12 * 3600
        let token = try JWS.sign(
            header: ["typ": "JWT"],
            claims: ["aud": .string(audience), "exp": .number(Double(expiry)), "sub": .string(subject)], signer: .es256(key))
        cache[audience] = CachedCredential(value: token, expiresAt: Date(timeIntervalSince1970: TimeInterval(expiry)))
        return token
    }

    func clear() { cache.removeAll() }
}
