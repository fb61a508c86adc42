import Foundation

/// Per-provider checks of push tokens, so that a malformed token is refused at the API with a clear message
/// instead of failing at every delivery.
public enum DeviceTokenRules {
    /// Why `token` is not acceptable for `provider`, or nil when it is. With a `policy`, a Web Push endpoint must also
    /// pass the outbound URL guard (nil checks the format only: every send is vetted by the transport again).
    public static func problem(provider: String, token: String, policy: OutboundURLPolicy?) -> String? {
        guard !token.isEmpty else { return "device tokens must not be empty" }
        guard token.utf8.count <= DeviceRegistration.maxTokenLength else {
            return "device tokens are at most \(DeviceRegistration.maxTokenLength) bytes"
        }
        switch provider {
        case "apns":
            guard token.count >= 64, token.count <= 200, token.count % 2 == 0, token.utf8.allSatisfy({ Hex.value(of: $0) != nil }) else {
                return "an APNs device token is an even number (64 or more) of hexadecimal digits"
            }
        case "expo":
            guard (token.hasPrefix("ExponentPushToken[") || token.hasPrefix("ExpoPushToken[")) && token.hasSuffix("]") else {
                return "an Expo push token looks like ExponentPushToken[…]"
            }
        case "web-push":
            return webPushProblem(token, policy: policy)
        default:
            guard !token.contains(where: { $0.isWhitespace || $0.isNewline }) else { return "device tokens must not contain whitespace" }
        }
        return nil
    }

    /// A Web Push token is the browser's PushSubscription JSON: an https `endpoint` and base64url `keys.p256dh`
    /// (an uncompressed P-256 point, 65 bytes) and `keys.auth` (16 bytes).
    static func webPushProblem(_ token: String, policy: OutboundURLPolicy?) -> String? {
        guard case .object(let object)? = try? JSONValue.parse(token) else {
            return "a web-push token is the PushSubscription JSON: {\"endpoint\":…, \"keys\":{\"p256dh\":…, \"auth\":…}}"
        }
        guard let endpoint = object["endpoint"]?.stringValue, endpoint.lowercased().hasPrefix("https://") else {
            return "a web-push subscription needs an https endpoint"
        }
        if let policy {
            do { _ = try policy.check(endpoint) } catch let refusal as OutboundURLRefusal {
                return "the web-push endpoint is refused: \(refusal.reason)"
            } catch { return "a web-push subscription needs an https endpoint" }
        }
        guard case .object(let keys)? = object["keys"], let p256dh = keys["p256dh"]?.stringValue, let auth = keys["auth"]?.stringValue
        else {
            return "a web-push subscription needs keys.p256dh and keys.auth"
        }
        guard let point = Base64URL.decode(p256dh), point.count == 65, point.first == 0x04 else {
            return "keys.p256dh must be an uncompressed P-256 public key (65 bytes, base64url)"
        }
        guard let secret = Base64URL.decode(auth), secret.count == 16 else {
            return "keys.auth must be 16 bytes in base64url"
        }
        return nil
    }
}

/// Base64url without padding (RFC 4648 §5), as Web Push and JWTs use it. Byte-level: JWT checks run per request in
/// the emulators, where Foundation's string replacing and trimming cost more than the signature check.
public enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// Sextet of each byte, 0xFF when not in either alphabet (`-_` of base64url and `+/` of standard base64 both decode).
    private static let sextets: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
        table[Int(UInt8(ascii: "+"))] = 62
        table[Int(UInt8(ascii: "/"))] = 63
        return table
    }()

    /// The bytes of `text`, padded or not; nil when it holds anything but the alphabet (and trailing `=`) or its
    /// length cannot be base64.
    public static func decode(_ text: String) -> Data? {
        var utf8 = Substring(text).utf8
        while utf8.last == UInt8(ascii: "=") { utf8 = utf8.dropLast() }
        guard utf8.count % 4 != 1 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(utf8.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        for byte in utf8 {
            let sextet = sextets[Int(byte)]
            guard sextet != 0xFF else { return nil }
            accumulator = (accumulator << 6) | UInt32(sextet)
            bits += 6
            if bits >= 8 {
                bits -= 8
                output.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        return Data(output)
    }

    public static func encode(_ data: some DataProtocol) -> String {
        var output: [UInt8] = []
        output.reserveCapacity((data.count * 4 + 2) / 3)
        var accumulator: UInt32 = 0
        var bits = 0
        for byte in data {
            accumulator = (accumulator << 8) | UInt32(byte)
            bits += 8
            while bits >= 6 {
                bits -= 6
                output.append(alphabet[Int((accumulator >> UInt32(bits)) & 0x3F)])
            }
        }
        if bits > 0 { output.append(alphabet[Int((accumulator << UInt32(6 - bits)) & 0x3F)]) }
        return String(decoding: output, as: UTF8.self)
    }
}
