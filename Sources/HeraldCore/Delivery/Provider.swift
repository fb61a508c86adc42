import Foundation

/// What a provider client sends for one delivery: the rendered step content and one target (a push token, a
/// webhook URL, an address, a phone number).
public struct OutboundMessage: Sendable, Hashable {
    /// The delivery record this send belongs to (providers put it into idempotency headers where they have one).
    public var deliveryId: String
    /// The device token, chat webhook URL, email address or phone number; a secret (never logged).
    public var target: Secret
    public var content: MessageContent

    public init(deliveryId: String, target: Secret, content: MessageContent) {
        self.deliveryId = deliveryId
        self.target = target
        self.content = content
    }
}

/// Rendered content of one channel step for one recipient, in Herald's provider-neutral fields. Each provider maps
/// the fields it knows and deep-merges ``overrides`` (its own entry of the step's and the trigger's overrides).
public struct MessageContent: Sendable, Hashable {
    public var channel: Channel
    /// Push title / email subject.
    public var title: String?
    /// Push, chat and SMS text; email HTML.
    public var body: String
    /// Email plain-text part.
    public var text: String?
    /// Push custom data (strings, as push services want them).
    public var data: [String: String]
    public var image: String?
    public var sound: String?
    public var badge: Int?
    /// Seconds a push service keeps the message for an offline device.
    public var ttl: Int?
    /// `high` or `normal`.
    public var priority: String?
    public var collapseKey: String?
    /// Email sender, overriding the integration's.
    public var from: String?
    public var senderName: String?
    /// The provider's own overrides, deep-merged into its request.
    public var overrides: JSONValue
    /// The trigger payload, subscriber and step, for providers that forward the whole context (webhooks).
    public var context: JSONValue
    /// A provider-native payload passed through unchanged (Centrifugo raw sends): when set, the provider ignores the
    /// neutral fields and only adds the target. FCM and HMS take their `message` object, APNs and Web Push
    /// `{"headers": {…}, "payload": …}`; providers without a raw form refuse it as a bad request.
    public var raw: JSONValue?
    /// Email header fields the engine adds (`List-Unsubscribe`, `List-Unsubscribe-Post`: RFC 8058), which providers
    /// put on the message — SMTP as header lines, the HTTP APIs in their own custom-header field.
    public var headers: [String: String] = [:]

    public init(
        channel: Channel, title: String? = nil, body: String, text: String? = nil, data: [String: String] = [:], image: String? = nil,
        sound: String? = nil, badge: Int? = nil, ttl: Int? = nil, priority: String? = nil, collapseKey: String? = nil,
        from: String? = nil, senderName: String? = nil, overrides: JSONValue = .object([:]), context: JSONValue = .object([:]),
        raw: JSONValue? = nil
    ) {
        self.channel = channel
        self.title = title
        self.body = body
        self.text = text
        self.data = data
        self.image = image
        self.sound = sound
        self.badge = badge
        self.ttl = ttl
        self.priority = priority
        self.collapseKey = collapseKey
        self.from = from
        self.senderName = senderName
        self.overrides = overrides
        self.context = context
        self.raw = raw
    }
}

/// A client of one provider for one integration (its credentials are bound at creation). The engine calls
/// ``send(_:)`` with batches of at most ``batchSize`` messages, at most ``concurrency`` batches at a time, and acts on
/// the returned outcomes alone (one per message, in order).
///
/// A provider never throws for a delivery problem: every failure is an outcome. Implementations keep their
/// connections and cached access tokens between calls; ``shutdown()`` releases them.
public protocol DeliveryProvider: Sendable {
    /// The provider id (`push-webhook`, `fcm`, …).
    var providerId: String { get }
    /// Largest batch one ``send(_:)`` takes.
    var batchSize: Int { get }
    /// Batches the engine may have in flight at once for this integration.
    var concurrency: Int { get }
    /// Sends a batch; returns one outcome per message, in order.
    func send(_ batch: [OutboundMessage]) async -> [DeliveryOutcome]
    /// Sends a batch and reports each outcome (with the message's index in the batch) as soon as it is known, so the
    /// engine can record accepted sends before the whole batch returns (docs/reliability.md §Duplicates). The default
    /// reports every outcome when the batch returns; providers sending one request per message report each as its
    /// answer arrives.
    func send(_ batch: [OutboundMessage], reporting: @escaping @Sendable (Int, DeliveryOutcome) async -> Void) async -> [DeliveryOutcome]
    /// Drops cached credentials (access tokens, JWTs) so that the next call fetches or signs new ones; the engine
    /// calls it once after an `authConfig` outcome before failing the message.
    func refreshCredentials() async
    /// Releases connections.
    func shutdown() async
}

extension DeliveryProvider {
    public func send(
        _ batch: [OutboundMessage], reporting: @escaping @Sendable (Int, DeliveryOutcome) async -> Void
    ) async -> [DeliveryOutcome] {
        let outcomes = await send(batch)
        for (index, outcome) in outcomes.enumerated() { await reporting(index, outcome) }
        return outcomes
    }

    public func refreshCredentials() async {}
    public func shutdown() async {}
}

/// A provider whose acceptance is provisional: the service reports the real outcome later (Expo's push receipts).
/// The engine asks ``receipts(_:)`` for the provider message ids of delivered messages ``receiptDelay`` after
/// delivery and applies what comes back (a dead device is removed like any invalid token).
public protocol ReceiptProvider: DeliveryProvider {
    /// How long after delivery the receipts are ready (Expo: about 15 minutes).
    var receiptDelay: Duration { get }
    /// Outcomes per provider message id; ids without a receipt yet are absent.
    func receipts(_ ids: [String]) async throws -> [String: DeliveryOutcome]
}

/// Makes provider clients for integrations. The engine keeps one client per integration version and asks the
/// factory again when an integration's credentials change.
public protocol ProviderFactory: Sendable {
    /// A client for `integration`, or a configuration error (missing or malformed credentials) that the engine
    /// records as an `authConfig` failure.
    func makeProvider(for integration: Integration) throws -> any DeliveryProvider

    /// The HTTP client that posts status webhooks (README §Status webhooks); nil for a factory without one.
    var webhookPoster: (any WebhookPoster)? { get }
}

extension ProviderFactory {
    public var webhookPoster: (any WebhookPoster)? { nil }
}

/// Posts one status event to an application's endpoint through the outbound URL guard (every call vets the URL and
/// pins the connection to a vetted address).
public protocol WebhookPoster: Sendable {
    /// The endpoint's answer; throws for transport failures and URLs the guard refuses.
    func postWebhook(_ url: String, headers: [(String, String)], body: [UInt8]) async throws -> WebhookAnswer
}

/// An endpoint's answer to a status webhook.
public struct WebhookAnswer: Sendable, Equatable {
    public var status: Int
    /// The `Retry-After` header, as sent.
    public var retryAfter: String?

    public init(status: Int, retryAfter: String? = nil) {
        self.status = status
        self.retryAfter = retryAfter
    }
}

extension MessageContent {
    /// The stored form (built by hand: this runs for every message on the fan-out path).
    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "channel": .string(channel.rawValue), "body": .string(body), "overrides": overrides, "context": context,
        ]
        if !data.isEmpty { object["data"] = .object(data.mapValues(JSONValue.string)) }
        for (key, value) in [
            ("title", title), ("text", text), ("image", image), ("sound", sound), ("priority", priority), ("collapseKey", collapseKey),
            ("from", from), ("senderName", senderName),
        ] {
            if let value { object[key] = .string(value) }
        }
        if let badge { object["badge"] = .number(Double(badge)) }
        if let ttl { object["ttl"] = .number(Double(ttl)) }
        if let raw { object["raw"] = raw }
        if !headers.isEmpty { object["headers"] = .object(headers.mapValues(JSONValue.string)) }
        return .object(object)
    }

    /// Reads the stored form; unknown or missing fields take their defaults.
    public init(json: JSONValue) {
        let object = json.objectValue ?? [:]
        func text(_ key: String) -> String? { object[key]?.stringValue }
        func integer(_ key: String) -> Int? {
            if case .number(let number)? = object[key], number.isFinite, abs(number) < 1e15 { return Int(number) }
            return nil
        }
        self.init(
            channel: text("channel").flatMap(Channel.init(rawValue:)) ?? .push, title: text("title"), body: text("body") ?? "",
            text: text("text"), data: object["data"]?.objectValue?.compactMapValues(\.stringValue) ?? [:], image: text("image"),
            sound: text("sound"), badge: integer("badge"), ttl: integer("ttl"), priority: text("priority"),
            collapseKey: text("collapseKey"),
            from: text("from"), senderName: text("senderName"), overrides: object["overrides"] ?? .object([:]),
            context: object["context"] ?? .object([:]), raw: object["raw"])
        headers = object["headers"]?.objectValue?.compactMapValues(\.stringValue) ?? [:]
    }
}
