import Foundation
import HeraldCore
import HeraldEngine
import HeraldSimulator
import HeraldStore
import HeraldTestSupport
import Testing

/// The push providers end to end: trigger → engine → real provider client (real signing, encryption, HTTP/2 over
/// TLS) → the simulator's emulators, which verify what the real services verify.
@Suite("Push providers end to end")
struct PushProviderTests {
    static let workflow = """
        workflow: flash-sale
        name: Flash sale
        steps:
          - id: push
            type: push
            title: "Sale {{payload.code}}"
            body: "Hi {{subscriber.firstName}}, {{payload.percent}}% off"
            data: { code: "{{payload.code}}" }
            sound: default
            badge: "3"
            ttl: 1h
            priority: high
            collapseKey: sale
        """

    static let apnsToken = String(repeating: "ab", count: 32)
    static let resetToken = String(repeating: "ef", count: 32)
    static let oneSignalId = "6392d91a-b206-4b7b-a620-cd68e32c3a76"

    /// JIT channels for every push provider (the Web Push subscription comes from the emulator, bound to the dev VAPID
    /// key).
    static func channels(_ herald: EngineHarness, webPush: String) -> JSONValue {
        [
            ["providerId": "fcm", "credentials": ["deviceTokens": ["fcm-token-1"]]],
            ["providerId": "apns", "credentials": ["deviceTokens": .array([.string(apnsToken)])]],
            ["providerId": "web-push", "credentials": ["deviceTokens": .array([.string(webPush)])]],
            ["providerId": "expo", "credentials": ["deviceTokens": ["ExponentPushToken[dev-ann]"]]],
            ["providerId": "hms", "credentials": ["deviceTokens": ["hms-token-1"]]],
            ["providerId": "one-signal", "credentials": ["deviceTokens": .array([.string(oneSignalId)])]],
            ["providerId": "pusher-beams", "credentials": ["deviceTokens": ["ann"]]],
            ["providerId": "pushpad", "credentials": ["deviceTokens": ["ann-uid"]]],
        ]
    }

    static func webPushSubscription(_ herald: EngineHarness, id: String = "ann-browser") -> String {
        herald.push.makeWebPushSubscription(baseURL: herald.tlsURL, applicationServerKey: DevAccounts.vapidPublicKey, id: id)
    }

    @Test(
        "one trigger reaches a device on each of the eight push providers; each payload checked field by field",
        arguments: Backend.available)
    func everyProvider(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: [Self.workflow]) { herald in
            try await herald.pushIntegrations()
            let subscription = Self.webPushSubscription(herald)
            try await herald.trigger([
                "name": "flash-sale", "payload": ["code": "FS1", "percent": 30], "transactionId": "tx-all",
                "to": ["subscriberId": "ann", "firstName": "Ann", "channels": Self.channels(herald, webPush: subscription)],
            ])
            try await herald.settle()
            let push = herald.push
            for provider in ["fcm", "apns", "web-push", "expo", "hms", "one-signal", "pusher-beams", "pushpad"] {
                let records = push.messages(provider: provider)
                #expect(records.count == 1, "\(provider): \(records.count) messages")
                #expect(records.first?.title == "Sale FS1", "\(provider) title")
                #expect(records.first?.body == "Hi Ann, 30% off", "\(provider) body")
            }
            // FCM v1 message.
            let fcm = try #require(push.messages(provider: "fcm").first?.payload.objectValue)
            #expect(fcm["token"] == "fcm-token-1")
            #expect(fcm["data"] == ["code": "FS1"])
            #expect(fcm["android"] == ["priority": "high", "ttl": "3600s", "collapse_key": "sale", "notification": ["sound": "default"]])
            #expect(fcm["apns"]?.objectValue?["payload"] == ["aps": ["sound": "default", "badge": 3]])
            #expect(fcm["apns"]?.objectValue?["headers"] == ["apns-priority": "10", "apns-collapse-id": "sale"])
            #expect(fcm["webpush"] == ["headers": ["TTL": "3600", "Urgency": "high"]])
            // APNs: headers and aps.
            let apns = try #require(push.messages(provider: "apns").first)
            #expect(apns.target == Self.apnsToken)
            #expect(
                apns.payload == [
                    "aps": ["alert": ["title": "Sale FS1", "body": "Hi Ann, 30% off"], "sound": "default", "badge": 3], "code": "FS1",
                ])
            #expect(apns.headers["apns-topic"] == DevAccounts.apnsBundleId)
            #expect(apns.headers["apns-push-type"] == "alert")
            #expect(apns.headers["apns-priority"] == "10")
            #expect(apns.headers["apns-collapse-id"] == "sale")
            #expect(apns.headers["apns-expiration"].flatMap { Int64($0) }.map { $0 > Int64(Date().timeIntervalSince1970) } == true)
            #expect(apns.headers["apns-id"].flatMap(UUID.init(uuidString:)) != nil)
            // Web Push: decrypted by the emulator with the subscription's private key.
            let web = try #require(push.messages(provider: "web-push").first)
            #expect(web.payload == ["title": "Sale FS1", "body": "Hi Ann, 30% off", "badge": 3, "data": ["code": "FS1"]])
            #expect(web.headers["ttl"] == "3600")
            #expect(web.headers["urgency"] == "high")
            #expect(web.headers["topic"] == "sale")
            #expect(web.headers["content-encoding"] == "aes128gcm")
            // Expo, HMS, OneSignal, Beams, Pushpad shapes.
            let expo = try #require(push.messages(provider: "expo").first?.payload.objectValue)
            #expect(expo["to"] == "ExponentPushToken[dev-ann]")
            #expect(expo["data"] == ["code": "FS1"])
            #expect(expo["ttl"] == 3600)
            #expect(expo["priority"] == "high")
            let hms = try #require(push.messages(provider: "hms").first?.payload.objectValue)
            #expect(hms["data"] == #"{"code":"FS1"}"#)
            #expect(hms["android"]?.objectValue?["urgency"] == "HIGH")
            #expect(hms["android"]?.objectValue?["ttl"] == "3600s")
            let oneSignal = try #require(push.messages(provider: "one-signal").first?.payload.objectValue)
            #expect(oneSignal["include_subscription_ids"] == [.string(Self.oneSignalId)])
            #expect(oneSignal["app_id"] == .string(DevAccounts.oneSignalAppId))
            #expect(oneSignal["ios_badgeCount"] == 3)
            #expect(oneSignal["idempotency_key"]?.stringValue.flatMap(UUID.init(uuidString:)) != nil)
            let beams = try #require(push.messages(provider: "pusher-beams").first?.payload.objectValue)
            #expect(beams["users"] == ["ann"])
            #expect(beams["fcm"]?.objectValue?["data"] == ["code": "FS1"])
            let pushpad = try #require(push.messages(provider: "pushpad").first?.payload.objectValue)
            #expect(pushpad["uids"] == ["ann-uid"])
            #expect(pushpad["notification"]?.objectValue?["urgent"] == true)

            let messages = try await herald.call(.get, "/v1/messages?transactionId=tx-all&limit=20").json()
            let list = messages.objectValue?["data"]?.arrayValue ?? []
            #expect(list.count == 8)
            #expect(list.allSatisfy { $0.objectValue?["status"] == "sent" })
        }
    }

    @Test("dead tokens are removed from the registry on every provider that reports them", arguments: Backend.available)
    func deadTokens(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: [Self.workflow]) { herald in
            try await herald.pushIntegrations(only: ["fcm", "apns", "web-push", "expo", "hms", "one-signal"])
            let push = herald.push
            let deadApns = String(repeating: "cd", count: 32)
            push.addFault(PushFault(provider: "fcm", targets: ["fcm-dead"], status: 404, error: "UNREGISTERED"))
            push.addFault(PushFault(provider: "fcm", targets: ["fcm-bad"], status: 400, error: "INVALID_ARGUMENT"))
            push.addFault(PushFault(provider: "apns", targets: [deadApns], status: 410, error: "Unregistered"))
            push.addFault(PushFault(provider: "expo", targets: ["ExponentPushToken[dead]"], status: 200, error: "DeviceNotRegistered"))
            push.addFault(PushFault(provider: "hms", targets: ["hms-dead"], status: 200))
            push.addFault(PushFault(provider: "one-signal", targets: ["os-dead"], status: 200))
            let live = Self.webPushSubscription(herald, id: "live-browser")
            let gone = Self.webPushSubscription(herald, id: "gone-browser")
            push.expireWebPushSubscription(id: "gone-browser")
            try await herald.trigger([
                "name": "flash-sale", "payload": ["code": "D", "percent": 5],
                "to": [
                    "subscriberId": "dan", "firstName": "Dan",
                    "channels": [
                        ["providerId": "fcm", "credentials": ["deviceTokens": ["fcm-live", "fcm-dead", "fcm-bad"]]],
                        ["providerId": "apns", "credentials": ["deviceTokens": .array([.string(Self.apnsToken), .string(deadApns)])]],
                        ["providerId": "web-push", "credentials": ["deviceTokens": .array([.string(live), .string(gone)])]],
                        ["providerId": "expo", "credentials": ["deviceTokens": ["ExponentPushToken[live]", "ExponentPushToken[dead]"]]],
                        ["providerId": "hms", "credentials": ["deviceTokens": ["hms-live", "hms-dead"]]],
                        ["providerId": "one-signal", "credentials": ["deviceTokens": ["os-live", "os-dead"]]],
                    ],
                ],
            ])
            try await herald.settle()
            let devices = try await herald.store.read { try await $0.devices(environmentId: herald.environment.id, subscriberId: "dan") }
            let tokens = Set(devices.map(\.token.revealed))
            #expect(tokens == ["fcm-live", Self.apnsToken, live, "ExponentPushToken[live]", "hms-live", "os-live"])
            let activity = try await herald.call(.get, "/v1/notifications?limit=5").json()
            let details =
                activity.objectValue?["data"]?.arrayValue?.first?.objectValue?["jobs"]?.arrayValue?.first?
                .objectValue?["executionDetails"]?.arrayValue ?? []
            #expect(details.filter { $0.objectValue?["detail"] == "push_invalid_token_removed" }.count == 7)
        }
    }

    @Test(
        "throttling and server faults are retried no sooner than the provider asks; oversized APNs payloads never leave",
        arguments: Backend.available)
    func errorClasses(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: [Self.workflow]) { herald in
            try await herald.pushIntegrations(only: ["fcm", "apns", "hms"])
            let push = herald.push
            push.addFault(PushFault(provider: "fcm", targets: ["fcm-throttled"], status: 429, error: "QUOTA_EXCEEDED", times: 1))
            push.addFault(PushFault(provider: "fcm", targets: ["fcm-flaky"], status: 503, error: "UNAVAILABLE", retryAfter: "1", times: 1))
            push.addFault(PushFault(provider: "hms", status: 503, error: "81000001", retryAfter: "1", times: 1))
            push.addFault(PushFault(provider: "apns", targets: [Self.apnsToken], status: 403, error: "BadCertificateEnvironment"))
            try await herald.trigger([
                "name": "flash-sale", "payload": ["code": "E", "percent": 1],
                "to": [
                    "subscriberId": "eve", "firstName": "Eve",
                    "channels": [
                        ["providerId": "fcm", "credentials": ["deviceTokens": ["fcm-throttled", "fcm-flaky"]]],
                        ["providerId": "hms", "credentials": ["deviceTokens": ["hms-1"]]],
                        ["providerId": "apns", "credentials": ["deviceTokens": .array([.string(Self.apnsToken)])]],
                    ],
                ],
                "overrides": ["providers": ["apns": ["payload": ["blob": .string(String(repeating: "x", count: 100))]]]],
            ])
            try await herald.eventually("the 503s to be retried and delivered", timeout: .seconds(20)) {
                push.deliveries(provider: "fcm", target: "fcm-flaky") == 1 && push.deliveries(provider: "hms", target: "hms-1") == 1
            }
            // QUOTA_EXCEEDED waits at least a minute: it alone is still retrying once the others are recorded.
            try await herald.eventually("only the throttled delivery to be retrying") {
                let retrying = try await herald.call(.get, "/v1/deliveries?status=retrying").json()
                return retrying.objectValue?["data"]?.arrayValue?.count == 1
            }
            let retrying = try await herald.call(.get, "/v1/deliveries?status=retrying").json()
            let next = try #require(retrying.objectValue?["data"]?.arrayValue?.first?.objectValue?["nextAttemptAt"]?.stringValue)
            let date = try #require(ISO8601DateFormatter.withFractions.date(from: next))
            #expect(date.timeIntervalSinceNow > 50)
            // 403 BadCertificateEnvironment: credentials, not the token — failed, the device stays.
            try await herald.eventually("the APNs failure") {
                let failed = try await herald.call(.get, "/v1/deliveries?status=failed").json()
                return failed.objectValue?["data"]?.arrayValue?.first?.objectValue?["outcome"] == "authConfig"
            }
            let devices = try await herald.store.read { try await $0.devices(environmentId: herald.environment.id, subscriberId: "eve") }
            #expect(devices.count == 4)

            // A payload over 4 KB is refused before any network call; FCM's INVALID_ARGUMENT about the payload (not the
            // token) is a bad request and removes nothing.
            push.clearFaults()
            push.reset()
            try await herald.trigger([
                "name": "flash-sale", "payload": ["code": "BIG", "percent": 2],
                "to": ["subscriberId": "eve"],
                "overrides": [
                    "providers": [
                        "apns": ["payload": ["blob": .string(String(repeating: "x", count: 5000))]], "fcm": ["android": ["ttl": "forever"]],
                    ]
                ],
            ])
            try await herald.eventually("FCM to refuse the payload") {
                let failed = try await herald.call(.get, "/v1/deliveries?status=failed").json()
                return (failed.objectValue?["data"]?.arrayValue ?? []).filter {
                    $0.objectValue?["outcome"] == "badRequest" && $0.objectValue?["errorText"]?.stringValue?.contains("android.ttl") == true
                }.count == 2
            }
            try await herald.eventually("the oversized APNs payload to fail") {
                let failed = try await herald.call(.get, "/v1/deliveries?status=failed").json()
                return (failed.objectValue?["data"]?.arrayValue ?? []).contains {
                    $0.objectValue?["outcome"] == "badRequest" && $0.objectValue?["errorText"]?.stringValue?.contains("4096-byte") == true
                }
            }
            #expect(push.messages(provider: "apns").isEmpty)
            try await herald.settle()
            let remaining = try await herald.store.read { try await $0.devices(environmentId: herald.environment.id, subscriberId: "eve") }
            #expect(remaining.count == 4)

            // A connection reset in the middle of a request is a transport failure: retried on a new connection.
            push.addFault(PushFault(provider: "apns", targets: [Self.resetToken], status: 0, times: 1, reset: true))
            try await herald.trigger([
                "name": "flash-sale", "payload": ["code": "RST", "percent": 3],
                "to": [
                    "subscriberId": "rita", "firstName": "Rita",
                    "channels": [["providerId": "apns", "credentials": ["deviceTokens": .array([.string(Self.resetToken)])]]],
                ],
            ])
            try await herald.eventually("the reset request to be retried and delivered") {
                push.deliveries(provider: "apns", target: Self.resetToken) == 1
            }
        }
    }

    @Test("access tokens are cached, renewed after a 401, and the APNs provider token is reused", arguments: Backend.available)
    func credentialRefresh(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: [Self.workflow]) { herald in
            try await herald.pushIntegrations(only: ["fcm", "apns", "hms"])
            let push = herald.push
            let fcmTokens = (0..<30).map { "fcm-\($0)" }
            let apnsTokens = (0..<30).map { String(format: "%064x", $0 + 1) }
            try await herald.trigger([
                "name": "flash-sale", "payload": ["code": "R", "percent": 1],
                "to": [
                    "subscriberId": "rob", "firstName": "Rob",
                    "channels": [
                        ["providerId": "fcm", "credentials": ["deviceTokens": .array(fcmTokens.map(JSONValue.string))]],
                        ["providerId": "apns", "credentials": ["deviceTokens": .array(apnsTokens.map(JSONValue.string))]],
                        ["providerId": "hms", "credentials": ["deviceTokens": ["hms-1"]]],
                    ],
                ],
            ])
            try await herald.settle()
            #expect(push.accepted(provider: "fcm") == 30)
            #expect(push.accepted(provider: "apns") == 30)
            #expect(push.tokenRequests("google") == 1)
            #expect(push.tokenRequests("hms") == 1)
            // One APNs provider token for all 30 requests (the emulator answers 429 to a token changed within 20 min).
            #expect(Set(push.messages(provider: "apns").map { $0.status }) == [200])

            // The emulator forgets every access token: the next sends get 401, renew once and go through.
            push.revokeAccessTokens()
            try await herald.trigger(["name": "flash-sale", "payload": ["code": "R2", "percent": 1], "to": ["subscriberId": "rob"]])
            try await herald.settle()
            #expect(push.accepted(provider: "fcm") == 60)
            #expect(push.accepted(provider: "hms") == 2)
            #expect(push.tokenRequests("google") == 2)
            #expect(push.tokenRequests("hms") == 2)
        }
    }

    @Test("APNs certificate authentication: a PKCS#12 identity is presented in the TLS handshake", arguments: Backend.available)
    func apnsCertificate(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: [Self.workflow]) { herald in
            // Two certificates of the simulator's CA: one for the app's bundle id, one for another app.
            for (identifier, bundle) in [("apns-cert", DevAccounts.apnsBundleId), ("apns-wrong-cert", "com.example.other")] {
                let (certificate, key) = try herald.identity.issueClientCertificate(commonName: "Apple Push Services: \(bundle)")
                let p12 = try Self.pkcs12(certificate: certificate, key: key, passphrase: "p12-secret")
                try await herald.integration(
                    "apns", channel: "push", identifier: identifier,
                    credentials: [
                        "certificate": .string(p12), "passphrase": "p12-secret", "applicationId": .string(DevAccounts.apnsBundleId),
                        "secure": false, "baseUrl": .string(herald.mutualTLSURL),
                    ])
            }
            try await herald.trigger([
                "name": "flash-sale", "payload": ["code": "C", "percent": 9],
                "to": [
                    "subscriberId": "cat", "firstName": "Cat",
                    "channels": [
                        [
                            "providerId": "apns", "integrationIdentifier": "apns-cert",
                            "credentials": ["deviceTokens": .array([.string(Self.apnsToken)])],
                        ],
                        [
                            "providerId": "apns", "integrationIdentifier": "apns-wrong-cert",
                            "credentials": ["deviceTokens": .array([.string(Self.resetToken)])],
                        ],
                    ],
                ],
            ])
            try await herald.settle()
            let received = herald.push.messages(provider: "apns")
            #expect(received.filter { $0.status == 200 }.map(\.target) == [Self.apnsToken])
            #expect(received.first { $0.status == 200 }?.title == "Sale C")
            // The other app's certificate does not cover this bundle id: a configuration failure, the device stays.
            let failed = try await herald.call(.get, "/v1/deliveries?status=failed").json()
            let failure = try #require(failed.objectValue?["data"]?.arrayValue?.first?.objectValue)
            #expect(failure["outcome"] == "authConfig")
            #expect(failure["errorText"]?.stringValue?.contains("TopicDisallowed") == true)
            let devices = try await herald.store.read { try await $0.devices(environmentId: herald.environment.id, subscriberId: "cat") }
            #expect(devices.count == 2)
        }
    }

    /// A base64 PKCS#12 bundle made by the `openssl` command line (what `openssl pkcs12 -export` gives an APNs user).
    static func pkcs12(certificate: String, key: String, passphrase: String) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("herald-p12-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try certificate.write(to: directory.appendingPathComponent("cert.pem"), atomically: true, encoding: .utf8)
        try key.write(to: directory.appendingPathComponent("key.pem"), atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "openssl", "pkcs12", "-export", "-in", directory.appendingPathComponent("cert.pem").path, "-inkey",
            directory.appendingPathComponent("key.pem").path, "-passout", "pass:\(passphrase)", "-out",
            directory.appendingPathComponent("id.p12").path,
        ]
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "openssl pkcs12 failed")
        return try Data(contentsOf: directory.appendingPathComponent("id.p12")).base64EncodedString()
    }

    @Test(
        "targets named in the overrides: an FCM topic without any stored token, and deviceTokens replacing stored ones",
        arguments: Backend.available)
    func overrideTargets(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: [Self.workflow]) { herald in
            try await herald.pushIntegrations(only: ["fcm", "expo", "web-push"])
            // A browser named only in the overrides: sent to, and the target list is not part of the encrypted payload.
            let subscription = Self.webPushSubscription(herald, id: "override-browser")
            try await herald.trigger([
                "name": "flash-sale", "payload": ["code": "W", "percent": 5], "to": ["subscriberId": "wes", "firstName": "Wes"],
                "overrides": ["providers": ["web-push": ["deviceTokens": .array([.string(subscription)]), "tag": "sale"]]],
            ])
            // No device at all: the FCM topic from the overrides is still sent, once.
            try await herald.trigger([
                "name": "flash-sale", "payload": ["code": "T", "percent": 1], "to": ["subscriberId": "tom", "firstName": "Tom"],
                "overrides": ["providers": ["fcm": ["topic": "sale-news"]]],
            ])
            // A stored Expo token, replaced for this trigger by the overrides' deviceTokens.
            try await herald.trigger([
                "name": "flash-sale", "payload": ["code": "U", "percent": 2],
                "to": [
                    "subscriberId": "uma", "firstName": "Uma",
                    "channels": [["providerId": "expo", "credentials": ["deviceTokens": ["ExponentPushToken[stored]"]]]],
                ],
                "overrides": ["expo": ["deviceTokens": ["ExponentPushToken[one]", "ExponentPushToken[two]"]]],
            ])
            try await herald.settle()
            let fcm = herald.push.messages(provider: "fcm")
            #expect(fcm.map(\.target) == ["/topics/sale-news"])
            #expect(fcm.first?.payload.objectValue?["topic"] == "sale-news")
            #expect(fcm.first?.payload.objectValue?["token"] == nil)
            #expect(Set(herald.push.messages(provider: "expo").map(\.target)) == ["ExponentPushToken[one]", "ExponentPushToken[two]"])
            let web = try #require(herald.push.messages(provider: "web-push").first)
            #expect(web.target == "override-browser")
            #expect(web.payload.objectValue?["tag"] == "sale")
            #expect(web.payload.objectValue?["deviceTokens"] == nil)
            let activity = try await herald.call(.get, "/v1/notifications?subscriberIds=tom").json()
            let jobs = activity.objectValue?["data"]?.arrayValue?.first?.objectValue?["jobs"]?.arrayValue ?? []
            #expect(jobs.first?.objectValue?["status"] == "completed")
        }
    }

    @Test("Expo receipts are fetched after the delay and a receipt's DeviceNotRegistered removes the device", arguments: Backend.available)
    func expoReceipts(_ backend: Backend) async throws {
        let clock = ManualWallClock(Date())
        try await withEngine(backend, workflows: [Self.workflow], clock: clock) { herald in
            try await herald.pushIntegrations(only: ["expo"])
            herald.push.addFault(
                PushFault(provider: "expo-receipt", targets: ["ExponentPushToken[gone]"], status: 200, error: "DeviceNotRegistered"))
            herald.push.addFault(
                PushFault(provider: "expo-receipt", targets: ["ExponentPushToken[big]"], status: 200, error: "MessageTooBig"))
            try await herald.trigger([
                "name": "flash-sale", "payload": ["code": "X", "percent": 1],
                "to": [
                    "subscriberId": "xia", "firstName": "Xia",
                    "channels": [
                        [
                            "providerId": "expo",
                            "credentials": [
                                "deviceTokens": ["ExponentPushToken[ok]", "ExponentPushToken[gone]", "ExponentPushToken[big]"]
                            ],
                        ]
                    ],
                ],
            ])
            try await herald.settle()
            #expect(herald.push.accepted(provider: "expo") == 3)
            // Larger Expo requests go gzip-compressed; the emulator inflates them.
            let many = (0..<12).map { JSONValue.string("ExponentPushToken[many-\($0)]") }
            try await herald.trigger([
                "name": "flash-sale", "payload": ["code": "Z", "percent": 4],
                "to": [
                    "subscriberId": "zed", "firstName": "Zed",
                    "channels": [["providerId": "expo", "credentials": ["deviceTokens": .array(many)]]],
                ],
            ])
            try await herald.settle()
            #expect(herald.push.accepted(provider: "expo") == 15)
            #expect(herald.push.expoGzipRequests >= 1)
            #expect(try await herald.scheduledJobs() == 2)
            clock.advance(by: .seconds(16 * 60))
            try await herald.eventually("the receipts to be applied") {
                let devices = try await herald.store.read {
                    try await $0.devices(environmentId: herald.environment.id, subscriberId: "xia")
                }
                return devices.count == 2
            }
            try await herald.settle()
            let devices = try await herald.store.read { try await $0.devices(environmentId: herald.environment.id, subscriberId: "xia") }
            #expect(Set(devices.map(\.token.revealed)) == ["ExponentPushToken[ok]", "ExponentPushToken[big]"])
            let failed = try await herald.call(.get, "/v1/deliveries?status=failed").json()
            #expect(failed.objectValue?["data"]?.arrayValue?.first?.objectValue?["outcome"] == "badRequest")
            #expect(try await herald.scheduledJobs() == 0)
            // The receipt's removal is a committed domain event like any other: counted once.
            let metrics = String(buffer: try await herald.call(.get, "/metrics").body)
            #expect(metrics.contains(#"herald_tokens_removed_total{provider="expo"} 1"#), "\(metrics)")
            #expect(metrics.contains(#"herald_events_total{kind="device.removed"} 1"#))
        }
    }

    @Test("the mass-deletion guard trips when a whole batch of a provider answers invalid", arguments: Backend.available)
    func guardTrips(_ backend: Backend) async throws {
        try await withEngine(
            backend, workflows: [Self.workflow], configure: { $0.invalidTokenGuard = InvalidTokenGuard(maximumShare: 0.5, minimumBatch: 5) }
        ) { herald in
            try await herald.pushIntegrations(only: ["apns", "hms"])
            herald.push.addFault(PushFault(provider: "apns", status: 400, error: "BadDeviceToken"))
            let apnsTokens = (0..<8).map { String(format: "%064x", $0 + 100) }
            let hmsTokens = (0..<8).map { "hms-\($0)" }
            herald.push.addFault(PushFault(provider: "hms", targets: hmsTokens, status: 200))  // every token invalid → 80300007
            try await herald.trigger([
                "name": "flash-sale", "payload": ["code": "G", "percent": 1],
                "to": [
                    "subscriberId": "gil", "firstName": "Gil",
                    "channels": [
                        ["providerId": "apns", "credentials": ["deviceTokens": .array(apnsTokens.map(JSONValue.string))]],
                        ["providerId": "hms", "credentials": ["deviceTokens": .array(hmsTokens.map(JSONValue.string))]],
                    ],
                ],
            ])
            try await herald.settle()
            let devices = try await herald.store.read { try await $0.devices(environmentId: herald.environment.id, subscriberId: "gil") }
            #expect(devices.count == 16)
            let activity = try await herald.call(.get, "/v1/notifications?limit=5").json()
            let details =
                activity.objectValue?["data"]?.arrayValue?.first?.objectValue?["jobs"]?.arrayValue?.first?
                .objectValue?["executionDetails"]?.arrayValue ?? []
            #expect(details.filter { $0.objectValue?["detail"] == "invalid_token_removal_withheld" }.count == 16)
        }
    }
}

extension ISO8601DateFormatter {
    static var withFractions: ISO8601DateFormatter {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter
    }
}
