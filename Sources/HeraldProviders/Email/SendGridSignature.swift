import Crypto
import Foundation

/// SendGrid's signed Event Webhook (docs/webhooks.md §Provider receipts): `X-Twilio-Email-Event-Webhook-Signature` is
/// base64 of a DER ECDSA P-256 signature over SHA-256 of the `X-Twilio-Email-Event-Webhook-Timestamp` header's bytes
/// followed by the raw body; the key is the account's verification key, base64 of a DER SubjectPublicKeyInfo.
public enum SendGridSignature {
    /// Whether the signature verifies. A malformed key or signature is simply invalid.
    public static func isValid(signature: String, timestamp: String, body: [UInt8], verificationKey: String) -> Bool {
        guard !timestamp.isEmpty, let keyBytes = Data(base64Encoded: verificationKey),
            let key = try? P256.Signing.PublicKey(derRepresentation: keyBytes), let signatureBytes = Data(base64Encoded: signature),
            let ecdsa = try? P256.Signing.ECDSASignature(derRepresentation: signatureBytes)
        else { return false }
        return key.isValidSignature(ecdsa, for: Array(timestamp.utf8) + body)
    }
}
