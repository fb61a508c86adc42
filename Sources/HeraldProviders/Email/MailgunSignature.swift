import Crypto
import Foundation
import HeraldCore

/// Mailgun's webhook signature (docs/webhooks.md §Provider receipts): `signature.signature` is the lowercase hex
/// HMAC-SHA256, keyed with the domain's HTTP webhook signing key, of `signature.timestamp` followed by
/// `signature.token`.
public enum MailgunSignature {
    public static func compute(signingKey: String, timestamp: String, token: String) -> String {
        Hex.encode(Array(HMAC<SHA256>.authenticationCode(for: Array((timestamp + token).utf8), using: key(signingKey))))
    }

    /// Whether `signature` is Mailgun's (swift-crypto's constant-time comparison).
    public static func isValid(_ signature: String, signingKey: String, timestamp: String, token: String) -> Bool {
        guard !timestamp.isEmpty, !token.isEmpty, let given = Hex.decode(signature.lowercased()) else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(given, authenticating: Array((timestamp + token).utf8), using: key(signingKey))
    }

    private static func key(_ signingKey: String) -> SymmetricKey { SymmetricKey(data: Array(signingKey.utf8)) }
}
