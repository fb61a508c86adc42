import Foundation

/// Per-provider checks of push tokens, so that a malformed token is refused at the API with a clear message
/// instead of failing at every delivery.
public enum DeviceTokenRules {
    /// Why `token` is not acceptable for `provider`, or nil when it is.
    public static func problem(provider: String, token: String) -> String? {
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
            return webPushProblem(token)
        default:
            guard !token.contains(where: { $0.isWhitespace || $0.isNewline }) else { return "device tokens must not contain whitespace" }
        }
        return nil
    }

    /// A Web Push token is the browser's PushSubscription JSON: an https `endpoint` and base64url `keys.p256dh`
    /// (an uncompressed P-256 point, 65 bytes) and `keys.auth` (16 bytes).
    static func webPushProblem(_ token: String) -> String? {
        guard case .object(let object)? = try? JSONValue.parse(token) else {
            return "a web-push token is the PushSubscription JSON: {\"endpoint\":…, \"keys\":{\"p256dh\":…, \"auth\":…}}"
        }
        guard let endpoint = object["endpoint"]?.stringValue, endpoint.lowercased().hasPrefix("https://") else {
            return "a web-push subscription needs an https endpoint"
        }
        do { _ = try OutboundURLPolicy.current.check(endpoint) } catch let refusal as OutboundURLRefusal {
            return "the web-push endpoint is refused: \(refusal.reason)"
        } catch { return "a web-push subscription needs an https endpoint" }
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

/// Base64url without padding (RFC 4648 §5), as Web Push and JWTs use it.
public enum Base64URL {
    public static func decode(_ text: String) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 = base64.trimmingCharacters(in: CharacterSet(charactersIn: "="))
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64)
    }

    public static func encode(_ data: some DataProtocol) -> String {
        Data(data).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .trimmingCharacters(in: CharacterSet(charactersIn: "="))
    }
}
