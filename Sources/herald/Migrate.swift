import ArgumentParser
import HeraldStore

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply pending schema migrations and exit.",
        discussion:
            "Idempotent. Refuses a database whose schema is newer than this binary. `serve` does the same on start-up unless --no-migrate."
    )

    @OptionGroup var options: DatabaseOptions

    func run() async throws {
        try await reportingErrors {
            let logger = try makeLogger(level: options.logLevel)
            let store = try await options.openStore(logger: logger)
            try await store.withRunning { store in
                let report = try await store.migrator().migrate()
                if report.applied.isEmpty {
                    print("schema is up to date (version \(report.version))")
                } else {
                    print("applied migrations \(report.applied.map(String.init).joined(separator: ", ")); schema version \(report.version)")
                }
            }
        }
    }
}
