import HeraldCore
import HeraldEngine
import HeraldProviders
import HeraldStore
import HeraldWorkflow
import Logging

/// What routes need beyond the store: the live workflows, trigger intake, the engine (cancel), metrics and the outbound
/// URL policy that vets URLs when they are stored. The composition root (`herald serve`, `herald dev`, a test) builds
/// the policy and the provider factory and passes them in: nothing here is process-wide.
public struct Runtime: Sendable {
    public let workflows: WorkflowRegistry
    public let intake: TriggerIntake
    /// Raw provider-payload sends (Centrifugo).
    public let pushes: PushIntake
    public let engine: Engine
    public let metrics: EngineMetrics
    public let validator: TriggerValidator
    public let policy: OutboundURLPolicy
    public let logger: Logger

    public init(
        store: SQLStore, providers: any ProviderFactory, policy: OutboundURLPolicy, workflows: WorkflowRegistry = WorkflowRegistry(),
        engineConfiguration: EngineConfiguration = .init(), metrics: EngineMetrics = EngineMetrics(),
        logger: Logger = Logger(label: "herald")
    ) {
        self.workflows = workflows
        self.logger = logger
        self.metrics = metrics
        self.policy = policy
        self.validator = TriggerValidator(workflows: workflows, policy: policy)
        self.intake = TriggerIntake(store: store, validator: validator, metrics: metrics)
        let engine = Engine(
            store: store, workflows: workflows, providers: ProviderPool(factory: providers), metrics: metrics,
            configuration: engineConfiguration,
            logger: logger)
        self.engine = engine
        self.pushes = PushIntake(store: store, metrics: metrics, policy: policy, engine: engine)
    }
}
