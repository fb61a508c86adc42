import Crypto
import Foundation
import HeraldCore
import NIOCore
import NIOSSL

/// Apple Push Notification service (`docs/providers.md` §APNs): HTTP/2 over TLS, `POST /3/device/<token>`.
///
/// Token authentication signs one ES256 provider token (`kid` = key id, `iss` = team id, `iat`) and reuses it for 50
/// minutes on every connection — APNs answers `TooManyProviderTokenUpdates` to a provider that regenerates it more
/// often than every 20 minutes. Certificate authentication presents the integration's PKCS#12 identity in the TLS
/// handshake instead.
///
/// Credentials (Novu's names): `secretKey` (the .p8 key), `apiKey` (key id), `projectName` (team id),
/// `applicationId` (bundle id), `secure` (true: production host), or `certificate` (base64 PKCS#12) with
/// `passphrase`; `baseUrl` replaces the host.
public struct APNsProvider: DeliveryProvider {
    public let providerId = "apns"
    public var batchSize: Int { ProviderCatalog.batchLimit(providerId) }
    public let concurrency = 16
    let host: String
    let bundleId: String
    let signing: (key: P256.Signing.PrivateKey, keyId: String, teamId: String)?
    let tls: TLSConfiguration?
    let transport: HTTPTransport
    let clock: any WallClock
    let tokens: CredentialCache

    /// Provider tokens live this long (Apple: refresh no more than every 20 and no less than every 60 minutes).
    static let tokenLifetime: TimeInterval = 50 * 60

    public init(integration: Integration, transport: HTTPTransport, clock: any WallClock = SystemWallClock()) throws {
        let credentials = integration.credentials
        bundleId = try PushSupport.required(integration, "applicationId")
        let production: Bool =
            switch credentials["secure"] {
            case .bool(let value)?: value
            case .string(let text)?: text == "true"
            default: false
            }
        host = try PushSupport.baseURL(
            integration, default: production ? "https://api.push.apple.com" : "https://api.sandbox.push.apple.com")
        self.transport = transport
        self.clock = clock
        if let certificate = credentials.string("certificate"), !certificate.isEmpty {
            guard let bytes = Data(base64Encoded: certificate, options: .ignoreUnknownCharacters),
                let bundle = try? NIOSSLPKCS12Bundle(buffer: Array(bytes), passphrase: Array((credentials.string("passphrase") ?? "").utf8))
            else {
                throw HeraldError(
                    .configuration,
                    "apns integration \(integration.identifier): certificate is not a PKCS#12 bundle (or the passphrase is wrong)")
            }
            var tls = transport.tlsConfiguration
            tls.certificateChain = bundle.certificateChain.map { .certificate($0) }
            tls.privateKey = .privateKey(bundle.privateKey)
            self.tls = tls
            signing = nil
        } else {
            let pem = try PushSupport.required(integration, "secretKey")
            guard let key = try? P256.Signing.PrivateKey(pemRepresentation: pem) else {
                throw HeraldError(.configuration, "apns integration \(integration.identifier): secretKey is not a P-256 .p8 key")
            }
            signing = (key, try PushSupport.required(integration, "apiKey"), try PushSupport.required(integration, "projectName"))
            tls = nil
        }
        let signing = self.signing
        tokens = CredentialCache(refreshMargin: 0, clock: clock) {
            guard let signing else { return CachedCredential(value: "", expiresAt: .distantFuture) }
            let now = clock.now()
            let token = try JWS.sign(
                header: ["kid": .string(signing.keyId)],
                claims: ["iss": .string(signing.teamId), "iat": .number(Double(Int64(now.timeIntervalSince1970)))],
                signer: .es256(signing.key))
            return CachedCredential(value: token, expiresAt: now.addingTimeInterval(Self.tokenLifetime))
        }
    }

    /// Signs a new provider token only when the current one is at least 20 minutes old: APNs refuses tokens that
    /// change more often, and a 403 other than `ExpiredProviderToken` is not cured by a new token anyway.
    public func refreshCredentials() async {
        await tokens.invalidate(expiringBefore: clock.now().addingTimeInterval(Self.tokenLifetime - 20 * 60))
    }

    /// A request ready to go: headers without `authorization`, and the body.
    struct Request {
        var path: String
        var headers: [(String, String)]
        var body: [UInt8]
    }

    enum Built {
        case request(Request)
        case rejected(DeliveryOutcome)
    }

    /// Sends a batch as one write of HTTP/2 streams (``HTTPTransport/send(base:_:tls:)``), all under one provider
    /// token; the requests answered `403 ExpiredProviderToken` are sent once more under a newly signed token.
    public func send(_ batch: [OutboundMessage]) async -> [DeliveryOutcome] {
        var outcomes = [DeliveryOutcome?](repeating: nil, count: batch.count)
        var requests: [(index: Int, request: HTTPBatchRequest)] = []
        let now = clock.now()
        for (index, message) in batch.enumerated() {
            switch Self.request(for: message, bundleId: bundleId, now: now) {
            case .request(let built):
                requests.append(
                    (index, HTTPBatchRequest(path: built.path, headers: built.headers, body: ByteBuffer(bytes: built.body))))
            case .rejected(let problem): outcomes[index] = problem
            }
        }
        var renewed = false
        while !requests.isEmpty {
            var token: String?
            if signing != nil {
                do { token = try await tokens.value() } catch {
                    for (index, _) in requests { outcomes[index] = .authConfig(reason: "cannot sign the APNs provider token") }
                    break
                }
            }
            let answers = await transport.send(
                base: host,
                requests.map { index, request in
                    var request = request
                    if let token { request.headers.append(("authorization", "bearer \(token)")) }
                    return request
                }, tls: tls)
            var expired: [(index: Int, request: HTTPBatchRequest)] = []
            for (pending, answer) in zip(requests, answers) {
                switch answer {
                case .failure(let error):
                    outcomes[pending.index] = HTTPOutcome.transportFailure(error)
                case .success(let response):
                    if response.status == 403, token != nil, !renewed,
                        PushSupport.json(response)["reason"]?.stringValue == "ExpiredProviderToken"
                    {
                        expired.append(pending)
                    } else {
                        outcomes[pending.index] = Self.classify(response, now: clock.now())
                    }
                }
            }
            if let token, !expired.isEmpty { await tokens.invalidate(token) }
            renewed = true
            requests = expired
        }
        return outcomes.map { $0 ?? .retryLater(reason: "not sent", after: nil) }
    }

    /// Headers and `aps` payload for one delivery (`docs/providers.md` §APNs), or a bad-request outcome when the
    /// payload is over the limit (4 KB, 5 KB for VoIP) — refused without a network call.
    static func request(for message: OutboundMessage, bundleId: String, now: Date) -> Built {
        let content = message.content
        if let raw = content.raw { return rawRequest(raw, for: message, bundleId: bundleId) }
        var overrides = PushSupport.overrides(content)
        let headerOverrides = overrides.removeValue(forKey: "headers")?.objectValue ?? [:]
        let pushType =
            overrides.removeValue(forKey: "pushType")?.stringValue ?? headerOverrides["apns-push-type"]?.stringValue
            ?? ((content.title ?? "").isEmpty && content.body.isEmpty ? "background" : "alert")
        let topic = overrides.removeValue(forKey: "topic")?.stringValue ?? bundleId + (topicSuffixes[pushType] ?? "")
        var aps: [String: JSONValue] = [:]
        if pushType == "background" {
            aps["content-available"] = 1
        } else {
            var alert: [String: JSONValue] = ["body": .string(content.body)]
            alert.set("title", content.title)
            aps["alert"] = .object(alert)
            aps.set("sound", content.sound)
            aps.set("badge", content.badge)
            if content.image != nil { aps["mutable-content"] = 1 }
        }
        var payload: [String: JSONValue] = [:]
        for (key, value) in content.data where key != "aps" { payload[key] = .string(value) }
        if let image = content.image { payload["image"] = .string(image) }
        payload["aps"] = .object(aps)
        var merged = JSONValue.object(payload)
        if let apsOverride = overrides.removeValue(forKey: "aps") { merged = merged.deepMerged(with: ["aps": apsOverride]) }
        if let payloadOverride = overrides.removeValue(forKey: "payload") { merged = merged.deepMerged(with: payloadOverride) }
        merged = merged.deepMerged(with: .object(overrides))
        let body = Array(merged.jsonString().utf8)
        let limit = pushType == "voip" ? 5120 : 4096
        guard body.count <= limit else {
            return .rejected(.badRequest(reason: "APNs payload is \(body.count) bytes, over the \(limit)-byte limit"))
        }
        let priority = pushType == "background" ? "5" : content.priority == "normal" ? "5" : "10"
        var headers: [String: String] = [
            "apns-push-type": pushType, "apns-topic": topic, "apns-priority": priority,
            "apns-id": PushSupport.stableUUID([message.deliveryId]), "content-type": "application/json",
        ]
        if let ttl = content.ttl { headers["apns-expiration"] = ttl <= 0 ? "0" : String(Int64(now.timeIntervalSince1970) + Int64(ttl)) }
        if let collapseKey = content.collapseKey {
            guard collapseKey.utf8.count <= 64 else { return .rejected(.badRequest(reason: "apns-collapse-id is longer than 64 bytes")) }
            headers["apns-collapse-id"] = collapseKey
        }
        for (name, value) in headerOverrides { if let text = value.stringValue { headers[name.lowercased()] = text } }
        return .request(Request(path: "/3/device/\(message.target.revealed)", headers: headers.map { ($0.key, $0.value) }, body: body))
    }

    static let topicSuffixes = [
        "voip": ".voip", "complication": ".complication", "fileprovider": ".pushkit.fileprovider", "location": ".location-query",
        "pushtotalk": ".voip-ptt", "widgets": ".push-type.widgets", "liveactivity": ".push-type.liveactivity",
    ]

    /// A raw `{headers, payload}` (Centrifugo `apns`): the payload goes out as given, the headers as given (names
    /// lower-cased); Herald only fills in what APNs needs and the caller left out — `apns-topic` (the bundle id, with
    /// the push type's suffix), `apns-push-type` (`background` for a content-available-only payload, else `alert`)
    /// and a stable `apns-id`.
    static func rawRequest(_ raw: JSONValue, for message: OutboundMessage, bundleId: String) -> Built {
        let object = raw.objectValue ?? [:]
        let payload = object["payload"] ?? [:]
        var headers: [String: String] = [:]
        for (name, value) in object["headers"]?.objectValue ?? [:] { if let text = value.stringValue { headers[name.lowercased()] = text } }
        let aps = payload.objectValue?["aps"]?.objectValue ?? [:]
        let silent = aps["alert"] == nil && aps["sound"] == nil && aps["badge"] == nil && aps["content-available"] != nil
        let pushType = headers["apns-push-type"] ?? (silent ? "background" : "alert")
        headers["apns-push-type"] = pushType
        headers["apns-topic"] = headers["apns-topic"] ?? bundleId + (topicSuffixes[pushType] ?? "")
        if pushType == "background", headers["apns-priority"] == nil { headers["apns-priority"] = "5" }
        headers["apns-id"] = headers["apns-id"] ?? PushSupport.stableUUID([message.deliveryId])
        headers["content-type"] = "application/json"
        let body = Array(payload.jsonString().utf8)
        let limit = pushType == "voip" ? 5120 : 4096
        guard body.count <= limit else {
            return .rejected(.badRequest(reason: "APNs payload is \(body.count) bytes, over the \(limit)-byte limit"))
        }
        if let collapseId = headers["apns-collapse-id"], collapseId.utf8.count > 64 {
            return .rejected(.badRequest(reason: "apns-collapse-id is longer than 64 bytes"))
        }
        return .request(Request(path: "/3/device/\(message.target.revealed)", headers: headers.map { ($0.key, $0.value) }, body: body))
    }

    /// Maps an answer onto the outcome classes (`docs/providers.md` §APNs).
    static func classify(_ response: HTTPTransport.Response, now: Date) -> DeliveryOutcome {
        if response.status == 200 { return .delivered(providerMessageId: response.headers.first(name: "apns-id")) }
        let reason = PushSupport.json(response)["reason"]?.stringValue ?? ""
        let text = "APNs \(response.status) \(reason)"
        switch (response.status, reason) {
        case (410, _), (400, "BadDeviceToken"), (400, "DeviceTokenNotForTopic"):
            return .invalidToken(reason: text)
        case (400, "TopicDisallowed"), (403, _):
            return .authConfig(reason: text)
        case (400, "IdleTimeout"), (429, "TooManyRequests"), (500..<600, _):
            return .retryLater(reason: text, after: PushSupport.retryAfter(response, now: now))
        case (429, _):
            return .retryLater(reason: text, after: PushSupport.retryAfter(response, now: now) ?? .seconds(60))
        default:
            return .badRequest(reason: text)
        }
    }
}
