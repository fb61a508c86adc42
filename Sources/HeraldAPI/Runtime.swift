import HeraldCore
import HeraldEngine
import HeraldProviders
import HeraldStore
import HeraldWorkflow
import Logging

/// What routes need beyond the store: the live workflows, trigger intake, the engine (cancel) and metrics.
public struct Runtime: Sendable {
    public let workflows: WorkflowRegistry
    public let intake: TriggerIntake
    /// Raw provider-payload sends (Centrifugo).
    public let pushes: PushIntake
    public let engine: Engine
    public let metrics: EngineMetrics
    public let validator: TriggerValidator

    public init(
        store: SQLStore, workflows: WorkflowRegistry = WorkflowRegistry(), providers: (any ProviderFactory)? = nil,
        engineConfiguration: EngineConfiguration = .init(), metrics: EngineMetrics = EngineMetrics(),
        logger: Logger = Logger(label: "herald")
    ) {
        self.workflows = workflows
        self.metrics = metrics
        self.validator = TriggerValidator(workflows: workflows)
        self.intake = TriggerIntake(store: store, validator: validator, metrics: metrics)
        self.pushes = PushIntake(store: store, metrics: metrics)
        let factory = providers ?? StandardProviderFactory(transport: .shared, clock: store.clock)
        self.engine = Engine(
            store: store, workflows: workflows, providers: ProviderPool(factory: factory), metrics: metrics,
            configuration: engineConfiguration,
            logger: logger)
    }
}
