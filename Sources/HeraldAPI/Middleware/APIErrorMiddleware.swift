import Foundation
import HTTPTypes
import HeraldCore
import Hummingbird
import Logging
import NIOCore

/// Turns every error a route or middleware throws into the error body of the API that was called:
///
/// * Centrifugo routes (`/api/…`): HTTP 200 with `{"error":{"code":…,"message":…}}`, or the bare error object with
///   a mapped HTTP status when the request sets `X-Centrifugo-Error-Mode: transport`; 401 has an empty body.
/// * everything else (Novu `/v1`, `/v2`, Herald's own routes): Novu's `ErrorDto`
///   `{"statusCode","timestamp","path","message"}`, plus `errors` on 422 and `errorId` on 500.
///
/// Unexpected errors become a 500 whose body says nothing about internals; the log line has the detail.
public struct APIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let clock: any WallClock

    public init(clock: any WallClock = SystemWallClock()) {
        self.clock = clock
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let apiError = Self.apiError(for: error)
            var errorId: String? = nil
            if apiError.status == .internalServerError {
                errorId = UUID().uuidString.lowercased()
                context.logger.error(
                    "request failed", metadata: ["error": "\(error)", "errorId": "\(errorId!)", "path": "\(request.uri.path)"]
                )
            }
            if request.uri.path.hasPrefix("/api/") || request.uri.path == "/api" {
                // Every Centrifugo method is a route of its own: the router's 404 is an unknown method.
                let apiError = (error as? HTTPError)?.status == .notFound ? APIError(.notFound, "method not found") : apiError
                return Self.centrifugoResponse(apiError, transportMode: request.headers[.centrifugoErrorMode] == "transport")
            }
            return novuResponse(apiError, path: request.uri.path, errorId: errorId)
        }
    }

    /// The API error for anything thrown.
    static func apiError(for error: any Error) -> APIError {
        switch error {
        case let error as APIError: error
        case let error as HeraldError: APIError(error)
        case let error as DecodingError: APIError(decoding: error)
        case is NIOTooManyBytesError: APIError(.contentTooLarge, "Request body is larger than the limit")
        case let error as HTTPError:
            switch error.status {
            case .contentTooLarge: APIError(.contentTooLarge, "Request body is larger than the limit")
            case .notFound: APIError(.notFound, "Cannot find the requested route")
            case .methodNotAllowed: APIError(.methodNotAllowed, "Method not allowed")
            default: APIError(error.status, error.body ?? error.status.reasonPhrase)
            }
        default: APIError(.internalServerError, "Internal server error")
        }
    }

    private func novuResponse(_ error: APIError, path: String, errorId: String?) -> Response {
        var body: [String: JSONValue] = [
            "statusCode": .number(Double(error.status.code)),
            "timestamp": .string(clock.now().iso8601Milliseconds),
            "path": .string(path),
            "message": .string(error.message),
        ]
        if error.status == .unprocessableContent {
            body["errors"] = .object(
                error.fieldErrors.mapValues { field in
                    var entry: [String: JSONValue] = ["messages": .array(field.messages.map(JSONValue.string))]
                    if let value = field.value { entry["value"] = value }
                    return .object(entry)
                }
            )
        }
        if let errorId { body["errorId"] = .string(errorId) }
        for (key, value) in error.extraFields where body[key] == nil { body[key] = value }
        return Self.json(.object(body), status: error.status, extraHeaders: error.headers)
    }

    private static func centrifugoResponse(_ error: APIError, transportMode: Bool) -> Response {
        if error.status == .unauthorized {
            return Response(status: .unauthorized)
        }
        let object = CentrifugoError.body(error)
        // A wrong HTTP method is an HTTP-level answer in both modes (like 401): 405 with `Allow`.
        if error.status == .methodNotAllowed {
            return json(object, status: .methodNotAllowed, extraHeaders: error.headers)
        }
        let code = CentrifugoError.code(error)
        if transportMode {
            let status: HTTPResponse.Status =
                switch code {
                case 104: .notFound
                case 113: .conflict
                case 100: .internalServerError
                default: .badRequest
                }
            return json(object, status: status, extraHeaders: error.headers)
        }
        return json(["error": object], status: .ok, extraHeaders: error.headers)
    }

    static func json(_ value: JSONValue, status: HTTPResponse.Status, extraHeaders: HTTPFields = [:]) -> Response {
        let text = value.jsonString()
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8"]
        headers.append(contentsOf: extraHeaders)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

extension HTTPField.Name {
    /// Centrifugo's per-request error mode switch.
    static let centrifugoErrorMode = HTTPField.Name("X-Centrifugo-Error-Mode")!
    /// Centrifugo's API key header.
    static let apiKey = HTTPField.Name("X-API-Key")!
}

extension APIError {
    /// A JSON body that could not be decoded: malformed JSON is a 400 with the parser's location; a missing or
    /// mistyped field is a 422 naming the field.
    init(decoding error: DecodingError) {
        func path(_ codingPath: [any CodingKey]) -> String {
            codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().drop(while: { $0 == "." }).description
        }
        switch error {
        case .dataCorrupted(let context) where context.codingPath.isEmpty:
            let detail = (context.underlyingError.map { "\($0)" } ?? context.debugDescription)
            self.init(.badRequest, "Request body is not valid JSON: \(detail)")
        case .dataCorrupted(let context):
            let field = path(context.codingPath)
            self.init(
                .unprocessableContent, "\(field): \(context.debugDescription)",
                fieldErrors: [field: .init(messages: [context.debugDescription])])
        case .keyNotFound(let key, let context):
            let field = path(context.codingPath + [key])
            self.init(
                .unprocessableContent, "\(field) is required", fieldErrors: [field: .init(messages: ["\(field) should not be empty"])])
        case .valueNotFound(_, let context):
            let field = path(context.codingPath)
            self.init(
                .unprocessableContent, "\(field) must not be null", fieldErrors: [field: .init(messages: ["\(field) must not be null"])])
        case .typeMismatch(let type, let context):
            let field = path(context.codingPath)
            let expected = Self.jsonTypeName(type)
            self.init(
                .unprocessableContent, "\(field) must be \(expected)",
                fieldErrors: [field: .init(messages: ["\(field) must be \(expected)"])])
        @unknown default:
            self.init(.badRequest, "Request body could not be decoded")
        }
    }

    private static func jsonTypeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "a boolean"
        case is Int.Type, is Int64.Type, is Double.Type: "a number"
        case is [Any].Type: "an array"
        default: "\(type)".hasPrefix("Array") ? "an array" : "an object"
        }
    }
}
