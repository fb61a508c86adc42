import Foundation
import HeraldCore
import Hummingbird
import NIOCore

extension Request {
    /// Decodes the JSON body, enforcing the context's size limit; decoding failures become ``APIError``s that name
    /// the field or the parser's position.
    func decodeJSON<T: Decodable>(_ type: T.Type, context: HeraldRequestContext) async throws -> T {
        let buffer = try await body.collect(upTo: context.maxUploadSize)
        guard buffer.readableBytes > 0 else {
            throw APIError(.badRequest, "Request body is empty; expected a JSON object")
        }
        let value: T
        do {
            value = try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
        } catch let error as DecodingError {
            if case .dataCorrupted(let decodingContext) = error, decodingContext.codingPath.isEmpty,
                let problem = JSONSyntax.firstProblem(in: buffer.readableBytesView)
            {
                throw APIError(.badRequest, "Request body is not valid JSON: \(problem)")
            }
            throw APIError(decoding: error)
        }
        try Self.refuseNUL(in: buffer)
        return value
    }

    /// U+0000 in a string is refused (a 400 with its position) on every database: PostgreSQL can store it neither in
    /// text nor in `jsonb`, and a trigger accepted with it could never be expanded.
    static func refuseNUL(in buffer: ByteBuffer) throws {
        if let problem = JSONSyntax.firstNUL(in: buffer.readableBytesView) {
            throw APIError(.badRequest, "Request body is not accepted: \(problem)")
        }
    }
}

extension Request {
    /// The body as a ``JSONValue`` through the fast reader (the trigger hot path); syntax errors name the line and
    /// column like ``decodeJSON(_:context:)``.
    func jsonValue(context: HeraldRequestContext) async throws -> JSONValue {
        let buffer = try await body.collect(upTo: context.maxUploadSize)
        guard buffer.readableBytes > 0 else {
            throw APIError(.badRequest, "Request body is empty; expected a JSON object")
        }
        let value: JSONValue
        do {
            value = try JSONValue.parse(bytes: buffer.readableBytesView)
        } catch {
            let problem = JSONSyntax.firstProblem(in: buffer.readableBytesView).map { "\($0)" } ?? "\(error)"
            throw APIError(.badRequest, "Request body is not valid JSON: \(problem)")
        }
        try Self.refuseNUL(in: buffer)
        return value
    }
}

/// JSON responses with `Content-Type: application/json` (the Novu SDK rejects any other type).
enum JSONResponse {
    /// `value` as the response body with `status`.
    static func make(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        APIErrorMiddleware<HeraldRequestContext>.json(value, status: status)
    }

    /// Novu's envelope for single objects and arrays: `{"data": value}`.
    static func data(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        make(["data": value], status: status)
    }
}

extension KeyedDecodingContainer {
    /// Decodes a PATCH field: absent → `.keep`, `null` → `.clear`, a value → `.set`.
    func decodeUpdate<T: Decodable & Sendable & Hashable>(_ type: T.Type, forKey key: Key) throws -> FieldUpdate<T> {
        guard contains(key) else { return .keep }
        if try decodeNil(forKey: key) { return .clear }
        return .set(try decode(T.self, forKey: key))
    }
}
