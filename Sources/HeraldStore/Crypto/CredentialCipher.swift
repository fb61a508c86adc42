import Crypto
import Foundation
import HeraldCore

/// Encrypts integration credentials at rest with AES-256-GCM.
///
/// Each credential field is sealed separately with a fresh 96-bit nonce. The environment id, integration id and
/// field name are bound as associated data, so a ciphertext copied to another integration or field fails to
/// decrypt. The stored form is `v1.<key id>.<base64(nonce ‖ ciphertext ‖ tag)>`; the key id (8 hex characters
/// derived from the key) lets a keyring hold older keys during a rotation.
public struct CredentialCipher: Sendable {
    /// A 256-bit key and its public id.
    public struct Key: Sendable {
        public let id: String
        let key: SymmetricKey

        /// Wraps 32 raw bytes.
        public init(bytes: some ContiguousBytes) throws {
            let key = SymmetricKey(data: bytes)
            guard key.bitCount == 256 else {
                throw HeraldError(.configuration, "an encryption key must be exactly 32 bytes")
            }
            self.key = key
            let mac = HMAC<SHA256>.authenticationCode(for: Data("herald key id".utf8), using: key)
            self.id = Hex.encode(Data(mac).prefix(4))
        }

        /// Decodes the base64 form of `HERALD_ENCRYPTION_KEY`.
        public init(base64 text: String) throws {
            guard let data = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)), data.count == 32 else {
                throw HeraldError(
                    .configuration, "HERALD_ENCRYPTION_KEY must be 32 random bytes in base64 (generate one with: openssl rand -base64 32)"
                )
            }
            try self.init(bytes: data)
        }

        /// A new random key.
        public static func random() -> Key {
            // 32 bytes always make a valid key.
            try! Key(bytes: SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) })
        }

        /// The key in base64, for writing a key file.
        public var base64: String { key.withUnsafeBytes { Data($0).base64EncodedString() } }
    }

    /// The key new values are sealed with.
    public let current: Key
    /// Every key values may be opened with (the current one first).
    let keys: [String: Key]

    public init(current: Key, previous: [Key] = []) {
        self.current = current
        var keys = Dictionary(previous.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        keys[current.id] = current
        self.keys = keys
    }

    /// A key for another purpose derived from the current key (HKDF-SHA256, `purpose` as info): the console signs
    /// its session cookies with one, so no second secret needs configuring. Rotating the encryption key ends sessions.
    public func derivedKey(purpose: String) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(
            inputKeyMaterial: current.key, salt: Data("herald".utf8), info: Data(purpose.utf8), outputByteCount: 32)
    }

    /// Whether a value sealed under the key with this id can be opened.
    public func knowsKey(id: String) -> Bool { keys[id] != nil }

    /// Seals one credential field.
    public func seal(_ plaintext: String, environmentId: String, integrationId: String, field: String) throws -> String {
        let box = try AES.GCM.seal(
            Data(plaintext.utf8), using: current.key,
            authenticating: Self.associatedData(environmentId: environmentId, integrationId: integrationId, field: field)
        )
        guard let combined = box.combined else {
            throw HeraldError(.internal, "AES-GCM produced no combined box")
        }
        return "v1.\(current.id).\(combined.base64EncodedString())"
    }

    /// Opens one credential field. Any failure — unknown key, altered bytes, a value moved from another record —
    /// is one error that names the integration and field, never the value.
    public func open(_ stored: String, environmentId: String, integrationId: String, field: String) throws -> String {
        let failure = HeraldError(
            .decryptionFailed,
            "credential '\(field)' of integration \(integrationId) cannot be decrypted: the encryption key is wrong or the stored value was altered or copied from another record",
            context: ["integrationId": integrationId, "field": field]
        )
        let parts = stored.split(separator: ".", maxSplits: 2)
        guard parts.count == 3, parts[0] == "v1", let key = keys[String(parts[1])], let combined = Data(base64Encoded: String(parts[2]))
        else { throw failure }
        do {
            let box = try AES.GCM.SealedBox(combined: combined)
            let plaintext = try AES.GCM.open(
                box, using: key.key,
                authenticating: Self.associatedData(environmentId: environmentId, integrationId: integrationId, field: field)
            )
            guard let text = String(data: plaintext, encoding: .utf8) else { throw failure }
            return text
        } catch {
            throw failure
        }
    }

    /// Seals every field of `credentials` (each value as its JSON text) into the stored JSON object.
    public func sealAll(_ credentials: IntegrationCredentials, environmentId: String, integrationId: String) throws -> String {
        var sealed: [String: JSONValue] = [:]
        for (field, value) in credentials.fields {
            sealed[field] = .string(try seal(value.jsonString(), environmentId: environmentId, integrationId: integrationId, field: field))
        }
        return JSONValue.object(sealed).jsonString()
    }

    /// Opens a stored JSON object of sealed fields.
    public func openAll(_ stored: String, environmentId: String, integrationId: String) throws -> IntegrationCredentials {
        guard case .object(let sealed)? = try? JSONValue.parse(stored) else {
            throw HeraldError(.decryptionFailed, "credentials of integration \(integrationId) are not a JSON object")
        }
        var fields: [String: JSONValue] = [:]
        for (field, value) in sealed {
            guard let text = value.stringValue else {
                throw HeraldError(.decryptionFailed, "credential '\(field)' of integration \(integrationId) is not sealed")
            }
            let json = try open(text, environmentId: environmentId, integrationId: integrationId, field: field)
            fields[field] = try JSONValue.parse(json)
        }
        return IntegrationCredentials(fields)
    }

    private static func associatedData(environmentId: String, integrationId: String, field: String) -> Data {
        Data("herald/credential/v1\u{0}\(environmentId)\u{0}\(integrationId)\u{0}\(field)".utf8)
    }
}
