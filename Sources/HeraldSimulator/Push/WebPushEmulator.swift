import Crypto
import Foundation
import HTTPTypes
import HeraldCore
import HeraldProviders
import Hummingbird
import NIOCore

/// A push service's endpoint for the subscriptions it handed out (`docs/providers.md` §Web Push, §Emulators): requires
/// `TTL`, one `Urgency`, a valid `Topic`, a VAPID authorization whose JWT verifies under `k` with `aud` = this
/// origin and `exp` within 24 hours (and `k` = the subscription's application server key), then **decrypts** the
/// body with the subscription's private key and records the plaintext.
extension PushEmulator {
    func registerWebPush(on router: Router<SimulatorContext>) {
        router.post("/webpush/:id") { request, context -> Response in
            let id = context.parameters.get("id") ?? ""
            let bytes = try await Self.body(request, limit: 65_536)
            guard let device = self.state.withLock({ $0.webPushSubscriptions[id] }) else {
                return Self.json(410, ["errno": 106, "error": "Gone", "message": "Push subscription is no longer available"])
            }
            let ttlValues = request.headers[values: HTTPField.Name("ttl")!]
            guard ttlValues.count == 1, let ttl = Int(ttlValues[0]), ttl >= 0 else {
                return Self.json(400, ["error": "TTL header missing or invalid"])
            }
            let urgency = request.headers[values: HTTPField.Name("urgency")!]
            guard urgency.count <= 1, urgency.allSatisfy({ ["very-low", "low", "normal", "high"].contains($0) }) else {
                return Self.json(400, ["error": "invalid Urgency"])
            }
            if let topic = request.headers[HTTPField.Name("topic")!] {
                guard !topic.isEmpty, topic.count <= 32,
                    topic.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") })
                else { return Self.json(400, ["error": "invalid Topic"]) }
            }
            // VAPID (RFC 8292).
            guard let authorization = request.headers[.authorization], authorization.lowercased().hasPrefix("vapid ") else {
                return Self.json(401, ["error": "missing VAPID authorization"])
            }
            var parameters: [String: String] = [:]
            for part in authorization.dropFirst(6).split(separator: ",") {
                let pair = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1).map(String.init)
                if pair.count == 2 { parameters[pair[0]] = pair[1] }
            }
            guard let t = parameters["t"], let k = parameters["k"], let jws = JWS.Parsed(t), let keyBytes = Base64URL.decode(k),
                let publicKey = try? P256.Signing.PublicKey(x963Representation: keyBytes), jws.verifies(with: publicKey)
            else { return Self.json(403, ["error": "VAPID signature invalid"]) }
            let origin = request.head.authority.map { "https://\($0)" }
            let now = self.clock().timeIntervalSince1970
            guard let exp = jws.integer("exp"), Double(exp) > now, Double(exp) <= now + 86_400 else {
                return Self.json(403, ["error": "VAPID exp must be in the next 24 hours"])
            }
            guard let audience = jws.claims["aud"]?.stringValue, audience == origin || origin == nil else {
                return Self.json(403, ["error": "VAPID aud is not this push service's origin"])
            }
            guard let subject = jws.claims["sub"]?.stringValue, subject.hasPrefix("mailto:") || subject.hasPrefix("https:") else {
                return Self.json(403, ["error": "VAPID sub must be a mailto: or https: URI"])
            }
            if let bound = device.applicationServerKey, bound != k {
                return Self.json(403, ["error": "VAPID key does not match the subscription's applicationServerKey"])
            }
            guard request.headers[.contentEncoding]?.lowercased() == "aes128gcm" else {
                return Self.json(400, ["error": "Content-Encoding must be aes128gcm"])
            }
            guard bytes.count <= 4096 else { return Self.json(413, ["error": "Payload too large"]) }
            let plaintext: [UInt8]
            do { plaintext = try WebPushCrypto.decrypt(bytes, userAgentKey: device.key, auth: device.auth) } catch {
                return Self.json(400, ["error": .string("cannot decrypt: \(error)")])
            }
            let payload = (try? JSONValue.parse(bytes: plaintext)) ?? .string(String(decoding: plaintext, as: UTF8.self))
            let fault = self.fault(provider: "web-push", targets: [id])
            if await self.play(fault, context: context) { return Self.json(500, [:]) }
            var headers = Self.headerMap(request.headers)
            headers["authorization"] = nil
            var record = PushRecord(
                provider: "web-push", target: id, title: payload.objectValue?["title"]?.stringValue,
                body: payload.objectValue?["body"]?.stringValue,
                payload: payload, headers: headers, status: 201, receivedAt: self.clock())
            if let fault {
                record.status = fault.status
                self.record(record)
                return Self.json(fault.status, ["error": .string(fault.error ?? "emulated")], headers: Self.retryHeaders(fault))
            }
            self.record(record)
            return Response(
                status: .created,
                headers: [.location: "/webpush/messages/\(UUID().uuidString.lowercased())", HTTPField.Name("ttl")!: String(ttl)])
        }
    }
}
