import Foundation
import HTTPTypes
import HeraldCore
import HeraldStore
import Hummingbird
import Logging

/// Everything in front of a console page (docs/console.md §Security):
///
/// * every response gets a strict `Content-Security-Policy` (`default-src 'self'`, no inline script or style,
///   `frame-ancestors 'none'`), `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`, `nosniff`, and pages
///   `Cache-Control: no-store`;
/// * a page without a live session is a 303 to the sign-in page (its path kept in `next`);
/// * every POST must come from the console's own pages (`Sec-Fetch-Site`, `Origin`, when sent) and carry the
///   session's CSRF token in `_csrf`; otherwise 403;
/// * errors render as an HTML page in the console (never a stack, never a secret).
struct ConsoleMiddleware: RouterMiddleware {
    typealias Context = HeraldRequestContext
    let store: SQLStore
    let cookie: ConsoleCookie
    let renderer: ConsoleRenderer
    static let formLimit = 256 * 1024

    static let securityHeaders: HTTPFields = [
        HTTPField.Name("Content-Security-Policy")!:
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
        HTTPField.Name("X-Frame-Options")!: "DENY",
        HTTPField.Name("Referrer-Policy")!: "no-referrer",
        HTTPField.Name("X-Content-Type-Options")!: "nosniff",
    ]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response: Response
        do {
            response = try await guarded(request, context: context, next: next)
        } catch {
            response = errorPage(error, context: context)
        }
        for field in Self.securityHeaders { response.headers[field.name] = field.value }
        if !request.uri.path.hasPrefix("/console/static/") { response.headers[.cacheControl] = "no-store" }
        return response
    }

    private func guarded(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        if path.hasPrefix("/console/static/") { return try await next(request, context) }
        var request = request
        var context = context
        if request.method == .post {
            // With `Referrer-Policy: no-referrer` browsers send `Origin: null` on same-origin forms; `Sec-Fetch-Site`
            // (every current browser) still tells a cross-site form apart.
            let fetchSite = request.headers[HTTPField.Name("Sec-Fetch-Site")!]
            let origin = request.headers[.origin].flatMap { $0 == "null" ? nil : $0 }
            let foreignOrigin = origin.map { !Self.sameOrigin($0, host: request.head.authority) } ?? false
            if fetchSite == "cross-site" || fetchSite == "same-site" || foreignOrigin {
                throw APIError(.forbidden, "This form was sent from another site; the console accepts forms from its own pages only.")
            }
            let body = try await request.collectBody(upTo: Self.formLimit)
            context.consoleForm = FormBody(String(buffer: body))
        }
        if path == "/console/sign-in" { return try await next(request, context) }
        guard let value = ConsoleCookie.presented(request.headers), let id = cookie.sessionId(from: value),
            let session = try await store.read({ try await $0.consoleSession(id: id) })
        else {
            let back = request.method == .get ? "?next=" + ConsoleRoutes.queryEncode(request.uri.description) : ""
            return ConsoleRenderer.redirect("/console/sign-in" + back)
        }
        if request.method == .post {
            let presented = context.consoleForm?["_csrf"] ?? ""
            guard ConsoleRoutes.constantTimeEqual(presented, session.csrfToken) else {
                throw APIError(
                    .forbidden, "The form's CSRF token is missing or does not match this session; reload the page and try again.")
            }
        }
        context.consoleSession = session
        context.environment = session.environment
        context.logger[metadataKey: "environment"] = "\(session.environment.name)"
        return try await next(request, context)
    }

    /// Whether an `Origin` names the host the request was sent to (scheme aside: TLS may end at a proxy).
    static func sameOrigin(_ origin: String, host: String?) -> Bool {
        guard let host, let components = URLComponents(string: origin), let originHost = components.host else { return false }
        let originAuthority = components.port.map { "\(originHost):\($0)" } ?? originHost
        return originAuthority.lowercased() == host.lowercased()
    }

    func errorPage(_ error: any Error, context: Context) -> Response {
        let apiError = APIErrorMiddleware<Context>.apiError(for: error)
        if apiError.status == .internalServerError {
            context.logger.error("console request failed", metadata: ["error": "\(error)"])
        }
        var values: [String: Any] = [
            "status": "\(apiError.status.code) \(apiError.status.reasonPhrase)",
            "message": apiError.status == .internalServerError ? "Something went wrong; the server log has the details." : apiError.message,
        ]
        if let session = context.consoleSession { values.merge(ConsoleRoutes.layout(session, current: nil), uniquingKeysWith: { $1 }) }
        var response = renderer.page("error", values, status: apiError.status)
        for field in apiError.headers { response.headers[field.name] = field.value }
        return response
    }
}
