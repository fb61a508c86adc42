import Foundation
import HTTPTypes
import HeraldCore
import HeraldEngine
import HeraldStore
import HeraldWorkflow
import Hummingbird
import NIOCore

/// One-click unsubscribe (RFC 8058; README §Preferences, docs/api.md §Unsubscribe). The URL alone authorises the
/// request — no API key, no cookie — so these routes are public (``AuthMiddleware``):
///
/// * `POST /v1/unsubscribe/{token}` with `List-Unsubscribe=One-Click` (form-urlencoded or multipart, as mailbox
///   providers send it) turns that workflow's email channel off for that subscriber, records the change
///   (source `unsubscribe-link`) and answers 200 — idempotent, never a redirect.
/// * `GET` of the same URL answers a small page with a confirm button and changes nothing: mail scanners prefetch
///   links.
///
/// A token that does not open — forged, truncated, of another environment, of an unknown one — gets the same 404 (no
/// such link) and changes nothing, whatever was wrong with it.
struct UnsubscribeRoutes {
    let store: SQLStore
    let workflows: WorkflowRegistry
    let engine: Engine
    let runtimeMetrics: EngineMetrics

    static let pathPrefix = "/v1/unsubscribe/"

    func register(on router: Router<HeraldRequestContext>) {
        router.get("/v1/unsubscribe/{token}") { request, context in
            guard let token = try await open(context) else { return Self.invalidPage() }
            let name = workflows.workflow(token.workflowId)?.name ?? token.workflowId
            return Self.page(
                status: .ok, title: "Unsubscribe",
                body: """
                    <h1>Unsubscribe</h1>
                    <p>Stop receiving \u{201C}\(Self.escape(name))\u{201D} emails?</p>
                    <form method="post" action="\(Self.escape(request.uri.path))">
                    <input type="hidden" name="List-Unsubscribe" value="One-Click">
                    <button type="submit">Unsubscribe</button>
                    </form>
                    """)
        }
        router.post("/v1/unsubscribe/{token}") { request, context in
            let buffer = try await request.body.collect(upTo: 16 * 1024)
            guard let token = try await open(context) else {
                return Response(
                    status: .notFound, headers: Self.plainHeaders, body: .init(byteBuffer: ByteBuffer(string: Self.invalidMessage)))
            }
            guard Self.isOneClick(String(buffer: buffer), contentType: request.headers[.contentType]) else {
                return Response(
                    status: .badRequest, headers: Self.plainHeaders,
                    body: .init(byteBuffer: ByteBuffer(string: "the body must be List-Unsubscribe=One-Click (RFC 8058)\n")))
            }
            let changed = try await store.transaction { session -> Bool in
                // A subscriber deleted since the email was sent has nothing left to turn off.
                guard try await session.subscriber(environmentId: token.environmentId, subscriberId: token.subscriberId) != nil else {
                    return false
                }
                let before = try await session.preferences(environmentId: token.environmentId, subscriberIds: [token.subscriberId])
                let alreadyOff = before[token.subscriberId]?.workflows[token.workflowId]?.channels[token.channel] == false
                try await session.applyPreference(
                    environmentId: token.environmentId, subscriberId: token.subscriberId,
                    patch: PreferencePatch(workflowId: token.workflowId, channels: [token.channel: false]), source: .unsubscribeLink,
                    actor: "subscriber")
                // Reported to the application's status webhooks with the change (README §Status webhooks) — once: a
                // repeated click (mail clients and scanners do repeat) changes nothing and reports nothing.
                if !alreadyOff {
                    try await engine.stageEvents([Self.event(token)], environmentId: token.environmentId, session: session)
                }
                return !alreadyOff
            }
            if changed {
                runtimeMetrics.record([Self.event(token)])
                context.logger.info(
                    "unsubscribed through a one-click link",
                    metadata: [
                        "environment": "\(token.environmentId)", "workflow": "\(token.workflowId)", "channel": "\(token.channel.rawValue)",
                    ])
            }
            if request.headers[.accept]?.contains("text/html") == true {
                let name = workflows.workflow(token.workflowId)?.name ?? token.workflowId
                return Self.page(
                    status: .ok, title: "Unsubscribed",
                    body: "<h1>Unsubscribed</h1>\n<p>You will no longer receive \u{201C}\(Self.escape(name))\u{201D} emails.</p>")
            }
            return Response(status: .ok, headers: Self.plainHeaders, body: .init(byteBuffer: ByteBuffer()))
        }
    }

    /// The status event of a one-click unsubscribe.
    static func event(_ token: UnsubscribeToken) -> DomainEvent {
        DomainEvent(
            .subscriberUnsubscribed, workflowId: token.workflowId, channel: token.channel, subscriberId: token.subscriberId,
            attributes: ["source": "unsubscribe-link"])
    }

    /// The token of the request if it opens with its environment's key.
    func open(_ context: HeraldRequestContext) async throws -> UnsubscribeToken? {
        guard let text = context.parameters.get("token"), let environmentId = UnsubscribeToken.environmentId(of: text) else {
            return nil
        }
        // A database outage is a 503 (the mailbox provider retries), not an invalid link.
        guard let key = try await store.read({ try await $0.unsubscribeKey(environmentId: environmentId) }) else { return nil }
        return UnsubscribeToken.open(text, key: key)
    }

    /// Whether the body carries `List-Unsubscribe=One-Click`, form-urlencoded or as a multipart/form-data field.
    static func isOneClick(_ body: String, contentType: String?) -> Bool {
        if contentType?.lowercased().hasPrefix("multipart/form-data") == true {
            let normalized = body.replacingOccurrences(of: "\r\n", with: "\n")
            return normalized.range(
                of: #"name="?List-Unsubscribe"?[^\n]*\n(?:[^\n]+\n)*\nOne-Click\n"#, options: .regularExpression) != nil
        }
        return body.split(separator: "&").contains { pair in
            let parts = pair.split(separator: "=", maxSplits: 1).map {
                String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String($0)
            }
            return parts.count == 2 && parts[0] == "List-Unsubscribe"
                && parts[1].trimmingCharacters(in: .whitespacesAndNewlines) == "One-Click"
        }
    }

    static let invalidMessage = "this unsubscribe link is not valid\n"
    static let plainHeaders: HTTPFields = [
        .contentType: "text/plain; charset=utf-8", .cacheControl: "no-store", HTTPField.Name("Referrer-Policy")!: "no-referrer",
    ]

    static func invalidPage() -> Response {
        page(status: .notFound, title: "Invalid link", body: "<h1>Invalid link</h1>\n<p>This unsubscribe link is not valid.</p>")
    }

    /// A self-contained page: no script, no external resource, not framable, not cached.
    static func page(status: HTTPResponse.Status, title: String, body: String) -> Response {
        let html = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <meta name="robots" content="noindex"><title>\(escape(title))</title></head>
            <body>
            \(body)
            </body></html>

            """
        let headers: HTTPFields = [
            .contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
            HTTPField.Name("Content-Security-Policy")!: "default-src 'none'; form-action 'self'; frame-ancestors 'none'",
            HTTPField.Name("X-Frame-Options")!: "DENY", HTTPField.Name("Referrer-Policy")!: "no-referrer",
            HTTPField.Name("X-Content-Type-Options")!: "nosniff",
        ]
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    static func escape(_ text: String) -> String { Template.escapeHTML(text) }
}
