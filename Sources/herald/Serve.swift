import ArgumentParser
import Foundation
import HeraldAPI
import HeraldCore
import HeraldProviders
import HeraldStore
import Hummingbird

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the Herald server.",
        discussion: """
            On first start with an empty database it creates the `development`
            environment; its secret key is HERALD_API_KEY if set, otherwise a
            generated key printed once to stdout. Stops gracefully on SIGTERM or
            SIGINT.

            Every option below can also be set by the environment variable named
            in its help: a flag wins over the variable, the variable over the
            default.

            Environment variables without flags:
              HERALD_API_KEY
                  The development environment's key on first start (16-256
                  printable characters). [default: generated, printed once]
              HERALD_ENCRYPTION_KEY
                  32 bytes in base64 (openssl rand -base64 32): the AES-256-GCM
                  key of integration credentials; back it up with the database.
                  [default: SQLite: generated into <database>.key, mode 0600;
                  PostgreSQL: required]
              HERALD_ENCRYPTION_KEY_PREVIOUS
                  Comma-separated older keys still accepted for decryption
                  while rotating. [default: none]
              HERALD_RETRY_MAX_ATTEMPTS
                  Attempts per delivery before it is dead. [default: 12]
              HERALD_RETRY_MAX_AGE
                  Seconds after the first attempt beyond which no retry is
                  scheduled. [default: 86400]
              HERALD_WEBHOOK_MAX_AGE
                  Seconds after which an undelivered status-webhook event is
                  dead. [default: 259200]
              HERALD_WEBHOOK_DISABLE_AFTER
                  Seconds of nothing but failed attempts after which a
                  status-webhook endpoint is disabled. [default: 432000]
              HERALD_TOKEN_GUARD_SHARE
                  Largest share of an integration's tokens one all-invalid
                  batch may delete; larger batches are held back as a likely
                  misconfiguration. [default: 0.5]
              HERALD_CA_FILE
                  A PEM file of CA certificates that outbound TLS trusts
                  besides the system store (the simulator's CA in development
                  and tests). [default: none]
            """
    )

    @Option(help: ArgumentHelp("Bind address. [env: HERALD_HOST] [default: 127.0.0.1]", valueName: "host"))
    var host: String?

    @Option(help: ArgumentHelp("HTTP port; 0 picks a free one. [env: HERALD_PORT] [default: 3000]", valueName: "port"))
    var port: Int?

    @Option(
        help: ArgumentHelp("Directory of workflow files (*.yaml, *.yml). [env: HERALD_WORKFLOWS] [default: ./workflows]", valueName: "dir"))
    var workflows: String?

    @Option(
        help: ArgumentHelp("Jobs in flight at once. [env: HERALD_WORKERS] [default: 8, or twice the CPU count when more]", valueName: "n"))
    var workers: Int?

    @Option(
        help: ArgumentHelp(
            "What this process runs: api (the HTTP API, no queue workers), worker (queue workers; HTTP serves only /healthz, /readyz and /metrics) or all. [env: HERALD_ROLE] [default: all]",
            valueName: "role"))
    var role: String?

    @Option(
        help: ArgumentHelp(
            "Comma-separated hosts/CIDRs that outbound calls may reach although private or loopback. [env: HERALD_ALLOW_PRIVATE_NETWORK] [default: none]",
            valueName: "list"
        )
    )
    var allowPrivateNetwork: String?

    @Option(
        help: ArgumentHelp(
            "Herald's public base URL as recipients and providers reach it, e.g. https://herald.example.com: one-click unsubscribe links (List-Unsubscribe, {{unsubscribeUrl}}) and Twilio's status callbacks start with it. [env: HERALD_PUBLIC_URL] [default: none, so emails carry no unsubscribe link and Twilio receipts are not requested]",
            valueName: "url"))
    var publicUrl: String?

    @Option(
        help: ArgumentHelp(
            "The operator console at /console, signed in with an environment's secret key: on or off. [env: HERALD_CONSOLE] [default: on]",
            valueName: "on|off"))
    var console: ConsoleSwitch?

    @Option(help: ArgumentHelp("Largest request body in bytes. [env: HERALD_MAX_BODY_BYTES] [default: 524288]", valueName: "bytes"))
    var maxBodyBytes: Int?

    @Option(
        help: ArgumentHelp(
            "Seconds a worker holds a claimed job before another may claim it: the last resort behind worker liveness (--worker-timeout). [env: HERALD_JOB_LEASE] [default: 60]",
            valueName: "seconds"))
    var jobLease: Int?

    @Option(
        help: ArgumentHelp(
            "Seconds after which a worker process whose heartbeat stopped counts as dead and its jobs are taken over. [env: HERALD_WORKER_TIMEOUT] [default: 5]",
            valueName: "seconds"))
    var workerTimeout: Int?

    @Option(
        help: ArgumentHelp(
            "Remove devices with no successful delivery and no re-registration for this many seconds. [env: HERALD_DEVICE_TTL] [default: off]",
            valueName: "seconds"))
    var deviceTtl: Int?

    @Flag(help: "Do not apply pending migrations on start-up; refuse to start if any are pending.")
    var noMigrate = false

    @OptionGroup var options: DatabaseOptions

    func run() async throws {
        try await reportingErrors {
            let configuration = try resolve(environment: ProcessInfo.processInfo.environment)
            let logger = try makeLogger(level: options.logLevel)
            let store = try await options.openStore(logger: logger)
            // The composition root: the outbound URL policy, the one HTTP transport and the provider factory.
            let policy = try OutboundURLPolicy(allowing: configuration.allowPrivateNetwork)
            let transport = HTTPTransport(caFile: ProcessInfo.processInfo.environment["HERALD_CA_FILE"], policy: policy)
            let application = buildApplication(
                configuration: configuration, store: store,
                providers: StandardProviderFactory(transport: transport, clock: store.clock, publicURL: configuration.engine.publicURL),
                policy: policy, logger: logger,
                onBootstrap: { result in
                    // Written straight to stdout (unbuffered), so it shows at once even when stdout is a pipe.
                    if let key = result.generatedKey {
                        writeLine("Created environment '\(result.environment.name)'. Its secret API key (shown once, store it safely):")
                        writeLine(key.revealed)
                    } else {
                        writeLine("Created environment '\(result.environment.name)' with the key from HERALD_API_KEY.")
                    }
                },
                onServerRunning: { port in
                    logger.info(
                        "herald is listening",
                        metadata: ["address": "http://\(configuration.host):\(port)", "database": "\(try! options.databaseURL())"])
                }
            )
            do {
                try await application.runService()
            } catch let error as HeraldError {
                await transport.shutdown()
                throw error
            } catch {
                await transport.shutdown()
                throw HeraldError(.internal, "server stopped: \(error)")
            }
            await transport.shutdown()
        }
    }

    /// Flags over environment variables over defaults.
    func resolve(environment: [String: String]) throws -> ServerConfiguration {
        var configuration = ServerConfiguration()
        configuration.host = host ?? environment["HERALD_HOST"] ?? configuration.host
        configuration.port = try port ?? environment["HERALD_PORT"].map { try Self.integer($0, name: "HERALD_PORT") } ?? configuration.port
        guard (0...65535).contains(configuration.port) else { throw HeraldError(.configuration, "port must be 0–65535") }
        configuration.workflowsDirectory = workflows ?? environment["HERALD_WORKFLOWS"] ?? configuration.workflowsDirectory
        configuration.workers =
            try workers ?? environment["HERALD_WORKERS"].map { try Self.integer($0, name: "HERALD_WORKERS") } ?? configuration.workers
        guard configuration.workers > 0 else { throw HeraldError(.configuration, "workers must be at least 1") }
        let roleName = role ?? environment["HERALD_ROLE"] ?? "all"
        guard let parsedRole = ServerConfiguration.Role(rawValue: roleName) else {
            throw HeraldError(.configuration, "unknown role '\(roleName)' (api, worker or all)")
        }
        configuration.role = parsedRole
        configuration.allowPrivateNetwork = (allowPrivateNetwork ?? environment["HERALD_ALLOW_PRIVATE_NETWORK"] ?? "")
            .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        do { _ = try OutboundURLPolicy(allowing: configuration.allowPrivateNetwork) } catch let refusal as OutboundURLRefusal {
            throw HeraldError(.configuration, "--allow-private-network: \(refusal.reason)")
        }
        if let url = publicUrl ?? environment["HERALD_PUBLIC_URL"], !url.isEmpty {
            configuration.engine.publicURL = try Self.publicURL(url)
        }
        let consoleSetting =
            try console ?? environment["HERALD_CONSOLE"].map { value in
                guard let setting = ConsoleSwitch(rawValue: value) else {
                    throw HeraldError(.configuration, "HERALD_CONSOLE must be on or off")
                }
                return setting
            } ?? .on
        configuration.api.console = consoleSetting == .on
        configuration.api.secureCookies = configuration.engine.publicURL?.hasPrefix("https://") == true
        configuration.api.maxBodyBytes =
            try maxBodyBytes ?? environment["HERALD_MAX_BODY_BYTES"].map { try Self.integer($0, name: "HERALD_MAX_BODY_BYTES") }
            ?? configuration.api.maxBodyBytes
        guard configuration.api.maxBodyBytes >= 1024 else {
            throw HeraldError(.configuration, "the body limit must be at least 1024 bytes")
        }
        let lease = try jobLease ?? environment["HERALD_JOB_LEASE"].map { try Self.integer($0, name: "HERALD_JOB_LEASE") } ?? 60
        guard (1...3600).contains(lease) else { throw HeraldError(.configuration, "the job lease must be 1–3600 seconds") }
        configuration.jobLease = .seconds(lease)
        let timeout =
            try workerTimeout ?? environment["HERALD_WORKER_TIMEOUT"].map { try Self.integer($0, name: "HERALD_WORKER_TIMEOUT") } ?? 5
        guard (2...600).contains(timeout) else { throw HeraldError(.configuration, "the worker timeout must be 2–600 seconds") }
        configuration.workerTimeout = .seconds(timeout)
        if let attempts = try environment["HERALD_RETRY_MAX_ATTEMPTS"].map({ try Self.integer($0, name: "HERALD_RETRY_MAX_ATTEMPTS") }) {
            guard attempts >= 1 else { throw HeraldError(.configuration, "HERALD_RETRY_MAX_ATTEMPTS must be at least 1") }
            configuration.engine.retryPolicy.maximumAttempts = attempts
        }
        if let age = try environment["HERALD_RETRY_MAX_AGE"].map({ try Self.integer($0, name: "HERALD_RETRY_MAX_AGE") }) {
            guard age >= 1 else { throw HeraldError(.configuration, "HERALD_RETRY_MAX_AGE must be at least 1 second") }
            configuration.engine.retryPolicy.maximumAge = .seconds(age)
        }
        if let age = try environment["HERALD_WEBHOOK_MAX_AGE"].map({ try Self.integer($0, name: "HERALD_WEBHOOK_MAX_AGE") }) {
            guard age >= 60 else { throw HeraldError(.configuration, "HERALD_WEBHOOK_MAX_AGE must be at least 60 seconds") }
            configuration.engine.webhookRetry.maxAge = TimeInterval(age)
        }
        if let after = try environment["HERALD_WEBHOOK_DISABLE_AFTER"].map({ try Self.integer($0, name: "HERALD_WEBHOOK_DISABLE_AFTER") }) {
            guard after >= 60 else { throw HeraldError(.configuration, "HERALD_WEBHOOK_DISABLE_AFTER must be at least 60 seconds") }
            configuration.engine.webhookRetry.disableAfter = TimeInterval(after)
        }
        if let share = environment["HERALD_TOKEN_GUARD_SHARE"] {
            guard let value = Double(share), (0...1).contains(value) else {
                throw HeraldError(.configuration, "HERALD_TOKEN_GUARD_SHARE must be a number from 0 to 1")
            }
            configuration.engine.invalidTokenGuard.maximumShare = value
        }
        if let ttl = try deviceTtl ?? environment["HERALD_DEVICE_TTL"].map({ try Self.integer($0, name: "HERALD_DEVICE_TTL") }) {
            guard ttl >= 60 else { throw HeraldError(.configuration, "the device TTL must be at least 60 seconds") }
            configuration.deviceTTL = .seconds(ttl)
        }
        configuration.migrate = !noMigrate
        configuration.initialAPIKey = environment["HERALD_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        return configuration
    }

    /// A public base URL: absolute http(s) with a host, no query or fragment; a trailing slash is dropped.
    static func publicURL(_ text: String) throws -> String {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
            scheme == "https" || scheme == "http", let host = components.host, !host.isEmpty, components.query == nil,
            components.fragment == nil, components.user == nil
        else {
            throw HeraldError(.configuration, "--public-url must be an absolute http(s) URL such as https://herald.example.com")
        }
        return text.hasSuffix("/") ? String(text.dropLast()) : text
    }

    private func writeLine(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    private static func integer(_ text: String, name: String) throws -> Int {
        guard let value = Int(text) else { throw HeraldError(.configuration, "\(name) must be a whole number, not '\(text)'") }
        return value
    }
}

/// `--console on|off`.
enum ConsoleSwitch: String, ExpressibleByArgument, Sendable {
    case on
    case off
}
