import Crypto
import Foundation

/// Mailgun's webhook signature (docs/webhooks.md §Provider receipts): `signature.signature` is the lowercase hex
/// HMAC-SHA256, keyed with the domain's HTTP webhook signing key, of `signature.timestamp` followed by
/// `signature.token`.
public enum MailgunSignature {
    public static func compute(signingKey: String, timestamp: String, token: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array((timestamp + token).utf8), using: SymmetricKey(data: Array(signingKey.utf8)))
        return mac.map { String(format: "%02x", $0) }.joined()
    }

    /// Whether `signature` is Mailgun's (compared in constant time).
    public static func isValid(_ signature: String, signingKey: String, timestamp: String, token: String) -> Bool {
        guard !timestamp.isEmpty, !token.isEmpty else { return false }
        let expected = Array(compute(signingKey: signingKey, timestamp: timestamp, token: token).utf8)
        let given = Array(signature.lowercased().utf8)
        guard expected.count == given.count else { return false }
        return zip(expected, given).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }
}
