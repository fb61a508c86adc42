import Crypto
import Foundation
import HeraldCore
import _CryptoExtras

/// The provider accounts every simulator starts with, and the integration credentials that reach them — what
/// `herald dev`, the benchmarks and the crash test configure. The keys are the public test keys of RFC 7515
/// Appendix A.2 (RSA, the "service account") and A.3 (P-256, the APNs .p8 and the VAPID key): never use them
/// anywhere else.
public enum DevAccounts {
    public static let googleProject = "herald-dev"
    public static let googleClientEmail = "herald-dev@herald-dev.iam.gserviceaccount.com"
    public static let apnsTeamId = "HERALDTEAM"
    public static let apnsKeyId = "HERALDKEY1"
    public static let apnsBundleId = "dev.herald.app"
    public static let telegramBotToken = "123456:herald-dev-telegram-bot"
    public static let twilioAccountSid = "AC00000000000000000000000000herald"
    public static let twilioToken = "herald-dev-twilio-token"
    public static let vonageKey = "heralddev"
    public static let vonageSecret = "herald-dev-vonage-secret"
    /// The webhook secrets of the email emulators' receipts (herald dev puts each in its integration's
    /// `inboundWebhookSigningKey`): Resend's `whsec_` secret, Mailgun's signing key, Postmark's basic-auth pair.
    public static let receiptSecrets = [
        "resend": "whsec_" + Data("herald-dev-resend-webhook-key!!!".utf8).base64EncodedString(),
        "mailgun": "herald-dev-mailgun-signing-key", "postmark": "herald:dev-webhook-pass",
    ]

    public static let emailKeys = [
        "sendgrid": "SG.herald-dev-key", "mailgun": "key-herald-dev", "postmark": "herald-dev-postmark-token", "resend": "re_herald_dev",
    ]
    public static let mailgunDomain = "mg.herald.local"
    public static let smtpUser = "herald-dev"
    public static let smtpPassword = "herald-dev-smtp-password"
    public static let hmsClientId = "100200300"
    public static let hmsSecret = "herald-dev-hms-secret"
    public static let expoAccessToken = "herald-dev-expo-access-token"
    public static let oneSignalAppId = "00000000-0000-4000-8000-000000000001"
    public static let oneSignalKey = "os_v2_app_herald_dev_key"
    public static let beamsInstance = "herald-dev-instance"
    public static let beamsSecret = "herald-dev-beams-secret"
    public static let pushpadProject = "1001"
    public static let pushpadToken = "herald-dev-pushpad-token"

    /// RFC 7515 A.2's RSA key (PKCS#8 PEM), the dev service account's private key.
    public static let rsaPEM = """
        -----BEGIN PRIVATE KEY-----
        MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCh+BYK4uPJtGXO
        jS1lYmM2K5J9vinh8CR3/BYlzJChNuOL2TSXxbbqY913EeZ8dCn5VrD7io8ImtxL
        aYk8wTM/U+3QGbh3hCUv7JFP5IV3aVlL6kKA0ywPVb9ilE8TA5a8bpvfbr3SvaNn
        juygxmj3AbONv/s4yDQs4v5tJ/reSlpIdJed1LnPmt7Ex1sFhSwsD174pcF1A5L5
        ROjtZMEQxrZHYJqkeDrrnGya11UxMFBji4NmXG9veoKjlnAqH2QbgtPr8jkiGUkf
        toaHLFcW9Qr4NY2ai50Xw0Byj3+H2JoY2PyrZ62EWQwuz3WTOTY8BwNNb2BvniHg
        VFbK5emhAgMBAAECggEAEq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyW
        PEAeP88vLNO97IjlA7/GQ5sLKMgvfTeXZx9SE+7YwVol2NXOoAJe46sui395IW/G
        O+pWJ1O0BkTGoVEn2bKVRUCgu+GjBVaYLU6f3l9kJfFNS3E0QbVdxzubSu3Mkqzj
        kn439X0M/V51gfpRLI9JYanrC4D4qAdGcopV/0ZHHzQlBjudU2QvXt4ehNYTCBr6
        XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl/x/jTj3ccPDVZFD9pIuhLhBOneufuBiB
        4cS98l2SR/RQyGWSeWjnczT0QU91p1DhOVRuOopznQKBgQDgHMQQ60imZV1URk0K
        pLttoLhyt3SmqdEf/kgHePDdtzEafpAu+cS191R2JiuoF2yzWXnwFDcqGigp5BNr
        0AHQfD8/Lk8l1Mk09jxxCfui5nYooNyac8YFjm3vItzVCVDnEd3BbVWG8qf6deqE
        lMGAg+C2V0L4oNXnP7LZcPAZRwKBgQC5A8R+CZW2MvRTLLHzwZkUXV866cff7tx6
        kqa0finGG0KgeqlaZPxgCZnFp7AeAcCMtiynVlJ7vMVgePsLq6XtON4tB5kP9jAP
        rq3rbAOal78eUH5OcED6eNuCV8ixEu1eWcPNCS/l1OW1EnXUEoEHKl54Xrrz2uNw
        kgMTP1FZ1wKBgAcCn1dwJKufzBWQxWQp1vsM5fggqPN1qGb5y0MAk3g7/Ls5bkUp
        5u9SN0Ai3Ya6hNnvWJMb7sXQX6U/zyO2M/hTip7tUeh7CXgwo59dkpN75gJLVds2
        9+DAncu3KXU4f2Fa+7bLNrur53k8KwPOq2bbuTG69QtV7Jr5MR0AHWKNAoGBAIf/
        evpitUf+4JYbLpvNXWcY052Mpz22aR84mY3nh3F2LF2mjMJDpTg7FmuyPcVw6EcG
        yoAe9fa65iNqCq+jdw6PVNGo2hxfjSiZ8IIzHdsPXI89//pMjZcQK9r+CCoRjaZj
        OYiIDktVWZzmevJuv6WywUqd57LE3Zar3dLSIkx1AoGAIYd7DHOhrWvxkwPQsRM2
        tOgrjbcrfvtQJipd+DlcxyVuuM9sQLdgjVk2oy26F0EmpScGLq2MowX7fhd/QJQ3
        ydy5cY7YIBi87w93IKLEdfnbJtoOPLUW0ITrJReOgo1cq9SbsxYawBgfp/gh6A56
        03k2+ZQwVK0JKSHuLFkuQ3U=
        -----END PRIVATE KEY-----
        """

    /// RFC 7515 A.3's P-256 key (PKCS#8 PEM): the dev APNs .p8.
    public static let p256PEM = """
        -----BEGIN PRIVATE KEY-----
        MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgjpsQnnGQmL+YBIff
        H1136cspYG6+0iY7X1fCE9+E9LKhRANCAAR/zc4ncPbEXUGDy+5v20t7WAczNXvp
        7xO6z248e9FURcfxRM0bvZt+hyzf7bnuufSzaV1uqQskrYpGIyiFiOWt
        -----END PRIVATE KEY-----
        """

    /// The same P-256 key as a raw VAPID pair (base64url).
    public static var vapidPrivateKey: String {
        Base64URL.encode((try! P256.Signing.PrivateKey(pemRepresentation: p256PEM)).rawRepresentation)
    }
    public static var vapidPublicKey: String {
        Base64URL.encode((try! P256.Signing.PrivateKey(pemRepresentation: p256PEM)).publicKey.x963Representation)
    }

    /// The dev service-account JSON, its token endpoint on the simulator at `tlsBase`.
    public static func serviceAccount(tlsBase: String) -> String {
        let account: JSONValue = [
            "type": "service_account", "project_id": .string(googleProject), "private_key_id": "herald-dev-key",
            "private_key": .string(rsaPEM), "client_email": .string(googleClientEmail), "token_uri": .string("\(tlsBase)/google/token"),
        ]
        return account.jsonString()
    }

    /// Registers every dev account with `push`.
    public static func register(on push: PushEmulator) {
        let rsa = try! _RSA.Signing.PrivateKey(pemRepresentation: rsaPEM)
        push.registerGoogleServiceAccount(clientEmail: googleClientEmail, projectId: googleProject, publicKey: rsa.publicKey)
        let p256 = try! P256.Signing.PrivateKey(pemRepresentation: p256PEM)
        push.registerAPNsKey(teamId: apnsTeamId, keyId: apnsKeyId, publicKey: p256.publicKey, bundleIds: [apnsBundleId])
        push.registerHMSApp(clientId: hmsClientId, secret: hmsSecret)
        push.requireExpoAccessToken(expoAccessToken)
        push.registerOneSignalApp(appId: oneSignalAppId, apiKey: oneSignalKey)
        push.registerBeamsInstance(instanceId: beamsInstance, secretKey: beamsSecret)
        push.registerPushpadProject(projectId: pushpadProject, token: pushpadToken)
    }

    /// One integration per push provider reaching the simulator at `tlsBase` (`https://127.0.0.1:<port>`):
    /// (provider id, identifier, credentials).
    public static func pushIntegrations(tlsBase: String) -> [(providerId: String, identifier: String, credentials: JSONValue)] {
        [
            ("fcm", "dev-fcm", ["serviceAccount": .string(serviceAccount(tlsBase: tlsBase)), "baseUrl": .string("\(tlsBase)/fcm")]),
            (
                "apns", "dev-apns",
                [
                    "secretKey": .string(p256PEM), "apiKey": .string(apnsKeyId), "projectName": .string(apnsTeamId),
                    "applicationId": .string(apnsBundleId), "secure": false, "baseUrl": .string(tlsBase),
                ]
            ),
            (
                "web-push", "dev-web-push",
                [
                    "vapidPublicKey": .string(vapidPublicKey), "vapidPrivateKey": .string(vapidPrivateKey),
                    "vapidSubject": "mailto:dev@herald.local",
                ]
            ),
            ("expo", "dev-expo", ["apiKey": .string(expoAccessToken), "baseUrl": .string("\(tlsBase)/expo")]),
            ("hms", "dev-hms", ["clientId": .string(hmsClientId), "secretKey": .string(hmsSecret), "baseUrl": .string("\(tlsBase)/hms")]),
            (
                "one-signal", "dev-one-signal",
                ["applicationId": .string(oneSignalAppId), "apiKey": .string(oneSignalKey), "baseUrl": .string("\(tlsBase)/onesignal")]
            ),
            (
                "pusher-beams", "dev-pusher-beams",
                ["instanceId": .string(beamsInstance), "secretKey": .string(beamsSecret), "baseUrl": .string("\(tlsBase)/beams")]
            ),
            (
                "pushpad", "dev-pushpad",
                ["applicationId": .string(pushpadProject), "apiKey": .string(pushpadToken), "baseUrl": .string("\(tlsBase)/pushpad")]
            ),
        ]
    }
}
