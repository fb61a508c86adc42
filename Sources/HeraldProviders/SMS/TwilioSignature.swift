import Crypto
import Foundation

/// Twilio's request signature (`X-Twilio-Signature`, docs/webhooks.md §Provider receipts): base64 of HMAC-SHA1, keyed
/// with the account's auth token, over the full URL Twilio requested followed by every form parameter's name and value,
/// sorted by name (several values of one name sorted and appended each).
public enum TwilioSignature {
    public static func compute(token: String, url: String, parameters: [(String, String)]) -> String {
        let mac = HMAC<Insecure.SHA1>.authenticationCode(for: signedBytes(url: url, parameters: parameters), using: key(token))
        return Data(mac).base64EncodedString()
    }

    /// Whether `signature` is the one Twilio computes (swift-crypto's constant-time comparison).
    public static func isValid(_ signature: String, token: String, url: String, parameters: [(String, String)]) -> Bool {
        guard let given = Data(base64Encoded: signature) else { return false }
        return HMAC<Insecure.SHA1>.isValidAuthenticationCode(
            given, authenticating: signedBytes(url: url, parameters: parameters), using: key(token))
    }

    private static func key(_ token: String) -> SymmetricKey { SymmetricKey(data: Array(token.utf8)) }

    /// The URL followed by each name and value, sorted by name (several values of one name sorted, each once).
    private static func signedBytes(url: String, parameters: [(String, String)]) -> [UInt8] {
        var text = url
        let byName = Dictionary(grouping: parameters, by: \.0)
        for name in byName.keys.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
            for value in Set(byName[name]!.map(\.1)).sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
                text += name + value
            }
        }
        return Array(text.utf8)
    }

    /// The fields of an `application/x-www-form-urlencoded` body, in order (`+` is a space, `%XX` a byte).
    public static func formFields(_ body: String) -> [(String, String)] {
        body.split(separator: "&", omittingEmptySubsequences: true).map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) -> String {
                text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(text)
            }
            return (decode(parts[0]), parts.count > 1 ? decode(parts[1]) : "")
        }
    }
}
