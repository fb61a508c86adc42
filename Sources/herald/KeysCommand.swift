import ArgumentParser
import HeraldCore
import HeraldStore

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Manage the secret API keys of an environment.",
        subcommands: [Create.self, List.self, Revoke.self]
    )

    struct EnvironmentOption: ParsableArguments {
        @Option(name: .customLong("env"), help: ArgumentHelp("Environment name.", valueName: "name")) var environment: String

        func resolve(_ store: SQLStore) async throws -> Environment {
            guard let environment = try await store.read({ [environment] in try await $0.environment(named: environment) }) else {
                throw HeraldError.notFound("no environment named '\(environment)' (see: herald env list)")
            }
            return environment
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key and print it (shown once; only its hash is stored).")
        @OptionGroup var environment: EnvironmentOption
        @OptionGroup var options: DatabaseOptions

        func run() async throws {
            try await options.run { store in
                let target = try await environment.resolve(store)
                let (key, secret) = try await store.transaction { try await $0.createAPIKey(environmentId: target.id) }
                print("created key \(key.prefix)… (\(key.id)) for '\(target.name)'")
                print("API key (shown once, store it safely): \(secret.revealed)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys by prefix; the keys themselves are never stored.")
        @OptionGroup var environment: EnvironmentOption
        @OptionGroup var options: DatabaseOptions

        func run() async throws {
            try await options.run { store in
                let target = try await environment.resolve(store)
                for key in try await store.read({ try await $0.apiKeys(environmentId: target.id) }) {
                    let state = key.revokedAt.map { "revoked \($0.iso8601Milliseconds)" } ?? "active"
                    print("\(key.prefix)…\t\(key.id)\tcreated \(key.createdAt.iso8601Milliseconds)\t\(state)")
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key by its prefix or id; it stops working at once.")
        @Argument(help: "The key's prefix (as listed) or id.") var reference: String
        @OptionGroup var environment: EnvironmentOption
        @OptionGroup var options: DatabaseOptions

        func run() async throws {
            try await options.run { store in
                let target = try await environment.resolve(store)
                let reference = self.reference.hasSuffix("…") ? String(self.reference.dropLast()) : self.reference
                let key = try await store.transaction { try await $0.revokeAPIKey(environmentId: target.id, reference: reference) }
                print("revoked key \(key.prefix)… (\(key.id)) of '\(target.name)'")
            }
        }
    }
}
