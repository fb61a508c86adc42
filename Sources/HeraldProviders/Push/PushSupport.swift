import Crypto
import Foundation
import HeraldCore
import NIOCore

/// A provider whose API takes one message per request (APNs, Web Push, webhooks, chat, SMS, email): a batch is sent
/// as concurrent requests, one per message, outcomes in order.
public protocol PerMessageProvider: DeliveryProvider {
    /// Sends one message; never throws — every failure is an outcome.
    func send(_ message: OutboundMessage) async -> DeliveryOutcome
}

extension PerMessageProvider {
    public func send(_ batch: [OutboundMessage]) async -> [DeliveryOutcome] {
        await PushSupport.each(batch) { await self.send($0) }
    }

    /// Each message's outcome is reported as its answer arrives.
    public func send(
        _ batch: [OutboundMessage], reporting: @escaping @Sendable (Int, DeliveryOutcome) async -> Void
    ) async -> [DeliveryOutcome] {
        await PushSupport.each(indices: batch.indices) { index in
            let outcome = await self.send(batch[index])
            await reporting(index, outcome)
            return outcome
        }
    }
}

/// Pieces every push provider uses.
enum PushSupport {
    /// Runs `send` for every message of a batch concurrently and returns the outcomes in order.
    static func each(
        _ batch: [OutboundMessage], _ send: @escaping @Sendable (OutboundMessage) async -> DeliveryOutcome
    ) async -> [DeliveryOutcome] {
        if batch.count == 1 { return [await send(batch[0])] }
        return await each(indices: batch.indices) { await send(batch[$0]) }
    }

    /// Runs `send` for each index concurrently; results in index order.
    static func each<T: Sendable>(indices: Range<Int>, _ send: @escaping @Sendable (Int) async -> T) async -> [T] {
        await withTaskGroup(of: (Int, T).self) { group in
            for index in indices { group.addTask { (index, await send(index)) } }
            var results: [(Int, T)] = []
            results.reserveCapacity(indices.count)
            for await result in group { results.append(result) }
            return results.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }

    /// Indices of the batch grouped by identical rendered content, for providers that send one payload to many
    /// recipients (HMS token lists, OneSignal subscription ids, Beams users, Pushpad uids). The trigger context is
    /// not part of the key: those providers do not forward it.
    static func groupsByContent(_ batch: [OutboundMessage], maximum: Int) -> [[Int]] {
        var order: [MessageContent] = []
        var groups: [MessageContent: [Int]] = [:]
        for (index, message) in batch.enumerated() {
            var key = message.content
            key.context = .null
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(index)
        }
        return order.flatMap { key in
            let indices = groups[key]!
            return stride(from: 0, to: indices.count, by: maximum).map { Array(indices[$0..<min($0 + maximum, indices.count)]) }
        }
    }

    /// A stable UUID for a set of deliveries (idempotency keys, `apns-id`): the same deliveries get the same id on
    /// every retry.
    static func stableUUID(_ parts: [String]) -> String {
        var bytes = Array(SHA256.hash(data: Data(parts.joined(separator: "\n").utf8)).prefix(16))
        bytes[6] = (bytes[6] & 0x0f) | 0x50
        bytes[8] = (bytes[8] & 0x3f) | 0x80
        // 8-4-4-4-12 lowercase hex, written byte by byte (this runs for every APNs request).
        let hex = Array(Hex.encode(bytes).utf8)
        var text: [UInt8] = []
        text.reserveCapacity(36)
        for (index, digit) in hex.enumerated() {
            if index == 8 || index == 12 || index == 16 || index == 20 { text.append(UInt8(ascii: "-")) }
            text.append(digit)
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// The JSON object of an answer, if it has one.
    static func json(_ response: HTTPTransport.Response) -> [String: JSONValue] {
        guard response.body.readableBytes > 0,
            case .object(let object)? = try? JSONValue.parse(bytes: response.body.readableBytesView)
        else { return [:] }
        return object
    }

    static func retryAfter(_ response: HTTPTransport.Response, now: Date) -> Duration? {
        response.headers.first(name: "retry-after").flatMap { RetryAfter.parse($0, now: now) }
    }

    /// A JSON body.
    static func body(_ value: JSONValue) -> ByteBuffer { ByteBuffer(string: value.jsonString()) }

    /// Form-encodes fields (`application/x-www-form-urlencoded`).
    static func form(_ fields: [(String, String)]) -> ByteBuffer {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let text = fields.map { name, value in
            (name.addingPercentEncoding(withAllowedCharacters: allowed) ?? name) + "="
                + (value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value)
        }.joined(separator: "&")
        return ByteBuffer(string: text)
    }

    /// The base URL of a provider's API: the integration's `baseUrl` credential (emulators, proxies) or the
    /// provider's public host; no trailing slash.
    static func baseURL(_ integration: Integration, default fallback: String) throws -> String {
        guard let configured = integration.credentials.string("baseUrl"), !configured.isEmpty else { return fallback }
        guard let url = URL(string: configured), ["https", "http"].contains(url.scheme?.lowercased() ?? ""), url.host != nil else {
            throw HeraldError(
                .configuration, "\(integration.providerId) integration \(integration.identifier): baseUrl is not an http(s) URL")
        }
        return configured.hasSuffix("/") ? String(configured.dropLast()) : configured
    }

    static func required(_ integration: Integration, _ field: String) throws -> String {
        guard let value = integration.credentials.string(field), !value.isEmpty else {
            throw HeraldError(.configuration, "\(integration.providerId) integration \(integration.identifier) has no \(field)")
        }
        return value
    }

    /// A provider's own overrides without the keys that are not payload: the targets (`tokens`, `deviceTokens`, read
    /// by the engine) and Novu's FCM mode switch `type`.
    static func overrides(_ content: MessageContent) -> [String: JSONValue] {
        var overrides = content.overrides.objectValue ?? [:]
        for key in ["tokens", "deviceTokens", "type"] { overrides.removeValue(forKey: key) }
        return overrides
    }

    /// `data` as JSON strings.
    static func data(_ content: MessageContent) -> JSONValue { .object(content.data.mapValues(JSONValue.string)) }
}

extension Dictionary where Key == String, Value == JSONValue {
    /// Sets `key` when `value` is not nil.
    mutating func set(_ key: String, _ value: String?) { if let value { self[key] = .string(value) } }
    mutating func set(_ key: String, _ value: Int?) { if let value { self[key] = .number(Double(value)) } }
}
