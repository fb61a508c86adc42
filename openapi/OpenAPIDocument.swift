import Foundation

/// Herald's OpenAPI document, `openapi/herald.yaml`, shipped as a resource of this target so that the file in the
/// repository is the single source of truth for the API contract (served as `GET /openapi.json`).
public enum HeraldOpenAPI {
    /// The document's YAML text.
    public static func yaml() throws -> String {
        guard let url = Bundle.module.url(forResource: "herald", withExtension: "yaml") else {
            throw CocoaError(.fileNoSuchFile)
        }
        return try String(contentsOf: url, encoding: .utf8)
    }
}
