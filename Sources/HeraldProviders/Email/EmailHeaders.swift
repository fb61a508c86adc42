import HeraldCore

/// The extra header fields of an email: the step's `headers` override, then the engine's own (`List-Unsubscribe`,
/// `List-Unsubscribe-Post`) unless the override sets either of those itself (an app with its own unsubscribe system
/// keeps it). Names are checked as RFC 5322 field names; values are single lines.
enum EmailHeaders {
    static let unsubscribeNames: Set<String> = ["list-unsubscribe", "list-unsubscribe-post"]

    static func fields(_ content: MessageContent) -> [(String, String)] {
        var headers: [(String, String)] = []
        for (name, value) in content.overrides.objectValue?["headers"]?.objectValue ?? [:] {
            guard let text = value.stringValue, isFieldName(name), !text.contains(where: \.isNewline) else { continue }
            headers.append((name, text))
        }
        headers.sort { $0.0 < $1.0 }
        return headers + engineFields(content)
    }

    /// The engine's header fields alone (the HTTP APIs merge the override's `headers` into their request themselves).
    static func engineFields(_ content: MessageContent) -> [(String, String)] {
        let overridden = (content.overrides.objectValue?["headers"]?.objectValue ?? [:]).keys.contains {
            unsubscribeNames.contains($0.lowercased())
        }
        guard !overridden else { return [] }
        return content.headers.sorted { $0.key < $1.key }.filter { isFieldName($0.key) && !$0.value.contains(where: \.isNewline) }
            .map { ($0.key, $0.value) }
    }

    static func isFieldName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { $0 > 32 && $0 < 127 && $0 != UInt8(ascii: ":") }
    }
}
