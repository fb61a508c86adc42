import Synchronization

/// The live workflow catalog shared by request handlers and workers: reads are lock-protected snapshots, reloads
/// swap in a new catalog atomically.
public final class WorkflowRegistry: Sendable {
    private let catalog = Mutex(WorkflowCatalog())

    public init() {}

    /// The active workflow for a trigger identifier.
    public func workflow(_ id: String) -> Workflow? { catalog.withLock { $0.workflow(id) } }

    /// Every active workflow, by identifier.
    public var workflows: [String: Workflow] { catalog.withLock { $0.workflows } }

    /// Every current finding.
    public var diagnostics: [Diagnostic] { catalog.withLock { $0.diagnostics } }

    /// The text of a loaded file, or nil.
    public func source(of path: String) -> String? { catalog.withLock { $0.source(of: path) } }

    /// Every loaded file, sorted.
    public var paths: [String] { catalog.withLock { $0.paths } }

    /// Applies a new set of files; returns the findings of the files that changed.
    @discardableResult
    public func update(_ sources: [(path: String, contents: String)]) -> [Diagnostic] {
        catalog.withLock { $0.update(sources) }
    }
}
