import Foundation
import HTTPTypes
import HeraldCore
import HeraldProviders
import Hummingbird
import NIOCore
import Synchronization

/// A request the emulator received.
public struct ReceivedRequest: Sendable {
    public var path: String
    public var headers: [String: String]
    public var body: JSONValue
    /// The device token, address or number the request was for (`target[0]`, `to`), if any.
    public var target: String?
    /// Whether the `X-Herald-Signature` matched the secret registered for the path (nil: no secret registered).
    public var signatureValid: Bool?
    /// The status answered.
    public var status: Int
    public var receivedAt: Date
}

/// A fault program: requests to `path` (any when nil) for one of `targets` (any when nil) are answered with
/// `status` (and `Retry-After`), at most `times` times (always when nil), after `latencyMilliseconds`.
public struct Fault: Sendable, Codable, Equatable {
    public var path: String?
    public var targets: [String]?
    public var status: Int
    public var retryAfter: String?
    public var times: Int?
    public var latencyMilliseconds: Int?

    public init(
        path: String? = nil, targets: [String]? = nil, status: Int, retryAfter: String? = nil, times: Int? = nil,
        latencyMilliseconds: Int? = nil
    ) {
        self.path = path
        self.targets = targets
        self.status = status
        self.retryAfter = retryAfter
        self.times = times
        self.latencyMilliseconds = latencyMilliseconds
    }
}

/// Emulates the receivers of Herald's webhook providers (`push-webhook`, `chat-webhook`, `email-webhook`,
/// `generic-sms`) under `POST /hooks/<name>`: it verifies the `X-Herald-Signature` and `X-Novu-Signature` of every
/// request against the secret registered for that hook (a bad signature gets 401, as a real receiver would answer),
/// records what it received, and plays fault programs. The newest requests are kept whole; every request is counted
/// per target so that fan-out tests and benchmarks can check "each device reached once" at any scale.
public final class WebhookEmulator: Sendable {
    private struct State {
        /// A ring: keeping the newest requests must not shift the whole window on every request.
        var recent = CircularBuffer<ReceivedRequest>(initialCapacity: 1024)
        var counts: [String: Int] = [:]
        /// The `X-Herald-Delivery` id of the first 2xx request per target, and every later 2xx request's (a repeat).
        var firstDelivery: [String: (id: String, at: Date)] = [:]
        var repeats: [Repeat] = []
        var total = 0
        /// Requests received and not answered yet (held by a latency fault).
        var inFlight = 0
        var faults: [Fault] = []
        var secrets: [String: String] = [:]
        var firstAt: Date?
        var lastAt: Date?
    }
    private let state = Mutex(State())
    /// How many requests are kept whole.
    public let keepRecent: Int

    public init(keepRecent: Int = 10_000) {
        self.keepRecent = keepRecent
    }

    // MARK: Control

    /// Verify requests to `/hooks/<hook>` against `secret`.
    public func setSecret(_ secret: String, forHook hook: String) {
        state.withLock { $0.secrets["/hooks/\(hook)"] = secret }
    }

    public func addFault(_ fault: Fault) { state.withLock { $0.faults.append(fault) } }
    public func clearFaults() { state.withLock { $0.faults.removeAll() } }

    /// Forgets everything received (faults and secrets stay).
    public func reset() {
        state.withLock {
            $0.recent.removeAll()
            $0.counts.removeAll()
            $0.firstDelivery.removeAll()
            $0.repeats.removeAll()
            $0.total = 0
            $0.firstAt = nil
            $0.lastAt = nil
        }
    }

    /// The kept requests, oldest first, optionally for one hook.
    public func requests(hook: String? = nil) -> [ReceivedRequest] {
        state.withLock { state in hook.map { name in state.recent.filter { $0.path == "/hooks/\(name)" } } ?? Array(state.recent) }
    }

    /// How many requests are being held by a latency fault right now (received, not yet answered or recorded).
    public func inFlight() -> Int { state.withLock { $0.inFlight } }

    /// A target reached with 2xx again: the `X-Herald-Delivery` ids of the first request and of this one (equal when
    /// the same delivery was sent again, as after a crash; different when a second delivery was planned).
    public struct Repeat: Sendable {
        public var target: String
        public var first: String
        public var repeated: String
        public var firstAt: Date
        public var at: Date
    }

    /// Every repeat so far, oldest first.
    public func repeats() -> [Repeat] { state.withLock { $0.repeats } }

    /// How many requests answered 2xx for `target`.
    public func deliveries(to target: String) -> Int { state.withLock { $0.counts[target] ?? 0 } }

    /// Totals: requests, distinct targets reached with 2xx, and 2xx requests beyond the first per target.
    public func stats() -> (total: Int, distinct: Int, duplicates: Int, first: Date?, last: Date?) {
        state.withLock { state in
            let delivered = state.counts.values.reduce(0, +)
            return (state.total, state.counts.count, delivered - state.counts.count, state.firstAt, state.lastAt)
        }
    }

    // MARK: Serving

    func receive(path: String, headers: HTTPFields, bytes: [UInt8]) async -> (status: Int, retryAfter: String?) {
        let body = (try? JSONValue.parse(String(decoding: bytes, as: UTF8.self))) ?? .null
        let object = body.objectValue ?? [:]
        let target: String? =
            if case .array(let items)? = object["target"] { items.first?.stringValue } else {
                object["to"]?.stringValue ?? object["to"].flatMap { if case .array(let a) = $0 { a.first?.stringValue } else { nil } }
            }
        let chosen = state.withLock { state -> (Fault?, String?) in
            var fault: Fault?
            if let index = state.faults.firstIndex(where: { fault in
                (fault.path == nil || fault.path == path) && (fault.targets == nil || target.map { fault.targets!.contains($0) } == true)
            }) {
                fault = state.faults[index]
                if let times = state.faults[index].times {
                    if times <= 1 { state.faults.remove(at: index) } else { state.faults[index].times = times - 1 }
                }
            }
            return (fault, state.secrets[path])
        }
        let (fault, secret) = chosen
        if let latency = fault?.latencyMilliseconds {
            state.withLock { $0.inFlight += 1 }
            try? await Task.sleep(for: .milliseconds(latency))
            state.withLock { $0.inFlight -= 1 }
        }
        var signatureValid: Bool?
        if let secret {
            let herald =
                headers[HTTPField.Name("x-herald-signature")!].map { WebhookSignature.verify(header: $0, secret: secret, body: bytes) }
                ?? false
            let novu = headers[HTTPField.Name("x-novu-signature")!] == WebhookSignature.novuSignature(secret: secret, body: bytes)
            signatureValid = herald && novu
        }
        let status = signatureValid == false ? 401 : fault?.status ?? 201
        var headerMap: [String: String] = [:]
        for field in headers { headerMap[field.name.canonicalName] = field.value }
        let received = ReceivedRequest(
            path: path, headers: headerMap, body: body, target: target, signatureValid: signatureValid, status: status, receivedAt: Date())
        state.withLock { state in
            state.total += 1
            if state.firstAt == nil { state.firstAt = received.receivedAt }
            state.lastAt = received.receivedAt
            if (200..<300).contains(status), let target {
                state.counts[target, default: 0] += 1
                let delivery = headerMap["x-herald-delivery"] ?? ""
                if let first = state.firstDelivery[target] {
                    state.repeats.append(
                        Repeat(target: target, first: first.id, repeated: delivery, firstAt: first.at, at: received.receivedAt))
                } else {
                    state.firstDelivery[target] = (delivery, received.receivedAt)
                }
            }
            state.recent.append(received)
            while state.recent.count > keepRecent { state.recent.removeFirst() }
        }
        return (status, fault?.retryAfter)
    }

    /// Adds the hook and control routes to a router.
    public func register<Context: RequestContext>(on router: Router<Context>) {
        router.post("/hooks/:name") { request, context -> Response in
            let buffer = try await request.body.collect(upTo: 4 << 20)
            let (status, retryAfter) = await self.receive(
                path: request.uri.path, headers: request.headers, bytes: Array(buffer.readableBytesView))
            var headers: HTTPFields = [.contentType: "application/json"]
            if let retryAfter { headers[.retryAfter] = retryAfter }
            let body =
                (200..<300).contains(status) ? "{\"id\":\"\(UUID().uuidString.lowercased())\"}" : "{\"error\":\"emulated \(status)\"}"
            return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        router.post("/_control/faults") { request, context -> HTTPResponse.Status in
            let buffer = try await request.body.collect(upTo: 1 << 20)
            self.addFault(try JSONDecoder().decode(Fault.self, from: Data(buffer.readableBytesView)))
            return .noContent
        }
        router.delete("/_control/faults") { _, _ -> HTTPResponse.Status in
            self.clearFaults()
            return .noContent
        }
        router.put("/_control/secrets/:name") { request, context -> HTTPResponse.Status in
            let buffer = try await request.body.collect(upTo: 65_536)
            guard let name = context.parameters.get("name"), case .object(let object) = try JSONValue.parse(String(buffer: buffer)),
                let secret = object["secret"]?.stringValue
            else { return .badRequest }
            self.setSecret(secret, forHook: name)
            return .noContent
        }
        router.delete("/_control/requests") { _, _ -> HTTPResponse.Status in
            self.reset()
            return .noContent
        }
        router.get("/_control/stats") { _, _ -> Response in
            let stats = self.stats()
            let seconds = zip2(stats.first, stats.last).map { $1.timeIntervalSince($0) } ?? 0
            let json: JSONValue = [
                "total": .number(Double(stats.total)), "distinct": .number(Double(stats.distinct)),
                "duplicates": .number(Double(stats.duplicates)), "seconds": .number(seconds),
            ]
            return Response(
                status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: json.jsonString())))
        }
        router.get("/_control/repeats") { _, _ -> Response in
            let repeats: [JSONValue] = self.repeats().map { item in
                [
                    "target": .string(item.target), "first": .string(item.first), "repeated": .string(item.repeated),
                    "firstAt": .number(item.firstAt.timeIntervalSince1970), "at": .number(item.at.timeIntervalSince1970),
                ]
            }
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: JSONValue.array(repeats).jsonString())))
        }
        router.get("/_control/targets/:target") { _, context -> Response in
            let count = self.deliveries(to: context.parameters.get("target") ?? "")
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: "{\"deliveries\":\(count)}")))
        }
    }
}
