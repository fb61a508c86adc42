import Foundation
import HeraldWorkflow
import Logging
import ServiceLifecycle

/// Loads the workflow directory into a ``WorkflowRegistry`` at start-up and re-reads it every `interval`, so saved
/// edits go live without a restart. A file that stops validating is reported and its last good version stays active.
public struct WorkflowDirectoryService: Service {
    let directory: String
    let registry: WorkflowRegistry
    let interval: Duration
    let logger: Logger

    public init(directory: String, registry: WorkflowRegistry, interval: Duration = .seconds(2), logger: Logger) {
        self.directory = directory
        self.registry = registry
        self.interval = interval
        self.logger = logger
    }

    /// Reads the directory once and logs what changed.
    public func load() {
        guard FileManager.default.fileExists(atPath: directory) else {
            logger.warning("workflow directory does not exist; no workflows are loaded", metadata: ["directory": "\(directory)"])
            return
        }
        do {
            let before = Set(registry.workflows.keys)
            let findings = registry.update(try WorkflowFiles.read([directory]))
            for finding in findings {
                logger.log(level: finding.severity == .error ? .error : .warning, "\(finding)")
            }
            let after = Set(registry.workflows.keys)
            if before != after || !findings.isEmpty {
                logger.info(
                    "workflows loaded", metadata: ["count": "\(after.count)", "directory": "\(directory)", "ids": "\(after.sorted())"])
            }
        } catch {
            logger.error("cannot read the workflow directory", metadata: ["directory": "\(directory)", "error": "\(error)"])
        }
    }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            if Task.isShuttingDownGracefully { return }
            load()
        }
    }
}
