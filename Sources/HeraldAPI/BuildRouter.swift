import HeraldCore
import HeraldEngine
import HeraldStore
import Hummingbird

/// Builds the router of the whole HTTP API: public health routes, and the Novu (`/v1`, `/v2`) and Centrifugo (`/api`)
/// surfaces behind ``AuthMiddleware``. Errors everywhere render in the called API's format.
public func buildRouter(store: SQLStore, runtime: Runtime, configuration: APIConfiguration = .init()) -> Router<HeraldRequestContext> {
    let router = Router(context: HeraldRequestContext.self)
    router.add(middleware: RequestLogMiddleware())
    router.add(middleware: APIErrorMiddleware(clock: store.clock))
    router.add(middleware: AuthMiddleware(store: store))
    router.add(middleware: BodyLimitMiddleware(maxBytes: configuration.maxBodyBytes))
    router.add(middleware: IdempotencyMiddleware(store: store))
    HealthRoutes(store: store).register(on: router)
    MetricsRoutes(store: store, metrics: runtime.metrics).register(on: router)
    let api = router.group()
    SubscriberRoutes(store: store, policy: runtime.policy).register(on: api)
    IntegrationRoutes(store: store, policy: runtime.policy).register(on: api)
    TopicRoutes(store: store).register(on: api)
    CentrifugoRoutes(store: store, pushes: runtime.pushes, policy: runtime.policy).register(on: api)
    EventRoutes(runtime: runtime).register(on: api)
    ActivityRoutes(store: store, workflows: runtime.workflows).register(on: api)
    DeliveryRoutes(store: store, engine: runtime.engine, pushes: runtime.pushes).register(on: api)
    return router
}
