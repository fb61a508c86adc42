import Foundation
import HeraldCore
import NIOCore

/// OneSignal's create-notification API (`docs/providers.md` §OneSignal): one request per identical payload with up to
/// 2000 subscription ids (the device tokens), an idempotency key stable across retries, and the ids listed in a 200's
/// `errors` (or every id when `id` is empty) reported as invalid.
///
/// Credentials: `applicationId` (app id), `apiKey` (`os_v2_…` keys use `Key`, older REST keys `Basic`); `baseUrl`
/// replaces `https://api.onesignal.com`.
public struct OneSignalProvider: DeliveryProvider {
    public let providerId = "one-signal"
    public var batchSize: Int { ProviderCatalog.batchLimit(providerId) }
    public let concurrency = 4
    let url: String
    let appId: String
    let authorization: String
    let transport: HTTPTransport
    let clock: any WallClock

    public init(integration: Integration, transport: HTTPTransport, clock: any WallClock = SystemWallClock()) throws {
        url = try PushSupport.baseURL(integration, default: "https://api.onesignal.com") + "/notifications"
        appId = try PushSupport.required(integration, "applicationId")
        let key = try PushSupport.required(integration, "apiKey")
        authorization = key.hasPrefix("os_v2_") ? "Key \(key)" : "Basic \(key)"
        self.transport = transport
        self.clock = clock
    }

    public func send(_ batch: [OutboundMessage]) async -> [DeliveryOutcome] {
        await HostedPush.sendGroups(batch, maximum: batchSize) { group in await self.sendGroup(group) }
    }

    func sendGroup(_ group: [OutboundMessage]) async -> [DeliveryOutcome] {
        let content = group[0].content
        let ids = group.map(\.target.revealed)
        var body: [String: JSONValue] = [
            "app_id": .string(appId), "target_channel": "push", "include_subscription_ids": .array(ids.map(JSONValue.string)),
            "contents": ["en": .string(content.body)], "idempotency_key": .string(PushSupport.stableUUID(group.map(\.deliveryId))),
        ]
        if let title = content.title { body["headings"] = ["en": .string(title)] }
        if !content.data.isEmpty { body["data"] = PushSupport.data(content) }
        if let badge = content.badge {
            body["ios_badgeType"] = "SetTo"
            body["ios_badgeCount"] = .number(Double(badge))
        }
        if let image = content.image {
            body["big_picture"] = .string(image)
            body["ios_attachments"] = ["image": .string(image)]
        }
        body.set("ttl", content.ttl)
        if let priority = content.priority { body["priority"] = priority == "high" ? 10 : 5 }
        if let sound = content.sound { body["ios_sound"] = .string(sound) }
        if let collapseKey = content.collapseKey { body["collapse_id"] = .string(collapseKey) }
        let payload = JSONValue.object(body).deepMerged(with: HostedPush.overrides(content))
        let response: HTTPTransport.Response
        do {
            response = try await transport.post(
                url, headers: [("authorization", authorization), ("content-type", "application/json; charset=utf-8")],
                body: PushSupport.body(payload))
        } catch {
            return Array(repeating: HTTPOutcome.transportFailure(error), count: group.count)
        }
        return Self.classify(response, ids: ids, now: clock.now())
    }

    static func classify(_ response: HTTPTransport.Response, ids: [String], now: Date) -> [DeliveryOutcome] {
        let object = PushSupport.json(response)
        let all: (DeliveryOutcome) -> [DeliveryOutcome] = { Array(repeating: $0, count: ids.count) }
        let reason = "OneSignal \(response.status)"
        switch response.status {
        case 200..<300:
            let id = object["id"]?.stringValue ?? ""
            if id.isEmpty { return all(.invalidToken(reason: "OneSignal: no included subscription is subscribed")) }
            var invalid: Set<String> = []
            if case .object(let errors)? = object["errors"] {
                for key in ["invalid_player_ids", "invalid_subscription_ids", "invalid_aliases", "invalid_external_user_ids"] {
                    invalid.formUnion(errors[key]?.arrayValue?.compactMap(\.stringValue) ?? [])
                }
            }
            return ids.map {
                invalid.contains($0) ? .invalidToken(reason: "OneSignal: subscription not subscribed") : .delivered(providerMessageId: id)
            }
        default:
            let errors = object["errors"]?.arrayValue?.compactMap(\.stringValue).joined(separator: "; ") ?? ""
            return all(
                HTTPStatusClasses().outcome(
                    status: response.status, reason: reason, detail: String(errors.prefix(160)),
                    retryAfter: PushSupport.retryAfter(response, now: now)))
        }
    }
}

/// Pusher Beams' publish API (`docs/providers.md` §Pusher Beams): one publish per identical payload to up to 1000 Beams
/// users (the device tokens are Beams user ids). Beams keeps device tokens itself, so no answer marks a token
/// invalid.
///
/// Credentials: `instanceId`, `secretKey`; `baseUrl` replaces `https://<instanceId>.pushnotifications.pusher.com`.
public struct PusherBeamsProvider: DeliveryProvider {
    public let providerId = "pusher-beams"
    public var batchSize: Int { ProviderCatalog.batchLimit(providerId) }
    public let concurrency = 4
    let url: String
    let secret: String
    let transport: HTTPTransport
    let clock: any WallClock

    public init(integration: Integration, transport: HTTPTransport, clock: any WallClock = SystemWallClock()) throws {
        let instance = try PushSupport.required(integration, "instanceId")
        url =
            try PushSupport.baseURL(integration, default: "https://\(instance).pushnotifications.pusher.com")
            + "/publish_api/v1/instances/\(instance)/publishes/users"
        secret = try PushSupport.required(integration, "secretKey")
        self.transport = transport
        self.clock = clock
    }

    public func send(_ batch: [OutboundMessage]) async -> [DeliveryOutcome] {
        await HostedPush.sendGroups(batch, maximum: batchSize) { group in await self.sendGroup(group) }
    }

    func sendGroup(_ group: [OutboundMessage]) async -> [DeliveryOutcome] {
        let content = group[0].content
        var alert: [String: JSONValue] = ["body": .string(content.body)]
        alert.set("title", content.title)
        var aps: [String: JSONValue] = ["alert": .object(alert)]
        aps.set("sound", content.sound)
        aps.set("badge", content.badge)
        var fcm: [String: JSONValue] = ["notification": .object(alert)]
        var web: [String: JSONValue] = ["notification": .object(alert)]
        if !content.data.isEmpty {
            fcm["data"] = PushSupport.data(content)
            web["data"] = PushSupport.data(content)
        }
        web.set("time_to_live", content.ttl)
        let body: JSONValue = [
            "users": .array(group.map { .string($0.target.revealed) }), "apns": ["aps": .object(aps)], "fcm": .object(fcm),
            "web": .object(web),
        ]
        let response: HTTPTransport.Response
        do {
            response = try await transport.post(
                url, headers: [("authorization", "Bearer \(secret)"), ("content-type", "application/json")],
                body: PushSupport.body(body.deepMerged(with: HostedPush.overrides(content))))
        } catch {
            return Array(repeating: HTTPOutcome.transportFailure(error), count: group.count)
        }
        let object = PushSupport.json(response)
        let reason =
            "Pusher Beams \(response.status) \(object["error"]?.stringValue ?? ""): \(object["description"]?.stringValue?.prefix(120) ?? "")"
        // A 404 is an unknown instance: configuration, not a dead token.
        let outcome: DeliveryOutcome =
            (200..<300).contains(response.status)
            ? .delivered(providerMessageId: object["publishId"]?.stringValue)
            : HTTPStatusClasses(auth: [401, 403, 404]).outcome(
                status: response.status, reason: reason, retryAfter: PushSupport.retryAfter(response, now: clock.now()))
        return Array(repeating: outcome, count: group.count)
    }
}

/// Pushpad's notifications API (`docs/providers.md` §Pushpad): one notification per identical payload to up to 1000
/// uids (the device tokens are Pushpad uids). Pushpad expires subscriptions itself.
///
/// Credentials: `apiKey` (access token), `applicationId` (project id); `baseUrl` replaces `https://pushpad.xyz`.
public struct PushpadProvider: DeliveryProvider {
    public let providerId = "pushpad"
    public var batchSize: Int { ProviderCatalog.batchLimit(providerId) }
    public let concurrency = 4
    let url: String
    let token: String
    let transport: HTTPTransport
    let clock: any WallClock

    public init(integration: Integration, transport: HTTPTransport, clock: any WallClock = SystemWallClock()) throws {
        let project = try PushSupport.required(integration, "applicationId")
        url = try PushSupport.baseURL(integration, default: "https://pushpad.xyz") + "/api/v1/projects/\(project)/notifications"
        token = try PushSupport.required(integration, "apiKey")
        self.transport = transport
        self.clock = clock
    }

    public func send(_ batch: [OutboundMessage]) async -> [DeliveryOutcome] {
        await HostedPush.sendGroups(batch, maximum: batchSize) { group in await self.sendGroup(group) }
    }

    func sendGroup(_ group: [OutboundMessage]) async -> [DeliveryOutcome] {
        let content = group[0].content
        var notification: [String: JSONValue] = ["body": .string(content.body)]
        notification.set("title", content.title)
        notification.set("image_url", content.image)
        notification.set("ttl", content.ttl)
        if content.priority == "high" { notification["urgent"] = true }
        if !content.data.isEmpty { notification["custom_data"] = .string(PushSupport.data(content).jsonString()) }
        let body: JSONValue = ["notification": .object(notification), "uids": .array(group.map { .string($0.target.revealed) })]
        let response: HTTPTransport.Response
        do {
            response = try await transport.post(
                url,
                headers: [
                    ("authorization", "Token token=\"\(token)\""), ("content-type", "application/json"), ("accept", "application/json"),
                ], body: PushSupport.body(body.deepMerged(with: HostedPush.overrides(content))))
        } catch {
            return Array(repeating: HTTPOutcome.transportFailure(error), count: group.count)
        }
        let reason = "Pushpad \(response.status)"
        // 402 (unpaid plan) and 404 (unknown project) are configuration, not dead tokens.
        let outcome: DeliveryOutcome =
            (200..<300).contains(response.status)
            ? .delivered(providerMessageId: HTTPOutcome.messageId(in: response.body))
            : HTTPStatusClasses(auth: [401, 402, 403, 404]).outcome(
                status: response.status, reason: reason, detail: String(response.text.prefix(160)),
                retryAfter: PushSupport.retryAfter(response, now: clock.now()))
        return Array(repeating: outcome, count: group.count)
    }
}

/// Shared by providers that send one payload to a list of recipients.
enum HostedPush {
    static func sendGroups(
        _ batch: [OutboundMessage], maximum: Int, _ send: @escaping @Sendable ([OutboundMessage]) async -> [DeliveryOutcome]
    ) async -> [DeliveryOutcome] {
        var outcomes = [DeliveryOutcome](repeating: .retryLater(reason: "not sent", after: nil), count: batch.count)
        let groups = PushSupport.groupsByContent(batch, maximum: maximum)
        let results = await PushSupport.each(indices: groups.indices) { await send(groups[$0].map { batch[$0] }) }
        for (group, result) in zip(groups, results) {
            for (index, outcome) in zip(group, result) { outcomes[index] = outcome }
        }
        return outcomes
    }

    static func overrides(_ content: MessageContent) -> JSONValue { .object(PushSupport.overrides(content)) }
}
