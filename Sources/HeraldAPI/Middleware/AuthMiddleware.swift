import HTTPTypes
import HeraldCore
import HeraldStore
import Hummingbird

/// Resolves the caller's environment from its secret key. Accepted forms:
///
/// * `Authorization: ApiKey <key>` — Novu SDKs;
/// * `X-API-Key: <key>` — Centrifugo's `cent` SDK (checked first when present, as Centrifugo does);
/// * `Authorization: apikey <key>` — Centrifugo's documented curl form (the scheme is case-insensitive).
///
/// Every path needs a key except the public ones (health and metrics, the OpenAPI document, one-click unsubscribe links, which RFC 8058
/// requires to work with no credentials: the URL's sealed token is the authorisation, and provider receipts, which
/// the provider's own signature authorises), so an unauthenticated caller learns nothing,
/// not even which routes exist. A missing, unknown or revoked key is a 401 in the called API's error format (a key
/// revoked by another process within the last second may still be accepted: ``APIKeyCache``). The key never reaches a log.
public struct AuthMiddleware: RouterMiddleware {
    public typealias Context = HeraldRequestContext
    let store: SQLStore
    let publicPaths: Set<String>
    /// Accepted keys for a second (``APIKeyCache``): a revocation reaches every process within that time.
    let cache = APIKeyCache()

    /// Whether `/console` is served: its pages authenticate with their own session cookie (``ConsoleMiddleware``).
    let console: Bool

    public init(store: SQLStore, publicPaths: Set<String> = ["/healthz", "/readyz", "/metrics", "/openapi.json"], console: Bool = false) {
        self.store = store
        self.publicPaths = publicPaths
        self.console = console
    }

    public func handle(
        _ request: Request, context: HeraldRequestContext, next: (Request, HeraldRequestContext) async throws -> Response
    ) async throws -> Response {
        if publicPaths.contains(request.uri.path) || request.uri.path.hasPrefix(UnsubscribeRoutes.pathPrefix)
            || request.uri.path.hasPrefix(ReceiptRoutes.pathPrefix)
            || (console && (request.uri.path == "/console" || request.uri.path.hasPrefix("/console/")))
        {
            return try await next(request, context)
        }
        guard let key = Self.presentedKey(request.headers) else {
            throw APIError(.unauthorized, "API Key not found in the Authorization header (expected: Authorization: ApiKey <key>)")
        }
        let keyHash = APIKeyFormat.hash(key)
        let environment: HeraldCore.Environment
        if let known = cache.environment(forKeyHash: keyHash) {
            environment = known
        } else {
            guard let found = try await store.read({ try await $0.authenticate(apiKey: key) }) else {
                throw APIError(.unauthorized, "API Key is invalid or revoked")
            }
            cache.remember(found, forKeyHash: keyHash)
            environment = found
        }
        var context = context
        context.environment = environment
        context.logger[metadataKey: "environment"] = "\(environment.name)"
        return try await next(request, context)
    }

    /// The key a request presents, if any.
    static func presentedKey(_ headers: HTTPFields) -> String? {
        if let key = headers[.apiKey]?.trimmingCharacters(in: .whitespaces), !key.isEmpty {
            return key
        }
        guard let authorization = headers[.authorization] else { return nil }
        let parts = authorization.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "apikey" else { return nil }
        return String(parts[1])
    }
}
