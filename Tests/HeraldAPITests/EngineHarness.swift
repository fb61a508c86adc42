import Foundation
import HTTPTypes
import HeraldAPI
import HeraldCore
import HeraldEngine
import HeraldProviders
import HeraldSimulator
import HeraldStore
import HeraldTestSupport
import HeraldWorkflow
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing

/// A running Herald (router, intake, dispatcher) on a fresh database, beside a live simulator on an ephemeral port.
struct EngineHarness: Sendable {
    let client: any TestClientProtocol
    let store: SQLStore
    let environment: HeraldCore.Environment
    let key: String
    let emulator: WebhookEmulator
    let push: PushEmulator
    let chat: ChatEmulator
    let simulatorSMS: SMSEmulator
    let simulatorEmail: EmailEmulator
    let smtp: SMTPEmulator
    /// The SMTP emulator's STARTTLS and implicit-TLS ports on 127.0.0.1.
    let smtpPort: Int
    let smtpsPort: Int
    /// `http://127.0.0.1:<port>` of the simulator.
    let simulatorURL: String
    /// `https://127.0.0.1:<port>` of the simulator's TLS (HTTP/2) listener.
    let tlsURL: String
    /// The listener that requires client certificates of the simulator's CA.
    let mutualTLSURL: String
    /// The simulator's CA (issues client certificates).
    let identity: TLSIdentity

    /// Sends a Novu request and returns the response.
    func call(_ method: HTTPRequest.Method, _ path: String, _ json: String? = nil) async throws -> TestResponse {
        try await client.execute(uri: path, method: method, headers: novuHeaders(key), body: json.map { ByteBuffer(string: $0) })
    }

    /// Creates an integration through the API; returns its id.
    @discardableResult
    func integration(
        _ providerId: String, channel: String, identifier: String, credentials: JSONValue, primary: Bool = false
    ) async throws -> String {
        let body: JSONValue = [
            "providerId": .string(providerId), "channel": .string(channel), "identifier": .string(identifier), "name": .string(identifier),
            "active": true, "credentials": credentials,
        ]
        let response = try await call(.post, "/v1/integrations", body.jsonString())
        #expect(response.status == .created, "integration \(identifier): \(String(buffer: response.body))")
        let id = try response.json().objectValue?["data"]?.objectValue?["_id"]?.stringValue ?? ""
        if primary { _ = try await call(.post, "/v1/integrations/\(id)/set-primary") }
        return id
    }

    /// A webhook integration pointed at the simulator's `/hooks/<identifier>`, with a signing secret the emulator
    /// verifies.
    @discardableResult
    func webhookIntegration(_ providerId: String, channel: String, identifier: String, primary: Bool = false) async throws -> String {
        let secret = "secret-\(identifier)"
        emulator.setSecret(secret, forHook: identifier)
        return try await integration(
            providerId, channel: channel, identifier: identifier,
            credentials: [
                providerId == "generic-sms" ? "baseUrl" : "webhookUrl": .string("\(simulatorURL)/hooks/\(identifier)"),
                "secretKey": .string(secret),
            ], primary: primary)
    }

    /// One integration of every push provider, reaching the simulator's push emulators with its dev accounts.
    func pushIntegrations(only providers: Set<String>? = nil) async throws {
        for (providerId, identifier, credentials) in DevAccounts.pushIntegrations(tlsBase: tlsURL)
        where providers?.contains(providerId) ?? true {
            try await integration(providerId, channel: "push", identifier: identifier, credentials: credentials)
        }
    }

    /// Triggers and expects 201.
    @discardableResult
    func trigger(_ body: JSONValue) async throws -> JSONValue {
        let response = try await call(.post, "/v1/events/trigger", body.jsonString())
        #expect(response.status == .created, "trigger: \(String(buffer: response.body))")
        return try response.json()
    }

    /// Triggers `workflow` for one subscriber whose push-webhook device token is `tok-<subscriber>` (given just in time).
    @discardableResult
    func trigger(
        _ workflow: String, toDeviceOf subscriber: String, payload: JSONValue = [:], transactionId: String? = nil,
        profile: [String: JSONValue] = [:]
    ) async throws -> JSONValue {
        var to: [String: JSONValue] = [
            "subscriberId": .string(subscriber),
            "channels": [["providerId": "push-webhook", "credentials": ["deviceTokens": .array([.string("tok-\(subscriber)")])]]],
        ]
        to.merge(profile, uniquingKeysWith: { $1 })
        var body: [String: JSONValue] = ["name": .string(workflow), "payload": payload, "to": .object(to)]
        if let transactionId { body["transactionId"] = .string(transactionId) }
        return try await trigger(.object(body))
    }

    /// Waits until `condition` holds (polling), failing the test after `timeout`. Generous: the whole suite runs its
    /// servers, simulators and retries (jittered backoff) in parallel on the build machine's two cores.
    func eventually(
        _ what: String, timeout: Duration = .seconds(30), sourceLocation: Testing.SourceLocation = #_sourceLocation,
        _ condition: @Sendable () async throws -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("timed out waiting for \(what)", sourceLocation: sourceLocation)
    }

    /// Waits until no job is due or running (only scheduled ones may remain).
    func settle(timeout: Duration = .seconds(40)) async throws {
        try await eventually("the queue to drain", timeout: timeout) {
            let counts = try await store.read { try await $0.jobCounts() }
            return counts.ready == 0 && counts.running == 0
        }
    }

    /// Jobs scheduled for later.
    func scheduledJobs() async throws -> Int { try await store.read { try await $0.jobCounts() }.scheduled }
}

/// Runs `body` with a harness on `backend`, the given workflow files loaded, and `clock` as the store's clock.
func withEngine(
    _ backend: Backend, workflows sources: [String], clock: any WallClock = SystemWallClock(),
    configure: @Sendable (inout EngineConfiguration) -> Void = { _ in },
    _ body: @escaping @Sendable (EngineHarness) async throws -> Void
) async throws {
    let registry = WorkflowRegistry()
    let diagnostics = registry.update(sources.enumerated().map { ("w\($0.offset).yaml", $0.element) })
    #expect(diagnostics.filter { $0.severity == .error }.isEmpty, "workflow diagnostics: \(diagnostics)")
    var configured = EngineConfiguration()
    configure(&configured)
    let engineConfiguration = configured
    let emulator = WebhookEmulator()
    let push = PushEmulator(clock: { clock.now() })
    let chat = ChatEmulator()
    let sms = SMSEmulator()
    let email = EmailEmulator()
    let smtp = SMTPEmulator()
    let simulator = try Simulator(webhooks: emulator, push: push, chat: chat, sms: sms, email: email, smtp: smtp)
    let caFile = FileManager.default.temporaryDirectory.appendingPathComponent("herald-test-ca-\(UUID().uuidString).pem").path
    try simulator.identity.writeCA(to: caFile)
    defer { try? FileManager.default.removeItem(atPath: caFile) }
    let transport = HTTPTransport(caFile: caFile, policy: testPolicy)
    @Sendable func run(simulator: Simulator, transport: HTTPTransport) async throws {
        try await simulator.withRunning(logger: testLogger) { endpoints in
            let simulatorURL = endpoints.plain
            try await withStore(backend, clock: clock) { store, _ in
                let (environment, key) = try await store.transaction { session in
                    let environment = try await session.createEnvironment(named: "development")
                    let (_, key) = try await session.createAPIKey(environmentId: environment.id)
                    return (environment, key.revealed)
                }
                let runtime = Runtime(
                    store: store,
                    providers: StandardProviderFactory(transport: transport, clock: clock, publicURL: engineConfiguration.publicURL),
                    policy: testPolicy,
                    workflows: registry, engineConfiguration: engineConfiguration, logger: testLogger)
                let dispatcher = Dispatcher(
                    store: store, engine: runtime.engine, metrics: runtime.metrics, workers: 4, lease: .seconds(30),
                    pollInterval: .milliseconds(50), logger: testLogger)
                let application = Application(router: buildRouter(store: store, runtime: runtime), services: [dispatcher])
                try await application.test(.router) { client in
                    try await body(
                        EngineHarness(
                            client: client.recordingResponses, store: store, environment: environment, key: key, emulator: emulator,
                            push: push, chat: chat,
                            simulatorSMS: sms, simulatorEmail: email, smtp: smtp, smtpPort: endpoints.smtpPort,
                            smtpsPort: endpoints.smtpsPort,
                            simulatorURL: simulatorURL, tlsURL: endpoints.tls, mutualTLSURL: endpoints.mutualTLS,
                            identity: simulator.identity))
                }
            }
        }
    }
    do {
        try await run(simulator: simulator, transport: transport)
    } catch {
        await transport.shutdown()
        throw error
    }
    await transport.shutdown()
}
