import HeraldCore
import HeraldStore
import Hummingbird

/// `GET /healthz` (the process answers) and `GET /readyz` (the database answers and has this binary's schema).
/// Neither needs a key nor shows tenant data.
struct HealthRoutes {
    let store: SQLStore

    func register(on router: Router<HeraldRequestContext>) {
        router.get("/healthz") { _, _ in
            JSONResponse.make(["status": "ok"])
        }
        router.get("/readyz") { _, context in
            do {
                let (ready, detail) = try await store.readiness()
                return JSONResponse.make(
                    ["status": .string(ready ? "ready" : "not_ready"), "detail": .string(detail)], status: ready ? .ok : .serviceUnavailable
                )
            } catch {
                context.logger.warning("readiness check failed", metadata: ["error": "\(error)"])
                return JSONResponse.make(["status": "not_ready", "detail": "database unavailable"], status: .serviceUnavailable)
            }
        }
    }
}
