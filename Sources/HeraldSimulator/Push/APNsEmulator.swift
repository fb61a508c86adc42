import Crypto
import Foundation
import HTTPTypes
import HeraldCore
import HeraldProviders
import Hummingbird
import NIOCore
import NIOSSL

/// APNs (`docs/providers.md` §APNs, §Emulators): HTTP/2 only, `POST /3/device/<hex token>`, provider tokens verified
/// against the registered .p8 public key, their age checked (over an hour: `ExpiredProviderToken`) and their changes
/// counted per connection (more often than every 20 minutes: `TooManyProviderTokenUpdates`), headers and payload
/// size checked like Apple does.
extension PushEmulator {
    static let apnsPushTypes: Set<String> = [
        "alert", "background", "location", "voip", "complication", "fileprovider", "mdm", "liveactivity", "pushtotalk", "widgets",
    ]
    static let apnsTopicSuffixes = [
        ".voip", ".complication", ".pushkit.fileprovider", ".location-query", ".voip-ptt", ".push-type.widgets", ".push-type.liveactivity",
    ]

    func registerAPNs(on router: Router<SimulatorContext>) {
        router.post("/3/device/:token") { request, context -> Response in
            let apnsId = request.headers[HTTPField.Name("apns-id")!] ?? UUID().uuidString
            func reject(_ status: Int, _ reason: String, extra: [String: JSONValue] = [:]) -> Response {
                var body: [String: JSONValue] = ["reason": .string(reason)]
                for (key, value) in extra { body[key] = value }
                return Self.json(status, .object(body), headers: [(HTTPField.Name("apns-id")!, apnsId)])
            }
            guard context.isHTTP2 else { return reject(505, "HTTP/2 required") }
            let token = context.parameters.get("token") ?? ""
            guard token.count >= 64, token.utf8.allSatisfy({ Hex.value(of: $0) != nil }) else { return reject(400, "BadDeviceToken") }
            let bytes = try await Self.body(request, limit: 65_536)
            // Provider token, or the client certificate the TLS handshake verified (certificate authentication).
            let now = self.clock()
            var certificateTopic: String?
            if request.headers[.authorization] == nil, let der = await Self.peerCertificate(context.connection),
                let name = TLSIdentity.commonName(der: der), name.hasPrefix("Apple Push Services: ")
            {
                certificateTopic = String(name.dropFirst("Apple Push Services: ".count))
            }
            if certificateTopic == nil {
                guard let authorization = request.headers[.authorization], authorization.lowercased().hasPrefix("bearer ") else {
                    return reject(403, "MissingProviderToken")
                }
                let jwt = String(authorization.dropFirst(7))
                guard let jws = JWS.Parsed(jwt), let kid = jws.header["kid"]?.stringValue, let team = jws.claims["iss"]?.stringValue else {
                    return reject(403, "InvalidProviderToken")
                }
                guard let key = self.state.withLock({ $0.apnsKeys["\(team).\(kid)"] }) else { return reject(403, "InvalidProviderToken") }
                // A token's signature is checked once (as APNs does per connection), then remembered.
                if !self.state.withLock({ $0.verifiedProviderTokens.contains(jwt) }) {
                    guard jws.verifies(with: key) else { return reject(403, "InvalidProviderToken") }
                    self.state.withLock { state in
                        if state.verifiedProviderTokens.count > 10_000 { state.verifiedProviderTokens.removeAll() }
                        state.verifiedProviderTokens.insert(jwt)
                    }
                }
                guard let iat = jws.integer("iat"), now.timeIntervalSince1970 - Double(iat) <= 3600 else {
                    return reject(403, "ExpiredProviderToken")
                }
                let tooManyUpdates = self.state.withLock { state -> Bool in
                    if let previous = state.apnsConnections[context.connectionId], previous.token != jwt {
                        if now.timeIntervalSince(previous.changedAt) < 20 * 60 { return true }
                    }
                    if state.apnsConnections[context.connectionId]?.token != jwt {
                        state.apnsConnections[context.connectionId] = (jwt, now)
                    }
                    return false
                }
                if tooManyUpdates { return reject(429, "TooManyProviderTokenUpdates") }
            }
            // Headers.
            let pushType = request.headers[HTTPField.Name("apns-push-type")!] ?? "alert"
            guard Self.apnsPushTypes.contains(pushType) else { return reject(400, "InvalidPushType") }
            guard let topic = request.headers[HTTPField.Name("apns-topic")!] else { return reject(400, "MissingTopic") }
            let bundle = Self.apnsTopicSuffixes.first { topic.hasSuffix($0) }.map { String(topic.dropLast($0.count)) } ?? topic
            if let certificateTopic {
                // A certificate covers its own bundle id (and its suffixed topics) only.
                guard bundle == certificateTopic else { return reject(400, "TopicDisallowed") }
            } else {
                guard self.state.withLock({ $0.apnsTopics.contains(bundle) }) else { return reject(400, "TopicDisallowed") }
            }
            if let priority = request.headers[HTTPField.Name("apns-priority")!], !["1", "5", "10"].contains(priority) {
                return reject(400, "BadPriority")
            }
            if let collapse = request.headers[HTTPField.Name("apns-collapse-id")!], collapse.utf8.count > 64 {
                return reject(400, "BadCollapseId")
            }
            if let expiration = request.headers[HTTPField.Name("apns-expiration")!], Int64(expiration) == nil {
                return reject(400, "BadExpirationDate")
            }
            if let id = request.headers[HTTPField.Name("apns-id")!], UUID(uuidString: id) == nil { return reject(400, "BadMessageId") }
            guard bytes.count <= (pushType == "voip" ? 5120 : 4096) else { return reject(413, "PayloadTooLarge") }
            guard !bytes.isEmpty, case .object(let payload)? = try? JSONValue.parse(bytes: bytes), case .object(let aps)? = payload["aps"]
            else {
                return reject(400, "PayloadEmpty")
            }
            let fault = self.fault(provider: "apns", targets: [token])
            if await self.play(fault, context: context) { return reject(500, "InternalServerError") }
            let alert = aps["alert"]
            var record = PushRecord(
                provider: "apns", target: token, title: alert?.objectValue?["title"]?.stringValue,
                body: alert?.objectValue?["body"]?.stringValue ?? alert?.stringValue, payload: .object(payload),
                headers: Self.headerMap(request.headers).filter { $0.key.hasPrefix("apns-") }, status: 200, receivedAt: now)
            if let fault {
                record.status = fault.status
                self.record(record)
                let extra: [String: JSONValue] =
                    fault.status == 410 ? ["timestamp": .number((now.timeIntervalSince1970 * 1000).rounded())] : [:]
                return reject(fault.status, fault.error ?? "InternalServerError", extra: extra).withHeaders(Self.retryHeaders(fault))
            }
            self.record(record)
            return Response(status: .ok, headers: [HTTPField.Name("apns-id")!: apnsId])
        }
    }
}

extension PushEmulator {
    /// The DER of the client certificate presented on `connection`, if any (read on its event loop).
    static func peerCertificate(_ connection: any NIOCore.Channel) async -> [UInt8]? {
        try? await connection.eventLoop.submit {
            try connection.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).peerCertificate?.toDERBytes()
        }.get()
    }
}
