import Foundation
import HTTPTypes
import HeraldCore
import HeraldProviders
import Hummingbird
import NIOCore

/// Expo, Huawei HMS, OneSignal, Pusher Beams and Pushpad (`docs/providers.md` §Push, §Emulators).
extension PushEmulator {
    func registerHosted(on router: Router<SimulatorContext>) {
        registerExpo(on: router)
        registerHMS(on: router)
        registerOneSignal(on: router)
        registerBeams(on: router)
        registerPushpad(on: router)
    }

    // MARK: Expo

    func registerExpo(on router: Router<SimulatorContext>) {
        router.post("/expo/--/api/v2/push/send") { request, context -> Response in
            var bytes = try await Self.body(request)
            if request.headers[.contentEncoding]?.lowercased() == "gzip" {
                guard let inflated = Gzip.decompress(bytes) else {
                    return Self.json(400, ["errors": [["code": "VALIDATION_ERROR", "message": "the gzip body does not decompress"]]])
                }
                bytes = inflated
                self.state.withLock { $0.gzipRequests += 1 }
            }
            if let required = self.state.withLock({ $0.expoAccessToken }), request.headers[.authorization] != "Bearer \(required)" {
                return Self.json(401, ["errors": [["code": "UNAUTHORIZED", "message": "The bearer token is invalid"]]])
            }
            guard let parsed = try? JSONValue.parse(bytes: bytes) else {
                return Self.json(400, ["errors": [["code": "VALIDATION_ERROR", "message": "body is not JSON"]]])
            }
            let messages: [JSONValue] = parsed.arrayValue ?? [parsed]
            let recipients = messages.reduce(0) { $0 + ($1.objectValue?["to"]?.arrayValue?.count ?? 1) }
            guard recipients <= 100 else {
                return Self.json(
                    400,
                    [
                        "errors": [
                            [
                                "code": "PUSH_TOO_MANY_NOTIFICATIONS",
                                "message": "You are trying to send more than 100 push notifications in one request.",
                            ]
                        ]
                    ])
            }
            if let fault = self.fault(provider: "expo", targets: []), fault.error == nil {
                if await self.play(fault, context: context) { return Self.json(500, [:]) }
                return Self.json(
                    fault.status,
                    ["errors": [["code": fault.status == 429 ? "TOO_MANY_REQUESTS" : "INTERNAL_SERVER_ERROR", "message": "emulated"]]],
                    headers: Self.retryHeaders(fault))
            }
            var tickets: [JSONValue] = []
            for message in messages {
                let object = message.objectValue ?? [:]
                let targets = object["to"]?.arrayValue?.compactMap(\.stringValue) ?? [object["to"]?.stringValue ?? ""]
                for target in targets {
                    guard (target.hasPrefix("ExponentPushToken[") || target.hasPrefix("ExpoPushToken[")) && target.hasSuffix("]") else {
                        tickets.append([
                            "status": "error", "message": .string("\"\(target)\" is not a valid Expo push token"),
                            "details": ["error": "DeviceNotRegistered"],
                        ])
                        continue
                    }
                    let fault = self.fault(provider: "expo", targets: [target])
                    var record = PushRecord(
                        provider: "expo", target: target, title: object["title"]?.stringValue, body: object["body"]?.stringValue,
                        payload: message, headers: [:], status: 200, receivedAt: self.clock())
                    if let error = fault?.error {
                        record.status = 400
                        self.record(record)
                        tickets.append(["status": "error", "message": .string("emulated \(error)"), "details": ["error": .string(error)]])
                    } else {
                        self.record(record)
                        let id = UUID().uuidString.lowercased()
                        // A fault for provider `expo-receipt` turns up in this message's receipt instead of its ticket.
                        let receipt: JSONValue =
                            if let error = self.fault(provider: "expo-receipt", targets: [target])?.error {
                                ["status": "error", "message": .string("emulated \(error)"), "details": ["error": .string(error)]]
                            } else { ["status": "ok"] }
                        self.state.withLock { $0.expoReceipts[id] = receipt }
                        tickets.append(["status": "ok", "id": .string(id)])
                    }
                }
            }
            return Self.json(200, ["data": .array(tickets)])
        }
        router.post("/expo/--/api/v2/push/getReceipts") { request, _ -> Response in
            let object = (try? JSONValue.parse(bytes: try await Self.body(request)))?.objectValue ?? [:]
            let ids = object["ids"]?.arrayValue?.compactMap(\.stringValue) ?? []
            guard ids.count <= 1000 else {
                return Self.json(400, ["errors": [["code": "PUSH_TOO_MANY_RECEIPTS", "message": "more than 1000 receipt ids"]]])
            }
            let receipts = self.state.withLock { state in ids.reduce(into: [String: JSONValue]()) { $0[$1] = state.expoReceipts[$1] } }
            return Self.json(200, ["data": .object(receipts)])
        }
    }

    // MARK: HMS

    func registerHMS(on router: Router<SimulatorContext>) {
        router.post("/hms/oauth2/v3/token") { request, _ -> Response in
            let fields = Self.form(try await Self.body(request))
            guard fields["grant_type"] == "client_credentials", let client = fields["client_id"],
                let secret = self.state.withLock({ $0.hmsApps[client] }), fields["client_secret"] == secret
            else {
                return Self.json(400, ["error": 1101, "sub_error": 20_203, "error_description": "invalid client"])
            }
            let (token, lifetime) = self.issueToken(provider: "hms", account: client)
            return Self.json(200, ["access_token": .string(token), "expires_in": .number(Double(lifetime)), "token_type": "Bearer"])
        }
        router.post("/hms/v1/:app/:action") { request, context -> Response in
            func answer(_ code: String, _ message: String, status: Int = 200) -> Response {
                Self.json(status, ["code": .string(code), "msg": .string(message), "requestId": .string(UUID().uuidString)])
            }
            guard context.parameters.get("action") == "messages:send", let app = context.parameters.get("app") else {
                return answer("80100001", "not found", status: 404)
            }
            let bytes = try await Self.body(request)
            guard let account = self.account(bearer: request.headers[.authorization], provider: "hms") else {
                return answer("80200003", "OAuth token expired.", status: 401)
            }
            guard account == app else { return answer("80300002", "The current app does not have the permission to send messages.") }
            guard case .object(let body)? = try? JSONValue.parse(bytes: bytes), case .object(var message)? = body["message"],
                ["token", "topic", "condition"].filter({ message[$0] != nil }).count == 1
            else { return answer("80100003", "Incorrect message structure.", status: 400) }
            // Exactly one target: a token list, a topic or a condition (recorded as `/topics/…`, `/conditions/…`).
            let tokens: [String]
            if case .array(let tokenValues)? = message["token"] {
                tokens = tokenValues.compactMap(\.stringValue)
                guard !tokens.isEmpty, tokens.count <= 1000 else { return answer("80300010", "The number of tokens exceeds the limit.") }
            } else if let topic = message["topic"]?.stringValue, !topic.isEmpty {
                tokens = ["/topics/\(topic)"]
            } else if let condition = message["condition"]?.stringValue, !condition.isEmpty {
                tokens = ["/conditions/\(condition)"]
            } else {
                return answer("80100003", "Incorrect message structure.", status: 400)
            }
            message["token"] = nil
            guard JSONValue.object(message).jsonString().utf8.count <= 4096 else {
                return answer("80300008", "The message body size exceeds the default value.")
            }
            if case .object(let android)? = message["android"], case .object(let notification)? = android["notification"],
                notification["click_action"] == nil
            {
                return answer("80100003", "Incorrect message structure: click_action is required.", status: 400)
            }
            if let fault = self.fault(provider: "hms", targets: []), fault.targets == nil {
                if await self.play(fault, context: context) { return Self.json(500, [:]) }
                return answer(fault.error ?? "81000001", "emulated", status: fault.status).withHeaders(Self.retryHeaders(fault))
            }
            let invalid = Set(self.faults(provider: "hms", targets: tokens).keys)
            let notification = message["notification"]?.objectValue
            for token in tokens {
                self.record(
                    PushRecord(
                        provider: "hms", target: token, title: notification?["title"]?.stringValue,
                        body: notification?["body"]?.stringValue,
                        payload: .object(message), headers: [:], status: invalid.contains(token) ? 400 : 200, receivedAt: self.clock()))
            }
            if invalid.isEmpty { return answer("80000000", "Success") }
            if invalid.count == tokens.count { return answer("80300007", "All the tokens are invalid.") }
            let detail: JSONValue = [
                "success": .number(Double(tokens.count - invalid.count)), "failure": .number(Double(invalid.count)),
                "illegal_tokens": .array(invalid.sorted().map(JSONValue.string)),
            ]
            return answer("80100000", detail.jsonString())
        }
    }

    // MARK: OneSignal

    func registerOneSignal(on router: Router<SimulatorContext>) {
        router.post("/onesignal/notifications") { request, context -> Response in
            let bytes = try await Self.body(request)
            guard case .object(let body)? = try? JSONValue.parse(bytes: bytes), let app = body["app_id"]?.stringValue else {
                return Self.json(400, ["errors": ["app_id not found. You may be missing a Content-Type: application/json header."]])
            }
            guard let key = self.state.withLock({ $0.oneSignalApps[app] }),
                request.headers[.authorization] == "Key \(key)" || request.headers[.authorization] == "Basic \(key)"
            else {
                return Self.json(403, ["errors": ["Access denied.  Please include an 'Authorization: ...' header with a valid API key"]])
            }
            let ids = body["include_subscription_ids"]?.arrayValue?.compactMap(\.stringValue) ?? []
            guard !ids.isEmpty, ids.count <= 2000 else {
                return Self.json(400, ["errors": ["include_subscription_ids must list 1 to 2000 ids"]])
            }
            guard body["contents"]?.objectValue?["en"]?.stringValue != nil else {
                return Self.json(400, ["errors": ["Notification contents for each language must be a string"]])
            }
            if let fault = self.fault(provider: "one-signal", targets: []), fault.targets == nil {
                if await self.play(fault, context: context) { return Self.json(500, [:]) }
                return Self.json(
                    fault.status, ["errors": [.string(fault.error ?? "API rate limit exceeded.")]], headers: Self.retryHeaders(fault))
            }
            let invalid = Set(self.faults(provider: "one-signal", targets: ids).keys)
            for id in ids {
                self.record(
                    PushRecord(
                        provider: "one-signal", target: id, title: body["headings"]?.objectValue?["en"]?.stringValue,
                        body: body["contents"]?.objectValue?["en"]?.stringValue, payload: .object(body), headers: [:],
                        status: invalid.contains(id) ? 400 : 200, receivedAt: self.clock()))
            }
            if invalid.count == ids.count { return Self.json(200, ["id": "", "errors": ["All included players are not subscribed"]]) }
            var answer: [String: JSONValue] = ["id": .string(UUID().uuidString.lowercased()), "external_id": .null]
            if !invalid.isEmpty { answer["errors"] = ["invalid_player_ids": .array(invalid.sorted().map(JSONValue.string))] }
            return Self.json(200, .object(answer))
        }
    }

    // MARK: Pusher Beams

    func registerBeams(on router: Router<SimulatorContext>) {
        router.post("/beams/publish_api/v1/instances/:instance/publishes/users") { request, context -> Response in
            let instance = context.parameters.get("instance") ?? ""
            guard let secret = self.state.withLock({ $0.beamsInstances[instance] }) else {
                return Self.json(404, ["error": "Instance not found", "description": "Could not find the instance"])
            }
            guard request.headers[.authorization] == "Bearer \(secret)" else {
                return Self.json(401, ["error": "Unauthorized", "description": "Incorrect API Key"])
            }
            guard request.headers[.contentType]?.hasPrefix("application/json") == true else {
                return Self.json(400, ["error": "Bad request", "description": "Invalid content type"])
            }
            let bytes = try await Self.body(request)
            guard case .object(let body)? = try? JSONValue.parse(bytes: bytes), case .array(let userValues)? = body["users"] else {
                return Self.json(400, ["error": "Bad request", "description": "Incomplete Request"])
            }
            let users = userValues.compactMap(\.stringValue)
            guard !users.isEmpty, users.count <= 1000, users.allSatisfy({ !$0.isEmpty && $0.count <= 164 }) else {
                return Self.json(400, ["error": "Bad request", "description": "users must list 1 to 1000 ids of at most 164 characters"])
            }
            guard body["apns"] != nil || body["fcm"] != nil || body["web"] != nil else {
                return Self.json(400, ["error": "Bad request", "description": "at least one of apns, fcm or web is required"])
            }
            if let fault = self.fault(provider: "pusher-beams", targets: users) {
                if await self.play(fault, context: context) { return Self.json(500, [:]) }
                return Self.json(
                    fault.status, ["error": .string(fault.error ?? "emulated"), "description": "emulated"],
                    headers: Self.retryHeaders(fault))
            }
            let alert = body["apns"]?.objectValue?["aps"]?.objectValue?["alert"]?.objectValue
            for user in users {
                self.record(
                    PushRecord(
                        provider: "pusher-beams", target: user, title: alert?["title"]?.stringValue, body: alert?["body"]?.stringValue,
                        payload: .object(body), headers: [:], status: 200, receivedAt: self.clock()))
            }
            return Self.json(200, ["publishId": .string("pubid-\(UUID().uuidString.lowercased())")])
        }
    }

    // MARK: Pushpad

    func registerPushpad(on router: Router<SimulatorContext>) {
        router.post("/pushpad/api/v1/projects/:project/notifications") { request, context -> Response in
            let project = context.parameters.get("project") ?? ""
            guard let token = self.state.withLock({ $0.pushpadProjects[project] }) else { return Self.json(404, ["error": "Not Found"]) }
            guard request.headers[.authorization] == "Token token=\"\(token)\"" else { return Self.json(401, ["error": "Unauthorized"]) }
            let bytes = try await Self.body(request)
            guard case .object(let body)? = try? JSONValue.parse(bytes: bytes), case .object(let notification)? = body["notification"],
                let text = notification["body"]?.stringValue, !text.isEmpty
            else { return Self.json(422, ["errors": ["body": ["can't be blank"]]]) }
            let uids = body["uids"]?.arrayValue?.compactMap(\.stringValue) ?? []
            if let fault = self.fault(provider: "pushpad", targets: uids) {
                if await self.play(fault, context: context) { return Self.json(500, [:]) }
                return Self.json(fault.status, ["error": .string(fault.error ?? "emulated")], headers: Self.retryHeaders(fault))
            }
            for uid in uids {
                self.record(
                    PushRecord(
                        provider: "pushpad", target: uid, title: notification["title"]?.stringValue, body: text, payload: .object(body),
                        headers: [:], status: 201, receivedAt: self.clock()))
            }
            return Self.json(
                201,
                [
                    "id": .number(Double(Int.random(in: 100_000...999_999))), "scheduled": .number(Double(uids.count)),
                    "uids": .array(uids.map(JSONValue.string)),
                ])
        }
    }
}
