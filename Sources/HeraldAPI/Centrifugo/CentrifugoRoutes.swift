import Foundation
import HeraldCore
import HeraldEngine
import HeraldStore
import Hummingbird
import NIOCore

/// Centrifugo PRO's push API (`docs/wire-compatibility.md` §Centrifugo push API): `POST /api/<method>` with a JSON body, results as
/// `{"result": …}`, errors as `{"error": {"code", "message"}}` (HTTP 200, or mapped statuses with
/// `X-Centrifugo-Error-Mode: transport`), and `POST /api/batch`. The device registry and topic methods work on the
/// same devices and topic subscriptions as the Novu API; the push methods hand raw sends to ``PushIntake``.
struct CentrifugoRoutes {
    let store: SQLStore
    let pushes: PushIntake
    let policy: OutboundURLPolicy

    typealias Method = @Sendable (JSONValue, HeraldCore.Environment) async throws -> JSONValue

    var methods: [String: Method] {
        [
            "device_register": deviceRegister, "device_update": deviceUpdate, "device_remove": deviceRemove, "device_list": deviceList,
            "device_topic_update": deviceTopicUpdate, "device_topic_list": deviceTopicList, "user_topic_update": userTopicUpdate,
            "user_topic_list": userTopicList, "send_push_notification": sendPushNotification, "cancel_push": cancelPush,
            "update_push_status": updatePushStatus,
        ]
    }

    /// One route per method (so the router's route list is the API's, as `openapi/herald.yaml` documents it); an
    /// unknown method is the router's 404, which the error middleware answers as Centrifugo's "method not found".
    func register(on group: RouterGroup<HeraldRequestContext>) {
        for (name, method) in methods {
            group.post(RouterPath("/api/\(name)")) { request, context in
                let environment = try context.requireEnvironment()
                let body = try await Self.body(request, context: context)
                return JSONResponse.make(["result": try await method(body, environment)])
            }
        }
        group.post("/api/batch") { request, context in
            let environment = try context.requireEnvironment()
            return try await batch(try await Self.body(request, context: context), environment: environment)
        }
    }

    /// `{"commands": [{"<method>": {params}}, …], "parallel": bool}` → `{"replies": [{"<method>": result} | {"error": …}]}`.
    func batch(_ body: JSONValue, environment: HeraldCore.Environment) async throws -> Response {
        guard case .array(let commands)? = body.objectValue?["commands"] else {
            throw APIError(.badRequest, "bad request: commands required")
        }
        var replies: [JSONValue] = []
        for command in commands {
            guard case .object(let object) = command, object.count == 1, let (name, params) = object.first else {
                replies.append(["error": ["code": 107, "message": "bad request"]])
                continue
            }
            guard let method = methods[name] else {
                replies.append(["error": ["code": 104, "message": "method not found"]])
                continue
            }
            do {
                replies.append([name: try await method(params, environment)])
            } catch {
                let apiError = APIErrorMiddleware<HeraldRequestContext>.apiError(for: error)
                replies.append(["error": CentrifugoError.body(apiError)])
            }
        }
        return JSONResponse.make(["replies": .array(replies)])
    }

    static func body(_ request: Request, context: HeraldRequestContext) async throws -> JSONValue {
        let buffer = try await request.body.collect(upTo: context.maxUploadSize)
        guard buffer.readableBytes > 0 else { return [:] }
        do {
            let value = try JSONDecoder().decode(JSONValue.self, from: Data(buffer.readableBytesView))
            guard case .object = value else { throw APIError(.badRequest, "bad request: the body must be a JSON object") }
            if let problem = JSONSyntax.firstNUL(in: buffer.readableBytesView) { throw APIError(.badRequest, "bad request: \(problem)") }
            return value
        } catch let error as DecodingError {
            let problem = JSONSyntax.firstProblem(in: buffer.readableBytesView).map { ": \($0)" } ?? ""
            _ = error  // the decoder's own text adds nothing to the located problem
            throw APIError(.badRequest, "bad request: invalid JSON\(problem)")
        }
    }

    // MARK: Devices

    /// Centrifugo provider names ↔ Herald provider ids.
    static func herald(provider: String) throws -> String {
        switch provider {
        case "fcm", "apns", "hms": return provider
        case "webpush": return "web-push"
        default: throw APIError(.badRequest, "bad request: unknown provider '\(provider)' (fcm, hms, apns or webpush)")
        }
    }

    static func centrifugo(provider: String) -> String { provider == "web-push" ? "webpush" : provider }

    func deviceRegister(_ params: JSONValue, environment: HeraldCore.Environment) async throws -> JSONValue {
        let p = CentrifugoParams(params)
        let provider = try Self.herald(provider: try p.requiredString("provider"))
        let token = try p.requiredString("token")
        let platform = try p.requiredString("platform")
        guard ["ios", "android", "web"].contains(platform) else {
            throw APIError(.badRequest, "bad request: unknown platform '\(platform)' (ios, android or web)")
        }
        if let problem = DeviceTokenRules.problem(provider: provider, token: token, policy: policy) {
            throw APIError(.badRequest, "bad request: \(problem)")
        }
        let registration = DeviceRegistration(
            provider: provider, token: Secret(token), platform: platform,
            subscriberId: try p.string("user").flatMap { $0.isEmpty ? nil : $0 },
            topics: try p.strings("topics"), meta: try p.stringMap("meta"), timezone: try p.string("timezone"),
            locale: try p.string("locale"),
            replacesAll: true
        )
        for topic in registration.topics ?? [] where !Topic.isValidKey(topic) {
            throw APIError(.badRequest, "bad request: invalid topic '\(topic)'")
        }
        let id = try p.string("id").flatMap { $0.isEmpty ? nil : $0 }
        if let id, !ObjectIDGenerator.isValid(id) { throw APIError(.badRequest, "bad request: malformed device id") }
        let device = try await store.transaction { session in
            if let id { return try await session.reregisterDevice(environmentId: environment.id, id: id, registration) }
            return try await session.registerDevice(environmentId: environment.id, registration)
        }
        return ["id": .string(device.id)]
    }

    func deviceUpdate(_ params: JSONValue, environment: HeraldCore.Environment) async throws -> JSONValue {
        let p = CentrifugoParams(params)
        let filter = DeviceFilter(ids: try p.strings("ids") ?? [], users: try p.strings("users") ?? [])
        guard !filter.isEmpty else { throw APIError(.badRequest, "bad request: ids or users required") }
        let user: FieldUpdate<String> =
            try p.object("user_update").map { update in
                try CentrifugoParams(.object(update)).string("user").map { $0.isEmpty ? .clear : .set($0) } ?? .clear
            } ?? .keep
        let meta = try p.object("meta_update").map { try CentrifugoParams(.object($0)).stringMap("meta") ?? [:] }
        let timezone = try p.object("timezone_update").map { try CentrifugoParams(.object($0)).string("timezone") ?? "" }
        let locale = try p.object("locale_update").map { try CentrifugoParams(.object($0)).string("locale") ?? "" }
        let topicsUpdate = try p.object("topics_update").map { try TopicsUpdate(CentrifugoParams(.object($0))) }
        try await store.transaction { session in
            for id in try await session.deviceIds(environmentId: environment.id, filter: filter) {
                try await session.updateDevice(
                    environmentId: environment.id, id: id, user: user, meta: meta, timezone: timezone, locale: locale)
                if let topicsUpdate { try await topicsUpdate.apply(deviceId: id, environmentId: environment.id, session: session) }
            }
        }
        return [:]
    }

    func deviceRemove(_ params: JSONValue, environment: HeraldCore.Environment) async throws -> JSONValue {
        let p = CentrifugoParams(params)
        let filter = DeviceFilter(ids: try p.strings("ids") ?? [], users: try p.strings("users") ?? [])
        guard !filter.isEmpty else { throw APIError(.badRequest, "bad request: ids or users required") }
        _ = try await store.transaction { session in
            try await session.removeDevices(
                environmentId: environment.id, ids: try await session.deviceIds(environmentId: environment.id, filter: filter))
        }
        return [:]
    }

    func deviceList(_ params: JSONValue, environment: HeraldCore.Environment) async throws -> JSONValue {
        let p = CentrifugoParams(params)
        let f = CentrifugoParams(.object(try p.object("filter") ?? [:]))
        let filter = DeviceFilter(
            ids: try f.strings("ids") ?? [], users: try f.strings("users") ?? [], topics: try f.strings("topics") ?? [],
            providers: try (f.strings("providers") ?? []).map(Self.herald(provider:)), platforms: try f.strings("platforms") ?? []
        )
        let limit = try p.limit()
        let cursor = try p.string("cursor")
        let countTotal = try p.bool("include_total_count")
        let (includeMeta, includeTopics, includeKeys) = (
            try p.bool("include_meta"), try p.bool("include_topics"), try p.bool("include_webpush_keys")
        )
        let (devices, next, total) = try await store.read { session in
            try await session.listDevices(
                environmentId: environment.id, filter: filter, cursor: cursor, limit: limit, countTotal: countTotal)
        }
        var result: [String: JSONValue] = [
            "items": .array(
                devices.map { Self.json($0, includeMeta: includeMeta, includeTopics: includeTopics, includeWebPushKeys: includeKeys) })
        ]
        if let next { result["next_cursor"] = .string(next) }
        if let total { result["total_count"] = .number(Double(total)) }
        return .object(result)
    }

    /// Centrifugo `Device`. Web Push devices show the endpoint as `token` and the keys in `webpush_keys`.
    static func json(_ device: Device, includeMeta: Bool = true, includeTopics: Bool = true, includeWebPushKeys: Bool = false) -> JSONValue
    {
        var object: [String: JSONValue] = [
            "id": .string(device.id), "provider": .string(centrifugo(provider: device.provider)),
            "platform": .string(device.platform ?? ""),
            "token": .string(device.token.revealed), "created_at": .number(Double(Int(device.createdAt.timeIntervalSince1970))),
            "updated_at": .number(Double(Int(device.updatedAt.timeIntervalSince1970))),
        ]
        if let user = device.subscriberId { object["user"] = .string(user) }
        if let timezone = device.timezone, !timezone.isEmpty { object["timezone"] = .string(timezone) }
        if let locale = device.locale, !locale.isEmpty { object["locale"] = .string(locale) }
        if includeMeta, !device.meta.isEmpty { object["meta"] = .object(device.meta.mapValues(JSONValue.string)) }
        // The user's topics are the device's too (Centrifugo: "User topics … will be automatically attached").
        let topics = Array(Set(device.topics + device.userTopics)).sorted()
        if includeTopics, !topics.isEmpty { object["topics"] = .array(topics.map(JSONValue.string)) }
        if device.provider == "web-push", case .object(let subscription)? = try? JSONValue.parse(device.token.revealed) {
            object["token"] = subscription["endpoint"] ?? .string("")
            if includeWebPushKeys, let keys = subscription["keys"] { object["webpush_keys"] = .string(keys.jsonString()) }
        }
        return .object(object)
    }

    // MARK: Sends

    /// A domain error in Centrifugo's terms: invalid input is `107 bad request`, with the located problem in the
    /// message.
    static func centrifugo(_ error: HeraldError) -> any Error {
        guard error.code == .invalidInput else { return error }
        return APIError(.badRequest, "bad request: \(error.message)")
    }

    func sendPushNotification(_ params: JSONValue, environment: HeraldCore.Environment) async throws -> JSONValue {
        do {
            return ["uid": .string(try await pushes.send(environmentId: environment.id, body: params))]
        } catch let error as HeraldError { throw Self.centrifugo(error) }
    }

    func cancelPush(_ params: JSONValue, environment: HeraldCore.Environment) async throws -> JSONValue {
        let uid = try CentrifugoParams(params).requiredString("uid")
        try await pushes.cancel(environmentId: environment.id, uid: uid)
        return [:]
    }

    func updatePushStatus(_ params: JSONValue, environment: HeraldCore.Environment) async throws -> JSONValue {
        let p = CentrifugoParams(params)
        do {
            try await pushes.report(
                environmentId: environment.id, analyticsUid: try p.requiredString("analytics_uid"),
                deviceId: try p.requiredString("device_id"),
                status: try p.requiredString("status"))
        } catch let error as HeraldError { throw Self.centrifugo(error) }
        return [:]
    }

    // MARK: Topics

    struct TopicsUpdate {
        enum Op: String { case add, remove, set }
        var op: Op
        var topics: [String]

        init(_ p: CentrifugoParams) throws {
            guard let op = Op(rawValue: try p.string("op") ?? "") else {
                throw APIError(.badRequest, "bad request: op must be add, remove or set")
            }
            self.op = op
            self.topics = try p.strings("topics") ?? []
            for topic in topics where !Topic.isValidKey(topic) { throw APIError(.badRequest, "bad request: invalid topic '\(topic)'") }
        }

        func apply(deviceId: String, environmentId: String, session: StoreSession) async throws {
            switch op {
            case .add: try await session.addDeviceTopics(environmentId: environmentId, deviceId: deviceId, topics: topics)
            case .remove: try await session.removeDeviceTopics(deviceId: deviceId, topics: topics)
            case .set: try await session.replaceDeviceTopics(environmentId: environmentId, deviceId: deviceId, topics: topics)
            }
        }
    }

    func deviceTopicUpdate(_ params: JSONValue, environment: HeraldCore.Environment) async throws -> JSONValue {
        let p = CentrifugoParams(params)
        let deviceId = try p.requiredString("device_id")
        let update = try TopicsUpdate(p)
        let owner = try p.string("user")
        try await store.transaction { session in
            guard let device = try await session.device(environmentId: environment.id, id: deviceId) else {
                throw APIError(.notFound, "not found")
            }
            if let owner, !owner.isEmpty, device.subscriberId != owner { throw APIError(.conflict, "conflict") }
            try await update.apply(deviceId: deviceId, environmentId: environment.id, session: session)
        }
        return [:]
    }

    func deviceTopicList(_ params: JSONValue, environment: HeraldCore.Environment) async throws -> JSONValue {
        let p = CentrifugoParams(params)
        let f = CentrifugoParams(.object(try p.object("filter") ?? [:]))
        let limit = try p.limit()
        let (deviceIds, users, topics) = (
            try f.strings("device_ids") ?? [], try f.strings("device_users") ?? [], try f.strings("topics") ?? []
        )
        let providers = try (f.strings("device_providers") ?? []).map(Self.herald(provider:))
        let platforms = try f.strings("device_platforms") ?? []
        let topicPrefix = try f.string("topic_prefix")
        let cursor = try p.string("cursor")
        let countTotal = try p.bool("include_total_count")
        let (entries, next, total, devices) = try await store.read { session in
            let (entries, next, total) = try await session.listDeviceTopics(
                environmentId: environment.id, deviceIds: deviceIds, providers: providers, platforms: platforms, users: users,
                topics: topics,
                topicPrefix: topicPrefix, cursor: cursor, limit: limit, countTotal: countTotal)
            return (
                entries, next, total, try await session.devices(environmentId: environment.id, ids: Array(Set(entries.map(\.deviceId))))
            )
        }
        // cent 5.2 requires `device` on every item, so it is always included; an entry whose device was removed
        // between the two reads is left out rather than sent with an empty device.
        var result: [String: JSONValue] = [
            "items": .array(
                entries.compactMap { entry in
                    devices[entry.deviceId].map { ["id": .string(entry.id), "topic": .string(entry.topic), "device": Self.json($0)] }
                })
        ]
        if let next { result["next_cursor"] = .string(next) }
        if let total { result["total_count"] = .number(Double(total)) }
        return .object(result)
    }

    func userTopicUpdate(_ params: JSONValue, environment: HeraldCore.Environment) async throws -> JSONValue {
        let p = CentrifugoParams(params)
        let user = try p.requiredString("user")
        let update = try TopicsUpdate(p)
        try await store.transaction { session in
            let current = try await session.topicKeys(environmentId: environment.id, subscriberId: user)
            let add: [String]
            let remove: [String]
            switch update.op {
            case .add: (add, remove) = (update.topics, [])
            case .remove: (add, remove) = ([], update.topics)
            case .set: (add, remove) = (update.topics, current.filter { !update.topics.contains($0) })
            }
            for topic in add {
                _ = try await session.upsertTopic(environmentId: environment.id, key: topic, name: nil)
                try await session.subscribe(environmentId: environment.id, topicKey: topic, subscriberIds: [user])
            }
            for topic in remove { try await session.unsubscribe(environmentId: environment.id, topicKey: topic, subscriberIds: [user]) }
        }
        return [:]
    }

    func userTopicList(_ params: JSONValue, environment: HeraldCore.Environment) async throws -> JSONValue {
        let p = CentrifugoParams(params)
        let f = CentrifugoParams(.object(try p.object("filter") ?? [:]))
        let limit = try p.limit()
        let (items, next, total) = try await store.read { session in
            try await session.listUserTopics(
                environmentId: environment.id, users: try f.strings("users") ?? [], topics: try f.strings("topics") ?? [],
                topicPrefix: try f.string("topic_prefix"), cursor: try p.string("cursor"), limit: limit,
                countTotal: try p.bool("include_total_count")
            )
        }
        var result: [String: JSONValue] = [
            "items": .array(items.map { ["id": .string($0.id), "user": .string($0.subscriberId), "topic": .string($0.topicKey)] })
        ]
        if let next { result["next_cursor"] = .string(next) }
        if let total { result["total_count"] = .number(Double(total)) }
        return .object(result)
    }
}

/// Typed access to a Centrifugo request object; wrong types are `bad request` errors naming the field.
struct CentrifugoParams: Sendable {
    let object: [String: JSONValue]

    init(_ value: JSONValue) {
        object = value.objectValue ?? [:]
    }

    /// A string field: absent or `null` is nil; another type is a `bad request` naming it (Centrifugo decodes into
    /// typed structs, so a wrong type is an error there too — never silently "no value").
    func string(_ name: String) throws -> String? {
        guard let value = object[name], value != .null else { return nil }
        guard let text = value.stringValue else { throw APIError(.badRequest, "bad request: \(name) must be a string") }
        return text
    }

    func requiredString(_ name: String) throws -> String {
        guard let value = object[name]?.stringValue, !value.isEmpty else { throw APIError(.badRequest, "bad request: \(name) required") }
        return value
    }

    /// A boolean switch: absent or `null` is false; another type is a `bad request`.
    func bool(_ name: String) throws -> Bool {
        guard let value = object[name], value != .null else { return false }
        guard let flag = value.boolValue else { throw APIError(.badRequest, "bad request: \(name) must be true or false") }
        return flag
    }

    /// An object field: absent or `null` is nil; another type is a `bad request`.
    func object(_ name: String) throws -> [String: JSONValue]? {
        guard let value = object[name], value != .null else { return nil }
        guard let entries = value.objectValue else { throw APIError(.badRequest, "bad request: \(name) must be an object") }
        return entries
    }

    /// Most entries of one list field: beyond, a `bad request` (each entry is a bound parameter of one statement).
    static let maxListCount = 10_000

    func strings(_ name: String) throws -> [String]? {
        guard let value = object[name], value != .null else { return nil }
        guard case .array(let items) = value else { throw APIError(.badRequest, "bad request: \(name) must be a list of strings") }
        guard items.count <= Self.maxListCount else {
            throw APIError(.badRequest, "bad request: \(name) has more than \(Self.maxListCount) entries")
        }
        return try items.map { item in
            guard let text = item.stringValue else { throw APIError(.badRequest, "bad request: \(name) must be a list of strings") }
            return text
        }
    }

    func stringMap(_ name: String) throws -> [String: String]? {
        guard let value = object[name], value != .null else { return nil }
        guard case .object(let entries) = value else { throw APIError(.badRequest, "bad request: \(name) must be an object of strings") }
        return try entries.mapValues { item in
            guard let text = item.stringValue else { throw APIError(.badRequest, "bad request: \(name) values must be strings") }
            return text
        }
    }

    /// `limit`: default 100, at most 1000.
    func limit() throws -> Int {
        guard let value = object["limit"], value != .null else { return 100 }
        guard case .number(let number) = value else { throw APIError(.badRequest, "bad request: limit must be 1–1000") }
        guard number >= 1, number <= 1000, number.rounded() == number else {
            throw APIError(.badRequest, "bad request: limit must be 1–1000")
        }
        return Int(number)
    }
}

/// Centrifugo's error codes for API errors.
enum CentrifugoError {
    static func code(_ error: APIError) -> Int {
        if let code = error.centrifugoCode { return code }
        return switch error.status {
        case .notFound: 104
        case .conflict: 113
        case .internalServerError, .serviceUnavailable: 100
        default: 107
        }
    }

    static func body(_ error: APIError) -> JSONValue {
        let code = code(error)
        return ["code": .number(Double(code)), "message": .string(code == 100 ? "internal server error" : error.message)]
    }
}
