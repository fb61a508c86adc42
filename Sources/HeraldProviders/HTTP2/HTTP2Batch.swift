import NIOCore

/// The answers of one batch, filled in on the connection's event loop.
final class HTTP2Batch: @unchecked Sendable {
    private var results: [Result<HTTPTransport.Response, any Error>?]
    private var remaining: Int
    private let continuation: CheckedContinuation<[Result<HTTPTransport.Response, any Error>], Never>

    init(count: Int, continuation: CheckedContinuation<[Result<HTTPTransport.Response, any Error>], Never>) {
        self.results = Array(repeating: nil, count: count)
        self.remaining = count
        self.continuation = continuation
        if count == 0 { continuation.resume(returning: []) }
    }

    func complete(_ index: Int, _ result: Result<HTTPTransport.Response, any Error>) {
        guard results[index] == nil else { return }
        results[index] = result
        remaining -= 1
        if remaining == 0 { continuation.resume(returning: results.map { $0! }) }
    }
}
