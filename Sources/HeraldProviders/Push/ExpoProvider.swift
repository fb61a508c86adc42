import Foundation
import HeraldCore
import NIOCore

/// Expo's push API (`docs/providers.md` §Expo): up to 100 messages per request, one ticket per message in order.
/// A ticket's `DeviceNotRegistered` removes the token at once; an `ok` ticket keeps its receipt id as the provider
/// message id, and the engine fetches the receipts 15 minutes later (``ReceiptProvider``): a receipt's
/// `DeviceNotRegistered` removes the device then.
///
/// Bodies over 1 KiB are sent gzip-compressed, as Expo's SDK does.
///
/// Credentials: `apiKey` (the access token, when the project enforces enhanced push security); `baseUrl` replaces
/// `https://exp.host`.
public struct ExpoProvider: ReceiptProvider {
    public let providerId = "expo"
    public var batchSize: Int { ProviderCatalog.batchLimit(providerId) }
    public let concurrency = 6
    /// Expo: "check receipts about 15 minutes after sending".
    public let receiptDelay: Duration = .seconds(15 * 60)
    let base: String
    let accessToken: String?
    let transport: HTTPTransport
    let clock: any WallClock

    public init(integration: Integration, transport: HTTPTransport, clock: any WallClock = SystemWallClock()) throws {
        base = try PushSupport.baseURL(integration, default: "https://exp.host")
        accessToken = integration.credentials.string("apiKey").flatMap { $0.isEmpty ? nil : $0 }
        self.transport = transport
        self.clock = clock
    }

    var headers: [(String, String)] {
        var headers = [("content-type", "application/json"), ("accept", "application/json")]
        if let accessToken { headers.append(("authorization", "Bearer \(accessToken)")) }
        return headers
    }

    public func send(_ batch: [OutboundMessage]) async -> [DeliveryOutcome] {
        var body = PushSupport.body(.array(batch.map(Self.message(for:))))
        var headers = self.headers
        // Like Expo's SDK: bodies over 1 KiB go gzip-compressed.
        if body.readableBytes > 1024, let compressed = Gzip.compress(Array(body.readableBytesView)) {
            body = ByteBuffer(bytes: compressed)
            headers.append(("content-encoding", "gzip"))
        }
        let response: HTTPTransport.Response
        do { response = try await transport.post(base + "/--/api/v2/push/send", headers: headers, body: body) } catch {
            return Array(repeating: HTTPOutcome.transportFailure(error), count: batch.count)
        }
        let object = PushSupport.json(response)
        guard response.status == 200, case .array(let tickets)? = object["data"], tickets.count == batch.count else {
            return Array(repeating: Self.requestFailure(response, object: object, now: clock.now()), count: batch.count)
        }
        return tickets.map { Self.classify(ticket: $0.objectValue ?? [:]) }
    }

    /// Receipt outcomes for receipt ids (at most 1000 per call); ids without a receipt yet are absent.
    public func receipts(_ ids: [String]) async throws -> [String: DeliveryOutcome] {
        var outcomes: [String: DeliveryOutcome] = [:]
        for start in stride(from: 0, to: ids.count, by: 1000) {
            let chunk = Array(ids[start..<min(start + 1000, ids.count)])
            let response = try await transport.post(
                base + "/--/api/v2/push/getReceipts", headers: headers, body: PushSupport.body(["ids": .array(chunk.map(JSONValue.string))])
            )
            guard response.status == 200, case .object(let receipts)? = PushSupport.json(response)["data"] else {
                throw HeraldError(.unavailable, "Expo getReceipts answered HTTP \(response.status)")
            }
            for (id, receipt) in receipts { outcomes[id] = Self.classify(ticket: receipt.objectValue ?? [:]) }
        }
        return outcomes
    }

    static func message(for outbound: OutboundMessage) -> JSONValue {
        let content = outbound.content
        var message: [String: JSONValue] = ["to": .string(outbound.target.revealed), "body": .string(content.body)]
        message.set("title", content.title)
        message.set("sound", content.sound)
        message.set("badge", content.badge)
        message.set("ttl", content.ttl)
        if let priority = content.priority { message["priority"] = .string(priority == "high" ? "high" : "normal") }
        if !content.data.isEmpty { message["data"] = PushSupport.data(content) }
        return JSONValue.object(message).deepMerged(with: .object(PushSupport.overrides(content)))
    }

    static func classify(ticket: [String: JSONValue]) -> DeliveryOutcome {
        if ticket["status"]?.stringValue == "ok" { return .delivered(providerMessageId: ticket["id"]?.stringValue) }
        let code = ticket["details"]?.objectValue?["error"]?.stringValue ?? ""
        let reason = "Expo \(code.isEmpty ? "error" : code): \(ticket["message"]?.stringValue?.prefix(160) ?? "")"
        switch code {
        case "DeviceNotRegistered": return .invalidToken(reason: reason)
        case "MessageRateExceeded": return .retryLater(reason: reason, after: nil)
        case "MismatchSenderId", "InvalidCredentials": return .authConfig(reason: reason)
        default: return .badRequest(reason: reason)
        }
    }

    static func requestFailure(_ response: HTTPTransport.Response, object: [String: JSONValue], now: Date) -> DeliveryOutcome {
        let code = object["errors"]?.arrayValue?.first?.objectValue?["code"]?.stringValue ?? ""
        let reason = "Expo \(response.status) \(code)"
        switch (response.status, code) {
        case (_, "UNAUTHORIZED"), (401, _), (403, _): return .authConfig(reason: reason)
        case (429, _), (_, "TOO_MANY_REQUESTS"), (500..<600, _):
            return .retryLater(reason: reason, after: PushSupport.retryAfter(response, now: now))
        default: return .badRequest(reason: reason)
        }
    }
}
