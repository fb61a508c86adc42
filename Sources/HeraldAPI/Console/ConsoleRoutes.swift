import Crypto
import Foundation
import HTTPTypes
import HeraldCore
import HeraldEngine
import HeraldStore
import HeraldWorkflow
import Hummingbird
import NIOCore

/// The operator console (docs/console.md): server-rendered pages under `/console` for one environment, the one whose
/// secret key signed in. Reads go through the same store queries as the API (keyset pages, bounded lists); actions
/// (re-drive, integration switches, a test trigger) go through the same engine calls as the API routes.
struct ConsoleRoutes {
    let store: SQLStore
    let runtime: Runtime
    let configuration: APIConfiguration
    let renderer: ConsoleRenderer
    let cookie: ConsoleCookie
    let limiter: SignInLimiter

    init(store: SQLStore, runtime: Runtime, configuration: APIConfiguration) throws {
        self.store = store
        self.runtime = runtime
        self.configuration = configuration
        self.renderer = try ConsoleRenderer()
        self.cookie = ConsoleCookie(key: store.cipher.derivedKey(purpose: "herald-console-session-v1"))
        self.limiter = SignInLimiter()
    }

    static let pageSize = 50

    static let navigation: [(href: String, label: String)] = [
        ("/console", "Overview"), ("/console/activity", "Activity"), ("/console/workflows", "Workflows"),
        ("/console/subscribers", "Subscribers"), ("/console/integrations", "Integrations"), ("/console/dead-letters", "Dead letters"),
        ("/console/pushes", "Push sends"),
    ]

    /// What the layout needs: the navigation, the environment, the CSRF token of the sign-out form.
    static func layout(_ session: ConsoleSession, current: String?) -> [String: Any] {
        [
            "session": true, "environment": session.environment.name, "csrf": session.csrfToken,
            "nav": navigation.map { ["href": $0.href, "label": $0.label, "current": $0.href == current] as [String: Any] },
        ]
    }

    func register(on router: Router<HeraldRequestContext>) {
        let console = router.group("/console").add(middleware: ConsoleMiddleware(store: store, cookie: cookie, renderer: renderer))
        console.get("/static/{file}") { _, context in
            let name = try context.parameters.require("file")
            guard let file = renderer.staticFiles[name] else { throw APIError(.notFound, "No such file") }
            return Response(
                status: .ok, headers: [.contentType: file.contentType, .cacheControl: "public, max-age=300"],
                body: .init(byteBuffer: file.body))
        }
        console.get("/sign-in") { request, _ in
            renderer.page("sign-in", ["next": Self.safeNext(request.uri.queryParameters.get("next"))])
        }
        console.post("/sign-in") { request, context in try await signIn(request, context: context) }
        console.post("/sign-out") { request, context in
            let session = try Self.session(context)
            try await store.transaction { try await $0.revokeConsoleSession(id: session.id) }
            return ConsoleRenderer.redirect(
                "/console/sign-in", headers: [.setCookie: ConsoleCookie.clearCookie(secure: secure(request))])
        }
        console.get { _, context in try await overview(context) }
        console.get("/activity") { request, context in try await activity(request, context: context) }
        console.get("/activity/{notificationId}") { request, context in try await notification(request, context: context) }
        console.post("/deliveries/{deliveryId}/retry") { _, context in
            let session = try Self.session(context)
            let id = try context.parameters.require("deliveryId")
            let redriven = try await runtime.engine.redrive(environmentId: session.environment.id, deliveryIds: [id])
            guard !redriven.isEmpty else { throw APIError(.notFound, "Delivery \(id) was not found or is not dead or failed") }
            return ConsoleRenderer.redirect(Self.safeNext(context.consoleForm?["back"]))
        }
        console.get("/workflows") { _, context in try workflows(context) }
        console.get("/workflows/{workflowId}") { _, context in try workflow(context) }
        console.post("/workflows/{workflowId}/test") { _, context in try await sendTest(context) }
        console.get("/subscribers") { request, context in try await subscribers(request, context: context) }
        console.get("/subscribers/{subscriberId}") { _, context in try await subscriber(context) }
        console.get("/integrations") { _, context in try await integrations(context) }
        console.post("/integrations/{integrationId}/active") { _, context in
            let session = try Self.session(context)
            let id = try context.parameters.require("integrationId")
            let active = context.consoleForm?["active"] == "true"
            try await IntegrationRoutes.setActive(
                store: store, policy: runtime.policy, environmentId: session.environment.id, id: id, active: active)
            return ConsoleRenderer.redirect("/console/integrations")
        }
        console.post("/integrations/{integrationId}/primary") { _, context in
            let session = try Self.session(context)
            let id = try context.parameters.require("integrationId")
            _ = try await store.transaction { try await IntegrationRoutes.setPrimary($0, environmentId: session.environment.id, id: id) }
            return ConsoleRenderer.redirect("/console/integrations")
        }
        console.get("/dead-letters") { request, context in try await deadLetters(request, context: context) }
        console.post("/dead-letters/redrive") { _, context in try await redriveAll(context) }
        console.get("/pushes") { request, context in try await pushes(request, context: context) }
        console.get("/pushes/{uid}") { _, context in try await push(context) }
    }

    // MARK: Sign-in

    private func signIn(_ request: Request, context: HeraldRequestContext) async throws -> Response {
        let address = context.remoteAddress ?? "unknown"
        let now = store.clock.now()
        let next = Self.safeNext(context.consoleForm?["next"])
        if let wait = limiter.retryAfter(address, now: now) {
            var response = renderer.page(
                "sign-in", ["error": "Too many failed sign-ins from this address; try again in \(wait) s.", "next": next],
                status: .tooManyRequests)
            response.headers[.retryAfter] = "\(wait)"
            return response
        }
        let key = context.consoleForm?["key"]?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        guard let (environment, keyId) = try await store.read({ try await $0.authenticateKey(key) }) else {
            limiter.fail(address, now: now)
            context.logger.notice("console sign-in refused", metadata: ["address": "\(address)"])
            return renderer.page(
                "sign-in", ["error": "That key is not an active secret key of any environment.", "next": next], status: .unauthorized)
        }
        limiter.succeed(address)
        let lifetime = configuration.consoleSessionLifetime
        let session = try await store.transaction { session in
            try await session.createConsoleSession(
                environment: environment, apiKeyId: keyId, id: ConsoleCookie.randomToken(), csrfToken: ConsoleCookie.randomToken(),
                lifetime: lifetime)
        }
        context.logger.info("console sign-in", metadata: ["environment": "\(environment.name)", "address": "\(address)"])
        return ConsoleRenderer.redirect(
            next, headers: [.setCookie: cookie.setCookie(sessionId: session.id, maxAge: Int(lifetime), secure: secure(request))])
    }

    private func secure(_ request: Request) -> Bool {
        configuration.secureCookies || request.headers[HTTPField.Name("X-Forwarded-Proto")!]?.lowercased() == "https"
    }

    // MARK: Overview

    static let outcomes: [DeliveryStatus] = [.delivered, .retrying, .failed, .invalid, .dead, .canceled]

    private func overview(_ context: HeraldRequestContext) async throws -> Response {
        let session = try Self.session(context)
        let now = store.clock.now()
        let environmentId = session.environment.id
        let (stats, queue, lag, dead) = try await store.read { db in
            (
                try await db.consoleStats(environmentId: environmentId, since: now.addingTimeInterval(-86_400)),
                try await db.jobCounts(), try await db.queueLag(),
                try await db.countDeliveries(environmentId: environmentId, status: .dead, cap: 10_001)
            )
        }
        let nowMinute = now.millisecondsSince1970 / 60_000
        let windows = [
            Self.window(title: "Last hour", stats: stats, nowMinute: nowMinute, buckets: 60, bucketMinutes: 1, labelEvery: 10),
            Self.window(title: "Last 24 hours", stats: stats, nowMinute: nowMinute, buckets: 48, bucketMinutes: 30, labelEvery: 8),
        ]
        var values = Self.layout(session, current: "/console")
        values["queue"] = [
            "ready": queue.ready, "running": queue.running, "scheduled": queue.scheduled,
            "lag": String(format: "%.1f s", Double(lag.components.seconds) + Double(lag.components.attoseconds) / 1e18),
        ]
        values["deadLetters"] = dead > 10_000 ? "10,000+" : "\(dead)"
        values["windows"] = windows
        return renderer.page("overview", values)
    }

    /// One window of the overview: trigger and delivery charts and the per-provider table.
    static func window(
        title: String, stats: [ConsoleStat], nowMinute: Int64, buckets: Int, bucketMinutes: Int, labelEvery: Int
    ) -> [String: Any] {
        let start = nowMinute - Int64(buckets * bucketMinutes) + 1
        var triggers = [Int](repeating: 0, count: buckets)
        // Gauges: the largest sample of each bucket.
        var queue: [String: [Int]] = ["ready": .init(repeating: 0, count: buckets), "scheduled": .init(repeating: 0, count: buckets)]
        var lag = [Int](repeating: 0, count: buckets)
        var byStatus: [DeliveryStatus: [Int]] = [:]
        var byProvider: [String: [DeliveryStatus: Int]] = [:]
        for stat in stats where stat.minute >= start && stat.minute <= nowMinute {
            let bucket = Int(stat.minute - start) / bucketMinutes
            switch stat.metric {
            case "trigger": triggers[bucket] += stat.count
            case "queue" where stat.label == "lag_ms": lag[bucket] = max(lag[bucket], stat.count / 1000)
            case "queue": if queue[stat.label] != nil { queue[stat.label]![bucket] = max(queue[stat.label]![bucket], stat.count) }
            case "delivery":
                let parts = stat.label.split(separator: ":", maxSplits: 1).map(String.init)
                guard parts.count == 2, let status = DeliveryStatus(rawValue: parts[1]), outcomes.contains(status) else { continue }
                byStatus[status, default: [Int](repeating: 0, count: buckets)][bucket] += stat.count
                byProvider[parts[0], default: [:]][status, default: 0] += stat.count
            default: continue
            }
        }
        let labels = stride(from: 0, to: buckets, by: labelEvery).map { index -> (index: Int, text: String) in
            let minute = start + Int64(index * bucketMinutes)
            let date = Date(millisecondsSince1970: minute * 60_000)
            return (index, String(date.iso8601Milliseconds.dropFirst(11).prefix(5)))
        }
        let series = outcomes.map { SVGChart.Series(key: $0.rawValue, name: $0.rawValue, values: byStatus[$0] ?? []) }
        let rows = byProvider.keys.sorted().map { provider -> [String: Any] in
            [
                "channel": ProviderCatalog.spec(provider)?.channel.rawValue ?? "push", "provider": provider,
                "counts": outcomes.map { byProvider[provider]?[$0] ?? 0 },
            ]
        }
        return [
            "title": title, "triggers": triggers.reduce(0, +), "deliveries": byStatus.values.reduce(0) { $0 + $1.reduce(0, +) },
            "triggerChart": SVGChart.stackedBars(
                series: [.init(key: "trigger", name: "triggers", values: triggers)], buckets: buckets, xLabels: labels,
                title: "Triggers, \(title.lowercased())"),
            "deliveryChart": SVGChart.stackedBars(
                series: series, buckets: buckets, xLabels: labels, title: "Deliveries by outcome, \(title.lowercased())"),
            "outcomes": outcomes.map(\.rawValue), "rows": rows,
            "queueChart": SVGChart.stackedBars(
                series: [
                    .init(key: "pending", name: "jobs ready", values: queue["ready"]!),
                    .init(key: "retrying", name: "scheduled", values: queue["scheduled"]!),
                ], buckets: buckets, xLabels: labels, title: "Queue depth (largest sample), \(title.lowercased())"),
            "lagChart": SVGChart.stackedBars(
                series: [.init(key: "dead", name: "lag (s)", values: lag)], buckets: buckets, xLabels: labels,
                title: "Queue lag in seconds (largest sample), \(title.lowercased())"),
        ]
    }

    // MARK: Activity

    private func activity(_ request: Request, context: HeraldRequestContext) async throws -> Response {
        let session = try Self.session(context)
        let query = request.uri.queryParameters
        var filter = NotificationFilter()
        let workflow = Self.nonEmpty(query.get("workflow"))
        if let workflow { filter.workflowIds = [workflow] }
        let subscriber = Self.nonEmpty(query.get("subscriber"))
        if let subscriber { filter.subscriberIds = [subscriber] }
        filter.transactionId = Self.nonEmpty(query.get("transaction"))
        let since = Self.nonEmpty(query.get("since"))
        let until = Self.nonEmpty(query.get("until"))
        filter.after = try since.map { try Self.parseLocalTime($0, field: "From") }
        filter.before = try until.map { try Self.parseLocalTime($0, field: "Until") }
        let statusName = Self.nonEmpty(query.get("status"))
        let status = try statusName.map { name -> NotificationStatus in
            guard let status = NotificationStatus(rawValue: name) else { throw APIError(.badRequest, "Unknown status \(name)") }
            return status
        }
        let before = Self.nonEmpty(query.get("before"))
        let environmentId = session.environment.id
        let notificationFilter = filter
        let page = try await store.read { db in
            try await db.consoleNotifications(
                environmentId: environmentId, filter: notificationFilter, status: status, before: before, limit: Self.pageSize + 1)
        }
        var values = Self.layout(session, current: "/console/activity")
        values["notifications"] = page.prefix(Self.pageSize).map(Self.notificationRow)
        values["workflows"] = runtime.workflows.workflows.keys.sorted().map { ["id": $0, "selected": $0 == workflow] as [String: Any] }
        values["statuses"] = NotificationStatus.allCases.map { ["name": $0.rawValue, "selected": $0 == status] as [String: Any] }
        values["filter"] = [
            "subscriber": subscriber ?? "", "transaction": filter.transactionId ?? "", "since": since ?? "", "until": until ?? "",
        ]
        if page.count > Self.pageSize, let last = page.prefix(Self.pageSize).last {
            var items = [("workflow", workflow), ("subscriber", subscriber), ("transaction", filter.transactionId)]
            items += [("status", statusName), ("since", since), ("until", until), ("before", last.id)]
            values["next"] = "/console/activity?" + Self.queryString(items)
        }
        return renderer.page("activity", values)
    }

    static func notificationRow(_ notification: NotificationRecord) -> [String: Any] {
        [
            "id": notification.id, "workflowId": notification.workflowId, "subscriberId": notification.subscriberId,
            "subscriberPath": pathEncode(notification.subscriberId), "transactionId": notification.transactionId,
            "status": notification.status.rawValue, "channels": notification.channels.joined(separator: ", "),
            "createdAt": notification.createdAt.iso8601Milliseconds, "createdAtText": displayTime(notification.createdAt),
        ]
    }

    private func notification(_ request: Request, context: HeraldRequestContext) async throws -> Response {
        let session = try Self.session(context)
        let id = try context.parameters.require("notificationId")
        let environmentId = session.environment.id
        let loaded = try await store.read {
            db -> (NotificationRecord, [MessageRecord], [DeliveryRecord], [ExecutionDetail], EventRecord?)? in
            guard let notification = try await db.notification(environmentId: environmentId, id: id) else { return nil }
            let messages = try await db.messages(notificationIds: [id])
            let deliveries = try await db.deliveries(messageIds: messages.map(\.id))
            let details = try await db.executionDetails(notificationIds: [id])
            return (notification, messages, deliveries, details, try await db.event(id: notification.eventId))
        }
        guard let (record, messages, deliveries, details, event) = loaded else {
            throw APIError(.notFound, "Notification \(id) was not found")
        }
        let workflow = runtime.workflows.workflow(record.workflowId)
        let state = RunState(stored: record.state)
        let deliveriesByMessage = Dictionary(grouping: deliveries, by: { $0.messageId ?? "" })
        let messagesByStep = Dictionary(grouping: messages, by: \.stepId)
        let detailsByStep = Dictionary(grouping: details, by: { $0.stepId ?? "" })
        let back = "/console/activity/" + id
        let stepIds = workflow?.steps.map(\.id) ?? Array(Set(state.steps.keys).union(messagesByStep.keys)).sorted()
        let steps = stepIds.map { stepId -> [String: Any] in
            let stepState = state.steps[stepId]
            var step: [String: Any] = [
                "id": stepId, "type": workflow?.step(stepId)?.type.rawValue ?? messagesByStep[stepId]?.first?.channel.rawValue ?? "step",
                "status": stepState?.status.rawValue ?? "pending",
                "messages": (messagesByStep[stepId] ?? []).map { message -> [String: Any] in
                    [
                        "id": message.id, "channel": message.channel.rawValue, "provider": message.providerId ?? "—",
                        "integration": Self.present(message.integrationId) as Any, "status": message.status.rawValue,
                        "errorText": Self.present(message.errorText) as Any,
                        "deliveries": (deliveriesByMessage[message.id] ?? []).map { Self.deliveryRow($0, back: back) },
                    ]
                },
                "details": (detailsByStep[stepId] ?? []).map(Self.detailRow), "hasDetails": !(detailsByStep[stepId] ?? []).isEmpty,
            ]
            if let reason = stepState?.reason { step["reason"] = reason }
            if let until = stepState?.resumeAt { step["waitingUntil"] = until.iso8601Milliseconds }
            return step
        }
        var values = Self.layout(session, current: "/console/activity")
        values.merge(Self.notificationRow(record), uniquingKeysWith: { $1 })
        values["workflowPath"] = Self.pathEncode(record.workflowId)
        values["topicKey"] = Self.present(record.topicKey) as Any
        values["payload"] = event.map { Self.prettyJSON($0.payload) } ?? "{}"
        values["steps"] = steps
        values["general"] = (detailsByStep[""] ?? []).map(Self.detailRow)
        values["hasGeneral"] = !(detailsByStep[""] ?? []).isEmpty
        return renderer.page("notification", values)
    }

    static func deliveryRow(_ delivery: DeliveryRecord, back: String) -> [String: Any] {
        var answer = [delivery.outcome, delivery.errorCode, delivery.errorText].compactMap { $0 }.joined(separator: " · ")
        if let providerMessageId = delivery.providerMessageId { answer += (answer.isEmpty ? "" : " · ") + "id \(providerMessageId)" }
        if let next = delivery.nextAttemptAt, delivery.status == .retrying { answer += " · next attempt \(displayTime(next))" }
        return [
            "id": delivery.id, "target": Secret.redact(delivery.target.revealed), "platform": delivery.platform ?? "",
            "status": delivery.status.rawValue, "attempts": delivery.attempts, "answer": answer,
            "redrivable": delivery.status == .dead || delivery.status == .failed, "back": back, "provider": delivery.providerId,
            "code": delivery.errorCode ?? "", "text": delivery.errorText ?? "", "updatedAt": delivery.updatedAt.iso8601Milliseconds,
            "updatedAtText": displayTime(delivery.updatedAt),
        ]
    }

    static func detailRow(_ detail: ExecutionDetail) -> [String: Any] {
        [
            "createdAt": detail.createdAt.iso8601Milliseconds, "createdAtText": displayTime(detail.createdAt),
            "status": detail.status.rawValue,
            "detail": detail.detail, "isRetry": detail.isRetry, "raw": Self.present(detail.raw) as Any,
        ]
    }

    // MARK: Workflows

    private func workflows(_ context: HeraldRequestContext) throws -> Response {
        let session = try Self.session(context)
        let registry = runtime.workflows
        let byFile = Dictionary(grouping: registry.workflows.values, by: \.file)
        let findings = Dictionary(grouping: registry.diagnostics, by: \.file)
        let files = registry.paths.map { path -> [String: Any] in
            let workflow = byFile[path]?.first
            let fileFindings = findings[path] ?? []
            let state = Self.validationState(fileFindings, loaded: workflow != nil)
            return [
                "path": path, "workflowId": Self.present(workflow?.id) as Any,
                "workflowPath": workflow.map { Self.pathEncode($0.id) } ?? "",
                "name": workflow?.name ?? "", "steps": workflow?.steps.count ?? 0, "state": state.css, "stateText": state.text,
                "critical": workflow?.critical ?? false, "inactive": workflow.map { !$0.active } ?? false,
                "hasFindings": !fileFindings.isEmpty, "findings": fileFindings.map(Self.findingRow),
            ]
        }
        var values = Self.layout(session, current: "/console/workflows")
        values["files"] = files
        return renderer.page("workflows", values)
    }

    static func validationState(_ findings: [Diagnostic], loaded: Bool) -> (css: String, text: String) {
        let errors = findings.filter { $0.severity == .error }.count
        let warnings = findings.count - errors
        if errors > 0 { return ("error", loaded ? "\(errors) error(s): last valid version active" : "\(errors) error(s): not loaded") }
        if warnings > 0 { return ("warning", "valid, \(warnings) warning(s)") }
        return ("ok", "valid")
    }

    static func findingRow(_ finding: Diagnostic) -> [String: Any] {
        [
            "line": finding.location.line, "column": finding.location.column, "severity": finding.severity.rawValue,
            "message": finding.message, "rule": finding.rule.id,
        ]
    }

    private func workflow(_ context: HeraldRequestContext) throws -> Response {
        let session = try Self.session(context)
        let id = try context.parameters.require("workflowId")
        guard let workflow = runtime.workflows.workflow(id) else { throw APIError(.notFound, "Workflow \(id) is not loaded") }
        let findings = runtime.workflows.diagnostics.filter { $0.file == workflow.file }
        let byLine = Dictionary(grouping: findings, by: \.location.line)
        let source = runtime.workflows.source(of: workflow.file) ?? ""
        let lines = source.split(separator: "\n", omittingEmptySubsequences: false).enumerated().map { index, text -> [String: Any] in
            let lineFindings = byLine[index + 1] ?? []
            var line: [String: Any] = ["number": index + 1, "text": String(text), "findings": lineFindings.map(Self.findingRow)]
            if let worst = lineFindings.map(\.severity).min(by: { a, _ in a == .error }) { line["severity"] = worst.rawValue }
            return line
        }
        let state = Self.validationState(findings, loaded: true)
        var values = Self.layout(session, current: "/console/workflows")
        values.merge(
            [
                "id": workflow.id, "idPath": Self.pathEncode(workflow.id), "idQuery": Self.queryEncode(workflow.id), "name": workflow.name,
                "description": Self.present(workflow.description) as Any, "file": workflow.file, "critical": workflow.critical,
                "state": state.css,
                "stateText": state.text, "graph": StepGraphSVG.render(workflow), "lines": lines,
            ], uniquingKeysWith: { $1 })
        return renderer.page("workflow", values)
    }

    private func sendTest(_ context: HeraldRequestContext) async throws -> Response {
        let session = try Self.session(context)
        let id = try context.parameters.require("workflowId")
        let subscriberId = context.consoleForm?["subscriberId"]?.trimmingCharacters(in: .whitespaces) ?? ""
        guard !subscriberId.isEmpty else { throw APIError(.badRequest, "A subscriber id is required") }
        let payloadText = context.consoleForm?["payload"] ?? "{}"
        let payload: JSONValue
        do { payload = try JSONValue.parse(payloadText.isEmpty ? "{}" : payloadText) } catch {
            throw APIError(.badRequest, "The payload is not valid JSON")
        }
        let body: JSONValue = ["name": .string(id), "to": .string(subscriberId), "payload": payload]
        let events = EventRoutes(runtime: runtime)
        let receipts: [TriggerReceipt]
        do {
            let command = try runtime.validator.validate(body)
            receipts = try await runtime.intake.accept(environmentId: session.environment.id, commands: [command])
        } catch let rejection as TriggerRejection {
            throw events.reject(rejection)
        }
        let transactionId = receipts.first?.transactionId ?? ""
        return ConsoleRenderer.redirect("/console/activity?transaction=" + Self.queryEncode(transactionId))
    }

    // MARK: Subscribers

    private func subscribers(_ request: Request, context: HeraldRequestContext) async throws -> Response {
        let session = try Self.session(context)
        let q = Self.nonEmpty(request.uri.queryParameters.get("q"))?.trimmingCharacters(in: .whitespaces)
        let after = Self.nonEmpty(request.uri.queryParameters.get("after"))
        let environmentId = session.environment.id
        let found = try await store.read { db -> [Subscriber] in
            guard let q, !q.isEmpty else {
                return try await db.subscribers(environmentId: environmentId, after: after, limit: Self.pageSize).items
            }
            // An exact id, email or phone first; else a name match.
            for field in ["subscriberId", "email", "phone"] {
                let page = try await db.searchSubscribers(
                    environmentId: environmentId, email: field == "email" ? q : nil, phone: field == "phone" ? q : nil,
                    subscriberId: field == "subscriberId" ? q : nil, page: CursorRequest(limit: Self.pageSize))
                if !page.items.isEmpty { return page.items }
            }
            return try await db.searchSubscribers(environmentId: environmentId, name: q, page: CursorRequest(limit: Self.pageSize)).items
        }
        var values = Self.layout(session, current: "/console/subscribers")
        values["q"] = q ?? ""
        values["subscribers"] = found.map { subscriber -> [String: Any] in
            [
                "subscriberId": subscriber.subscriberId, "path": Self.pathEncode(subscriber.subscriberId), "name": Self.name(subscriber),
                "email": subscriber.profile.email ?? "", "phone": subscriber.profile.phone ?? "",
                "createdAt": subscriber.createdAt.iso8601Milliseconds, "createdAtText": Self.displayTime(subscriber.createdAt),
            ]
        }
        if q == nil, found.count == Self.pageSize, let last = found.last {
            values["next"] = "/console/subscribers?" + Self.queryString([("after", last.id)])
        }
        return renderer.page("subscribers", values)
    }

    static func name(_ subscriber: Subscriber) -> String {
        [subscriber.profile.firstName, subscriber.profile.lastName].compactMap { $0 }.joined(separator: " ")
    }

    private func subscriber(_ context: HeraldRequestContext) async throws -> Response {
        let session = try Self.session(context)
        let subscriberId = try context.parameters.require("subscriberId")
        let environmentId = session.environment.id
        let loaded = try await store.read {
            db -> (Subscriber, [Device], [SubscriberChannel], [String], Int, [NotificationRecord], [String: Integration])? in
            guard let subscriber = try await db.subscriber(environmentId: environmentId, subscriberId: subscriberId) else { return nil }
            let devices = try await db.listDevices(
                environmentId: environmentId, filter: DeviceFilter(users: [subscriberId]), cursor: nil, limit: 100, countTotal: false
            ).devices
            let channels = try await db.subscriberChannels(environmentId: environmentId, subscriberId: subscriberId)
            let topics = try await db.subscriberTopicSubscriptions(environmentId: environmentId, subscriberId: subscriberId, limit: 100)
            var filter = NotificationFilter()
            filter.subscriberIds = [subscriberId]
            let recent = try await db.consoleNotifications(
                environmentId: environmentId, filter: filter, status: nil, before: nil, limit: 20)
            let integrations = Dictionary(
                uniqueKeysWithValues: try await db.integrations(environmentId: environmentId).map { ($0.id, $0) })
            return (subscriber, devices, channels, topics.items.map(\.topic.key), topics.total, recent, integrations)
        }
        guard let (subscriber, devices, channels, topics, topicTotal, recent, integrations) = loaded else {
            throw APIError(.notFound, "Subscriber \(subscriberId) was not found")
        }
        let profile = subscriber.profile
        var values = Self.layout(session, current: "/console/subscribers")
        values.merge(
            [
                "subscriberId": subscriber.subscriberId, "subscriberQuery": Self.queryEncode(subscriber.subscriberId),
                "name": Self.name(subscriber), "email": profile.email ?? "", "phone": profile.phone ?? "", "locale": profile.locale ?? "",
                "timezone": profile.timezone ?? "", "createdAt": subscriber.createdAt.iso8601Milliseconds,
                "createdAtText": Self.displayTime(subscriber.createdAt), "data": profile.data.map(Self.prettyJSON) as Any,
                "devices": devices.map { device -> [String: Any] in
                    [
                        "id": device.id, "provider": device.provider, "platform": device.platform ?? "",
                        "token": Secret.redact(device.token.revealed), "topics": device.topics.joined(separator: ", "),
                        "lastSuccess": device.lastSuccessAt.map(Self.displayTime) ?? "never",
                    ]
                },
                "channels": channels.map { channel -> [String: Any] in
                    [
                        "integration": integrations[channel.integrationId]?.name ?? channel.integrationIdentifier,
                        "provider": channel.providerId,
                        "credentials": channel.credentials.keys.sorted().map { key -> String in
                            let value = channel.credentials[key]?.stringValue ?? channel.credentials[key]?.jsonString() ?? ""
                            return key + ": " + Secret.redact(value)
                        }.joined(separator: ", "),
                        "tokens": channel.deviceTokens.map { Secret.redact($0) }.joined(separator: ", "),
                    ]
                },
                "topics": topics, "topicTotal": topicTotal, "notifications": recent.map(Self.notificationRow),
            ], uniquingKeysWith: { $1 })
        return renderer.page("subscriber", values)
    }

    // MARK: Integrations

    private func integrations(_ context: HeraldRequestContext) async throws -> Response {
        let session = try Self.session(context)
        let environmentId = session.environment.id
        let (integrations, errors) = try await store.read { db -> ([Integration], [String: [DeliveryRecord]]) in
            let integrations = try await db.integrations(environmentId: environmentId)
            var errors: [String: [DeliveryRecord]] = [:]
            for integration in integrations {
                errors[integration.id] = try await db.lastErrors(
                    environmentId: environmentId, integrationId: integration.id, providerId: integration.providerId, limit: 3)
            }
            return (integrations, errors)
        }
        var values = Self.layout(session, current: "/console/integrations")
        let sorted = integrations.sorted { ($0.channel.rawValue, $0.name, $0.id) < ($1.channel.rawValue, $1.name, $1.id) }
        values["integrations"] = sorted.map { integration -> [String: Any] in
            let masked = IntegrationRules.masked(integration.credentials)
            let credentials: [[String: Any]] =
                if case .object(let fields) = masked {
                    fields.keys.sorted().map { key in
                        let value = fields[key]!.stringValue ?? fields[key]!.jsonString()
                        return ["name": key, "value": value.count > 80 ? String(value.prefix(79)) + "…" : value]
                    }
                } else { [] }
            return [
                "id": integration.id, "name": integration.name, "identifier": integration.identifier, "provider": integration.providerId,
                "channel": integration.channel.rawValue, "active": integration.active, "primary": integration.primary,
                "canBePrimary": integration.channel.hasPrimary, "credentials": credentials,
                "errors": (errors[integration.id] ?? []).map { delivery -> [String: Any] in
                    [
                        "at": delivery.updatedAt.iso8601Milliseconds, "atText": Self.displayTime(delivery.updatedAt),
                        "status": delivery.status.rawValue, "code": delivery.errorCode ?? "", "text": delivery.errorText ?? "",
                    ]
                },
            ]
        }
        return renderer.page("integrations", values)
    }

    // MARK: Dead letters

    static let deadStatuses: [DeliveryStatus] = [.dead, .failed, .invalid, .retrying]

    private func deadLetters(_ request: Request, context: HeraldRequestContext) async throws -> Response {
        let session = try Self.session(context)
        let query = request.uri.queryParameters
        let status = try Self.deadStatus(query.get("status"))
        let provider = Self.nonEmpty(query.get("provider"))
        let reason = Self.nonEmpty(query.get("reason"))
        let before = Self.nonEmpty(query.get("before"))
        let environmentId = session.environment.id
        let (page, integrations) = try await store.read { db in
            (
                try await db.consoleDeliveries(
                    environmentId: environmentId, status: status, providerId: provider, errorCode: reason, before: before,
                    limit: Self.pageSize + 1),
                try await db.integrations(environmentId: environmentId)
            )
        }
        let heads = try await store.read { db in
            try await db.messages(ids: page.compactMap(\.messageId), content: false)
        }
        let pushUids = try await store.read { db in try await db.pushes(ids: Array(Set(page.compactMap(\.pushId)))) }
        var values = Self.layout(session, current: "/console/dead-letters")
        let back = "/console/dead-letters?" + Self.queryString([("status", status.rawValue), ("provider", provider), ("reason", reason)])
        values["deliveries"] = page.prefix(Self.pageSize).map { delivery -> [String: Any] in
            var row = Self.deliveryRow(delivery, back: back)
            row["notificationId"] = delivery.messageId.flatMap { heads[$0]?.notificationId } as Any
            row["pushUid"] = delivery.pushId.flatMap { pushUids[$0].map { Self.pathEncode($0.uid) } } as Any
            return row
        }
        values["statuses"] = Self.deadStatuses.map { ["name": $0.rawValue, "selected": $0 == status] as [String: Any] }
        let providers = Set(integrations.map(\.providerId)).union(provider.map { [$0] } ?? []).sorted()
        values["providers"] = providers.map { ["name": $0, "selected": $0 == provider] as [String: Any] }
        values["status"] = status.rawValue
        values["provider"] = provider ?? ""
        values["reason"] = reason ?? ""
        if page.count > Self.pageSize, let last = page.prefix(Self.pageSize).last {
            values["next"] = back + "&" + Self.queryString([("before", last.id)])
        }
        return renderer.page("dead-letters", values)
    }

    static func deadStatus(_ name: String?) throws -> DeliveryStatus {
        guard let name = nonEmpty(name) else { return .dead }
        guard let status = DeliveryStatus(rawValue: name), deadStatuses.contains(status) else {
            throw APIError(.badRequest, "Status must be one of \(deadStatuses.map(\.rawValue).joined(separator: ", "))")
        }
        return status
    }

    private func redriveAll(_ context: HeraldRequestContext) async throws -> Response {
        let session = try Self.session(context)
        let form = context.consoleForm ?? FormBody("")
        let status = try Self.deadStatus(form["status"])
        guard status == .dead || status == .failed else { throw APIError(.badRequest, "Only dead and failed deliveries can be re-driven") }
        let provider = Self.nonEmpty(form["provider"])
        let reason = Self.nonEmpty(form["reason"])
        let environmentId = session.environment.id
        var total = 0
        var before: String? = nil
        // Up to 10,000 per action, in pages of 500 (each its own transaction, as the API's bulk retry).
        while total < 10_000 {
            let cursor = before
            let page = try await store.read { db in
                try await db.consoleDeliveries(
                    environmentId: environmentId, status: status, providerId: provider, errorCode: reason, before: cursor, limit: 500)
            }
            guard !page.isEmpty else { break }
            total += try await runtime.engine.redrive(environmentId: environmentId, deliveryIds: page.map(\.id)).count
            before = page.last?.id
            if page.count < 500 { break }
        }
        context.logger.info("console re-drive", metadata: ["count": "\(total)", "status": "\(status.rawValue)"])
        return ConsoleRenderer.redirect(
            "/console/dead-letters?" + Self.queryString([("status", status.rawValue), ("provider", provider), ("reason", reason)]))
    }

    // MARK: Push sends

    private func pushes(_ request: Request, context: HeraldRequestContext) async throws -> Response {
        let session = try Self.session(context)
        let before = Self.nonEmpty(request.uri.queryParameters.get("before"))
        let environmentId = session.environment.id
        let page = try await store.read { db in
            try await db.listPushes(environmentId: environmentId, before: before, limit: Self.pageSize + 1)
        }
        var values = Self.layout(session, current: "/console/pushes")
        values["pushes"] = page.prefix(Self.pageSize).map { push -> [String: Any] in
            [
                "uid": push.uid, "uidPath": Self.pathEncode(push.uid), "status": push.status,
                "recipient": Self.recipientSummary(push.request),
                "createdAt": push.createdAt.iso8601Milliseconds, "createdAtText": Self.displayTime(push.createdAt),
            ]
        }
        if page.count > Self.pageSize, let last = page.prefix(Self.pageSize).last {
            values["next"] = "/console/pushes?" + Self.queryString([("before", last.id)])
        }
        return renderer.page("pushes", values)
    }

    /// "filter: users a, b", "fcm_tokens (3)", … from a stored `send_push_notification` request.
    static func recipientSummary(_ request: String) -> String {
        guard let json = try? JSONValue.parse(request), case .object(let params) = json,
            case .object(let recipient)? = params["recipient"], let (kind, value) = recipient.min(by: { $0.key < $1.key })
        else { return "—" }
        if case .object(let fields) = value, case .array(let tokens)? = fields["tokens"] { return "\(kind) (\(tokens.count))" }
        if case .object(let fields) = value, case .object(let filter)? = fields["filter"] {
            let parts = filter.keys.sorted().compactMap { key -> String? in
                guard case .array(let items)? = filter[key], !items.isEmpty else { return nil }
                let shown = items.prefix(3).compactMap(\.stringValue).joined(separator: ", ")
                return "\(key) \(shown)\(items.count > 3 ? " +\(items.count - 3)" : "")"
            }
            return "\(kind): \(parts.joined(separator: "; "))"
        }
        return kind
    }

    private func push(_ context: HeraldRequestContext) async throws -> Response {
        let session = try Self.session(context)
        let uid = try context.parameters.require("uid")
        let stats: JSONValue
        do { stats = try await runtime.pushes.stats(environmentId: session.environment.id, uid: uid) } catch let error as HeraldError
            where error.code == .notFound
        {
            throw APIError(.notFound, "Push \(uid) was not found")
        }
        let request = try await store.read { try await $0.push(environmentId: session.environment.id, uid: uid) }
        let columns = ["sent", "failed", "pending", "canceled", "delivered", "interacted"]
        var values = Self.layout(session, current: "/console/pushes")
        values["uid"] = uid
        let object = stats.objectValue ?? [:]
        values["status"] = object["status"]?.stringValue ?? ""
        values["createdAt"] = object["createdAt"]?.stringValue ?? ""
        values["sendAt"] = object["sendAt"]?.stringValue as Any
        values["expireAt"] = object["expireAt"]?.stringValue as Any
        values["skipped"] = Self.int(object["skipped"])
        values["columns"] = columns
        if case .array(let providers)? = object["providers"] {
            values["rows"] = providers.map { row -> [String: Any] in
                [
                    "provider": row.objectValue?["provider"]?.stringValue ?? "",
                    "platform": row.objectValue?["platform"]?.stringValue ?? "", "counts": columns.map { Self.int(row.objectValue?[$0]) },
                ]
            }
        }
        values["totals"] = columns.map { Self.int(object["totals"]?.objectValue?[$0]) }
        values["request"] = request.map { Self.prettyJSON($0.request) } ?? ""
        return renderer.page("push", values)
    }

    // MARK: Helpers

    static func session(_ context: HeraldRequestContext) throws -> ConsoleSession {
        guard let session = context.consoleSession else { throw APIError(.unauthorized, "Sign in first") }
        return session
    }

    /// The value, or nil when empty: a section (`{{#x}}`) shows for any string, even an empty one.
    static func present(_ value: String?) -> String? { nonEmpty(value) }

    static func nonEmpty(_ value: String?) -> String? {
        guard let value, !value.isEmpty else { return nil }
        return value
    }

    /// A `next` target that stays inside the console (an open redirect otherwise).
    static func safeNext(_ value: String?) -> String {
        guard let value, value.hasPrefix("/console"), !value.hasPrefix("/console/sign-"), !value.contains("\\"), !value.contains("//")
        else { return "/console" }
        return value
    }

    /// `yyyy-MM-dd HH:mm:ss` in UTC.
    static func displayTime(_ date: Date) -> String {
        String(date.iso8601Milliseconds.prefix(19)).replacingOccurrences(of: "T", with: " ")
    }

    /// A `datetime-local` value (`2026-12-04T10:00`, optionally with seconds), read as UTC.
    static func parseLocalTime(_ text: String, field: String) throws -> Date {
        let candidates = [text + ":00Z", text + "Z", text]
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        for candidate in candidates { if let date = formatter.date(from: candidate) { return date } }
        throw APIError(.badRequest, "\(field) must be a date and time such as 2026-12-04T10:00")
    }

    static func prettyJSON(_ value: JSONValue) -> String {
        guard let data = value.jsonString().data(using: .utf8),
            let object = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]),
            let pretty = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .fragmentsAllowed])
        else { return value.jsonString() }
        return String(decoding: pretty, as: UTF8.self)
    }

    static let pathAllowed: CharacterSet = CharacterSet.urlPathAllowed.subtracting(CharacterSet(charactersIn: "/?#%;"))
    static let queryAllowed: CharacterSet = CharacterSet.urlQueryAllowed.subtracting(CharacterSet(charactersIn: "&=+?#%/"))

    static func pathEncode(_ text: String) -> String { text.addingPercentEncoding(withAllowedCharacters: pathAllowed) ?? "" }
    static func queryEncode(_ text: String) -> String { text.addingPercentEncoding(withAllowedCharacters: queryAllowed) ?? "" }

    static func queryString(_ items: [(String, String?)]) -> String {
        items.compactMap { name, value in value.flatMap { $0.isEmpty ? nil : "\(name)=\(queryEncode($0))" } }.joined(separator: "&")
    }

    /// Compares digests in constant time (swift-crypto), whatever the lengths of the two strings.
    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        SHA256.hash(data: Array(a.utf8)) == SHA256.hash(data: Array(b.utf8))
    }

    static func int(_ value: JSONValue?) -> Int {
        if case .number(let number)? = value { return Int(number) }
        return 0
    }
}
