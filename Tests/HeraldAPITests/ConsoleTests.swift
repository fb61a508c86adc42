import Foundation
import HTTPTypes
import HeraldCore
import HeraldStore
import HeraldTestSupport
import HeraldWorkflow
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import HeraldAPI

/// The operator console's promises that need no browser (docs/console.md): sessions, CSRF, headers, escaping,
/// environment isolation, the overview counters; `scripts/browser-test` drives the same pages in Chromium.
@Suite("Console")
struct ConsoleTests {
    static let workflow = """
        workflow: welcome
        name: Welcome
        steps:
          - id: push
            type: push
            title: "Hi"
            body: "Welcome"
          - id: wait
            type: delay
            needs: [push]
            for: 1h
          - id: mail
            type: email
            needs: [push]
            subject: "Hello"
            body: "Welcome"
        """

    /// Signs in with `key`; returns the cookie header value and the CSRF token read from the overview page.
    static func signIn(_ client: any TestClientProtocol, key: String) async throws -> (cookie: String, csrf: String) {
        let cookie = try await client.execute(
            uri: "/console/sign-in", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
            body: ByteBuffer(string: "key=\(key)&next=%2Fconsole%2Factivity")
        ) { response async throws -> String in
            #expect(response.status == .seeOther)
            #expect(response.headers[.location] == "/console/activity")
            let setCookie = try #require(response.headers[.setCookie])
            #expect(setCookie.contains("HttpOnly"))
            #expect(setCookie.contains("SameSite=Strict"))
            #expect(setCookie.contains("Path=/console"))
            #expect(!setCookie.contains(key))
            return String(setCookie.split(separator: ";")[0])
        }
        let csrf = try await client.execute(uri: "/console", method: .get, headers: [.cookie: cookie]) { response async throws -> String in
            #expect(response.status == .ok)
            let html = String(buffer: response.body)
            let marker = "name=\"_csrf\" value=\""
            let start = try #require(html.range(of: marker)).upperBound
            return String(html[start...].prefix { $0 != "\"" })
        }
        return (cookie, csrf)
    }

    static func form(_ cookie: String) -> HTTPFields {
        [.cookie: cookie, .contentType: "application/x-www-form-urlencoded"]
    }

    @Test("without a session every page redirects to sign-in, keeping the page to return to; static files need none")
    func redirectsWithoutSession() async throws {
        try await withAPI(.sqlite) { client, _, _ in
            try await client.execute(uri: "/console/activity?workflow=a", method: .get) { response async throws in
                #expect(response.status == .seeOther)
                #expect(response.headers[.location] == "/console/sign-in?next=%2Fconsole%2Factivity%3Fworkflow%3Da")
                #expect(response.headers[HTTPField.Name("Content-Security-Policy")!]?.contains("default-src 'self'") == true)
            }
            try await client.execute(uri: "/console/sign-in", method: .get) { response async throws in
                #expect(response.status == .ok)
                #expect(response.headers[HTTPField.Name("X-Frame-Options")!] == "DENY")
                #expect(response.headers[HTTPField.Name("Referrer-Policy")!] == "no-referrer")
                #expect(String(buffer: response.body).contains("type=\"password\""))
            }
            try await client.execute(uri: "/console/static/console.css", method: .get) { response async throws in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("text/css") == true)
            }
            // A forged cookie (right shape, wrong MAC) is no session.
            try await client.execute(uri: "/console", method: .get, headers: [.cookie: "herald_console=abc.def"]) { response async throws in
                #expect(response.status == .seeOther)
            }
        }
    }

    @Test("sign-in: a wrong key is refused, five failures from one address are rate-limited; the right key opens a session")
    func signInAndRateLimit() async throws {
        try await withAPI(.sqlite) { client, _, tenants in
            for attempt in 1...6 {
                try await client.execute(
                    uri: "/console/sign-in", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                    body: ByteBuffer(string: "key=wrong-key-\(attempt)")
                ) { response async throws in
                    #expect(response.status == (attempt <= 5 ? .unauthorized : .tooManyRequests))
                    #expect(!String(buffer: response.body).contains("wrong-key-\(attempt)"))
                    if attempt == 6 { #expect(response.headers[.retryAfter] != nil) }
                }
            }
            _ = tenants
        }
        try await withAPI(.sqlite) { client, _, tenants in
            let (cookie, csrf) = try await Self.signIn(client, key: tenants.developmentKey)
            #expect(csrf.count >= 40)
            try await client.execute(uri: "/console/activity", method: .get, headers: [.cookie: cookie]) { response async throws in
                #expect(response.status == .ok)
                #expect(response.headers[.cacheControl] == "no-store")
                let html = String(buffer: response.body)
                #expect(html.contains("development"))
                #expect(!html.contains(tenants.developmentKey))
            }
        }
    }

    @Test("a POST without the session's CSRF token, or from another origin, is refused; with it, it acts")
    func csrf() async throws {
        try await withAPI(.sqlite) { client, store, tenants in
            let (cookie, csrf) = try await Self.signIn(client, key: tenants.developmentKey)
            let integration = try await store.transaction { session in
                try await session.createIntegration(
                    Integration(
                        id: "6b0000000000000000000001", environmentId: tenants.development.id, providerId: "slack", channel: .chat,
                        name: "Slack", identifier: "slack", createdAt: Date(), updatedAt: Date()))
            }
            let path = "/console/integrations/\(integration.id)/active"
            try await client.execute(uri: path, method: .post, headers: Self.form(cookie), body: ByteBuffer(string: "active=false")) {
                response async throws in
                #expect(response.status == .forbidden)
                #expect(String(buffer: response.body).contains("CSRF"))
            }
            try await client.execute(
                uri: path, method: .post, headers: Self.form(cookie), body: ByteBuffer(string: "active=false&_csrf=\(csrf)x")
            ) { response async throws in
                #expect(response.status == .forbidden)
            }
            var foreign = Self.form(cookie)
            foreign[.origin] = "https://evil.example"
            try await client.execute(uri: path, method: .post, headers: foreign, body: ByteBuffer(string: "active=false&_csrf=\(csrf)")) {
                response async throws in
                #expect(response.status == .forbidden)
            }
            #expect(
                try await store.read { try await $0.integration(environmentId: tenants.development.id, id: integration.id) }?.active == true
            )
            try await client.execute(
                uri: path, method: .post, headers: Self.form(cookie), body: ByteBuffer(string: "active=false&_csrf=\(csrf)")
            ) {
                response async throws in
                #expect(response.status == .seeOther)
                #expect(response.headers[.location] == "/console/integrations")
            }
            #expect(
                try await store.read { try await $0.integration(environmentId: tenants.development.id, id: integration.id) }?.active
                    == false)
        }
    }

    @Test("hostile text is rendered inert: a subscriber named <img onerror> shows as text on every page that names it")
    func escapesHostileText() async throws {
        try await withAPI(.sqlite) { client, store, tenants in
            let hostile = "<img src=x onerror=alert(1)>"
            _ = try await store.transaction { session in
                try await session.upsertSubscriber(
                    environmentId: tenants.development.id, subscriberId: "x\"><script>alert(2)</script>",
                    patch: SubscriberProfilePatch(setting: SubscriberProfile(firstName: hostile, email: "a@example.com")))
            }
            let (cookie, _) = try await Self.signIn(client, key: tenants.developmentKey)
            for uri in [
                "/console/subscribers", "/console/subscribers?q=img", "/console/subscribers/x%22%3E%3Cscript%3Ealert(2)%3C%2Fscript%3E",
            ] {
                try await client.execute(uri: uri, method: .get, headers: [.cookie: cookie]) { response async throws in
                    #expect(response.status == .ok, "\(uri)")
                    let html = String(buffer: response.body)
                    #expect(html.contains("&lt;img src=x onerror=alert(1)&gt;"), "\(uri)")
                    #expect(!html.contains("<img src=x"), "\(uri)")
                    #expect(!html.contains("<script>alert(2)"), "\(uri)")
                }
            }
        }
    }

    @Test("a session sees only its environment; revoking its key or signing out ends it", arguments: Backend.available)
    func isolationAndRevocation(backend: Backend) async throws {
        try await withAPI(backend) { client, store, tenants in
            let event = EventRecord(
                id: "6b0000000000000000000010", environmentId: tenants.production.id, transactionId: "tx-prod", workflowId: "welcome",
                requestHash: "", response: "{}", payload: ["secret": "production-only"], recipients: ["p1"], actor: nil, tenant: nil,
                overrides: [:], status: .accepted, createdAt: Date())
            let notification = try await store.transaction { session in
                _ = try await session.insertEvents([event])
                return try await session.insertNotifications(event: event, subscriberIds: ["p1"], topicKey: nil)[0]
            }
            let (cookie, csrf) = try await Self.signIn(client, key: tenants.developmentKey)
            try await client.execute(uri: "/console/activity/\(notification.id)", method: .get, headers: [.cookie: cookie]) {
                response async throws in
                #expect(response.status == .notFound)
                #expect(!String(buffer: response.body).contains("production-only"))
            }
            try await client.execute(uri: "/console/activity", method: .get, headers: [.cookie: cookie]) { response async throws in
                #expect(!String(buffer: response.body).contains("tx-prod"))
            }
            // The production key's session sees it.
            let (productionCookie, _) = try await Self.signIn(client, key: tenants.productionKey)
            try await client.execute(uri: "/console/activity/\(notification.id)", method: .get, headers: [.cookie: productionCookie]) {
                response async throws in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("production-only"))
            }
            _ = try await store.transaction { session in
                let key = try #require(try await session.apiKeys(environmentId: tenants.production.id).first)
                return try await session.revokeAPIKey(environmentId: tenants.production.id, reference: key.id)
            }
            try await client.execute(uri: "/console/activity", method: .get, headers: [.cookie: productionCookie]) {
                response async throws in
                #expect(response.status == .seeOther)
            }
            try await client.execute(
                uri: "/console/sign-out", method: .post, headers: Self.form(cookie), body: ByteBuffer(string: "_csrf=\(csrf)")
            ) { response async throws in
                #expect(response.status == .seeOther)
                #expect(response.headers[.setCookie]?.contains("Max-Age=0") == true)
            }
            try await client.execute(uri: "/console", method: .get, headers: [.cookie: cookie]) { response async throws in
                #expect(response.status == .seeOther)
            }
        }
    }

    @Test(
        "the overview counts triggers and delivery outcomes per minute; the workflow page draws the graph and source",
        arguments: Backend.available)
    func overviewAndWorkflow(backend: Backend) async throws {
        let registry = WorkflowRegistry()
        #expect(registry.update([("welcome.yaml", Self.workflow)]).filter { $0.severity == .error } == [])
        try await withAPI(backend, workflows: registry) { client, store, tenants in
            let (cookie, csrf) = try await Self.signIn(client, key: tenants.developmentKey)
            for index in 0..<3 {
                try await client.execute(
                    uri: "/v1/events/trigger", method: .post, headers: novuHeaders(tenants.developmentKey),
                    body: body(#"{"name":"welcome","to":"s\#(index)"}"#)
                ) { response async throws in #expect(response.status == .created) }
            }
            let delivery = DeliveryRecord(
                id: "6b0000000000000000000020", environmentId: tenants.development.id, messageId: nil, deviceId: nil, integrationId: nil,
                providerId: "fcm", target: Secret("token"), status: .dead, attempts: 12, errorCode: "unavailable", errorText: "503",
                createdAt: Date(), updatedAt: Date())
            try await store.transaction { session in
                try await session.insertDeliveries([delivery])
                try await session.updateDeliveries([delivery])
            }
            // The dispatcher samples the queue about once a minute; the overview charts the largest sample per bucket.
            try await store.transaction { try await $0.recordQueueSample(ready: 7, running: 1, scheduled: 3, lagMilliseconds: 2500) }
            try await client.execute(uri: "/console", method: .get, headers: [.cookie: cookie]) { response async throws in
                let html = String(buffer: response.body)
                #expect(html.contains("<title>jobs ready: 7</title>") && html.contains("<title>scheduled: 3</title>"))
                #expect(html.contains("<title>lag (s): 2</title>"))
                #expect(html.contains("Triggers (3)"))
                #expect(html.contains("Deliveries by outcome (1)"))
                #expect(html.contains("<svg class=\"chart\""))
                #expect(html.contains(">1</a><span class=\"label\">dead letters"))
            }
            try await client.execute(uri: "/console/dead-letters?provider=fcm&reason=unavailable", method: .get, headers: [.cookie: cookie])
            {
                response async throws in
                #expect(String(buffer: response.body).contains(delivery.id))
            }
            // Re-drive every dead FCM delivery from the dead-letter page: back on the queue, fresh retry window.
            try await client.execute(
                uri: "/console/dead-letters/redrive", method: .post, headers: Self.form(cookie),
                body: ByteBuffer(string: "_csrf=\(csrf)&status=dead&provider=fcm&reason=")
            ) { response async throws in
                #expect(response.status == .seeOther)
                #expect(response.headers[.location] == "/console/dead-letters?status=dead&provider=fcm")
            }
            #expect(try await store.read { try await $0.deliveries(ids: [delivery.id]) }.first?.status == .pending)
            // A test trigger from the workflow page lands on its transaction; a payload that is not JSON is a 400 page.
            try await client.execute(
                uri: "/console/workflows/welcome/test", method: .post, headers: Self.form(cookie),
                body: ByteBuffer(string: "_csrf=\(csrf)&subscriberId=tester&payload=%7B%22a%22%3A1%7D")
            ) { response async throws in
                #expect(response.status == .seeOther)
                #expect(response.headers[.location]?.hasPrefix("/console/activity?transaction=") == true)
            }
            try await client.execute(
                uri: "/console/workflows/welcome/test", method: .post, headers: Self.form(cookie),
                body: ByteBuffer(string: "_csrf=\(csrf)&subscriberId=tester&payload=%7Bnot+json")
            ) { response async throws in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains("not valid JSON"))
            }
            try await client.execute(uri: "/console/workflows/welcome", method: .get, headers: [.cookie: cookie]) { response async throws in
                let html = String(buffer: response.body)
                #expect(html.contains("id=\"node-wait\""))
                #expect(html.contains("<li id=\"L2\""))
                #expect(html.contains("workflow: welcome"))
            }
        }
    }

    @Test("--console off: the routes are gone and /console needs an API key like any path")
    func consoleOff() async throws {
        try await withAPI(.sqlite, configuration: APIConfiguration(console: false)) { client, _, _ in
            try await client.execute(uri: "/console", method: .get) { response async throws in
                #expect(response.status == .unauthorized)
            }
        }
    }

    @Test(
        "pure parts: nice axis maxima, form decoding, safe redirects, step rows of parallel branches",
        arguments: [(0, 0), (1, 1), (3, 5), (7, 10), (10, 10), (11, 20), (140, 200), (501, 1000)])
    func niceCeiling(value: Int, expected: Int) {
        #expect(SVGChart.niceCeiling(value) == expected)
    }

    @Test func formsAndRedirects() throws {
        let form = FormBody("a=1&b=x+y%26z&a=2&empty=&=skip")
        #expect(form.all("a") == ["1", "2"])
        #expect(form["b"] == "x y&z")
        #expect(form["empty"] == "")
        #expect(ConsoleRoutes.safeNext("/console/activity?x=1") == "/console/activity?x=1")
        for hostile in [
            "https://evil.example", "//evil.example", "/console//evil", "/v1/subscribers", "/console/sign-in", "/console\\x", nil,
        ] {
            #expect(ConsoleRoutes.safeNext(hostile) == "/console")
        }
        #expect(SVGChart.escape("<a href='x'>&\"") == "&lt;a href=&#39;x&#39;&gt;&amp;&quot;")
        let (workflow, _) = WorkflowParser.parse(Self.workflow, file: "welcome.yaml")
        let rows = StepGraphSVG.rows(try #require(workflow))
        #expect(rows == ["push": 1, "wait": 2, "mail": 2])
    }
}
