import Foundation
import HTTPTypes
import HeraldAPI
import HeraldCore
import HeraldStore
import HeraldTestSupport
import Hummingbird
import HummingbirdTesting
import Testing

/// A small client over the in-process transport: method, path, key, optional JSON body → status, headers, JSON.
struct NovuClient: Sendable {
    let client: any TestClientProtocol
    let key: String

    struct Reply: Sendable {
        var status: HTTPResponse.Status
        var headers: HTTPFields
        var json: JSONValue
        var data: JSONValue { json.objectValue?["data"] ?? .null }
        subscript(_ field: String) -> JSONValue? { json.objectValue?[field] }
    }

    /// Creates subscribers with these ids through `POST /v1/subscribers/bulk`.
    func createSubscribers(_ ids: [String]) async throws {
        let reply = try await call(
            .post, "/v1/subscribers/bulk", #"{"subscribers":["# + ids.map { #"{"subscriberId":"\#($0)"}"# }.joined(separator: ",") + "]}")
        #expect(reply.status == .created)
    }

    @discardableResult
    func call(_ method: HTTPRequest.Method, _ uri: String, _ body: String? = nil, headers extra: HTTPFields = [:]) async throws -> Reply {
        var headers = novuHeaders(key)
        headers.append(contentsOf: extra)
        return try await client.execute(uri: uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) }) { response in
            let text = String(buffer: response.body)
            return Reply(status: response.status, headers: response.headers, json: text.isEmpty ? .null : try JSONValue.parse(text))
        }
    }
}

let apnsPEM = """
    -----BEGIN PRIVATE KEY-----
    MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgevZzL1gdAFr88hb2
    OF/2NxApJCzGCEDdfSp6VQO30hyhRANCAAQRWz+jn65BtOMvdyHKcvjBeBSDZH2r
    1RTwjmYSi9R/zpBnuQ4EiMnCqfMPWiZqB4QdbAd0E7oH50VpuZ1P087G
    -----END PRIVATE KEY-----
    """

@Suite("Novu management API")
struct NovuManagementTests {
    @Test("subscriber routes answer with Novu's status codes and envelopes", arguments: Backend.available)
    func subscriberRoutes(backend: Backend) async throws {
        try await withAPI(backend) { client, _, tenants in
            let api = NovuClient(client: client, key: tenants.developmentKey)
            var reply = try await api.call(
                .post, "/v2/subscribers", #"{"subscriberId":"s1","firstName":"Ann","lastName":"Lee","phone":"+15550001111"}"#)
            #expect(reply.status == .created)
            #expect(reply.data.objectValue?["subscriberId"] == "s1")
            #expect(reply.headers[.contentType]?.hasPrefix("application/json") == true)
            reply = try await api.call(.patch, "/v2/subscribers/s1", #"{"lastName":null,"locale":"en-GB"}"#)
            #expect(reply.status == .ok)
            #expect(
                reply.data.objectValue?["lastName"] == nil && reply.data.objectValue?["firstName"] == "Ann"
                    && reply.data.objectValue?["locale"] == "en-GB")
            #expect(try await api.call(.post, "/v2/subscribers?failIfExists=true", #"{"subscriberId":"s1"}"#).status == .conflict)
            #expect(try await api.call(.post, "/v2/subscribers", #"{"subscriberId":"s2","phone":"555"}"#).status == .unprocessableContent)
            // v1 legacy: create is an upsert that also takes channels; put; list.
            reply = try await api.call(.post, "/v1/subscribers", #"{"subscriberId":"s1","email":"ann@example.com"}"#)
            #expect(reply.status == .created)
            #expect(reply.data.objectValue?["email"] == "ann@example.com" && reply.data.objectValue?["firstName"] == "Ann")
            reply = try await api.call(.put, "/v1/subscribers/s1", #"{"firstName":"Anne"}"#)
            #expect(reply.status == .ok && reply.data.objectValue?["firstName"] == "Anne")
            reply = try await api.call(
                .post, "/v1/subscribers/bulk", #"{"subscribers":[{"subscriberId":"b1"},{"subscriberId":"s1"},{"subscriberId":""}]}"#)
            #expect(reply.status == .created)
            #expect(reply.data.objectValue?["created"] == [["subscriberId": "b1"]])
            #expect(reply.data.objectValue?["updated"] == [["subscriberId": "s1"]])
            #expect(reply.data.objectValue?["failed"]?.jsonString().contains("subscriberId should not be empty") == true)
            reply = try await api.call(.patch, "/v1/subscribers/b1/online-status", #"{"isOnline":true}"#)
            #expect(reply.status == .ok && reply.data.objectValue?["isOnline"] == true)
            reply = try await api.call(.delete, "/v2/subscribers/b1")
            #expect(reply.status == .ok && reply.data == ["acknowledged": true, "status": "deleted"])
            #expect(try await api.call(.get, "/v2/subscribers/b1").status == .notFound)
            #expect(try await api.call(.delete, "/v1/subscribers/s1").status == .ok)
        }
    }

    @Test("cursor and offset pagination cross page boundaries without gaps or repeats", arguments: Backend.available)
    func pagination(backend: Backend) async throws {
        try await withAPI(backend) { client, _, tenants in
            let api = NovuClient(client: client, key: tenants.developmentKey)
            let all = (0..<23).map { "p\($0)" }
            try await api.createSubscribers(all)
            for direction in ["ASC", "DESC"] {
                var seen: [String] = []
                var cursor: String? = nil
                var pages = 0
                repeat {
                    let reply = try await api.call(
                        .get, "/v2/subscribers?limit=10.0&orderDirection=\(direction)" + (cursor.map { "&after=\($0)" } ?? ""))
                    #expect(reply.status == .ok)
                    #expect(reply["totalCount"] == 23 && reply["totalCountCapped"] == false)
                    seen += reply["data"]?.arrayItems.compactMap { $0.objectValue?["subscriberId"]?.stringValue } ?? []
                    cursor = reply["next"]?.stringValue
                    pages += 1
                } while cursor != nil
                #expect(pages == 3)
                #expect(Set(seen) == Set(all) && seen.count == 23, "\(direction)")
            }
            // Walking back with `before` returns the page before.
            let first = try await api.call(.get, "/v2/subscribers?limit=5&orderDirection=ASC")
            let second = try await api.call(.get, "/v2/subscribers?limit=5&orderDirection=ASC&after=\(first["next"]!.stringValue!)")
            let back = try await api.call(
                .get,
                "/v2/subscribers?limit=5&orderDirection=ASC&before=\(second["data"]!.arrayItems.first!.objectValue!["_id"]!.stringValue!)")
            #expect(back["data"] == first["data"])
            #expect(try await api.call(.get, "/v2/subscribers?limit=101").status == .unprocessableContent)
            #expect(try await api.call(.get, "/v2/subscribers?limit=2.5").status == .unprocessableContent)
            #expect(try await api.call(.get, "/v2/subscribers?orderDirection=UP").status == .unprocessableContent)
            // v1 offset pages.
            var legacy: [String] = []
            for page in 0..<3 {
                let reply = try await api.call(.get, "/v1/subscribers?page=\(page).0&limit=10")
                legacy += reply["data"]?.arrayItems.compactMap { $0.objectValue?["subscriberId"]?.stringValue } ?? []
                #expect(reply["hasMore"] == .bool(page < 2))
                #expect(reply["page"] == .number(Double(page)))
            }
            #expect(Set(legacy) == Set(all) && legacy.count == 23)
        }
    }

    @Test("credentials: PUT replaces, PATCH appends, DELETE removes; tokens move between subscribers", arguments: Backend.available)
    func credentials(backend: Backend) async throws {
        try await withAPI(backend) { client, store, tenants in
            let api = NovuClient(client: client, key: tenants.developmentKey)
            try await api.call(
                .post, "/v1/integrations",
                #"{"providerId":"fcm","channel":"push","identifier":"fcm-old","credentials":{"serviceAccount":"x"},"active":false}"#)
            let fcm = try await api.call(
                .post, "/v1/integrations",
                #"{"providerId":"push-webhook","channel":"push","identifier":"hook","credentials":{"webhookUrl":"https://example.com/h"}}"#)
            #expect(fcm.status == .created)
            try await api.call(.post, "/v2/subscribers", #"{"subscriberId":"alice"}"#)
            try await api.call(.post, "/v2/subscribers", #"{"subscriberId":"bob"}"#)
            func tokens(_ reply: NovuClient.Reply) -> [String] {
                reply.data.objectValue?["channels"]?.arrayItems.first { $0.objectValue?["providerId"] == "push-webhook" }?
                    .objectValue?["credentials"]?.objectValue?["deviceTokens"]?.arrayItems.compactMap(\.stringValue).sorted() ?? []
            }
            var reply = try await api.call(
                .put, "/v1/subscribers/alice/credentials", #"{"providerId":"push-webhook","credentials":{"deviceTokens":["t1","t2","t1"]}}"#
            )
            #expect(reply.status == .ok && tokens(reply) == ["t1", "t2"])
            reply = try await api.call(
                .patch, "/v1/subscribers/alice/credentials", #"{"providerId":"push-webhook","credentials":{"deviceTokens":["t2","t3"]}}"#)
            #expect(tokens(reply) == ["t1", "t2", "t3"])
            reply = try await api.call(
                .put, "/v1/subscribers/alice/credentials", #"{"providerId":"push-webhook","credentials":{"deviceTokens":["t3"]}}"#)
            #expect(tokens(reply) == ["t3"])
            reply = try await api.call(
                .patch, "/v1/subscribers/bob/credentials",
                #"{"providerId":"push-webhook","integrationIdentifier":"hook","credentials":{"deviceTokens":["t3"]}}"#)
            #expect(tokens(reply) == ["t3"])
            #expect(tokens(try await api.call(.get, "/v2/subscribers/alice")) == [])
            let devices = try await store.read { try await $0.devices(environmentId: tenants.development.id, subscriberId: "bob") }
            #expect(devices.map(\.token.revealed) == ["t3"])
            // Errors: no active integration of the provider; too many tokens; malformed web-push token.
            reply = try await api.call(
                .put, "/v1/subscribers/bob/credentials", #"{"providerId":"fcm","credentials":{"deviceTokens":["f1"]}}"#)
            #expect(reply.status == .badRequest)
            #expect(reply["message"]?.stringValue?.contains("do not have active fcm integration") == true)
            let many = (0...100).map { "\"tok\($0)\"" }.joined(separator: ",")
            #expect(
                try await api.call(
                    .put, "/v1/subscribers/bob/credentials", #"{"providerId":"push-webhook","credentials":{"deviceTokens":["# + many + "]}}"
                ).status == .unprocessableContent)
            #expect(
                try await api.call(
                    .put, "/v1/subscribers/nobody/credentials", #"{"providerId":"push-webhook","credentials":{"deviceTokens":["x"]}}"#
                ).status == .badRequest)
            // DELETE removes every credential of the provider.
            #expect(try await api.call(.delete, "/v1/subscribers/bob/credentials/push-webhook").status == .noContent)
            #expect(tokens(try await api.call(.get, "/v2/subscribers/bob")) == [])
            // Chat credentials are stored the same way.
            try await api.call(.post, "/v1/integrations", #"{"providerId":"slack","channel":"chat","identifier":"slack"}"#)
            reply = try await api.call(
                .patch, "/v1/subscribers/bob/credentials",
                #"{"providerId":"slack","credentials":{"webhookUrl":"https://hooks.slack.com/services/T/B/X"}}"#)
            let slack = reply.data.objectValue?["channels"]?.arrayItems.first { $0.objectValue?["providerId"] == "slack" }
            #expect(slack?.objectValue?["credentials"]?.objectValue?["webhookUrl"] == "https://hooks.slack.com/services/T/B/X")
        }
    }

    @Test("web-push tokens must be PushSubscription JSON with an https endpoint and valid keys")
    func webPushTokens() {
        let p256dh = Base64URL.encode([0x04] + [UInt8](repeating: 7, count: 64))
        let auth = Base64URL.encode([UInt8](repeating: 1, count: 16))
        let good = #"{"endpoint":"https://push.example.com/abc","keys":{"p256dh":"\#(p256dh)","auth":"\#(auth)"}}"#
        #expect(DeviceTokenRules.problem(provider: "web-push", token: good, policy: .strict) == nil)
        #expect(
            DeviceTokenRules.problem(provider: "web-push", token: good.replacingOccurrences(of: "https", with: "http"), policy: .strict)
                != nil)
        #expect(
            DeviceTokenRules.problem(
                provider: "web-push", token: #"{"endpoint":"https://x.y/z","keys":{"p256dh":"AAAA","auth":"\#(auth)"}}"#, policy: .strict)
                != nil)
        #expect(DeviceTokenRules.problem(provider: "web-push", token: "not json", policy: .strict) != nil)
        #expect(DeviceTokenRules.problem(provider: "apns", token: String(repeating: "ab", count: 32), policy: .strict) == nil)
        #expect(DeviceTokenRules.problem(provider: "apns", token: "xyz", policy: .strict) != nil)
        #expect(DeviceTokenRules.problem(provider: "expo", token: "ExponentPushToken[abc]", policy: .strict) == nil)
        // The endpoint passes the outbound guard: a private address is refused with a policy, accepted by the format
        // check alone (the transport vets it again at every send).
        let private10 = good.replacingOccurrences(of: "push.example.com", with: "10.0.0.8")
        #expect(DeviceTokenRules.problem(provider: "web-push", token: private10, policy: .strict) != nil)
        #expect(DeviceTokenRules.problem(provider: "web-push", token: private10, policy: nil) == nil)
    }

    @Test(
        "integrations: masked secrets, keep-on-masked-update, immutable identifier, one primary per channel", arguments: Backend.available)
    func integrations(backend: Backend) async throws {
        try await withAPI(backend) { client, _, tenants in
            let api = NovuClient(client: client, key: tenants.developmentKey)
            let pem = apnsPEM.replacingOccurrences(of: "\n", with: "\\n")
            var reply = try await api.call(
                .post, "/v1/integrations",
                #"{"providerId":"apns","channel":"push","identifier":"apns-main","credentials":{"secretKey":"\#(pem)","apiKey":"ABC123DEFG","projectName":"TEAM123456","applicationId":"com.example"}}"#
            )
            #expect(reply.status == .created)
            let id = try #require(reply.data.objectValue?["_id"]?.stringValue)
            let masked = try #require(reply.data.objectValue?["credentials"]?.objectValue?["secretKey"]?.stringValue)
            #expect(masked.hasPrefix("••••") && !masked.contains("PRIVATE"))
            #expect(!reply.json.jsonString().contains("MIGHAgEAMBMG"))
            #expect(reply.data.objectValue?["credentials"]?.objectValue?["applicationId"] == "com.example")
            reply = try await api.call(
                .put, "/v1/integrations/\(id)",
                #"{"name":"Renamed","credentials":{"secretKey":"\#(masked)","apiKey":"ABC123DEFG","projectName":"TEAM123456","applicationId":"com.example"}}"#
            )
            #expect(reply.status == .ok && reply.data.objectValue?["name"] == "Renamed")
            #expect(reply.data.objectValue?["credentials"]?.objectValue?["secretKey"]?.stringValue == masked)
            #expect(try await api.call(.put, "/v1/integrations/\(id)", #"{"identifier":"other"}"#).status == .unprocessableContent)
            // Validation of provider credentials.
            reply = try await api.call(
                .post, "/v1/integrations",
                #"{"providerId":"fcm","channel":"push","credentials":{"serviceAccount":"{\"project_id\":\"p\"}"}}"#)
            #expect(reply.status == .unprocessableContent)
            #expect(reply["errors"]?.objectValue?["credentials.serviceAccount"] != nil)
            #expect(
                try await api.call(.post, "/v1/integrations", #"{"providerId":"apns","channel":"sms"}"#).status == .unprocessableContent)
            #expect(
                try await api.call(.post, "/v1/integrations", #"{"providerId":"apns-main-typo","channel":"push"}"#).status
                    == .unprocessableContent)
            #expect(
                try await api.call(
                    .post, "/v1/integrations", #"{"providerId":"apns","channel":"push","identifier":"apns-main","active":false}"#
                ).status == .unprocessableContent)
            // Primary: the first email integration becomes primary; set-primary moves it; never two.
            let one = try await api.call(
                .post, "/v1/integrations",
                #"{"providerId":"sendgrid","channel":"email","identifier":"sg1","credentials":{"apiKey":"SG.aaaaaaaaaa","from":"a@x.io"}}"#)
            #expect(one.data.objectValue?["primary"] == true)
            let two = try await api.call(
                .post, "/v1/integrations",
                #"{"providerId":"sendgrid","channel":"email","identifier":"sg2","credentials":{"apiKey":"SG.bbbbbbbbbb","from":"b@x.io"}}"#)
            #expect(two.data.objectValue?["primary"] == false)
            let twoId = try #require(two.data.objectValue?["_id"]?.stringValue)
            #expect(try await api.call(.post, "/v1/integrations/\(twoId)/set-primary").data.objectValue?["primary"] == true)
            let primaries = try await api.call(.get, "/v1/integrations").data.arrayItems.filter { $0.objectValue?["primary"] == true }
            #expect(primaries.compactMap { $0.objectValue?["identifier"]?.stringValue } == ["sg2"])
            #expect(try await api.call(.post, "/v1/integrations/\(id)/set-primary").status == .badRequest)
            reply = try await api.call(.delete, "/v1/integrations/\(twoId)")
            #expect(reply.status == .ok && reply.data.arrayItems.count == 2)
            #expect(try await api.call(.get, "/v1/integrations/active").data.arrayItems.allSatisfy { $0.objectValue?["active"] == true })
        }
    }

    @Test("Idempotency-Key: replay, mismatch, in-progress conflict, key length", arguments: Backend.available)
    func idempotency(backend: Backend) async throws {
        try await withAPI(backend) { client, store, tenants in
            let api = NovuClient(client: client, key: tenants.developmentKey)
            let key: HTTPFields = [HTTPField.Name("Idempotency-Key")!: "k-1"]
            let first = try await api.call(.post, "/v2/subscribers", #"{"subscriberId":"i1"}"#, headers: key)
            let replay = try await api.call(.post, "/v2/subscribers", #"{"subscriberId":"i1"}"#, headers: key)
            #expect(first.status == .created && replay.status == .created)
            #expect(replay.json == first.json)
            #expect(replay.headers[HTTPField.Name("Idempotency-Replay")!] == "true")
            #expect(first.headers[HTTPField.Name("Idempotency-Replay")!] == nil)
            #expect(try await api.call(.post, "/v2/subscribers", #"{"subscriberId":"i2"}"#, headers: key).status == .unprocessableContent)
            // The same key in another environment is independent.
            let otherEnvironment = NovuClient(client: client, key: tenants.productionKey)
            #expect(try await otherEnvironment.call(.post, "/v2/subscribers", #"{"subscriberId":"i2"}"#, headers: key).status == .created)
            // A request still in progress under the key: 409 with Retry-After.
            _ = try await store.transaction {
                try await $0.claimIdempotencyKey(environmentId: tenants.development.id, key: "busy", requestHash: "h")
            }
            let busy = try await api.call(
                .post, "/v2/subscribers", #"{"subscriberId":"i3"}"#, headers: [HTTPField.Name("Idempotency-Key")!: "busy"])
            #expect(busy.status == .conflict && busy.headers[.retryAfter] == "1")
            let long = String(repeating: "k", count: 256)
            #expect(
                try await api.call(.post, "/v2/subscribers", #"{"subscriberId":"i4"}"#, headers: [HTTPField.Name("Idempotency-Key")!: long])
                    .status == .badRequest)
            // Found by fuzzing: an empty key was a key like any other, shared by every caller that sent one.
            #expect(
                try await api.call(.post, "/v2/subscribers", #"{"subscriberId":"i4"}"#, headers: [HTTPField.Name("Idempotency-Key")!: ""])
                    .status == .badRequest)
            // A failed request is forgotten: the same key can run again once fixed.
            let retryKey: HTTPFields = [HTTPField.Name("Idempotency-Key")!: "k-2"]
            #expect(
                try await api.call(.post, "/v2/subscribers?failIfExists=true", #"{"subscriberId":"i1"}"#, headers: retryKey).status
                    == .conflict)
            #expect(
                try await api.call(.post, "/v2/subscribers?failIfExists=true", #"{"subscriberId":"i1"}"#, headers: retryKey).status
                    == .conflict)
            // GET ignores the header.
            #expect(try await api.call(.get, "/v2/subscribers/i1", headers: key).status == .ok)
        }
    }

    @Test("another environment's key never sees or changes a record, on every route", arguments: Backend.available)
    func isolationOnEveryRoute(backend: Backend) async throws {
        try await withAPI(backend) { client, _, tenants in
            let owner = NovuClient(client: client, key: tenants.developmentKey)
            let intruder = NovuClient(client: client, key: tenants.productionKey)
            try await owner.call(.post, "/v2/subscribers", #"{"subscriberId":"secret-user","email":"secret@example.com"}"#)
            let integration = try await owner.call(
                .post, "/v1/integrations",
                #"{"providerId":"push-webhook","channel":"push","identifier":"hook","credentials":{"webhookUrl":"https://example.com/x"}}"#)
            let integrationId = try #require(integration.data.objectValue?["_id"]?.stringValue)
            try await owner.call(
                .patch, "/v1/subscribers/secret-user/credentials", #"{"providerId":"push-webhook","credentials":{"deviceTokens":["tok"]}}"#)
            try await owner.call(.post, "/v2/topics", #"{"key":"secret-topic","name":"S"}"#)
            try await owner.call(.post, "/v2/topics/secret-topic/subscriptions", #"{"subscriberIds":["secret-user"]}"#)
            try await owner.call(
                .post, "/v1/integrations",
                #"{"providerId":"sendgrid","channel":"email","identifier":"sg","credentials":{"apiKey":"SG.xxxxxxxxxxxx","from":"a@b.io"}}"#
            )

            let notFound: [(HTTPRequest.Method, String, String?)] = [
                (.get, "/v2/subscribers/secret-user", nil), (.patch, "/v2/subscribers/secret-user", #"{"firstName":"X"}"#),
                (.delete, "/v2/subscribers/secret-user", nil), (.get, "/v1/subscribers/secret-user", nil),
                (.put, "/v1/subscribers/secret-user", #"{"firstName":"X"}"#), (.delete, "/v1/subscribers/secret-user", nil),
                (.patch, "/v1/subscribers/secret-user/online-status", #"{"isOnline":true}"#),
                (.delete, "/v1/subscribers/secret-user/credentials/push-webhook", nil),
                (.get, "/v2/subscribers/secret-user/subscriptions", nil),
                (.put, "/v1/integrations/\(integrationId)", #"{"name":"X"}"#), (.delete, "/v1/integrations/\(integrationId)", nil),
                (.post, "/v1/integrations/\(integrationId)/set-primary", nil), (.get, "/v2/topics/secret-topic", nil),
                (.patch, "/v2/topics/secret-topic", #"{"name":"X"}"#), (.delete, "/v2/topics/secret-topic", nil),
                (.get, "/v2/topics/secret-topic/subscriptions", nil),
                (.delete, "/v2/topics/secret-topic/subscriptions", #"{"subscriberIds":["secret-user"]}"#),
                (.get, "/v1/topics/secret-topic", nil), (.patch, "/v1/topics/secret-topic", #"{"name":"X"}"#),
                (.delete, "/v1/topics/secret-topic", nil),
                (.post, "/v1/topics/secret-topic/subscribers", #"{"subscribers":["secret-user"]}"#),
                (.get, "/v1/topics/secret-topic/subscribers/secret-user", nil),
            ]
            for (method, path, body) in notFound {
                let reply = try await intruder.call(method, path, body)
                #expect(reply.status == .notFound, "\(method) \(path) → \(reply.status)")
                #expect(!reply.json.jsonString().contains("secret@example.com"))
            }
            #expect(
                try await intruder.call(
                    .put, "/v1/subscribers/secret-user/credentials", #"{"providerId":"push-webhook","credentials":{"deviceTokens":["x"]}}"#
                ).status == .badRequest)
            let lists = ["/v2/subscribers", "/v1/subscribers", "/v2/topics", "/v1/topics", "/v1/integrations", "/v1/integrations/active"]
            for path in lists {
                let reply = try await intruder.call(.get, path)
                #expect(reply.status == .ok)
                #expect(reply["data"]?.arrayItems.isEmpty == true, "\(path) is empty for another environment")
            }
            // The owner's records are untouched.
            #expect(try await owner.call(.get, "/v2/subscribers/secret-user").data.objectValue?["email"] == "secret@example.com")
            #expect(try await owner.call(.get, "/v2/topics/secret-topic/subscriptions")["totalCount"] == 1)
            #expect(try await owner.call(.get, "/v1/integrations").data.arrayItems.count == 2)
        }
    }
}

extension JSONValue {
    /// The elements of an array value (empty otherwise).
    var arrayItems: [JSONValue] {
        if case .array(let items) = self { return items }
        return []
    }
}
