import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore

/// Holds the API tests' responses to the OpenAPI document (issue #26, README §API contract): when the environment
/// variable `HERALD_TEST_RESPONSES` names a file, every response an API test receives is appended to it as one JSON
/// line (method, path, status, content type, body), and `scripts/test` validates the file against
/// `openapi/herald.yaml` with `Tests/compat/openapi_check.py validate`, as `scripts/compat-sdk` does for the SDKs'.
struct RecordingTestClient: TestClientProtocol {
    let inner: any TestClientProtocol
    let recorder: ResponseRecorder

    var port: Int? { inner.port }

    func executeRequest(uri: String, method: HTTPRequest.Method, headers: HTTPFields, body: ByteBuffer?) async throws -> TestResponse {
        let response = try await inner.executeRequest(uri: uri, method: method, headers: headers, body: body)
        recorder.record(method: method, uri: uri, response: response)
        return response
    }
}

/// Appends exchanges to the file named by `HERALD_TEST_RESPONSES` (shared by every test of the process).
final class ResponseRecorder: Sendable {
    static let shared: ResponseRecorder? = ProcessInfo.processInfo.environment["HERALD_TEST_RESPONSES"].flatMap {
        $0.isEmpty ? nil : ResponseRecorder(path: $0)
    }

    private let handle: FileHandle
    private let lock = NSLock()

    private init?(path: String) {
        if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        guard let handle = FileHandle(forWritingAtPath: path) else { return nil }
        handle.seekToEndOfFile()
        self.handle = handle
    }

    struct Entry: Encodable {
        var method: String
        var path: String
        var status: Int
        var content_type: String
        var body: String
    }

    func record(method: HTTPRequest.Method, uri: String, response: TestResponse) {
        let entry = Entry(
            method: method.rawValue, path: uri, status: response.status.code, content_type: response.headers[.contentType] ?? "",
            body: String(decoding: response.body.readableBytesView, as: UTF8.self))
        guard var line = try? JSONEncoder().encode(entry) else { return }
        line.append(UInt8(ascii: "\n"))
        lock.withLock { handle.write(line) }
    }
}

extension TestClientProtocol {
    /// This client, recording its responses when `HERALD_TEST_RESPONSES` is set.
    var recordingResponses: any TestClientProtocol {
        ResponseRecorder.shared.map { RecordingTestClient(inner: self, recorder: $0) } ?? self
    }
}
