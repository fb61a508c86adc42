import Crypto
import Foundation
import HTTPTypes
import HeraldCore
import HeraldProviders
import Hummingbird
import NIOCore
import Synchronization
import _CryptoExtras

/// A push message an emulator accepted (or refused), as the provider would see it.
public struct PushRecord: Sendable {
    public var provider: String
    /// Device token, subscription id, user id, topic…
    public var target: String
    public var title: String?
    public var body: String?
    /// The provider-specific payload (for Web Push: the decrypted JSON).
    public var payload: JSONValue
    public var headers: [String: String]
    public var status: Int
    public var receivedAt: Date

    var json: JSONValue {
        [
            "provider": .string(provider), "target": .string(target), "title": title.map(JSONValue.string) ?? .null,
            "body": body.map(JSONValue.string) ?? .null, "payload": payload, "status": .number(Double(status)),
            "headers": .object(headers.mapValues(JSONValue.string)),
        ]
    }
}

/// A fault program for the push emulators: requests of `provider` (any when nil) for one of `targets` (any when
/// nil) get `status` with the provider's own error `error` (FCM `errorCode`, APNs `reason`, Expo `details.error`,
/// HMS business code…), `Retry-After`, at most `times` times, after `latencyMilliseconds`; `reset` closes the
/// connection instead of answering.
public struct PushFault: Sendable, Codable, Equatable {
    public var provider: String?
    public var targets: [String]?
    public var status: Int
    public var error: String?
    public var retryAfter: String?
    public var times: Int?
    public var latencyMilliseconds: Int?
    public var reset: Bool?

    public init(
        provider: String? = nil, targets: [String]? = nil, status: Int, error: String? = nil, retryAfter: String? = nil,
        times: Int? = nil, latencyMilliseconds: Int? = nil, reset: Bool? = nil
    ) {
        self.provider = provider
        self.targets = targets
        self.status = status
        self.error = error
        self.retryAfter = retryAfter
        self.times = times
        self.latencyMilliseconds = latencyMilliseconds
        self.reset = reset
    }
}

/// Emulators of the push services (`docs/providers.md` §Emulators): Google OAuth + FCM v1, APNs (HTTP/2 only), Web
/// Push endpoints (VAPID checked, body decrypted), Expo, HMS, OneSignal, Pusher Beams and Pushpad. Each checks what
/// the real service checks — signatures against the account's registered public key, token ages, headers, shapes,
/// sizes — records what it accepted, and plays fault programs. Accounts are registered by tests (or are the
/// ``DevAccounts`` the simulator starts with).
public final class PushEmulator: Sendable {
    struct State {
        /// A ring: keeping the newest requests must not shift the whole window on every request.
        var recent = CircularBuffer<PushRecord>(initialCapacity: 1024)
        var counts: [String: Int] = [:]
        var totals: [String: Int] = [:]
        var faults: [PushFault] = []
        var firstAt: Date?
        var lastAt: Date?
        // Accounts.
        var googleAccounts: [String: (project: String, key: _RSA.Signing.PublicKey)] = [:]
        var apnsKeys: [String: P256.Signing.PublicKey] = [:]  // "<team>.<kid>"
        var apnsTopics: Set<String> = []
        var hmsApps: [String: String] = [:]
        var expoAccessToken: String?
        var oneSignalApps: [String: String] = [:]
        var beamsInstances: [String: String] = [:]
        var pushpadProjects: [String: String] = [:]
        var webPushSubscriptions: [String: WebPushDevice] = [:]
        // Issued access tokens: token → (provider, account, expiry).
        var accessTokens: [String: (provider: String, account: String, expires: Date)] = [:]
        var tokenLifetime: TimeInterval = 3599
        // APNs: provider token per connection and when it last changed.
        var apnsConnections: [ObjectIdentifier: (token: String, changedAt: Date)] = [:]
        var verifiedProviderTokens: Set<String> = []
        /// Expo requests that came gzip-compressed.
        var gzipRequests = 0
        var expoReceipts: [String: JSONValue] = [:]
        /// Arrival times (Unix seconds) of accepted messages, for latency percentiles in benchmarks.
        var arrivals: [Double] = []
        var tokenRequests: [String: Int] = [:]
    }

    struct WebPushDevice {
        var key: P256.KeyAgreement.PrivateKey
        var auth: [UInt8]
        var applicationServerKey: String?
    }

    let state = Mutex(State())
    let observers = Observers<PushRecord>()
    public let keepRecent: Int
    /// What is counted as "now" (token ages, expiries).
    let clock: @Sendable () -> Date

    public init(keepRecent: Int = 10_000, clock: @escaping @Sendable () -> Date = { Date() }) {
        self.keepRecent = keepRecent
        self.clock = clock
    }

    // MARK: Accounts

    /// Accepts OAuth assertions signed by `publicKey` for `clientEmail`, and FCM sends to `projectId`.
    public func registerGoogleServiceAccount(clientEmail: String, projectId: String, publicKey: _RSA.Signing.PublicKey) {
        state.withLock { $0.googleAccounts[clientEmail] = (projectId, publicKey) }
    }

    /// Accepts APNs provider tokens of `teamId`/`keyId` signed by `publicKey`, for the bundle ids given.
    public func registerAPNsKey(teamId: String, keyId: String, publicKey: P256.Signing.PublicKey, bundleIds: [String]) {
        state.withLock { state in
            state.apnsKeys["\(teamId).\(keyId)"] = publicKey
            state.apnsTopics.formUnion(bundleIds)
        }
    }

    public func registerHMSApp(clientId: String, secret: String) { state.withLock { $0.hmsApps[clientId] = secret } }
    /// Requires this Expo access token (nil: none required).
    public func requireExpoAccessToken(_ token: String?) { state.withLock { $0.expoAccessToken = token } }
    public func registerOneSignalApp(appId: String, apiKey: String) { state.withLock { $0.oneSignalApps[appId] = apiKey } }
    public func registerBeamsInstance(instanceId: String, secretKey: String) {
        state.withLock { $0.beamsInstances[instanceId] = secretKey }
    }
    public func registerPushpadProject(projectId: String, token: String) { state.withLock { $0.pushpadProjects[projectId] = token } }
    /// Lifetime of the OAuth access tokens the Google and HMS emulators issue.
    public func setAccessTokenLifetime(_ seconds: TimeInterval) { state.withLock { $0.tokenLifetime = seconds } }
    /// How many Expo requests arrived gzip-compressed.
    public var expoGzipRequests: Int { state.withLock { $0.gzipRequests } }

    /// How many access tokens each token endpoint issued (`google`, `hms`).
    public func tokenRequests(_ provider: String) -> Int { state.withLock { $0.tokenRequests[provider] ?? 0 } }

    /// Creates a browser push subscription served by this emulator under `baseURL` (`https://127.0.0.1:<tls port>`):
    /// returns the PushSubscription JSON a browser would hand to the application. `applicationServerKey` (the VAPID
    /// public key) binds the subscription to that key, as browsers do.
    public func makeWebPushSubscription(
        baseURL: String, applicationServerKey: String? = nil, id: String = UUID().uuidString.lowercased()
    )
        -> String
    {
        let key = P256.KeyAgreement.PrivateKey()
        let auth = WebPushCrypto.randomBytes(16)
        state.withLock { $0.webPushSubscriptions[id] = WebPushDevice(key: key, auth: auth, applicationServerKey: applicationServerKey) }
        let subscription: JSONValue = [
            "endpoint": .string("\(baseURL)/webpush/\(id)"),
            "keys": ["p256dh": .string(Base64URL.encode(key.publicKey.x963Representation)), "auth": .string(Base64URL.encode(auth))],
        ]
        return subscription.jsonString()
    }

    /// Ends a subscription (the browser unsubscribed): its endpoint answers 410 from now on.
    public func expireWebPushSubscription(id: String) { _ = state.withLock { $0.webPushSubscriptions.removeValue(forKey: id) } }

    // MARK: Records and faults

    public func addFault(_ fault: PushFault) { state.withLock { $0.faults.append(fault) } }
    public func clearFaults() { state.withLock { $0.faults.removeAll() } }

    public func reset() {
        state.withLock {
            $0.recent.removeAll()
            $0.counts.removeAll()
            $0.totals.removeAll()
            $0.arrivals.removeAll()
            $0.firstAt = nil
            $0.lastAt = nil
        }
    }

    /// Kept records, oldest first, optionally of one provider.
    public func messages(provider: String? = nil) -> [PushRecord] {
        state.withLock { state in provider.map { p in state.recent.filter { $0.provider == p } } ?? Array(state.recent) }
    }

    /// Accepted messages for `target` at `provider`.
    public func deliveries(provider: String, target: String) -> Int { state.withLock { $0.counts["\(provider) \(target)"] ?? 0 } }

    /// Accepted messages per provider.
    public func accepted(provider: String) -> Int { state.withLock { $0.totals[provider] ?? 0 } }

    public func stats() -> (accepted: Int, distinct: Int, duplicates: Int, seconds: Double) {
        state.withLock { state in
            let accepted = state.counts.values.reduce(0, +)
            let seconds = zip2(state.firstAt, state.lastAt).map { $1.timeIntervalSince($0) } ?? 0
            return (accepted, state.counts.count, accepted - state.counts.count, seconds)
        }
    }

    /// The first matching fault for `provider` and any of `targets`, consuming one of its `times`.
    func fault(provider: String, targets: [String]) -> PushFault? {
        state.withLock { state in
            guard
                let index = state.faults.firstIndex(where: { fault in
                    (fault.provider == nil || fault.provider == provider)
                        && (fault.targets == nil || targets.contains { fault.targets!.contains($0) })
                })
            else { return nil }
            let fault = state.faults[index]
            if let times = fault.times {
                if times <= 1 { state.faults.remove(at: index) } else { state.faults[index].times = times - 1 }
            }
            return fault
        }
    }

    /// Faults for each of `targets` (for APIs that answer per recipient).
    func faults(provider: String, targets: [String]) -> [String: PushFault] {
        var result: [String: PushFault] = [:]
        for target in targets { if let fault = fault(provider: provider, targets: [target]) { result[target] = fault } }
        return result
    }

    /// Calls `observer` for every message received from now on (`herald dev` prints them).
    public func observe(_ observer: @escaping @Sendable (PushRecord) -> Void) { observers.add(observer) }

    func record(_ record: PushRecord) {
        observers.notify(record)
        state.withLock { state in
            let now = record.receivedAt
            if state.firstAt == nil { state.firstAt = now }
            state.lastAt = now
            if (200..<300).contains(record.status) {
                state.counts["\(record.provider) \(record.target)", default: 0] += 1
                state.totals[record.provider, default: 0] += 1
                if state.arrivals.count < 4_000_000 { state.arrivals.append(now.timeIntervalSince1970) }
            }
            state.recent.append(record)
            while state.recent.count > keepRecent { state.recent.removeFirst() }
        }
    }

    /// Issues an access token for `provider`/`account`.
    func issueToken(provider: String, account: String) -> (String, Int) {
        let token = "\(provider == "google" ? "ya29" : "hms").\(Base64URL.encode(WebPushCrypto.randomBytes(24)))"
        let lifetime = state.withLock { state in
            state.accessTokens[token] = (provider, account, clock().addingTimeInterval(state.tokenLifetime))
            state.tokenRequests[provider, default: 0] += 1
            return state.tokenLifetime
        }
        return (token, Int(lifetime))
    }

    /// The account a bearer token was issued for, if it is ours, for `provider`, and not expired.
    func account(bearer header: String?, provider: String) -> String? {
        guard let header, header.lowercased().hasPrefix("bearer ") else { return nil }
        let token = String(header.dropFirst(7))
        return state.withLock { state in
            guard let issued = state.accessTokens[token], issued.provider == provider, issued.expires > clock() else { return nil }
            return issued.account
        }
    }

    // MARK: Serving

    /// Adds every push emulator and the push control routes to a router.
    public func register(on router: Router<SimulatorContext>) {
        registerGoogle(on: router)
        registerAPNs(on: router)
        registerWebPush(on: router)
        registerHosted(on: router)
        registerControl(on: router)
    }

    func registerControl(on router: Router<SimulatorContext>) {
        router.get("/_control/push/messages") { request, _ -> Response in
            let provider = request.uri.queryParameters.get("provider")
            let limit = request.uri.queryParameters.get("limit").flatMap(Int.init) ?? 100
            let records = self.messages(provider: provider).suffix(limit)
            return Self.json(200, ["data": .array(records.map(\.json))])
        }
        router.delete("/_control/push/messages") { _, _ -> HTTPResponse.Status in
            self.reset()
            return .noContent
        }
        router.get("/_control/push/stats") { request, _ -> Response in
            let stats = self.stats()
            let (perProvider, last) = self.state.withLock { ($0.totals, $0.lastAt) }
            var body: [String: JSONValue] = [
                "accepted": .number(Double(stats.accepted)), "distinct": .number(Double(stats.distinct)),
                "duplicates": .number(Double(stats.duplicates)), "seconds": .number(stats.seconds),
                "providers": .object(perProvider.mapValues { .number(Double($0)) }),
                "last": last.map { .number($0.timeIntervalSince1970) } ?? .null,
            ]
            // `?since=<unix seconds>`: arrival-latency percentiles relative to that moment (a benchmark's trigger).
            if let since = request.uri.queryParameters.get("since").flatMap(Double.init) {
                let arrivals = self.state.withLock { $0.arrivals }.sorted()
                func percentile(_ p: Double) -> JSONValue {
                    guard !arrivals.isEmpty else { return .null }
                    let index = min(arrivals.count - 1, Int((Double(arrivals.count) * p).rounded(.up)) - 1)
                    return .number(((arrivals[max(index, 0)] - since) * 1000).rounded())
                }
                body["latency_ms"] = ["p50": percentile(0.5), "p99": percentile(0.99), "max": percentile(1)]
            }
            return Self.json(200, .object(body))
        }
        router.get("/_control/apns/dev-token") { _, _ -> Response in
            // A provider token of the dev APNs key, for load generators (h2load) that drive the emulator directly.
            let key = try P256.Signing.PrivateKey(pemRepresentation: DevAccounts.p256PEM)
            let token = try JWS.sign(
                header: ["kid": .string(DevAccounts.apnsKeyId)],
                claims: ["iss": .string(DevAccounts.apnsTeamId), "iat": .number(Double(Int64(self.clock().timeIntervalSince1970)))],
                signer: .es256(key))
            return Self.json(200, ["token": .string(token)])
        }
        router.get("/_control/dev/integrations") { request, _ -> Response in
            // The credentials of one integration per push provider reaching this simulator (for scripts).
            guard let tls = request.uri.queryParameters.get("tls") else {
                return Self.json(400, ["error": "tls=<https base URL> is required"])
            }
            let list = DevAccounts.pushIntegrations(tlsBase: String(tls)).map { item -> JSONValue in
                ["providerId": .string(item.providerId), "identifier": .string(item.identifier), "credentials": item.credentials]
            }
            return Self.json(200, ["data": .array(list)])
        }
        router.post("/_control/push/faults") { request, _ -> HTTPResponse.Status in
            let buffer = try await request.body.collect(upTo: 1 << 20)
            self.addFault(try JSONDecoder().decode(PushFault.self, from: Data(buffer.readableBytesView)))
            return .noContent
        }
        router.delete("/_control/push/faults") { _, _ -> HTTPResponse.Status in
            self.clearFaults()
            return .noContent
        }
        router.post("/_control/webpush/subscriptions") { request, context -> Response in
            let buffer = try await request.body.collect(upTo: 65_536)
            let object = (try? JSONValue.parse(String(buffer: buffer)))?.objectValue ?? [:]
            guard let base = object["baseUrl"]?.stringValue else { return Self.json(400, ["error": "baseUrl is required"]) }
            let subscription = self.makeWebPushSubscription(
                baseURL: base, applicationServerKey: object["applicationServerKey"]?.stringValue)
            return Response(
                status: .created, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: subscription)))
        }
    }

    /// Plays the latency and reset parts of a fault; true when the connection was closed instead of answered.
    func play(_ fault: PushFault?, context: SimulatorContext) async -> Bool {
        if let latency = fault?.latencyMilliseconds { try? await Task.sleep(for: .milliseconds(latency)) }
        if fault?.reset == true {
            context.connection.close(promise: nil)
            return true
        }
        return false
    }

    static func json(_ status: Int, _ value: JSONValue, headers: [(HTTPField.Name, String)] = []) -> Response {
        var fields: HTTPFields = [.contentType: "application/json"]
        for (name, value) in headers { fields[name] = value }
        return Response(status: .init(code: status), headers: fields, body: .init(byteBuffer: ByteBuffer(string: value.jsonString())))
    }

    static func retryHeaders(_ fault: PushFault?) -> [(HTTPField.Name, String)] {
        fault?.retryAfter.map { [(.retryAfter, $0)] } ?? []
    }

    static func body(_ request: Request, limit: Int = 1 << 20) async throws -> [UInt8] {
        Array(try await request.body.collect(upTo: limit).readableBytesView)
    }

    static func headerMap(_ headers: HTTPFields) -> [String: String] {
        var map: [String: String] = [:]
        for field in headers { map[field.name.canonicalName] = field.value }
        return map
    }

    /// Parses `application/x-www-form-urlencoded`.
    static func form(_ bytes: [UInt8]) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in String(decoding: bytes, as: UTF8.self).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map {
                String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String($0)
            }
            if parts.count == 2 { fields[parts[0]] = parts[1] }
        }
        return fields
    }
}

func zip2(_ first: Date?, _ last: Date?) -> (Date, Date)? {
    guard let first, let last else { return nil }
    return (first, last)
}

extension PushEmulator {
    /// Forgets every access token issued (as after a key rotation): the next API calls answer 401.
    public func revokeAccessTokens() { state.withLock { $0.accessTokens.removeAll() } }
}
