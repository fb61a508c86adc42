import HeraldCore
import Hummingbird
import Logging

/// One structured log line per request: method, path without the query string (which could carry a key), status,
/// duration and environment. Headers and bodies are never logged.
public struct RequestLogMiddleware<Context: RequestContext>: RouterMiddleware {
    let level: Logger.Level

    public init(level: Logger.Level = .info) {
        self.level = level
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        do {
            let response = try await next(request, context)
            log(request, context: context, status: response.status.code, start: start)
            return response
        } catch {
            log(request, context: context, status: APIErrorMiddleware<Context>.apiError(for: error).status.code, start: start)
            throw error
        }
    }

    private func log(_ request: Request, context: Context, status: Int, start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        let milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        context.logger.log(
            level: level, "request",
            metadata: [
                "method": "\(request.method.rawValue)", "path": "\(request.uri.path)", "status": "\(status)",
                "ms": "\((milliseconds * 10).rounded() / 10)",
            ]
        )
    }
}

/// Rejects bodies over the limit before reading them when `Content-Length` says so (413 in the API's format); a
/// chunked body is cut off at the same limit while it is read (``HeraldRequestContext/maxUploadSize``).
public struct BodyLimitMiddleware: RouterMiddleware {
    public typealias Context = HeraldRequestContext
    let maxBytes: Int

    public init(maxBytes: Int) {
        self.maxBytes = maxBytes
    }

    public func handle(
        _ request: Request, context: HeraldRequestContext, next: (Request, HeraldRequestContext) async throws -> Response
    ) async throws -> Response {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > maxBytes {
            throw APIError(.contentTooLarge, "Request body of \(length) bytes is larger than the limit of \(maxBytes) bytes")
        }
        var context = context
        context.maxUploadSize = maxBytes
        return try await next(request, context)
    }
}
