import Crypto
import Foundation
import HeraldCore

/// The opaque part of a one-click unsubscribe URL (RFC 8058; docs/api.md §Unsubscribe): what the link may change —
/// one channel of one workflow for one subscriber of one environment — sealed with AES-256-GCM under the
/// environment's own unsubscribe key (not an API key, not the credential key). The environment id stays readable in
/// front, so the server knows which key opens the rest; it is also the associated data, so a token moved to another
/// environment does not open. Reading, forging, truncating or re-scoping a token is impossible without the key, and
/// every bad token fails the same way (``open(_:keys:)`` returns nil).
public struct UnsubscribeToken: Sendable, Hashable {
    public var environmentId: String
    public var subscriberId: String
    public var workflowId: String
    public var channel: Channel

    public init(environmentId: String, subscriberId: String, workflowId: String, channel: Channel) {
        self.environmentId = environmentId
        self.subscriberId = subscriberId
        self.workflowId = workflowId
        self.channel = channel
    }

    /// The longest token accepted: longer input is refused before any decoding.
    public static let maxLength = 1024
    static let version: UInt8 = 1

    /// `<environment id>.<base64url(version ‖ nonce ‖ ciphertext ‖ tag)>`.
    public func sealed(key: Data) throws -> String {
        let plaintext = JSONValue.array([.string(subscriberId), .string(workflowId), .string(channel.rawValue)]).jsonString()
        let box = try AES.GCM.seal(
            Data(plaintext.utf8), using: SymmetricKey(data: key), authenticating: Self.associatedData(environmentId))
        guard let combined = box.combined else { throw HeraldError(.internal, "AES-GCM gave no combined form") }
        return environmentId + "." + Self.base64URL(Data([Self.version]) + combined)
    }

    /// The environment a token claims to belong to (the key to open it with), if it is shaped like a token at all.
    public static func environmentId(of token: String) -> String? {
        guard token.utf8.count <= maxLength, let dot = token.firstIndex(of: ".") else { return nil }
        let id = String(token[..<dot])
        guard (1...64).contains(id.count), id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else { return nil }
        return id
    }

    /// Opens a token with its environment's key; nil for anything that is not a token this key sealed.
    public static func open(_ token: String, key: Data) -> UnsubscribeToken? {
        guard let environmentId = environmentId(of: token), let dot = token.firstIndex(of: "."),
            let bytes = data(base64URL: String(token[token.index(after: dot)...])), bytes.count > 1 + 12 + 16,
            bytes.first == version,
            let box = try? AES.GCM.SealedBox(combined: bytes.dropFirst()),
            let plaintext = try? AES.GCM.open(box, using: SymmetricKey(data: key), authenticating: associatedData(environmentId)),
            let json = try? JSONValue.parse(String(decoding: plaintext, as: UTF8.self)),
            case .array(let fields) = json, fields.count == 3,
            let subscriberId = fields[0].stringValue, let workflowId = fields[1].stringValue,
            let channel = fields[2].stringValue.flatMap(Channel.init(rawValue:))
        else { return nil }
        return UnsubscribeToken(environmentId: environmentId, subscriberId: subscriberId, workflowId: workflowId, channel: channel)
    }

    static func associatedData(_ environmentId: String) -> Data { Data("herald-unsubscribe-v1:\(environmentId)".utf8) }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func data(base64URL text: String) -> Data? {
        guard text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else { return nil }
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        return Data(base64Encoded: base64)
    }
}
