import ArgumentParser
import Foundation
import HeraldCore
import Logging

@main
struct Herald: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "herald",
        abstract:
            "Self-hosted notification orchestration: workflows, device tokens and providers behind Novu- and Centrifugo-compatible APIs.",
        discussion: """
            Flags override environment variables, which override defaults. Every command that touches the database takes
            --database (HERALD_DATABASE_URL, default sqlite://./herald.sqlite).
            """,
        subcommands: [Serve.self, Migrate.self, EnvCommand.self, KeysCommand.self, Validate.self, Graph.self, Simulate.self, Dev.self]
    )
}

/// Runs a command body and turns Herald's own errors into one line on stderr and exit status 1 (no stack trace).
func reportingErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as HeraldError {
        FileHandle.standardError.write(Data("herald: \(error.message)\n".utf8))
        throw ExitCode(1)
    }
}

/// Sets up logging once: human-readable lines on stderr at `HERALD_LOG_LEVEL` (default `info`).
/// The process's logger (standard error). With `devLines`, engine events `herald dev` shows as lines of its own
/// output (``Dev/skipped(_:)``) are printed that way instead.
func makeLogger(level: String?, devLines: Bool = false) throws -> Logger {
    let levelName = level ?? ProcessInfo.processInfo.environment["HERALD_LOG_LEVEL"] ?? "info"
    guard let logLevel = Logger.Level(rawValue: levelName.lowercased()) else {
        throw HeraldError(.configuration, "unknown log level '\(levelName)' (trace, debug, info, notice, warning, error, critical)")
    }
    LoggingBootstrap.once(level: logLevel, devLines: devLines)
    var logger = Logger(label: "herald")
    // `herald dev` lines come from `info` events (steps turned off by preferences): let them through to the dev
    // handler, which forwards everything else only at the chosen level.
    logger.logLevel = devLines ? min(logLevel, .info) : logLevel
    return logger
}

enum LoggingBootstrap {
    nonisolated(unsafe) private static var done = false
    private static let lock = NSLock()

    static func once(level: Logger.Level, devLines: Bool) {
        lock.lock()
        defer { lock.unlock() }
        guard !done else { return }
        done = true
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return devLines ? DevLogHandler(wrapping: handler, level: min(level, .info)) : handler
        }
    }
}

/// Prints the engine's `step.skipped` events as `herald dev` lines; everything else goes to the wrapped handler at
/// the wrapped handler's level (this handler's own level is at most `info`, where preference skips are logged).
struct DevLogHandler: LogHandler {
    var wrapped: StreamLogHandler
    var logLevel: Logger.Level

    init(wrapping handler: StreamLogHandler, level: Logger.Level) {
        wrapped = handler
        logLevel = level
    }
    var metadata: Logger.Metadata {
        get { wrapped.metadata }
        set { wrapped.metadata = newValue }
    }
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { wrapped[metadataKey: key] }
        set { wrapped[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        if case .string("step.skipped")? = event.metadata?["event"] {
            Dev.skipped(event.metadata ?? [:])
        } else if event.level >= wrapped.logLevel {
            wrapped.log(event: event)
        }
    }
}
