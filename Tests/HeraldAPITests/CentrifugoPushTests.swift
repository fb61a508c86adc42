import Foundation
import HTTPTypes
import HeraldCore
import HeraldEngine
import HeraldSimulator
import HeraldStore
import HeraldTestSupport
import Hummingbird
import HummingbirdTesting
import Testing

/// Centrifugo's raw sends end to end: `send_push_notification` → durable fan-out → the real provider clients → the
/// simulator's emulators, which see the caller's payloads unchanged.
@Suite("Centrifugo raw push sends")
struct CentrifugoPushTests {
    static let apnsToken = String(repeating: "ab", count: 32)

    /// Calls `/api/<method>`; returns the `result` (or the whole body when it holds an `error`).
    @discardableResult
    static func api(_ herald: EngineHarness, _ method: String, _ body: JSONValue) async throws -> JSONValue {
        let headers: HTTPFields = [HTTPField.Name("X-API-Key")!: herald.key, .contentType: "application/json"]
        return try await herald.client.execute(
            uri: "/api/\(method)", method: .post, headers: headers, body: ByteBuffer(string: body.jsonString())
        ) { response in
            #expect(response.status == .ok, "\(method): HTTP \(response.status)")
            let json = try JSONValue.parse(String(buffer: response.body))
            return json.objectValue?["result"] ?? json
        }
    }

    static func errorCode(_ reply: JSONValue) -> Int? {
        if case .number(let code)? = reply.objectValue?["error"]?.objectValue?["code"] { return Int(code) }
        return nil
    }

    static func stats(_ herald: EngineHarness, _ uid: String) async throws -> [String: JSONValue] {
        let response = try await herald.call(.get, "/v1/push-stats?uid=\(uid)")
        #expect(response.status == .ok, "push-stats: \(String(buffer: response.body))")
        return try response.json().objectValue?["data"]?.objectValue ?? [:]
    }

    static let notification: JSONValue = [
        "fcm": ["message": ["notification": ["title": "Goal", "body": "1-0"], "data": ["match": "42"], "android": ["priority": "high"]]],
        "hms": [
            "message": ["notification": ["title": "Goal", "body": "1-0"], "android": ["notification": ["click_action": ["type": 3]]]]
        ],
        "apns": [
            "headers": ["apns-priority": "5", "apns-collapse-id": "match-42"],
            "payload": ["aps": ["alert": ["title": "Goal", "body": "1-0"], "thread-id": "m42"], "match": "42"],
        ],
        "webpush": ["headers": ["Urgency": "high"], "payload": ["title": "Goal", "body": "1-0", "icon": "/ball.png"]],
    ]

    @Test(
        "payloads pass through unchanged to devices by topic and user, raw tokens and native topics; statistics and reports",
        arguments: Backend.available)
    func rawSends(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: []) { herald in
            try await herald.pushIntegrations(only: ["fcm", "apns", "hms", "web-push"])
            let subscription = herald.push.makeWebPushSubscription(
                baseURL: herald.tlsURL, applicationServerKey: DevAccounts.vapidPublicKey, id: "bob-browser")
            let fcm = try await Self.api(
                herald, "device_register",
                ["provider": "fcm", "token": "fcm-ann", "platform": "android", "user": "ann", "topics": ["news"]])
            let apns = try await Self.api(
                herald, "device_register", ["provider": "apns", "token": .string(Self.apnsToken), "platform": "ios", "user": "ann"])
            try await Self.api(herald, "device_register", ["provider": "hms", "token": "hms-bob", "platform": "android", "user": "bob"])
            try await Self.api(
                herald, "device_register", ["provider": "webpush", "token": .string(subscription), "platform": "web", "user": "bob"])
            // A user topic added after registration reaches the user's existing devices.
            try await Self.api(herald, "user_topic_update", ["user": "bob", "op": "add", "topics": ["news"]])

            let sent = try await Self.api(
                herald, "send_push_notification",
                ["recipient": ["filter": ["topics": ["news"]]], "notification": Self.notification, "uid": "goal-1"])
            #expect(sent == ["uid": "goal-1"])
            try await herald.settle()
            let push = herald.push
            // Ann's FCM device (device topic) and Bob's HMS and Web Push devices (user topic); not Ann's APNs device.
            #expect(push.messages(provider: "fcm").map(\.target) == ["fcm-ann"])
            #expect(push.messages(provider: "hms").map(\.target) == ["hms-bob"])
            #expect(push.messages(provider: "web-push").map(\.target) == ["bob-browser"])
            #expect(push.messages(provider: "apns").isEmpty)
            // FCM: the caller's message plus the token, nothing else.
            #expect(
                push.messages(provider: "fcm").first?.payload
                    == [
                        "token": "fcm-ann", "notification": ["title": "Goal", "body": "1-0"], "data": ["match": "42"],
                        "android": ["priority": "high"],
                    ])
            #expect(
                push.messages(provider: "hms").first?.payload
                    == ["notification": ["title": "Goal", "body": "1-0"], "android": ["notification": ["click_action": ["type": 3]]]])
            let web = try #require(push.messages(provider: "web-push").first)
            #expect(web.payload == ["title": "Goal", "body": "1-0", "icon": "/ball.png"])
            #expect(web.headers["urgency"] == "high" && web.headers["ttl"] == "2419200")

            // By user, to Ann's devices; APNs headers and payload as given.
            let byUser = try await Self.api(
                herald, "send_push_notification", ["recipient": ["filter": ["users": ["ann"]]], "notification": Self.notification])
            let generated = try #require(byUser.objectValue?["uid"]?.stringValue)
            #expect(UUID(uuidString: generated) != nil)
            try await herald.settle()
            let apnsRecord = try #require(push.messages(provider: "apns").first)
            #expect(apnsRecord.payload == ["aps": ["alert": ["title": "Goal", "body": "1-0"], "thread-id": "m42"], "match": "42"])
            #expect(apnsRecord.headers["apns-priority"] == "5" && apnsRecord.headers["apns-collapse-id"] == "match-42")
            #expect(apnsRecord.headers["apns-push-type"] == "alert" && apnsRecord.headers["apns-topic"] == DevAccounts.apnsBundleId)
            #expect(push.messages(provider: "fcm").count == 2)

            // Raw tokens and native topics/conditions, registered or not.
            try await Self.api(
                herald, "send_push_notification",
                ["recipient": ["fcm_tokens": ["fcm-raw-1", "fcm-raw-2"]], "notification": ["fcm": Self.notification.objectValue!["fcm"]!]])
            try await Self.api(herald, "send_push_notification", ["recipient": ["fcm_topic": "scores"], "notification": Self.notification])
            try await Self.api(
                herald, "send_push_notification", ["recipient": ["hms_condition": "'a' in topics"], "notification": Self.notification])
            try await Self.api(
                herald, "send_push_notification",
                ["recipient": ["apns_tokens": [.string(String(repeating: "cd", count: 32))]], "notification": Self.notification])
            try await herald.settle()
            let fcmTargets = Set(push.messages(provider: "fcm").map(\.target))
            #expect(fcmTargets == ["fcm-ann", "fcm-raw-1", "fcm-raw-2", "/topics/scores"])
            #expect(push.messages(provider: "hms").map(\.target).contains("/conditions/'a' in topics"))
            #expect(push.messages(provider: "apns").count == 2)

            // Statistics per provider and platform, then the app's reports.
            var stats = try await Self.stats(herald, "goal-1")
            #expect(stats["status"] == "sent")
            #expect(stats["totals"]?.objectValue?["sent"] == 3 && stats["totals"]?.objectValue?["failed"] == 0)
            let rows = stats["providers"]?.arrayValue?.compactMap(\.objectValue) ?? []
            #expect(
                Set(rows.map { "\($0["provider"]?.stringValue ?? "")/\($0["platform"]?.stringValue ?? "")" }) == [
                    "fcm/android", "hms/android", "web-push/web",
                ])
            let fcmId = try #require(fcm.objectValue?["id"]?.stringValue)
            // An interaction is a status event (README §Status webhooks); a delivery report is not.
            let endpoint = try await herald.call(
                .post, "/v1/webhooks", #"{"url":"\#(herald.simulatorURL)/hooks/reports","eventTypes":["push.interacted"]}"#)
            #expect(endpoint.status == .created)
            try await Self.api(
                herald, "update_push_status", ["analytics_uid": "goal-1", "status": "delivered", "device_id": .string(fcmId)])
            try await Self.api(
                herald, "update_push_status", ["analytics_uid": "goal-1", "status": "interacted", "device_id": .string(fcmId)])
            // An app retrying its report: accepted, and no second event.
            try await Self.api(
                herald, "update_push_status", ["analytics_uid": "goal-1", "status": "interacted", "device_id": .string(fcmId)])
            try await Self.api(
                herald, "update_push_status", ["analytics_uid": "goal-1", "status": "delivered", "device_id": .string(fcmId)])
            stats = try await Self.stats(herald, "goal-1")
            #expect(stats["totals"]?.objectValue?["delivered"] == 1 && stats["totals"]?.objectValue?["interacted"] == 1)
            try await herald.eventually("the push.interacted event") { !herald.emulator.requests(hook: "reports").isEmpty }
            try await herald.settle()
            let reports = herald.emulator.requests(hook: "reports")
            #expect(reports.count == 1)
            #expect(reports.first?.body.objectValue?["type"] == "push.interacted")
            #expect(
                reports.first?.body.objectValue?["data"]
                    == ["deviceId": .string(fcmId), "analyticsUid": "goal-1", "status": "interacted"])
            let apnsId = try #require(apns.objectValue?["id"]?.stringValue)
            #expect(
                Self.errorCode(
                    try await Self.api(
                        herald, "update_push_status", ["analytics_uid": "goal-1", "status": "delivered", "device_id": .string(apnsId)]))
                    == 104)
            let metrics = try await herald.call(.get, "/metrics")
            #expect(
                String(buffer: metrics.body).contains(
                    #"herald_push_notification_count{provider="fcm",platform="android",outcome="delivered"} 2"#))
        }
    }

    @Test("a workflow push is counted by its device's platform", arguments: Backend.available)
    func workflowPushPlatforms(_ backend: Backend) async throws {
        let workflow = """
            workflow: goal
            steps:
              - { id: push, type: push, title: Goal }
            """
        try await withEngine(backend, workflows: [workflow]) { herald in
            try await herald.pushIntegrations(only: ["fcm", "apns"])
            try await Self.api(herald, "device_register", ["provider": "fcm", "token": "fcm-ann", "platform": "android", "user": "ann"])
            try await Self.api(
                herald, "device_register", ["provider": "apns", "token": .string(Self.apnsToken), "platform": "ios", "user": "ann"])
            _ = try await herald.trigger(["name": "goal", "to": "ann"])
            try await herald.settle()
            #expect(herald.push.messages(provider: "fcm").count == 1 && herald.push.messages(provider: "apns").count == 1)
            let metrics = String(buffer: try await herald.call(.get, "/metrics").body)
            #expect(metrics.contains(#"herald_push_notification_count{provider="fcm",platform="android",outcome="delivered"} 1"#))
            #expect(metrics.contains(#"herald_push_notification_count{provider="apns",platform="ios",outcome="delivered"} 1"#))
            #expect(!metrics.contains(#"platform="unknown""#))
        }
    }

    @Test("a uid sends once; send_at waits and cancel_push stops it; expire_at in the past sends nothing", arguments: Backend.available)
    func scheduling(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: []) { herald in
            try await herald.pushIntegrations(only: ["fcm"])
            let body: JSONValue = ["recipient": ["fcm_tokens": ["fcm-1"]], "notification": Self.notification, "uid": "once"]
            #expect(try await Self.api(herald, "send_push_notification", body) == ["uid": "once"])
            try await herald.settle()
            #expect(try await Self.api(herald, "send_push_notification", body) == ["uid": "once"])
            var changed = body.objectValue!
            changed["recipient"] = ["fcm_tokens": ["fcm-2"]]
            #expect(Self.errorCode(try await Self.api(herald, "send_push_notification", .object(changed))) == 113)
            try await herald.settle()
            #expect(herald.push.messages(provider: "fcm").count == 1)

            let later = Int(Date().timeIntervalSince1970) + 3600
            try await Self.api(
                herald, "send_push_notification",
                [
                    "recipient": ["fcm_tokens": ["fcm-later"]], "notification": Self.notification, "uid": "later",
                    "send_at": .number(Double(later)),
                ])
            #expect(try await herald.scheduledJobs() == 1)
            try await Self.api(herald, "cancel_push", ["uid": "later"])
            #expect(try await herald.scheduledJobs() == 0)
            #expect(try await Self.stats(herald, "later")["status"] == "canceled")
            #expect(Self.errorCode(try await Self.api(herald, "cancel_push", ["uid": "nope"])) == 104)

            var expired = Self.notification.objectValue!
            expired["expire_at"] = .number(Double(Int(Date().timeIntervalSince1970) - 60))
            try await Self.api(
                herald, "send_push_notification",
                ["recipient": ["fcm_tokens": ["fcm-expired"]], "notification": .object(expired), "uid": "old"])
            try await herald.settle()
            #expect(try await Self.stats(herald, "old")["status"] == "expired")
            #expect(herald.push.messages(provider: "fcm").map(\.target) == ["fcm-1"])
        }
    }

    @Test("dead tokens are removed; bad requests get Centrifugo's error codes with the location", arguments: Backend.available)
    func deadTokensAndErrors(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: []) { herald in
            try await herald.pushIntegrations(only: ["fcm", "apns"])
            let live = try await Self.api(
                herald, "device_register", ["provider": "fcm", "token": "fcm-live", "platform": "android", "user": "u"])
            try await Self.api(herald, "device_register", ["provider": "fcm", "token": "fcm-dead", "platform": "android", "user": "u"])
            let deadApns = String(repeating: "de", count: 32)
            try await Self.api(herald, "device_register", ["provider": "apns", "token": .string(deadApns), "platform": "ios", "user": "x"])
            herald.push.addFault(PushFault(provider: "fcm", targets: ["fcm-dead"], status: 404, error: "UNREGISTERED"))
            herald.push.addFault(PushFault(provider: "apns", targets: [deadApns], status: 410, error: "Unregistered"))
            try await Self.api(
                herald, "send_push_notification",
                ["recipient": ["filter": ["users": ["u"]]], "notification": Self.notification, "uid": "d"])
            // A raw token that is dead removes the device registered with it too.
            try await Self.api(
                herald, "send_push_notification", ["recipient": ["apns_tokens": [.string(deadApns)]], "notification": Self.notification])
            try await herald.settle()
            let devices = try await Self.api(herald, "device_list", ["filter": ["providers": ["fcm", "apns"]]])
            #expect(devices.objectValue?["items"]?.arrayValue?.compactMap { $0.objectValue?["id"] } == [live.objectValue!["id"]!])
            let stats = try await Self.stats(herald, "d")
            #expect(stats["totals"]?.objectValue?["sent"] == 1 && stats["totals"]?.objectValue?["failed"] == 1)

            let cases: [(JSONValue, Int, String)] = [
                (["notification": Self.notification], 107, "recipient"),
                (["recipient": ["fcm_tokens": ["a"], "apns_tokens": ["b"]], "notification": Self.notification], 107, "exactly one"),
                (
                    ["recipient": ["filter": ["providers": ["pigeon"]]], "notification": Self.notification], 107,
                    "recipient.filter.providers"
                ),
                (["recipient": ["filter": [:]], "notification": Self.notification], 107, "recipient"),
                (["recipient": ["apns_tokens": ["zz"]], "notification": Self.notification], 107, "recipient.apns_tokens[0]"),
                (["recipient": ["hms_tokens": ["h"]], "notification": ["fcm": ["message": [:]]]], 107, "notification.hms"),
                (["recipient": ["fcm_tokens": ["a"]], "notification": ["apns": ["headers": [:]]]], 107, "notification.apns.payload"),
                // A header an encoder cannot carry (found by the schema fuzzer: a non-ASCII name stopped the process).
                (
                    [
                        "recipient": ["apns_tokens": [.string(String(repeating: "ab", count: 32))]],
                        "notification": ["apns": ["headers": ["apns-ì": "1"], "payload": [:]]],
                    ],
                    107, "notification.apns.headers"
                ),
                (
                    [
                        "recipient": ["apns_tokens": [.string(String(repeating: "ab", count: 32))]],
                        "notification": ["apns": ["headers": ["x": "a\r\nInjected: 1"], "payload": [:]]],
                    ],
                    107, "notification.apns.headers"
                ),
                (["recipient": ["fcm_tokens": ["a"]], "notification": Self.notification, "send_at": "soon"], 107, "send_at"),
                // Personalisation: every mistake is a 107 naming its field, before anything is stored (no 108 any more).
                (
                    [
                        "recipient": ["filter": ["users": ["u"]]], "notification": Self.notification,
                        "limit_strategy": ["rate_limit": ["key": "k"]],
                    ], 107, "limit_strategy.rate_limit.policies"
                ),
                (
                    [
                        "recipient": ["filter": ["users": ["u"]]], "notification": Self.notification,
                        "limit_strategy": ["time_limit": ["send_after_time": "25:00:00", "send_before_time": "10:00:00"]],
                    ], 107, "limit_strategy.time_limit.send_after_time"
                ),
                (
                    [
                        "recipient": ["filter": ["users": ["u"]]], "use_templating": true,
                        "notification": ["fcm": ["message": ["notification": ["title": "Hi {{.device.nope}}"]]]],
                    ], 107, "notification.fcm.message.notification.title: unknown variable"
                ),
                (
                    [
                        "recipient": ["filter": ["users": ["u"]]], "use_templating": true,
                        "notification": ["apns": ["payload": ["aps": ["alert": "Hi {{.device.meta.name}}"]]]],
                    ], 107, "notification.apns.payload.aps.alert: '.device.meta.name' needs use_meta"
                ),
                (
                    [
                        "recipient": ["filter": ["users": ["u"]]], "localizations": ["fr": ["translations": ["greeting": "Bonjour"]]],
                        "notification": ["fcm": ["message": ["notification": ["title": "{{default [[Hello] .l10n.greeting}}"]]]],
                    ], 107, "notification.fcm.message.notification.title: a [[string]] is not closed"
                ),
                (
                    ["recipient": ["fcm_tokens": ["a"]], "notification": Self.notification, "use_templating": true], 107,
                    "need a filter recipient"
                ),
            ]
            for (body, code, mention) in cases {
                let reply = try await Self.api(herald, "send_push_notification", body)
                #expect(Self.errorCode(reply) == code, "\(body.jsonString()) → \(reply.jsonString())")
                let message = reply.objectValue?["error"]?.objectValue?["message"]?.stringValue ?? ""
                #expect(message.contains(mention), "\(message)")
            }
            let headers: HTTPFields = [HTTPField.Name("X-API-Key")!: herald.key, .contentType: "application/json"]
            try await herald.client.execute(
                uri: "/api/send_push_notification", method: .post, headers: headers, body: ByteBuffer(string: #"{"recipient":"#)
            ) { response in
                let reply = try JSONValue.parse(String(buffer: response.body))
                #expect(Self.errorCode(reply) == 107 && reply.jsonString().contains("invalid JSON"))
            }
            let missing = try await herald.call(.get, "/v1/push-stats?uid=unknown")
            #expect(missing.status == .notFound)
        }
    }

    @Test("a topic send streams its devices in checkpointed pages and reaches each once", arguments: Backend.available)
    func largeTopic(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: [], configure: { $0.pushPageSize = 200 }) { herald in
            try await herald.pushIntegrations(only: ["fcm"])
            let count = 1500
            try await herald.store.transaction { session in
                for index in 0..<count {
                    _ = try await session.registerDevice(
                        environmentId: herald.environment.id,
                        DeviceRegistration(
                            provider: "fcm", token: Secret("fcm-\(index)"), platform: "android", subscriberId: "user-\(index % 700)",
                            topics: index % 3 == 0 ? ["big"] : nil))
                }
            }
            // Two thirds through device topics, the rest through their users' topic.
            try await Self.api(herald, "user_topic_update", ["user": "user-1", "op": "add", "topics": ["big"]])
            try await Self.api(
                herald, "send_push_notification",
                ["recipient": ["filter": ["topics": ["big"]]], "notification": Self.notification, "uid": "big"])
            let expected = Set((0..<count).filter { $0 % 3 == 0 || $0 % 700 == 1 }.map { "fcm-\($0)" })
            // A transport failure (rare, on a machine busy with the rest of the suite) is retried after its backoff:
            // wait for the devices, not just for the queue.
            try await herald.eventually("every device reached", timeout: .seconds(60)) {
                Set(herald.push.messages(provider: "fcm").map(\.target)).count >= expected.count
            }
            try await herald.settle(timeout: .seconds(60))
            let received = herald.push.messages(provider: "fcm").map(\.target)
            let unfinished = try await herald.store.read {
                try await $0.listDeliveries(
                    environmentId: herald.environment.id, statuses: DeliveryStatus.allCases.filter { $0 != .delivered }, providerId: nil,
                    after: nil, limit: 20)
            }.items.map { "\($0.target.revealed): \($0.status.rawValue) \($0.outcome ?? "-") \($0.errorText ?? "")" }
            #expect(
                received.count == expected.count && Set(received) == expected,
                "\(received.count) received, \(Set(received).count) distinct, \(expected.count) expected; missing \(expected.subtracting(received).sorted().prefix(5)); not delivered: \(unfinished)"
            )
            #expect(try await Self.stats(herald, "big")["totals"]?.objectValue?["sent"] == .number(Double(expected.count)))
        }
    }
}
