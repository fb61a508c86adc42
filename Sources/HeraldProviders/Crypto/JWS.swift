import Crypto
import Foundation
import HeraldCore
import _CryptoExtras

/// Compact JWS (RFC 7515) signing and verification for the two algorithms push services use: RS256 (Google's
/// service-account assertion) and ES256 (APNs provider tokens, VAPID). Header and claims are serialised compactly in
/// the order given, so that deterministic signatures (RS256) reproduce published vectors byte for byte.
public enum JWS {
    public enum Signer: Sendable {
        case rs256(_RSA.Signing.PrivateKey)
        case es256(P256.Signing.PrivateKey)

        var algorithm: String {
            switch self {
            case .rs256: "RS256"
            case .es256: "ES256"
            }
        }
    }

    /// A compact JWS of `claims` with the header `{"alg":…, <extraHeader>}` (`typ`, `kid`, … in the order given).
    public static func sign(
        header extraHeader: KeyValuePairs<String, JSONValue> = [:], claims: KeyValuePairs<String, JSONValue>, signer: Signer
    ) throws -> String {
        var header: [(String, JSONValue)] = [("alg", .string(signer.algorithm))]
        header += extraHeader.map { ($0.key, $0.value) }
        let input = Base64URL.encode(Data(compactJSON(header).utf8)) + "." + Base64URL.encode(Data(compactJSON(Array(claims)).utf8))
        return input + "." + Base64URL.encode(try signature(for: Data(input.utf8), signer: signer))
    }

    /// The signature of a signing input (`b64(header).b64(claims)`).
    public static func signature(for input: Data, signer: Signer) throws -> Data {
        switch signer {
        case .rs256(let key): try key.signature(for: input, padding: .insecurePKCS1v1_5).rawRepresentation
        case .es256(let key): try key.signature(for: input).rawRepresentation
        }
    }

    /// `{"a":1,"b":"x"}` with the keys in the given order.
    public static func compactJSON(_ pairs: [(String, JSONValue)]) -> String {
        "{" + pairs.map { JSONValue.string($0.0).jsonString() + ":" + $0.1.jsonString() }.joined(separator: ",") + "}"
    }

    /// A JWS split into its parts, before any signature check.
    public struct Parsed: Sendable {
        public var header: [String: JSONValue]
        public var claims: [String: JSONValue]
        public var signingInput: Data
        public var signature: Data

        public init?(_ token: String) {
            let parts = token.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 3, let headerBytes = Base64URL.decode(String(parts[0])),
                let claimBytes = Base64URL.decode(String(parts[1])), let signature = Base64URL.decode(String(parts[2])),
                case .object(let header)? = try? JSONValue.parse(bytes: headerBytes),
                case .object(let claims)? = try? JSONValue.parse(bytes: claimBytes)
            else { return nil }
            self.header = header
            self.claims = claims
            self.signingInput = Data((parts[0] + "." + parts[1]).utf8)
            self.signature = signature
        }

        /// Whether an RS256 signature verifies under `key`.
        public func verifies(with key: _RSA.Signing.PublicKey) -> Bool {
            header["alg"]?.stringValue == "RS256"
                && key.isValidSignature(
                    _RSA.Signing.RSASignature(rawRepresentation: signature), for: signingInput, padding: .insecurePKCS1v1_5)
        }

        /// Whether an ES256 signature (raw `r||s`) verifies under `key`.
        public func verifies(with key: P256.Signing.PublicKey) -> Bool {
            guard header["alg"]?.stringValue == "ES256", let signature = try? P256.Signing.ECDSASignature(rawRepresentation: signature)
            else { return false }
            return key.isValidSignature(signature, for: signingInput)
        }

        /// An integer claim (`iat`, `exp`), also accepted as a numeric string.
        public func integer(_ claim: String) -> Int64? {
            switch claims[claim] {
            case .number(let value)? where value.isFinite: Int64(value)
            case .string(let text)?: Int64(text)
            default: nil
            }
        }
    }
}
