import Foundation
import HTTPTypes
import HeraldAPI
import HeraldCore
import HeraldStore
import HeraldTestSupport
import Hummingbird
import HummingbirdTesting
import Testing

/// `openapi/herald.yaml` is the API contract (README §API contract): it must describe exactly the routes the router
/// serves. Response bodies are checked against it end to end (`Tests/compat/openapi_check.py` over every response the
/// SDK suites and the Swift API tests received) and by `schemathesis` in `scripts/test`.
@Suite("OpenAPI contract")
struct OpenAPIContractTests {
    @Test("GET /openapi.json serves the document without a key; it documents exactly the routes the router serves")
    func routesMatchTheDocument() async throws {
        try await withAPI(.sqlite) { client, store, _ in
            let document = try await client.execute(uri: "/openapi.json", method: .get) { response async throws -> JSONValue in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
                return try response.json()
            }
            #expect(document.objectValue?["openapi"] == "3.1.0")
            let methods = ["get", "put", "post", "delete", "patch", "head", "options"]
            var documented = Set<String>()
            for (path, item) in document.objectValue?["paths"]?.objectValue ?? [:] {
                for method in methods where item.objectValue?[method] != nil {
                    documented.insert("\(method.uppercased()) \(Self.normalised(path))")
                }
            }
            let router = buildRouter(store: store, runtime: testRuntime(store))
            // The console's HTML pages (docs/console.md) are a user interface, not part of the API contract.
            let served = Set(
                router.routes.filter { !"\($0.path)".hasPrefix("/console") }.map {
                    "\($0.method.rawValue) \(Self.normalised("\($0.path)"))"
                })
            #expect(served.count > 60)
            #expect(served.subtracting(documented).sorted() == [], "served but not in openapi/herald.yaml")
            #expect(documented.subtracting(served).sorted() == [], "in openapi/herald.yaml but not served")
        }
    }

    @Test("a served path called with another method is a 405 with Allow; without a key it is still a 401")
    func methodNotAllowed() async throws {
        try await withAPI(.sqlite) { client, _, tenants in
            try await client.execute(uri: "/v1/topics", method: .put, headers: novuHeaders(tenants.developmentKey)) {
                response async throws in
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == "GET, POST")
                #expect(try response.field("statusCode") == 405)
            }
            try await client.execute(uri: "/v1/subscribers/s-1", method: .post, headers: novuHeaders(tenants.developmentKey)) {
                response async throws in
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == "DELETE, GET, PUT")
            }
            try await client.execute(uri: "/v1/topics", method: .put) { response async throws in
                #expect(response.status == .unauthorized)
            }
            try await client.execute(uri: "/v1/no-such-route", method: .get, headers: novuHeaders(tenants.developmentKey)) {
                response async throws in
                #expect(response.status == .notFound)
            }
        }
    }

    /// A path with every parameter written `{}` (the router and the document may name them differently).
    static func normalised(_ path: String) -> String {
        path.split(separator: "/", omittingEmptySubsequences: false).map { part in
            part.hasPrefix("{") || part.hasPrefix(":") ? "{}" : String(part)
        }.joined(separator: "/")
    }
}
