import HeraldCore
import HeraldEngine
import HeraldStore
import Hummingbird

/// Builds the router of the whole HTTP API: public health routes and the OpenAPI document, and the Novu (`/v1`, `/v2`) and Centrifugo (`/api`)
/// surfaces behind ``AuthMiddleware``. Errors everywhere render in the called API's format. Without `servesAPI` (a
/// `--role worker` process) only `/healthz`, `/readyz` and `/metrics` are served; every other path is a 404 saying so.
public func buildRouter(
    store: SQLStore, runtime: Runtime, configuration: APIConfiguration = .init(), servesAPI: Bool = true
) -> Router<HeraldRequestContext> {
    let router = Router(context: HeraldRequestContext.self)
    router.add(middleware: RequestLogMiddleware())
    router.add(middleware: APIErrorMiddleware(clock: store.clock))
    router.add(middleware: URIGuardMiddleware())
    if !servesAPI { router.add(middleware: WorkerOnlyMiddleware()) }
    router.add(middleware: AuthMiddleware(store: store, console: servesAPI && configuration.console))
    let routes = RouteTable()
    router.add(middleware: MethodNotAllowedMiddleware(routes: routes))
    router.add(middleware: BodyLimitMiddleware(maxBytes: configuration.maxBodyBytes))
    router.add(middleware: IdempotencyMiddleware(store: store))
    defer { routes.load(router.routes.map { (path: "\($0.path)", method: $0.method.rawValue) }) }
    HealthRoutes(store: store).register(on: router)
    MetricsRoutes(store: store, metrics: runtime.metrics).register(on: router)
    guard servesAPI else { return router }
    let api = router.group()
    SubscriberRoutes(store: store, policy: runtime.policy).register(on: api)
    PreferenceRoutes(store: store, workflows: runtime.workflows).register(on: api)
    UnsubscribeRoutes(store: store, workflows: runtime.workflows, engine: runtime.engine, runtimeMetrics: runtime.metrics).register(
        on: router)
    ReceiptRoutes(store: store, engine: runtime.engine, metrics: runtime.metrics).register(on: router)
    OpenAPIRoutes().register(on: router)
    IntegrationRoutes(store: store, policy: runtime.policy).register(on: api)
    TopicRoutes(store: store).register(on: api)
    WebhookRoutes(store: store, engine: runtime.engine, policy: runtime.policy).register(on: api)
    SuppressionRoutes(store: store).register(on: api)
    CentrifugoRoutes(store: store, pushes: runtime.pushes, policy: runtime.policy).register(on: api)
    EventRoutes(runtime: runtime).register(on: api)
    ActivityRoutes(store: store, workflows: runtime.workflows).register(on: api)
    DeliveryRoutes(store: store, engine: runtime.engine, pushes: runtime.pushes).register(on: api)
    if configuration.console {
        // The templates ship inside the binary's resources; failing to read them is a broken install, not a request error.
        do {
            try ConsoleRoutes(store: store, runtime: runtime, configuration: configuration).register(on: router)
        } catch {
            runtime.logger.error("the console's templates could not be loaded; /console is off", metadata: ["error": "\(error)"])
        }
    }
    return router
}

/// In a `--role worker` process, answers every path but the health and metrics routes with a 404 that says why.
struct WorkerOnlyMiddleware: RouterMiddleware {
    typealias Context = HeraldRequestContext
    static let served: Set<String> = ["/healthz", "/readyz", "/metrics"]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard Self.served.contains(request.uri.path) else {
            throw HeraldError(.notFound, "this process runs with --role worker: it serves only /healthz, /readyz and /metrics")
        }
        return try await next(request, context)
    }
}
