import HeraldCore
import HeraldEngine
import HeraldStore
import HeraldWorkflow
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// How `herald serve` runs (`README.md` §Configuration). Every field has the documented default.
public struct ServerConfiguration: Sendable {
    /// Bind address (default `127.0.0.1`).
    public var host: String = "127.0.0.1"
    /// HTTP port (default 3000, Novu's); 0 picks a free port.
    public var port: Int = 3000
    /// Directory of workflow files (default `./workflows`).
    public var workflowsDirectory: String = "./workflows"
    /// Jobs in flight at once (default: 8, or twice the CPU count when that is more). Delivery jobs spend most of
    /// their time waiting for providers, so this is well above the core count.
    public var workers: Int = max(8, 2 * System.coreCount)
    /// Which parts run in this process.
    public var role: Role = .all
    /// Hosts and CIDRs outbound calls may reach although private or loopback.
    public var allowPrivateNetwork: [String] = []
    /// Apply pending migrations on start-up (default true).
    public var migrate: Bool = true
    /// The development key to create on an empty database (`HERALD_API_KEY`); nil generates one.
    public var initialAPIKey: String? = nil
    /// HTTP API settings.
    public var api: APIConfiguration = .init()
    /// Retry policy, guard and fan-out settings.
    public var engine: EngineConfiguration = .init()
    /// How long a worker holds a claimed job before another may claim it (a crashed worker's jobs wait this long).
    public var jobLease: Duration = .seconds(60)
    /// How old a worker process's heartbeat may get before it counts as dead and its jobs are released (default 5 s;
    /// heartbeats go every second, or every third of this when shorter).
    public var workerTimeout: Duration = .seconds(5)
    /// Longest idle workers sleep without a wake-up signal.
    public var pollInterval: Duration = .seconds(1)
    /// Remove devices without a successful delivery or re-registration for this long (nil: never).
    public var deviceTTL: Duration? = nil

    public init() {}

    /// Which parts of Herald a process runs.
    public enum Role: String, Sendable, CaseIterable {
        /// HTTP intake only.
        case api
        /// Queue workers only.
        case worker
        /// Both (the default).
        case all
    }
}

/// What ``buildApplication(configuration:store:logger:onBootstrap:onServerRunning:)`` reports when the first start
/// created the development environment.
public struct BootstrapResult: Sendable {
    public var environment: HeraldCore.Environment
    /// The generated key, or nil when it came from `HERALD_API_KEY` (the operator knows it already).
    public var generatedKey: Secret?
}

/// The composition root: the store first (so it stops last), the workflow directory (loaded now, re-read every
/// 2 s), then the HTTP server. Before the server accepts
/// connections it migrates (unless disabled), checks the encryption key, and on an empty database creates the
/// `development` environment and its key.
public func buildApplication(
    configuration: ServerConfiguration, store: SQLStore, providers: any ProviderFactory, policy: OutboundURLPolicy,
    workflows: WorkflowRegistry = WorkflowRegistry(), logger: Logger,
    onBootstrap: @escaping @Sendable (BootstrapResult) -> Void = { _ in },
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> some ApplicationProtocol {
    let runtime = Runtime(
        store: store, providers: providers, policy: policy, workflows: workflows, engineConfiguration: configuration.engine,
        logger: logger)
    let router = buildRouter(store: store, runtime: runtime, configuration: configuration.api, servesAPI: configuration.role != .worker)
    let workflowService = WorkflowDirectoryService(directory: configuration.workflowsDirectory, registry: workflows, logger: logger)
    workflowService.load()
    var services: [any Service] = [store, workflowService]
    // The dispatcher starts claiming once the schema is migrated (the server's start-up hook opens the gate).
    let schemaReady = ReadyGate()
    if configuration.role != .api {
        services.append(
            Dispatcher(
                store: store, engine: runtime.engine, metrics: runtime.metrics, workers: configuration.workers,
                lease: configuration.jobLease, pollInterval: configuration.pollInterval,
                heartbeatInterval: min(.seconds(1), configuration.workerTimeout / 3), workerTimeout: configuration.workerTimeout,
                logger: logger,
                ready: { await schemaReady.wait() }))
        if let ttl = configuration.deviceTTL {
            services.append(
                DeviceSweeper(
                    store: store, ttl: ttl, logger: logger,
                    ready: { await schemaReady.wait() }))
        }
    }
    var application = Application(
        router: router,
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "Herald"),
        services: services,
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? configuration.port) },
        logger: logger
    )
    application.beforeServerStarts {
        let migrator = try store.migrator()
        if configuration.migrate {
            let report = try await migrator.migrate()
            if !report.applied.isEmpty {
                logger.info("database migrated", metadata: ["version": "\(report.version)", "applied": "\(report.applied)"])
            }
        } else {
            let version = try await migrator.currentVersion()
            guard version == migrator.latestVersion else {
                throw HeraldError(
                    .schema,
                    "the database schema is at version \(version) but this binary needs \(migrator.latestVersion); run `herald migrate` or start without --no-migrate"
                )
            }
        }
        try await store.transaction { try await $0.verifyEncryptionKey() }
        // Environments from before migration 0008 get their unsubscribe key now, so the engine only ever reads it.
        try await store.transaction { try await $0.ensureUnsubscribeKeys() }
        schemaReady.open()
        if let (environment, key) = try await store.transaction({ try await $0.bootstrap(providedKey: configuration.initialAPIKey) }) {
            onBootstrap(BootstrapResult(environment: environment, generatedKey: configuration.initialAPIKey == nil ? key : nil))
        }
    }
    return application
}

/// A one-way gate: `wait()` returns once `open()` was called (at once afterwards).
final class ReadyGate: Sendable {
    private let state = Mutex<(open: Bool, waiting: [CheckedContinuation<Void, Never>])>((false, []))

    func wait() async {
        await withCheckedContinuation { continuation in
            let resumeNow = state.withLock { state -> Bool in
                if state.open { return true }
                state.waiting.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    func open() {
        let waiting = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.open = true
            defer { state.waiting.removeAll() }
            return state.waiting
        }
        for continuation in waiting { continuation.resume() }
    }
}
