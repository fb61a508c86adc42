import Crypto
import Foundation
import HeraldCore

/// RFC 8291 message encryption for Web Push over the RFC 8188 `aes128gcm` content coding: one record, last-record
/// delimiter 0x02, keys derived with HKDF-SHA-256 exactly as RFC 8291 §3.4 spells them out.
public enum WebPushCrypto {
    public enum Failure: Error, Equatable {
        case badSubscriptionKey
        case tooLarge
        case malformed(String)
    }

    /// Largest plaintext one 4096-byte record carries (RFC 8291 §4: 4096 − 86 header − 16 tag − 1 delimiter).
    public static let maximumPlaintext = 3993
    public static let recordSize: UInt32 = 4096

    /// Encrypts `plaintext` for a subscription (`p256dh` = the user agent's public key, `auth` = its secret).
    /// `ephemeralKey` and `salt` are fresh random values unless a test injects them.
    public static func encrypt(
        _ plaintext: [UInt8], p256dh: [UInt8], auth: [UInt8], ephemeralKey: P256.KeyAgreement.PrivateKey = .init(),
        salt: [UInt8] = randomBytes(16)
    ) throws -> [UInt8] {
        guard plaintext.count <= maximumPlaintext else { throw Failure.tooLarge }
        guard let userAgentKey = try? P256.KeyAgreement.PublicKey(x963Representation: p256dh), auth.count == 16, salt.count == 16 else {
            throw Failure.badSubscriptionKey
        }
        let serverPublic = Array(ephemeralKey.publicKey.x963Representation)
        let shared = try ephemeralKey.sharedSecretFromKeyAgreement(with: userAgentKey).withUnsafeBytes { Array($0) }
        let (cek, nonce) = contentKeys(shared: shared, auth: auth, userAgentPublic: p256dh, serverPublic: serverPublic, salt: salt)
        let sealed = try AES.GCM.seal(plaintext + [0x02], using: SymmetricKey(data: cek), nonce: AES.GCM.Nonce(data: nonce))
        var body = salt
        withUnsafeBytes(of: recordSize.bigEndian) { body += $0 }
        body.append(UInt8(serverPublic.count))
        body += serverPublic
        body += sealed.ciphertext
        body += sealed.tag
        return body
    }

    /// Decrypts a body with the subscription's private key and auth secret (what a browser does; the Web Push
    /// emulator uses it to check what Herald sent). Rejects any record delimiter other than 0x02.
    public static func decrypt(_ body: [UInt8], userAgentKey: P256.KeyAgreement.PrivateKey, auth: [UInt8]) throws -> [UInt8] {
        guard body.count >= 21 else { throw Failure.malformed("body shorter than the aes128gcm header") }
        let salt = Array(body[0..<16])
        let recordSize = body[16..<20].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let idLength = Int(body[20])
        guard body.count >= 21 + idLength + 17 else { throw Failure.malformed("body shorter than its key id and tag") }
        let serverPublic = Array(body[21..<(21 + idLength)])
        let record = Array(body[(21 + idLength)...])
        guard recordSize >= 18, record.count <= Int(recordSize) else { throw Failure.malformed("more than one record") }
        guard let serverKey = try? P256.KeyAgreement.PublicKey(x963Representation: serverPublic) else {
            throw Failure.malformed("key id is not a P-256 public key")
        }
        let shared = try userAgentKey.sharedSecretFromKeyAgreement(with: serverKey).withUnsafeBytes { Array($0) }
        let userAgentPublic = Array(userAgentKey.publicKey.x963Representation)
        let (cek, nonce) = contentKeys(shared: shared, auth: auth, userAgentPublic: userAgentPublic, serverPublic: serverPublic, salt: salt)
        let box = try AES.GCM.SealedBox(
            nonce: AES.GCM.Nonce(data: nonce), ciphertext: record.dropLast(16), tag: record.suffix(16))
        var padded = Array(try AES.GCM.open(box, using: SymmetricKey(data: cek)))
        while padded.last == 0 { padded.removeLast() }
        guard padded.last == 0x02 else { throw Failure.malformed("record delimiter is not 0x02 (last record)") }
        padded.removeLast()
        return padded
    }

    /// CEK and NONCE (RFC 8291 §3.4 then RFC 8188 §2.2–2.3).
    static func contentKeys(
        shared: [UInt8], auth: [UInt8], userAgentPublic: [UInt8], serverPublic: [UInt8], salt: [UInt8]
    )
        -> (cek: [UInt8], nonce: [UInt8])
    {
        let prkKey = hmac(key: auth, shared)
        let keyInfo = Array("WebPush: info".utf8) + [0] + userAgentPublic + serverPublic
        let ikm = hmac(key: prkKey, keyInfo + [1])
        let prk = hmac(key: salt, ikm)
        let cek = Array(hmac(key: prk, Array("Content-Encoding: aes128gcm".utf8) + [0, 1]).prefix(16))
        let nonce = Array(hmac(key: prk, Array("Content-Encoding: nonce".utf8) + [0, 1]).prefix(12))
        return (cek, nonce)
    }

    static func hmac(key: [UInt8], _ message: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key)))
    }

    public static func randomBytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }
}
