import Foundation
import HTTPTypes
import HeraldConsoleAssets
import Hummingbird
import Mustache
import NIOCore

/// Renders the console's pages from the templates shipped in `HeraldConsoleAssets` (swift-mustache: `{{x}}` is
/// HTML-escaped, the only unescaped values are SVG the console draws itself) and serves its two static files.
struct ConsoleRenderer: Sendable {
    let library: MustacheLibrary
    /// `console.css` and `console.js`, read once at start-up.
    let staticFiles: [String: (contentType: String, body: ByteBuffer)]

    init() throws {
        var library = MustacheLibrary()
        let files = try FileManager.default.contentsOfDirectory(at: ConsoleAssets.templates, includingPropertiesForKeys: nil)
        for file in files where file.pathExtension == "mustache" {
            try library.register(String(contentsOf: file, encoding: .utf8), named: file.deletingPathExtension().lastPathComponent)
        }
        self.library = library
        var staticFiles: [String: (contentType: String, body: ByteBuffer)] = [:]
        for (name, type) in [("console.css", "text/css; charset=utf-8"), ("console.js", "text/javascript; charset=utf-8")] {
            let text = try String(contentsOf: ConsoleAssets.staticFiles.appendingPathComponent(name), encoding: .utf8)
            staticFiles[name] = (type, ByteBuffer(string: text))
        }
        self.staticFiles = staticFiles
    }

    /// A page: the template rendered with `values`, as HTML.
    func page(_ template: String, _ values: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
        let html =
            library.render(Self.withoutNils(values), withTemplate: template)
            ?? "<!doctype html><title>Herald</title><p>Template \(template) is missing."
        return Response(
            status: status, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    /// The values with every nil optional removed, recursively: swift-mustache renders `nil` as the text "nil" and
    /// counts it as present in a section, while a missing key is absent.
    static func withoutNils(_ value: Any) -> Any {
        let mirror = Mirror(reflecting: value)
        if mirror.displayStyle == .optional {
            guard let wrapped = mirror.children.first?.value else { return Optional<Any>.none as Any }
            return withoutNils(wrapped)
        }
        if let dictionary = value as? [String: Any] {
            var result: [String: Any] = [:]
            for (key, entry) in dictionary {
                let cleaned = withoutNils(entry)
                if Mirror(reflecting: cleaned).displayStyle == .optional { continue }
                result[key] = cleaned
            }
            return result
        }
        if let array = value as? [[String: Any]] { return array.map { withoutNils($0) } }
        return value
    }

    /// A 303 to `location` (a path of the console).
    static func redirect(_ location: String, headers extra: HTTPFields = [:]) -> Response {
        var headers: HTTPFields = [.location: location]
        headers.append(contentsOf: extra)
        return Response(status: .seeOther, headers: headers)
    }
}
