import Crypto
import Foundation
import HeraldCore
import _CryptoExtras

/// What each provider needs in its credentials, and which credential fields are secrets (`docs/providers.md`
/// §Provider ids, credentials and batch limits). Secrets are never returned in clear; formats are checked when an integration is saved so
/// that a broken key fails at the API, not at the first delivery.
enum IntegrationRules {
    /// Required credential fields per provider id.
    static func required(_ providerId: String) -> [String] { ProviderCatalog.spec(providerId)?.requiredCredentials ?? [] }

    /// Credential fields whose values are secrets.
    static var secretFields: Set<String> { ProviderCatalog.secretCredentialFields }

    /// The masked form of a secret: bullets and its last four characters.
    static func mask(_ value: String) -> String {
        value.count <= 8 ? "••••••••" : "••••" + value.suffix(4)
    }

    /// Whether a value sent back by a client is a masked placeholder (keep the stored secret).
    static func isMasked(_ value: JSONValue) -> Bool {
        value.stringValue?.hasPrefix("••••") == true
    }

    /// Credentials with every secret masked.
    static func masked(_ credentials: IntegrationCredentials) -> JSONValue {
        .object(
            credentials.fields.reduce(into: [:]) { result, entry in
                result[entry.key] =
                    secretFields.contains(entry.key) ? .string(mask(entry.value.stringValue ?? entry.value.jsonString())) : entry.value
            }
        )
    }

    /// Checks credentials for a provider; returns field → message for every problem.
    static func problems(
        providerId: String, credentials: IntegrationCredentials, active: Bool, policy: OutboundURLPolicy
    ) -> [String: String] {
        var problems: [String: String] = [:]
        if active {
            // APNs certificate authentication (a PKCS#12 `certificate`) replaces the .p8 key, key id and team id.
            let certificateAuth = providerId == "apns" && credentials.string("certificate")?.isEmpty == false
            let fields = required(providerId).filter { !certificateAuth || $0 == "applicationId" }
            for field in fields where credentials[field] == nil || credentials.string(field)?.isEmpty == true {
                problems["credentials.\(field)"] = "credentials.\(field) is required for \(providerId)"
            }
        }
        for (field, value) in credentials.fields {
            if let message = formatProblem(providerId: providerId, field: field, value: value, all: credentials, policy: policy) {
                problems["credentials.\(field)"] = message
            }
        }
        return problems
    }

    private static func formatProblem(
        providerId: String, field: String, value: JSONValue, all: IntegrationCredentials, policy: OutboundURLPolicy
    ) -> String? {
        switch (providerId, field) {
        case (_, "baseUrl"), (_, "webhookUrl"):
            guard let text = value.stringValue else { return "credentials.\(field) must be an https URL" }
            do { _ = try policy.check(text) } catch let refusal as OutboundURLRefusal {
                return "credentials.\(field) is refused: \(refusal.reason)"
            } catch { return "credentials.\(field) must be an https URL" }
        case ("fcm", "serviceAccount"):
            guard let text = value.stringValue, case .object(let account)? = try? JSONValue.parse(text) else {
                return "credentials.serviceAccount must be the service account JSON as a string"
            }
            for key in ["project_id", "client_email", "private_key"] where account[key]?.stringValue?.isEmpty != false {
                return "credentials.serviceAccount has no \(key)"
            }
            guard let pem = account["private_key"]?.stringValue, (try? _RSA.Signing.PrivateKey(pemRepresentation: pem)) != nil else {
                return "credentials.serviceAccount private_key is not an RSA private key in PEM form"
            }
            if let uri = account["token_uri"]?.stringValue, URL(string: uri)?.scheme == nil {
                return "credentials.serviceAccount token_uri is not a URL"
            }
        case ("apns", "secretKey"):
            guard let pem = value.stringValue, (try? P256.Signing.PrivateKey(pemRepresentation: pem)) != nil else {
                return "credentials.secretKey must be the .p8 key (a P-256 private key in PEM form)"
            }
        case ("apns", "apiKey"), ("apns", "projectName"):
            guard let text = value.stringValue, text.count == 10, text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else {
                return "credentials.\(field) must be the 10-character Apple \(field == "apiKey" ? "key id" : "team id")"
            }
        case ("apns", "secure"):
            guard case .bool = value else { return "credentials.secure must be true (production) or false (sandbox)" }
        case ("web-push", "vapidPublicKey"):
            guard let text = value.stringValue, let bytes = Base64URL.decode(text), bytes.count == 65, bytes.first == 0x04 else {
                return "credentials.vapidPublicKey must be an uncompressed P-256 public key in base64url (65 bytes)"
            }
        case ("web-push", "vapidPrivateKey"):
            guard let text = value.stringValue, let bytes = Base64URL.decode(text), bytes.count == 32,
                let key = try? P256.Signing.PrivateKey(rawRepresentation: bytes)
            else {
                return "credentials.vapidPrivateKey must be a P-256 private key in base64url (32 bytes)"
            }
            if let publicText = all.string("vapidPublicKey"), let publicBytes = Base64URL.decode(publicText),
                key.publicKey.x963Representation != publicBytes
            {
                return "credentials.vapidPrivateKey does not belong to credentials.vapidPublicKey"
            }
        case ("web-push", "vapidSubject"):
            guard let text = value.stringValue, text.hasPrefix("mailto:") || text.hasPrefix("https://") else {
                return "credentials.vapidSubject must be a mailto: or https: URL"
            }
        case ("nodemailer", "host"):
            guard let text = value.stringValue, !text.isEmpty else { return "credentials.host must be the SMTP server's host name" }
            do { _ = try policy.check(host: text, port: 587) } catch let refusal as OutboundURLRefusal {
                return "credentials.host is refused: \(refusal.reason)"
            } catch { return "credentials.host must be the SMTP server's host name" }
        case ("nodemailer", "port"):
            let port: Int? =
                switch value {
                case .number(let number): Int(exactly: number)
                case .string(let text): Int(text)
                default: nil
                }
            guard let port, (1...65535).contains(port) else { return "credentials.port must be a port number" }
        case (_, "from") where ProviderCatalog.channel(of: providerId) == .email:
            guard let text = value.stringValue, text.contains("@") else { return "credentials.from must be an e-mail address" }
        default:
            break
        }
        return nil
    }
}
