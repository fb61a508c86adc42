import ArgumentParser
import HeraldCore
import HeraldStore

struct EnvCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "env",
        abstract: "Manage environments (development, production, …).",
        subcommands: [Create.self, List.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an environment and print its first secret key (shown once).")

        @Argument(help: "Environment name: 1–64 characters of a-z, 0-9, '-' and '_'.") var name: String
        @OptionGroup var options: DatabaseOptions

        func run() async throws {
            try await options.run { store in
                let (environment, secret) = try await store.transaction { session in
                    let environment = try await session.createEnvironment(named: name)
                    let (_, secret) = try await session.createAPIKey(environmentId: environment.id)
                    return (environment, secret)
                }
                print("created environment '\(environment.name)' (\(environment.id))")
                print("API key (shown once, store it safely): \(secret.revealed)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List environments.")
        @OptionGroup var options: DatabaseOptions

        func run() async throws {
            try await options.run { store in
                for environment in try await store.read({ try await $0.environments() }) {
                    print("\(environment.name)\t\(environment.id)\tcreated \(environment.createdAt.iso8601Milliseconds)")
                }
            }
        }
    }
}
