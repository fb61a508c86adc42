import Foundation

/// What an app reports of a raw send on a device (Centrifugo `update_push_status`): reaching it, then a tap. An
/// interaction implies delivery and is never downgraded by a later `delivered`.
public enum PushReport: String, Sendable, CaseIterable {
    case delivered, interacted
}

/// A raw provider-payload send (Centrifugo `send_push_notification`, `docs/wire-compatibility.md` §send_push_notification): the
/// provider payloads go out unchanged, Herald only fills in each target. Stored in `pushes`; its deliveries carry
/// its id.
public struct PushSend: Sendable, Hashable {
    public enum Status: String, Sendable {
        /// Waiting for its `send_at`, or for the worker.
        case queued
        /// Deliveries are being created page by page.
        case sending
        /// Every delivery is created (they may still be in flight).
        case sent
        case canceled
        /// `expire_at` passed before the deliveries were created.
        case expired
    }

    public var id: String
    public var environmentId: String
    /// The caller's id of the send (generated when absent); unique per environment.
    public var uid: String
    /// The id `update_push_status` names: the request's `analytics_uid`, else ``uid``.
    public var analyticsUid: String
    /// The request as received (canonical JSON), re-read by the workers.
    public var request: JSONValue
    public var status: Status
    public var sendAt: Date?
    public var expireAt: Date?
    /// Fan-out progress (the last device id done, devices skipped), saved with every page.
    public var cursor: String?
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: String, environmentId: String, uid: String, analyticsUid: String, request: JSONValue, status: Status, sendAt: Date?,
        expireAt: Date?, cursor: String? = nil, createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.environmentId = environmentId
        self.uid = uid
        self.analyticsUid = analyticsUid
        self.request = request
        self.status = status
        self.sendAt = sendAt
        self.expireAt = expireAt
        self.cursor = cursor
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// A validated `send_push_notification` request. Parsing reports the first problem with its location
/// (`recipient.fcm_tokens[2]: …`) as an `invalidInput` error.
public struct PushSendRequest: Sendable, Equatable {
    /// Who receives the push: exactly one of these.
    public enum Recipient: Sendable, Equatable {
        /// Registered devices matching every non-empty list (Centrifugo `DeviceFilter`).
        case devices(ids: [String], users: [String], topics: [String], providers: [String], platforms: [String])
        /// Native tokens of one provider, not necessarily registered.
        case tokens(provider: String, tokens: [String])
        /// A provider-side topic (`fcm_topic`, `hms_topic`).
        case nativeTopic(provider: String, topic: String)
        /// A provider-side condition (`fcm_condition`, `hms_condition`).
        case nativeCondition(provider: String, condition: String)
    }

    public var recipient: Recipient
    /// The provider payloads by Herald provider id (`fcm`, `hms`, `apns`, `web-push`): FCM and HMS `message`
    /// objects, APNs and Web Push `{headers, payload}`.
    public var payloads: [String: JSONValue]
    public var uid: String?
    public var analyticsUid: String?
    public var sendAt: Date?
    public var expireAt: Date?
    /// Per-device templating and the limit strategy (empty for a plain send).
    public var personalization = PushPersonalization()

    /// Most raw tokens one request may name.
    public static let maxTokens = 10_000
    /// Centrifugo's provider names and the field of the notification object holding each one's payload.
    public static let providers: [(centrifugo: String, herald: String)] = [
        ("fcm", "fcm"), ("hms", "hms"), ("apns", "apns"), ("webpush", "web-push"),
    ]

    public init(
        recipient: Recipient, payloads: [String: JSONValue], uid: String? = nil, analyticsUid: String? = nil, sendAt: Date? = nil,
        expireAt: Date? = nil
    ) {
        self.recipient = recipient
        self.payloads = payloads
        self.uid = uid
        self.analyticsUid = analyticsUid
        self.sendAt = sendAt
        self.expireAt = expireAt
    }

    /// Parses and validates a request. `policy` vets Web Push endpoints of raw tokens (nil: re-reading a request
    /// accepted before).
    public init(json: JSONValue, policy: OutboundURLPolicy? = nil) throws {
        guard case .object(let root) = json else { throw Self.problem("", "the request must be a JSON object") }
        // `optimize_for_reliability` is accepted and changes nothing: every send goes through the durable queue.
        if let value = root["optimize_for_reliability"], value != .null, value.boolValue == nil {
            throw Self.problem("optimize_for_reliability", "must be a boolean")
        }
        let personalization = try PushPersonalization(root: root)
        self.personalization = personalization
        guard case .object(let notification)? = root["notification"] else {
            throw Self.problem("notification", "required (an object with fcm, hms, apns or webpush)")
        }
        var payloads: [String: JSONValue] = [:]
        for (centrifugo, herald) in Self.providers {
            guard let value = notification[centrifugo], value != .null else { continue }
            let path = "notification.\(centrifugo)"
            guard case .object(let object) = value else { throw Self.problem(path, "must be an object") }
            switch herald {
            case "fcm", "hms":
                guard case .object(let message)? = object["message"] else { throw Self.problem("\(path).message", "required (an object)") }
                payloads[herald] = .object(message)
            default:
                guard let payload = object["payload"], payload != .null else { throw Self.problem("\(path).payload", "required") }
                if herald == "apns", payload.objectValue == nil { throw Self.problem("\(path).payload", "must be an object") }
                var headers: [String: JSONValue] = [:]
                if let value = object["headers"], value != .null {
                    guard case .object(let entries) = value, entries.values.allSatisfy({ $0.stringValue != nil }) else {
                        throw Self.problem("\(path).headers", "must be an object of strings")
                    }
                    for (name, value) in entries.sorted(by: { $0.key < $1.key }) {
                        if let problem = HTTPFieldSyntax.problem(name: name, value: value.stringValue ?? "") {
                            throw Self.problem("\(path).headers", problem)
                        }
                    }
                    headers = entries
                }
                payloads[herald] = ["headers": .object(headers), "payload": payload]
            }
        }
        guard !payloads.isEmpty else { throw Self.problem("notification", "needs a payload for at least one of fcm, hms, apns, webpush") }
        self.payloads = payloads
        self.expireAt = try Self.time(notification["expire_at"], "notification.expire_at")
        self.sendAt = try Self.time(root["send_at"], "send_at")
        self.uid = try Self.identifier(root["uid"], "uid")
        self.analyticsUid = try Self.identifier(root["analytics_uid"], "analytics_uid")

        guard case .object(let recipient)? = root["recipient"] else { throw Self.problem("recipient", "required (an object)") }
        let set = recipient.filter { !Self.isEmpty($0.value) }
        guard set.count == 1, let (field, value) = set.first else {
            throw Self.problem(
                "recipient",
                "set exactly one of filter, fcm_tokens, fcm_topic, fcm_condition, hms_tokens, hms_topic, hms_condition, apns_tokens, webpush_tokens"
            )
        }
        let path = "recipient.\(field)"
        switch field {
        case "filter":
            guard case .object(let filter) = value else { throw Self.problem(path, "must be an object") }
            func list(_ name: String) throws -> [String] { try Self.strings(filter[name], "\(path).\(name)") }
            let providers = try list("providers").map { name in
                guard let herald = Self.providers.first(where: { $0.centrifugo == name })?.herald else {
                    throw Self.problem("\(path).providers", "unknown provider '\(name)' (fcm, hms, apns or webpush)")
                }
                return herald
            }
            let devices = Recipient.devices(
                ids: try list("ids"), users: try list("users"), topics: try list("topics"), providers: providers,
                platforms: try list("platforms"))
            if case .devices([], [], [], [], []) = devices {
                throw Self.problem(path, "name at least one of ids, users, topics, providers, platforms")
            }
            self.recipient = devices
        case "fcm_tokens", "hms_tokens", "apns_tokens", "webpush_tokens":
            let provider = Self.providers.first { field.hasPrefix($0.centrifugo + "_") }!.herald
            let tokens = try Self.strings(value, path)
            guard tokens.count <= Self.maxTokens else { throw Self.problem(path, "at most \(Self.maxTokens) tokens per request") }
            for (index, token) in tokens.enumerated() {
                if let problem = DeviceTokenRules.problem(provider: provider, token: token, policy: policy) {
                    throw Self.problem("\(path)[\(index)]", problem)
                }
            }
            self.recipient = .tokens(provider: provider, tokens: Array(NSOrderedSet(array: tokens).array as! [String]))
        case "fcm_topic", "hms_topic", "fcm_condition", "hms_condition":
            guard let text = value.stringValue else { throw Self.problem(path, "must be a string") }
            let provider = field.hasPrefix("fcm") ? "fcm" : "hms"
            self.recipient =
                field.hasSuffix("topic")
                ? .nativeTopic(provider: provider, topic: text) : .nativeCondition(provider: provider, condition: text)
        default:
            throw Self.problem(path, "unknown recipient field")
        }
        if !personalization.isEmpty {
            guard case .devices = self.recipient else {
                throw Self.problem(
                    "recipient", "use_templating, localizations and limit_strategy need a filter recipient (they read each device)")
            }
        }
        if personalization.templating {
            // Every template is parsed now, so a mistake is a 107 naming its field before anything is stored.
            for (centrifugo, herald) in Self.providers {
                guard let payload = payloads[herald] else { continue }
                let prefix = herald == "fcm" || herald == "hms" ? "notification.\(centrifugo).message" : "notification.\(centrifugo)"
                try Self.forEachString(in: payload, path: prefix) { text, path in
                    guard PushTemplate.hasActions(text) else { return }
                    do { _ = try PushTemplate(text, allowMeta: personalization.useMeta) } catch { throw Self.problem(path, "\(error)") }
                }
            }
        }
        // A native recipient belongs to one provider, which then needs its payload.
        if let provider = self.recipient.provider, payloads[provider] == nil {
            let name = Self.providers.first { $0.herald == provider }!.centrifugo
            throw Self.problem("notification.\(name)", "required for \(path)")
        }
    }

    /// The content a provider gets for one target of this send: the payload, with every target field a caller
    /// might have put in it removed, and the native topic or condition set where the recipient is one.
    public func content(providerId: String) -> MessageContent? {
        guard var payload = payloads[providerId] else { return nil }
        if providerId == "fcm" || providerId == "hms", case .object(var message) = payload {
            for key in ["token", "topic", "condition"] { message.removeValue(forKey: key) }
            switch recipient {
            case .nativeTopic(_, let topic): message["topic"] = .string(topic)
            case .nativeCondition(_, let condition): message["condition"] = .string(condition)
            default: break
            }
            payload = .object(message)
        }
        return MessageContent(channel: .push, body: "", raw: payload)
    }

    /// Calls `body` with every string value of `value` (object values and array items, not keys) and its path.
    static func forEachString(in value: JSONValue, path: String, _ body: (String, String) throws -> Void) throws {
        switch value {
        case .string(let text): try body(text, path)
        case .array(let items): for (index, item) in items.enumerated() { try forEachString(in: item, path: "\(path)[\(index)]", body) }
        case .object(let entries): for (key, item) in entries { try forEachString(in: item, path: "\(path).\(key)", body) }
        default: break
        }
    }

    // MARK: Parsing helpers

    static func problem(_ path: String, _ message: String) -> HeraldError {
        HeraldError(.invalidInput, path.isEmpty ? message : "\(path): \(message)", context: path.isEmpty ? [:] : ["field": path])
    }

    static func isEmpty(_ value: JSONValue) -> Bool {
        switch value {
        case .null: true
        case .string(let text): text.isEmpty
        case .array(let items): items.isEmpty
        case .object(let entries): entries.isEmpty
        default: false
        }
    }

    static func strings(_ value: JSONValue?, _ path: String) throws -> [String] {
        guard let value, value != .null else { return [] }
        guard case .array(let items) = value else { throw problem(path, "must be a list of strings") }
        return try items.map { item in
            guard let text = item.stringValue, !text.isEmpty else { throw problem(path, "must be a list of non-empty strings") }
            return text
        }
    }

    static func time(_ value: JSONValue?, _ path: String) throws -> Date? {
        guard let value, value != .null else { return nil }
        let seconds: Double
        switch value {
        case .number(let number): seconds = number
        case .string(let text): seconds = Double(text) ?? -1  // int64 fields arrive as strings from protobuf JSON encoders
        default: throw problem(path, "must be Unix seconds")
        }
        guard seconds >= 0, seconds < 1e11, seconds.rounded() == seconds else { throw problem(path, "must be Unix seconds") }
        return seconds == 0 ? nil : Date(timeIntervalSince1970: seconds)
    }

    static func identifier(_ value: JSONValue?, _ path: String) throws -> String? {
        guard let value, value != .null else { return nil }
        guard let text = value.stringValue else { throw problem(path, "must be a string") }
        guard text.utf8.count <= 128 else { throw problem(path, "at most 128 bytes") }
        return text.isEmpty ? nil : text
    }
}

extension PushSendRequest.Recipient {
    var provider: String? {
        switch self {
        case .devices: nil
        case .tokens(let provider, _), .nativeTopic(let provider, _), .nativeCondition(let provider, _): provider
        }
    }
}
