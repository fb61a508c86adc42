import Crypto
import Foundation
import HTTPTypes
import HeraldCore
import HeraldStore
import Hummingbird
import NIOCore
import Synchronization

/// Novu's `Idempotency-Key` semantics for POST and PATCH (the SDK sends a key with every request):
///
/// * the first request with a key runs, and its response is kept for 24 h with a hash of method, path and body;
/// * the same key and body again replays that response with `Idempotency-Replay: true`;
/// * the same key with another body gets 422; while the first is still running, 409 with `Retry-After: 1`;
/// * keys over 255 characters, and empty ones, get 400.
///
/// Keys are scoped to the environment. A request that fails with an error is forgotten, so that a retry runs again
/// (Novu keeps errors too; replaying a transient 5xx for a day helps nobody).
struct IdempotencyMiddleware: RouterMiddleware {
    typealias Context = HeraldRequestContext
    let store: SQLStore

    static let header = HTTPField.Name("Idempotency-Key")!
    static let replayHeader = HTTPField.Name("Idempotency-Replay")!

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.method == .post || request.method == .patch, let key = request.headers[Self.header],
            let environment = context.environment
        else {
            return try await next(request, context)
        }
        guard key.count <= 255 else { throw APIError(.badRequest, "Idempotency-Key must be at most 255 characters") }
        guard !key.allSatisfy(\.isWhitespace) else { throw APIError(.badRequest, "Idempotency-Key must not be empty") }
        var request = request
        let body = try await request.collectBody(upTo: context.maxUploadSize)
        var hasher = SHA256()
        hasher.update(data: Data("\(request.method.rawValue) \(request.uri.path)\n".utf8))
        hasher.update(data: Data(body.readableBytesView))
        let hash = Hex.encode(hasher.finalize())
        let decision = try await store.transaction {
            try await $0.claimIdempotencyKey(environmentId: environment.id, key: key, requestHash: hash)
        }
        switch decision {
        case .mismatch:
            throw APIError(.unprocessableContent, "Request with key \"\(key)\" is being reused for a different body")
        case .inProgress:
            throw APIError(
                .conflict, "Request with key \"\(key)\" is currently being processed. Please retry after 1 second",
                headers: [.retryAfter: "1", HTTPField.Name("Link")!: "https://docs.novu.co/additional-resources/idempotency"]
            )
        case .replay(let status, let contentType, let text):
            var headers: HTTPFields = [Self.replayHeader: "true", Self.header: key]
            headers[.contentType] = contentType ?? "application/json; charset=utf-8"
            return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
        case .proceed:
            break
        }
        do {
            let response = try await next(request, context)
            let collector = BodyCollector()
            try await response.body.write(collector.writer)
            let text = collector.text
            try await store.transaction { session in
                try await session.completeIdempotencyKey(
                    environmentId: environment.id, key: key, status: response.status.code, contentType: response.headers[.contentType],
                    body: text
                )
            }
            var replayable = response
            replayable.body = .init(byteBuffer: ByteBuffer(string: text))
            replayable.headers[Self.header] = key
            return replayable
        } catch {
            try? await store.transaction { try await $0.releaseIdempotencyKey(environmentId: environment.id, key: key) }
            throw error
        }
    }
}

/// Collects a response body so that it can be stored and sent.
final class BodyCollector: Sendable {
    private let buffer = Mutex(ByteBuffer())

    var text: String { buffer.withLock { String(buffer: $0) } }

    var writer: any ResponseBodyWriter { Writer(collector: self) }

    struct Writer: ResponseBodyWriter {
        let collector: BodyCollector
        mutating func write(_ buffer: ByteBuffer) async throws {
            var incoming = buffer
            _ = collector.buffer.withLock { $0.writeBuffer(&incoming) }
        }
        consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
    }
}
