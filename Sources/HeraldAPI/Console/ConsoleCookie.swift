import Crypto
import Foundation
import HTTPTypes

/// The console's session cookie: `herald_console=<session id>.<HMAC-SHA256(session id)>`, base64url, HttpOnly,
/// SameSite=Strict, scoped to `/console`, Secure behind TLS. The MAC key is derived from the encryption key, so a
/// cookie cannot be forged from a guessed or leaked session id; the session row decides whether it is still live.
struct ConsoleCookie: Sendable {
    static let name = "herald_console"
    let key: SymmetricKey

    /// The cookie value for a session id.
    func value(sessionId: String) -> String {
        sessionId + "." + Self.base64URL(Data(HMAC<SHA256>.authenticationCode(for: Data(sessionId.utf8), using: key)))
    }

    /// The session id of a presented value whose MAC checks out (constant-time), or nil.
    func sessionId(from value: String) -> String? {
        let parts = value.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[0].count <= 64, let mac = Self.data(base64URL: String(parts[1])) else {
            return nil
        }
        let id = String(parts[0])
        guard HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: Data(id.utf8), using: key) else { return nil }
        return id
    }

    /// The `Set-Cookie` header that opens a session.
    func setCookie(sessionId: String, maxAge: Int, secure: Bool) -> String {
        "\(Self.name)=\(value(sessionId: sessionId)); Path=/console; Max-Age=\(maxAge); HttpOnly; SameSite=Strict"
            + (secure ? "; Secure" : "")
    }

    /// The `Set-Cookie` header that clears it.
    static func clearCookie(secure: Bool) -> String {
        "\(name)=; Path=/console; Max-Age=0; HttpOnly; SameSite=Strict" + (secure ? "; Secure" : "")
    }

    /// The value of this cookie in a request's `Cookie` headers.
    static func presented(_ headers: HTTPFields) -> String? {
        for header in headers[values: .cookie] {
            for pair in header.split(separator: ";") {
                let trimmed = pair.trimmingCharacters(in: .whitespaces)
                if trimmed.hasPrefix(name + "=") { return String(trimmed.dropFirst(name.count + 1)) }
            }
        }
        return nil
    }

    /// A random token: 32 bytes, base64url.
    static func randomToken() -> String {
        base64URL(SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) })
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func data(base64URL text: String) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64)
    }
}
