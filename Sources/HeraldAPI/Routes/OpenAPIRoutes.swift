import HeraldCore
import HeraldOpenAPI
import HeraldWorkflow
import Hummingbird
import NIOCore

/// `GET /openapi.json`: Herald's OpenAPI 3.1 document (`openapi/herald.yaml`, README §API contract) as JSON, with no
/// key — it describes routes, never tenant data. Converted once per process.
struct OpenAPIRoutes {
    static let path = "/openapi.json"

    /// The document as JSON text, or why it could not be read (a packaging fault: the route answers 500 and logs it).
    static let document: Result<String, any Error> = Result {
        try YAMLDocument.json(try HeraldOpenAPI.yaml(), file: "openapi/herald.yaml", maxBytes: 4 << 20).jsonString()
    }

    func register(on router: Router<HeraldRequestContext>) {
        router.get(RouterPath(Self.path)) { _, _ in
            let text = try Self.document.get()
            return Response(
                status: .ok, headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-cache"],
                body: .init(byteBuffer: ByteBuffer(string: text)))
        }
    }
}
