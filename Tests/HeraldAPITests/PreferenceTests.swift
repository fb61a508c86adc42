import Foundation
import HTTPTypes
import HeraldCore
import HeraldSimulator
import HeraldStore
import HeraldTestSupport
import HummingbirdTesting
import NIOCore
import Testing

/// Subscriber preferences end to end (README §Preferences): the Novu routes, the engine skipping what a subscriber
/// turned off (and a fallback step running instead), critical and read-only workflows, a topic with mixed
/// preferences, and one-click unsubscribe through the simulator's SMTP server, on SQLite and PostgreSQL.
@Suite("Preferences and one-click unsubscribe")
struct PreferenceTests {
    static let digest = """
        workflow: weekly-digest
        name: Weekly digest
        tags: [marketing]
        steps:
          - id: email
            type: email
            subject: "Your week"
            body: "<p>Hi</p><p><a href=\\"{{unsubscribeUrl}}\\">Unsubscribe</a></p>"
          - id: sms-fallback
            type: sms
            if: steps.email.status == 'skipped' && steps.email.reason == 'preference_disabled'
            body: "Your week, by SMS"
        """
    static let security = """
        workflow: security-alert
        name: Security alert
        critical: true
        steps:
          - id: email
            type: email
            subject: "New sign-in"
            body: "<p>New sign-in</p>"
        """
    static let receipts = """
        workflow: receipts
        name: Receipts
        preferences:
          all: { readOnly: true }
          channels:
            sms: { enabled: false }
        steps:
          - id: email
            type: email
            subject: "Receipt"
            body: "<p>Receipt</p>"
          - id: sms
            type: sms
            needs: []
            body: "Receipt"
        """
    static let news = """
        workflow: news
        name: News
        preferences:
          channels:
            chat: { enabled: false }
        steps:
          - id: push
            type: push
            title: "News"
            body: "Something happened"
        """
    static let all = [digest, security, receipts, news]

    static func subscriber(_ herald: EngineHarness, _ id: String, email: String? = nil, phone: String? = nil) async throws {
        var body: [String: JSONValue] = ["subscriberId": .string(id)]
        if let email { body["email"] = .string(email) }
        if let phone { body["phone"] = .string(phone) }
        let response = try await herald.call(.post, "/v2/subscribers", JSONValue.object(body).jsonString())
        #expect(response.status == .created, "\(String(buffer: response.body))")
    }

    static func jobs(_ herald: EngineHarness, _ transactionId: String) async throws -> [[String: JSONValue]] {
        let activity = try await herald.call(.get, "/v1/notifications?transactionId=\(transactionId)").json()
        let notifications = activity.objectValue?["data"]?.arrayValue?.compactMap(\.objectValue) ?? []
        return notifications.flatMap { ($0["jobs"]?.arrayValue ?? []).compactMap(\.objectValue) }
    }

    @Test("the Novu routes: list, patch global and per workflow, bulk, v1, errors, history", arguments: Backend.available)
    func api(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: Self.all) { herald in
            try await Self.subscriber(herald, "ann", email: "ann@example.com")
            // Nothing stored: everything on; critical and read-only workflows are hidden from the default listing.
            let initial = try await herald.call(.get, "/v2/subscribers/ann/preferences?criticality=nonCritical").json()
            #expect(
                initial.objectValue?["global"]
                    == ["enabled": true, "channels": ["email": true, "sms": true, "in_app": true, "chat": true, "push": true]])
            let listed = initial.objectValue?["workflows"]?.arrayValue?.compactMap {
                $0.objectValue?["workflow"]?.objectValue?["identifier"]
            }
            #expect(listed == ["news", "weekly-digest"])
            let news = initial.objectValue?["workflows"]?.arrayValue?.first?.objectValue
            #expect(news?["channels"] == ["push": true], "only the channels the workflow has steps for")
            #expect(news?["overrides"] == [["channel": "push", "source": "template"]])
            #expect(news?["updatedAt"] == nil)
            let critical = try await herald.call(.get, "/v2/subscribers/ann/preferences?criticality=critical").json()
            #expect(
                critical.objectValue?["workflows"]?.arrayValue?.compactMap { $0.objectValue?["workflow"]?.objectValue?["identifier"] }
                    == ["receipts", "security-alert"])

            // Global: channels are partial.
            var response = try await herald.call(.patch, "/v2/subscribers/ann/preferences", #"{"channels":{"email":false}}"#)
            #expect(response.status == .ok, "\(String(buffer: response.body))")
            response = try await herald.call(.patch, "/v2/subscribers/ann/preferences", #"{"channels":{"sms":false}}"#)
            let global = try response.json().objectValue?["global"]?.objectValue?["channels"]
            #expect(global == ["email": false, "sms": false, "in_app": true, "chat": true, "push": true])
            // Per workflow: the subscriber's workflow setting beats their global one.
            response = try await herald.call(
                .patch, "/v2/subscribers/ann/preferences", #"{"workflowId":"weekly-digest","channels":{"email":true}}"#)
            let digest = try response.json().objectValue?["workflows"]?.arrayValue?.first {
                $0.objectValue?["workflow"]?.objectValue?["identifier"] == "weekly-digest"
            }?.objectValue
            #expect(digest?["channels"] == ["email": true, "sms": false])
            #expect(digest?["overrides"] == [["channel": "email", "source": "subscriber"], ["channel": "sms", "source": "subscriber"]])
            #expect(digest?["updatedAt"]?.stringValue != nil)
            // Bulk: an array of GetPreferencesResponseDto.
            response = try await herald.call(
                .patch, "/v2/subscribers/ann/preferences/bulk",
                #"{"preferences":[{"workflowId":"news","channels":{"push":false}},{"workflowId":"weekly-digest","channels":{"sms":true}}]}"#
            )
            #expect(response.status == .ok, "\(String(buffer: response.body))")
            let bulk = try response.json().arrayValue ?? []
            #expect(bulk.map { $0.objectValue?["channels"] } == [["push": false], ["email": true, "sms": true]])
            #expect(bulk.first?.objectValue?["level"] == "template")
            #expect(bulk.first?.objectValue?["workflow"]?.objectValue?["critical"] == false)

            // Refusals, in Novu's error format.
            for (path, body, status, message) in [
                (
                    "/v2/subscribers/ann/preferences", #"{"workflowId":"security-alert","channels":{"email":false}}"#, 400,
                    "Critical workflow"
                ),
                ("/v2/subscribers/ann/preferences", #"{"workflowId":"receipts","channels":{"email":false}}"#, 400, "Critical workflow"),
                ("/v2/subscribers/ann/preferences", #"{"workflowId":"nope","channels":{"email":false}}"#, 404, "Workflow with id: nope"),
                ("/v2/subscribers/bob/preferences", #"{"channels":{"email":false}}"#, 404, "Subscriber: bob"),
                ("/v2/subscribers/ann/preferences", #"{"channels":{"tool":false}}"#, 422, "unknown channel"),
                ("/v2/subscribers/ann/preferences", #"{"channels":{"email":"no"}}"#, 422, "must be a boolean"),
                ("/v2/subscribers/ann/preferences", #"{"channels":{"email":false},"context":{"tenant":"acme"}}"#, 422, "context"),
                ("/v2/subscribers/ann/preferences", #"{"chanels":{"email":false}}"#, 422, "chanels"),
                (
                    "/v2/subscribers/ann/preferences/bulk",
                    #"{"preferences":[{"workflowId":"news","channels":{"push":true}},{"workflowId":"security-alert","channels":{"email":false}}]}"#,
                    400, "Critical workflow"
                ),
                ("/v1/subscribers/ann/preferences/security-alert", #"{"enabled":false}"#, 400, "Critical workflow"),
            ] {
                let refused = try await herald.call(.patch, path, body)
                #expect(refused.status.code == status, "\(path) \(body): \(String(buffer: refused.body))")
                let error = try refused.json().objectValue ?? [:]
                #expect(error["statusCode"] == .number(Double(status)) && error["path"]?.stringValue == path)
                #expect(error["message"]?.stringValue?.contains(message) == true, "\(error)")
            }
            // The refused bulk item changed nothing: news push is still off, as the first bulk left it.
            let after = try await herald.call(.get, "/v2/subscribers/ann/preferences?criticality=all").json()
            let newsAfter = after.objectValue?["workflows"]?.arrayValue?.first {
                $0.objectValue?["workflow"]?.objectValue?["identifier"] == "news"
            }
            #expect(newsAfter?.objectValue?["channels"] == ["push": false])
            #expect(try await herald.call(.get, "/v2/subscribers/bob/preferences?criticality=nonCritical").status == .notFound)

            // v1: a workflow switch and one channel; the global list form.
            response = try await herald.call(
                .patch, "/v1/subscribers/ann/preferences/news", #"{"enabled":false,"channel":{"type":"push","enabled":true}}"#)
            #expect(response.status == .ok, "\(String(buffer: response.body))")
            let v1 = try response.json().objectValue?["data"]?.objectValue
            #expect(v1?["template"]?.objectValue?["_id"] == "news")
            #expect(v1?["preference"]?.objectValue?["enabled"] == false)
            #expect(v1?["preference"]?.objectValue?["channels"] == ["push": true])
            response = try await herald.call(
                .patch, "/v1/subscribers/ann/preferences", #"{"preferences":[{"type":"chat","enabled":false}]}"#)
            #expect(
                try response.json().objectValue?["data"]?.objectValue?["preference"]?.objectValue?["channels"]?.objectValue?["chat"]
                    == false)
            let v1Global = try await herald.call(.get, "/v1/subscribers/ann/preferences/global").json()
            #expect(
                v1Global.objectValue?["data"]?.arrayValue?.first?.objectValue?["preference"]?.objectValue?["channels"]?.objectValue?["chat"]
                    == false)
            #expect(try await herald.call(.get, "/v1/subscribers/ann/preferences/weekly").status == .unprocessableContent)
            let v1List =
                try await herald.call(.get, "/v1/subscribers/ann/preferences/template").json().objectValue?["data"]?.arrayValue ?? []
            #expect(v1List.count == 4, "v1 lists critical workflows too, marked")
            #expect(
                v1List.first { $0.objectValue?["template"]?.objectValue?["_id"] == "security-alert" }?.objectValue?["template"]?
                    .objectValue?[
                        "critical"] == true)

            // History: every accepted change, newest first, with its source and the key prefix that made it.
            let history = try await herald.call(.get, "/v2/subscribers/ann/preferences/changes?limit=100").json()
            let changes = history.objectValue?["data"]?.arrayValue?.compactMap(\.objectValue) ?? []
            #expect(changes.count == 7, "\(changes)")
            #expect(changes.allSatisfy { $0["source"] == "api" && $0["actor"]?.stringValue?.hasPrefix("api-key:") == true })
            #expect(changes.last?["workflowId"] == .null && changes.last?["channels"] == ["email": false])
            #expect(changes.first?["channels"] == ["chat": false] && changes.first?["level"] == "global", "\(changes.prefix(2))")
            let actor = changes.first?["actor"]?.stringValue ?? ""
            #expect(actor.count < herald.key.count, "the actor is a prefix, never the key: \(actor)")

            // Deleting the subscriber deletes their preferences and their history.
            #expect(try await herald.call(.delete, "/v2/subscribers/ann").status == .ok)
            let left = try await herald.store.read { session in
                (
                    try await session.preferences(environmentId: herald.environment.id, subscriberId: "ann"),
                    try await session.preferenceChanges(
                        environmentId: herald.environment.id, subscriberId: "ann", request: CursorRequest(limit: 100)
                    ).items.count
                )
            }
            #expect(left.0 == .none && left.1 == 0)
        }
    }

    @Test(
        "a skipped email lets the SMS fallback run; critical bypasses preferences; read-only applies the workflow's defaults",
        arguments: Backend.available)
    func engine(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: Self.all) { herald in
            try await herald.webhookIntegration("email-webhook", channel: "email", identifier: "mail", primary: true)
            try await herald.webhookIntegration("generic-sms", channel: "sms", identifier: "sms", primary: true)
            try await Self.subscriber(herald, "ann", email: "ann@example.com", phone: "+15550001")
            try await Self.subscriber(herald, "bob", email: "bob@example.com", phone: "+15550002")
            _ = try await herald.call(.patch, "/v2/subscribers/ann/preferences", #"{"channels":{"email":false}}"#)

            try await herald.trigger(["name": "weekly-digest", "to": ["ann", "bob"], "transactionId": "tx-digest"])
            try await herald.trigger(["name": "security-alert", "to": "ann", "transactionId": "tx-security"])
            try await herald.trigger(["name": "receipts", "to": "ann", "transactionId": "tx-receipts"])
            try await herald.settle()
            let mail = herald.emulator.requests(hook: "mail").compactMap(\.target)
            let sms = herald.emulator.requests(hook: "sms").compactMap(\.target)
            // weekly-digest: bob by email; ann's email skipped, so her SMS fallback ran. security-alert (critical) and
            // receipts (read-only, email on by default) reach ann by email although she turned email off; receipts'
            // SMS is off by the workflow's default.
            #expect(mail.sorted() == ["ann@example.com", "ann@example.com", "bob@example.com"], "\(mail)")
            #expect(sms == ["+15550001"], "\(sms)")

            let digestJobs = try await Self.jobs(herald, "tx-digest")
            let annEmail = digestJobs.first { $0["type"] == "email" && $0["status"] == "skipped" }
            #expect(annEmail != nil, "\(digestJobs)")
            let details = annEmail?["executionDetails"]?.arrayValue?.compactMap { $0.objectValue?["detail"]?.stringValue } ?? []
            #expect(details.contains("preference_disabled"), "\(details)")
            let messages = try await herald.call(.get, "/v1/messages?transactionId=tx-digest&limit=10").json()
            let channels = messages.objectValue?["data"]?.arrayValue?.compactMap { $0.objectValue?["channel"]?.stringValue } ?? []
            #expect(channels.sorted() == ["email", "sms"], "no message row for the skipped email: \(channels)")
            let receiptsJobs = try await Self.jobs(herald, "tx-receipts")
            #expect(Set(receiptsJobs.compactMap { $0["status"]?.stringValue }) == ["completed", "skipped"])
        }
    }

    @Test("each row of the resolution table decides a real send", arguments: Backend.available)
    func rows(_ backend: Backend) async throws {
        func workflow(_ id: String, _ header: String) -> String {
            "workflow: \(id)\n\(header)steps:\n  - id: email\n    type: email\n    subject: s\n    body: b\n"
        }
        let workflows = [
            workflow("w-critical", "critical: true\n"),
            workflow("w-readonly", "preferences:\n  all: { readOnly: true }\n  channels:\n    email: { enabled: false }\n"),
            workflow("w-open", "preferences:\n  channels:\n    email: { enabled: false }\n"),
            workflow("w-plain", ""),
        ]
        try await withEngine(backend, workflows: workflows) { herald in
            try await herald.webhookIntegration("email-webhook", channel: "email", identifier: "mail", primary: true)
            // (subscriber, workflow, layers, sent?) — one per row, written straight into the store (the API refuses
            // some of them on purpose: a read-only workflow's layer, for instance).
            let cases: [(String, String, [PreferencePatch], Bool)] = [
                (
                    "r1", "w-critical",
                    [
                        PreferencePatch(workflowId: nil, channels: [.email: false]),
                        PreferencePatch(workflowId: "w-critical", enabled: false),
                    ], true
                ),
                ("r2", "w-readonly", [PreferencePatch(workflowId: "w-readonly", channels: [.email: true])], false),
                ("r3", "w-open", [PreferencePatch(workflowId: "w-open", enabled: false, channels: [.email: true])], true),
                (
                    "r4", "w-open",
                    [PreferencePatch(workflowId: "w-open", enabled: true), PreferencePatch(workflowId: nil, channels: [.email: false])],
                    true
                ),
                (
                    "r4-off", "w-plain",
                    [PreferencePatch(workflowId: "w-plain", enabled: false), PreferencePatch(workflowId: nil, channels: [.email: true])],
                    false
                ),
                ("r5", "w-open", [PreferencePatch(workflowId: nil, channels: [.email: true])], true),
                ("r5-off", "w-plain", [PreferencePatch(workflowId: nil, channels: [.email: false])], false),
                ("r6", "w-open", [], false),
                ("r7", "w-plain", [], true),
            ]
            try await herald.store.transaction { session in
                for (subscriber, _, layers, _) in cases {
                    _ = try await session.upsertSubscriber(
                        environmentId: herald.environment.id, subscriberId: subscriber,
                        patch: SubscriberProfilePatch(setting: SubscriberProfile(email: "\(subscriber)@example.com")))
                    for layer in layers {
                        try await session.applyPreference(
                            environmentId: herald.environment.id, subscriberId: subscriber, patch: layer, source: .api, actor: "test")
                    }
                }
            }
            for (subscriber, workflowId, _, _) in cases {
                try await herald.trigger(["name": .string(workflowId), "to": .string(subscriber)])
            }
            try await herald.settle()
            let sent = Set(herald.emulator.requests(hook: "mail").compactMap(\.target))
            for (subscriber, workflowId, _, expected) in cases {
                #expect(sent.contains("\(subscriber)@example.com") == expected, "\(subscriber) on \(workflowId)")
            }
        }
    }

    @Test("a topic trigger reaches exactly the members who did not opt out", arguments: Backend.available)
    func topic(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: Self.all) { herald in
            try await herald.webhookIntegration("push-webhook", channel: "push", identifier: "hook")
            let members = (0..<600).map { "m-\($0)" }
            try await herald.store.transaction { session in
                let env = herald.environment.id
                _ = try await session.upsertTopic(environmentId: env, key: "all", name: "All")
                for (index, member) in members.enumerated() {
                    _ = try await session.upsertSubscriber(environmentId: env, subscriberId: member, patch: .init())
                    _ = try await session.registerDevice(
                        environmentId: env, DeviceRegistration(provider: "push-webhook", token: Secret("t-\(member)"), subscriberId: member)
                    )
                    // Thirds: opted out globally, opted out of this workflow, opted out of push elsewhere only.
                    switch index % 3 {
                    case 0:
                        try await session.applyPreference(
                            environmentId: env, subscriberId: member, patch: PreferencePatch(workflowId: nil, channels: [.push: false]),
                            source: .api, actor: "test")
                    case 1:
                        try await session.applyPreference(
                            environmentId: env, subscriberId: member, patch: PreferencePatch(workflowId: "news", channels: [.push: false]),
                            source: .api, actor: "test")
                    default:
                        try await session.applyPreference(
                            environmentId: env, subscriberId: member,
                            patch: PreferencePatch(workflowId: "weekly-digest", channels: [.email: false]), source: .api, actor: "test")
                    }
                }
                _ = try await session.subscribe(environmentId: env, topicKey: "all", subscriberIds: members)
            }
            try await herald.trigger(["name": "news", "to": [["type": "Topic", "topicKey": "all"]]])
            try await herald.settle(timeout: .seconds(60))
            let reached = Set(members.filter { herald.emulator.deliveries(to: "t-\($0)") == 1 })
            let expected = Set(members.enumerated().filter { $0.offset % 3 == 2 }.map(\.element))
            #expect(reached == expected, "reached \(reached.count), expected \(expected.count)")
            #expect(herald.emulator.stats().duplicates == 0)
        }
    }

    static func unsubscribeURL(_ record: SMTPRecord) -> (header: String?, post: String?, path: String?) {
        let header = record.mail.header("List-Unsubscribe")
        let path = header.flatMap { value -> String? in
            guard value.hasPrefix("<https://herald.example.com/v1/unsubscribe/"), value.hasSuffix(">") else { return nil }
            return String(value.dropFirst("<https://herald.example.com".count).dropLast())
        }
        return (header, record.mail.header("List-Unsubscribe-Post"), path)
    }

    @Test(
        "RFC 8058 through SMTP: the headers parse, the one-click POST turns the email off, GET and bad tokens change nothing",
        arguments: Backend.available)
    func unsubscribe(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: Self.all, configure: { $0.publicURL = "https://herald.example.com" }) { herald in
            try await SMTPProviderTests.integration(herald)
            try await herald.webhookIntegration("generic-sms", channel: "sms", identifier: "sms", primary: true)
            try await Self.subscriber(herald, "ann", email: "ann@example.com", phone: "+15550001")
            try await herald.trigger(["name": "weekly-digest", "to": "ann"])
            try await herald.trigger(["name": "security-alert", "to": "ann"])
            try await herald.eventually("two emails") { herald.smtp.messages().count == 2 }
            try await herald.settle()
            let digest = try #require(herald.smtp.messages().first { $0.mail.header("Subject") == "Your week" })
            let (header, postHeader, path) = Self.unsubscribeURL(digest)
            #expect(postHeader == "List-Unsubscribe=One-Click")
            let tokenPath = try #require(path, "List-Unsubscribe: \(header ?? "absent") in \(digest.mail.headers)")
            #expect(digest.mail.html?.contains("href=\"https://herald.example.com\(tokenPath)\"") == true, "{{unsubscribeUrl}} in the body")
            #expect(!tokenPath.contains("ann") && !tokenPath.contains("weekly"), "the token is opaque")
            let security = try #require(herald.smtp.messages().first { $0.mail.header("Subject") == "New sign-in" })
            #expect(security.mail.header("List-Unsubscribe") == nil, "a critical workflow's email has no unsubscribe")

            let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
            func post(
                _ path: String, _ body: String = "List-Unsubscribe=One-Click", headers: HTTPFields = form
            ) async throws -> TestResponse {
                try await herald.client.execute(uri: path, method: .post, headers: headers, body: ByteBuffer(string: body))
            }
            func emailOn() async throws -> JSONValue? {
                let list = try await herald.call(.get, "/v2/subscribers/ann/preferences?criticality=nonCritical").json()
                return list.objectValue?["workflows"]?.arrayValue?.first {
                    $0.objectValue?["workflow"]?.objectValue?["identifier"] == "weekly-digest"
                }?.objectValue?["channels"]?.objectValue?["email"]
            }

            // GET (a scanner's prefetch) shows a confirm page and changes nothing; no API key needed.
            let page = try await herald.client.execute(uri: tokenPath, method: .get, headers: [:], body: nil)
            #expect(page.status == .ok)
            #expect(page.headers[.contentType]?.hasPrefix("text/html") == true)
            #expect(page.headers[HTTPField.Name("Content-Security-Policy")!]?.contains("default-src 'none'") == true)
            let html = String(buffer: page.body)
            #expect(html.contains("Weekly digest") && html.contains("method=\"post\"") && !html.contains("<script"))
            #expect(try await emailOn() == true)

            // Bad tokens: forged (one character changed), truncated, moved to another environment, garbage — one answer.
            let other = try await herald.store.transaction { try await $0.createEnvironment(named: "staging") }
            let token = String(tokenPath.dropFirst("/v1/unsubscribe/".count))
            let dot = token.firstIndex(of: ".")!
            var forged = Array(token)
            let flip = forged.count - 5
            forged[flip] = forged[flip] == "A" ? "B" : "A"
            let bad = [
                String(forged), String(token.dropLast(6)), other.id + String(token[dot...]), "nonsense",
                String(repeating: "a", count: 5000),
            ]
            var answers: Set<String> = []
            for candidate in bad {
                let refused = try await post("/v1/unsubscribe/" + candidate)
                answers.insert("\(refused.status.code) \(String(buffer: refused.body))")
                let refusedPage = try await herald.client.execute(
                    uri: "/v1/unsubscribe/" + candidate, method: .get, headers: [:], body: nil)
                #expect(refusedPage.status == .notFound)
            }
            #expect(answers == ["404 this unsubscribe link is not valid\n"], "\(answers)")
            #expect(try await post(tokenPath, "something=else").status == .badRequest, "the RFC 8058 body is required")
            #expect(try await emailOn() == true)

            // The one-click POST (multipart, as RFC 8058 prefers) turns the workflow's email off; it is idempotent.
            // Each accepted one is a subscriber.unsubscribed status event (README §Status webhooks).
            let endpoint = try await herald.call(
                .post, "/v1/webhooks", #"{"url":"\#(herald.simulatorURL)/hooks/status","eventTypes":["subscriber.*"]}"#)
            #expect(endpoint.status == .created)
            let multipart: HTTPFields = [.contentType: "multipart/form-data; boundary=XyZ"]
            let body = "--XyZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--XyZ--\r\n"
            let done = try await post(tokenPath, body, headers: multipart)
            #expect(done.status == .ok && done.headers[.location] == nil)
            #expect(try await post(tokenPath).status == .ok)
            #expect(try await emailOn() == false)
            let history = try await herald.call(.get, "/v2/subscribers/ann/preferences/changes").json()
            let change = history.objectValue?["data"]?.arrayValue?.first?.objectValue
            #expect(change?["source"] == "unsubscribe-link" && change?["actor"] == "subscriber")
            #expect(change?["workflowId"] == "weekly-digest" && change?["channels"] == ["email": false])
            // Two POSTs, one change: one event.
            try await herald.eventually("the unsubscribe event") { herald.emulator.requests(hook: "status").count == 1 }
            try await herald.settle()
            #expect(herald.emulator.requests(hook: "status").count == 1)
            for event in herald.emulator.requests(hook: "status") {
                #expect(event.body.objectValue?["type"] == "subscriber.unsubscribed")
                #expect(
                    event.body.objectValue?["data"]
                        == ["subscriberId": "ann", "workflowId": "weekly-digest", "channel": "email", "source": "unsubscribe-link"])
            }

            // The next trigger's email step is skipped, and the SMS fallback runs.
            try await herald.trigger(["name": "weekly-digest", "to": "ann", "transactionId": "tx-after"])
            try await herald.settle()
            #expect(herald.smtp.messages().count == 2)
            #expect(herald.emulator.requests(hook: "sms").compactMap(\.target) == ["+15550001"])
        }
    }
}
