import Hummingbird

/// Guards what routes read from the URL, before any of them runs:
///
/// * U+0000 (`%00`) in the path or query is a 400: PostgreSQL can store and compare no text with it (a lookup would
///   fail with a 500), and no identifier Herald issues or accepts contains it;
/// * path parameters are percent-decoded (the router matches raw segments and hands them over raw), so a subscriber
///   created as `a b` is `GET /v2/subscribers/a%20b`; malformed percent-encoding is a 400.
struct URIGuardMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // "00" has no hex letters, so this one spelling is every encoding of U+0000.
        if request.uri.description.contains("%00") { throw APIError(.badRequest, "The URL must not contain %00 (U+0000)") }
        guard context.parameters.contains(where: { $0.value.contains("%") }) else { return try await next(request, context) }
        var decoded = Parameters()
        for (name, value) in context.parameters {
            guard let text = value.removingPercentEncoding else {
                throw APIError(.badRequest, "The path segment for \(name) has malformed percent-encoding")
            }
            decoded[name] = Substring(text)
        }
        var context = context
        context.coreContext.parameters = decoded
        return try await next(request, context)
    }
}
