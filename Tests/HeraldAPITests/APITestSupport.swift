import Foundation
import HTTPTypes
import HeraldAPI
import HeraldCore
import HeraldProviders
import HeraldStore
import HeraldTestSupport
import HeraldWorkflow
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// Two environments with a key each, on a migrated store.
struct TestTenants: Sendable {
    var development: HeraldCore.Environment
    var developmentKey: String
    var production: HeraldCore.Environment
    var productionKey: String
}

/// Runs `body` against the full router (in-process transport) on a fresh database of `backend`.
func withAPI(
    _ backend: Backend, configuration: APIConfiguration = .init(), workflows: WorkflowRegistry = WorkflowRegistry(),
    _ body: @escaping @Sendable (any TestClientProtocol, SQLStore, TestTenants) async throws -> Void
) async throws {
    try await withStore(backend) { store, _ in
        let tenants = try await store.transaction { session in
            let development = try await session.createEnvironment(named: "development")
            let (_, developmentKey) = try await session.createAPIKey(environmentId: development.id)
            let production = try await session.createEnvironment(named: "production")
            let (_, productionKey) = try await session.createAPIKey(environmentId: production.id)
            return TestTenants(
                development: development, developmentKey: developmentKey.revealed, production: production,
                productionKey: productionKey.revealed)
        }
        let application = Application(
            router: buildRouter(store: store, runtime: testRuntime(store, workflows: workflows), configuration: configuration))
        try await application.test(.router) { client in
            try await body(client.recordingResponses, store, tenants)
        }
    }
}

extension TestResponse {
    /// The body parsed as JSON.
    func json() throws -> JSONValue {
        try JSONValue.parse(String(buffer: body))
    }

    /// A field of a JSON object body.
    func field(_ name: String) throws -> JSONValue? {
        try json().objectValue?[name]
    }
}

/// Headers for a Novu call with `key`.
func novuHeaders(_ key: String) -> HTTPFields {
    [.authorization: "ApiKey \(key)", .contentType: "application/json"]
}

/// A request body from JSON text.
func body(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

/// The emulators listen on loopback, which the SSRF guard refuses unless allowed (as `herald dev` and the scripts
/// allow it with `--allow-private-network`).
let testPolicy = try! OutboundURLPolicy(allowing: ["127.0.0.1", "::1"])

/// The transport of the API tests' runtimes: one for the whole test process (an AsyncHTTPClient must be shut down
/// before it is released, and this one lives as long as the process).
let testTransport = HTTPTransport(policy: testPolicy)

/// What the API needs besides the store, as a test's composition root builds it: the loopback-allowing policy and a
/// provider factory over a transport with that policy.
func testRuntime(_ store: SQLStore, workflows: WorkflowRegistry = WorkflowRegistry()) -> Runtime {
    Runtime(
        store: store, providers: StandardProviderFactory(transport: testTransport, clock: store.clock), policy: testPolicy,
        workflows: workflows)
}
