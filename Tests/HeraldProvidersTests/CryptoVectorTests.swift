import Crypto
import Foundation
import HeraldCore
import Testing
import _CryptoExtras

@testable import HeraldProviders
@testable import HeraldSimulator

/// The test vectors of `docs/providers.md` §Test vectors, reproduced by Herald's own code.
@Suite struct CryptoVectorTests {
    func b64(_ text: String) -> [UInt8] { Array(Base64URL.decode(text)!) }

    @Test func base64urlMatchesRFC4648AndFoundation() {
        // RFC 4648 §10 vectors, unpadded, and every length 0…70 of random bytes against Foundation's base64.
        for (plain, encoded) in [
            ("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"), ("fooba", "Zm9vYmE"), ("foobar", "Zm9vYmFy"),
        ] {
            #expect(Base64URL.encode(Data(plain.utf8)) == encoded)
            #expect(Base64URL.decode(encoded) == Data(plain.utf8))
        }
        for length in 0...70 {
            let bytes = Data((0..<length).map { _ in UInt8.random(in: 0...255) })
            let standard = bytes.base64EncodedString()
            let url = standard.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
            #expect(Base64URL.encode(bytes) == url)
            #expect(Base64URL.decode(url) == bytes)
            #expect(Base64URL.decode(standard) == bytes)  // padded, standard alphabet
        }
        for invalid in ["a", "ab$d", "Zm9v\n", "Zm 9v", "abcde"] { #expect(Base64URL.decode(invalid) == nil) }
    }

    @Test func rfc8291AppendixAEncryptsByteForByte() throws {
        let plaintext = Array("When I grow up, I want to be a watermelon".utf8)
        let asPrivate = try P256.KeyAgreement.PrivateKey(rawRepresentation: b64("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"))
        let body = try WebPushCrypto.encrypt(
            plaintext, p256dh: b64("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"),
            auth: b64("BTBZMqHH6r4Tts7J_aSIgg"), ephemeralKey: asPrivate, salt: b64("DGv6ra1nlYgDCS1FRnbzlw"))
        #expect(
            Base64URL.encode(body)
                == "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
        )
        #expect(body.count == 144)
        // The intermediate keys of the appendix.
        let shared = b64("kyrL1jIIOHEzg3sM2ZWRHDRB62YACZhhSlknJ672kSs")
        let keys = WebPushCrypto.contentKeys(
            shared: shared, auth: b64("BTBZMqHH6r4Tts7J_aSIgg"),
            userAgentPublic: b64("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"),
            serverPublic: b64("BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"),
            salt: b64("DGv6ra1nlYgDCS1FRnbzlw"))
        #expect(Base64URL.encode(keys.cek) == "oIhVW04MRdy2XN9CiKLxTg")
        #expect(Base64URL.encode(keys.nonce) == "4h_95klXJ5E_qnoN")
        // The user agent decrypts it (what the Web Push emulator does).
        let uaPrivate = try P256.KeyAgreement.PrivateKey(rawRepresentation: b64("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"))
        #expect(try WebPushCrypto.decrypt(body, userAgentKey: uaPrivate, auth: b64("BTBZMqHH6r4Tts7J_aSIgg")) == plaintext)
    }

    @Test func encryptionRefusesOversizedPayloadsAndDecryptionRefusesAnotherDelimiter() throws {
        let ua = P256.KeyAgreement.PrivateKey()
        let auth = WebPushCrypto.randomBytes(16)
        let p256dh = Array(ua.publicKey.x963Representation)
        #expect(throws: WebPushCrypto.Failure.tooLarge) {
            try WebPushCrypto.encrypt([UInt8](repeating: 65, count: 3994), p256dh: p256dh, auth: auth)
        }
        let largest = try WebPushCrypto.encrypt([UInt8](repeating: 65, count: 3993), p256dh: p256dh, auth: auth)
        #expect(largest.count == 4096)
        // A record with the non-final delimiter 0x01 is refused.
        let ephemeral = P256.KeyAgreement.PrivateKey()
        let salt = WebPushCrypto.randomBytes(16)
        let shared = try ephemeral.sharedSecretFromKeyAgreement(with: ua.publicKey).withUnsafeBytes { Array($0) }
        let keys = WebPushCrypto.contentKeys(
            shared: shared, auth: auth, userAgentPublic: p256dh, serverPublic: Array(ephemeral.publicKey.x963Representation), salt: salt)
        let sealed = try AES.GCM.seal(
            Array("hi".utf8) + [0x01], using: SymmetricKey(data: keys.cek), nonce: AES.GCM.Nonce(data: keys.nonce))
        let body = salt + [0, 0, 16, 0, 65] + Array(ephemeral.publicKey.x963Representation) + sealed.ciphertext + sealed.tag
        #expect(throws: WebPushCrypto.Failure.self) { try WebPushCrypto.decrypt(body, userAgentKey: ua, auth: auth) }
    }

    @Test func rfc8292VAPIDVectorVerifies() throws {
        let token =
            "eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9.eyJhdWQiOiJodHRwczovL3B1c2guZXhhbXBsZS5uZXQiLCJleHAiOjE0NTM1MjM3NjgsInN1YiI6Im1haWx0bzpwdXNoQGV4YW1wbGUuY29tIn0.i3CYb7t4xfxCDquptFOepC9GAu_HLGkMlMuCGSK2rpiUfnK9ojFwDXb1JrErtmysazNjjvW2L9OkSSHzvoD1oA"
        let key = try P256.Signing.PublicKey(
            x963Representation: b64("BA1Hxzyi1RUM1b5wjxsn7nGxAszw2u61m164i3MrAIxHF6YK5h4SDYic-dRuU_RCPCfA5aq9ojSwk5Y2EmClBPs"))
        let parsed = try #require(JWS.Parsed(token))
        #expect(parsed.verifies(with: key))
        #expect(parsed.claims["aud"]?.stringValue == "https://push.example.net")
        #expect(
            JWS.compactJSON([("aud", "https://push.example.net"), ("exp", 1_453_523_768), ("sub", "mailto:push@example.com")])
                == #"{"aud":"https://push.example.net","exp":1453523768,"sub":"mailto:push@example.com"}"#)
    }

    @Test func rfc7515RS256SignatureReproducesAndES256Verifies() throws {
        let payload = "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
        let rsa = try _RSA.Signing.PrivateKey(pemRepresentation: DevAccounts.rsaPEM)
        let signature = try JWS.signature(for: Data("eyJhbGciOiJSUzI1NiJ9.\(payload)".utf8), signer: .rs256(rsa))
        #expect(
            Base64URL.encode(signature)
                == "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw"
        )
        let p256 = try P256.Signing.PrivateKey(pemRepresentation: DevAccounts.p256PEM)
        for signature in [
            "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q",
            "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmU69fgrc8OPGycO0lD3tat_FoFp57SETepkeks4eL_QfA",
        ] {
            let parsed = try #require(JWS.Parsed("eyJhbGciOiJFUzI1NiJ9.\(payload).\(signature)"))
            #expect(parsed.verifies(with: p256.publicKey))
        }
        // A fresh ES256 token verifies; a tampered one does not.
        let token = try JWS.sign(header: ["kid": "HERALDKEY1"], claims: ["iss": "HERALDTEAM", "iat": 1_700_000_000], signer: .es256(p256))
        #expect(JWS.Parsed(token)?.verifies(with: p256.publicKey) == true)
        // (One signature in 4,096 ends in "AA" itself: tamper with another pair then.)
        let tampered = String(token.dropLast(2)) + (token.hasSuffix("AA") ? "BA" : "AA")
        #expect(JWS.Parsed(tampered)?.verifies(with: p256.publicKey) != true)
    }

    @Test func googleServiceAccountAssertionIsTheDerivedVector() throws {
        let json: JSONValue = [
            "project_id": "example-project", "client_email": "fcm-test@example-project.iam.gserviceaccount.com",
            "private_key_id": "2010-12-29", "private_key": .string(DevAccounts.rsaPEM),
        ]
        let account = try GoogleServiceAccount(json: json.jsonString())
        #expect(
            try account.assertion(issuedAt: 1_700_000_000)
                == "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6IjIwMTAtMTItMjkifQ.eyJpc3MiOiJmY20tdGVzdEBleGFtcGxlLXByb2plY3QuaWFtLmdzZXJ2aWNlYWNjb3VudC5jb20iLCJzY29wZSI6Imh0dHBzOi8vd3d3Lmdvb2dsZWFwaXMuY29tL2F1dGgvZmlyZWJhc2UubWVzc2FnaW5nIiwiYXVkIjoiaHR0cHM6Ly9vYXV0aDIuZ29vZ2xlYXBpcy5jb20vdG9rZW4iLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMzYwMH0.hwIbO5O28v_G48cFlFRtJ-uP4MeY3M__krxvSmQYFjlaElmMHIBd6WYGjS5i6e9PIFlY7fedXpgP4Jv1qqgnQKqqdu_9Ea8_tCpWB9xQpsMJGXZDo8RktrzWvJAw6IWem6FO7dxsD07cGfEzCfnJ2Qws_pKzx-ER0YNEwRQaVAVUnSv7nfYw-wYmiFmvpQ6VGByve1pKS8GzPxQtFlEe_lLoSrU-J2FzxJgrCooiZxjFwhD0iJOe6LYdXHQnh81x1fKgXttcm52JWO_GZ-6tr2pa-aWs5EAE56EmkoHAEb6ZdeSNnfBePtSFiU1ZfUNr-nhBmK8JXXkeyVh3S36Guw"
        )
    }

    @Test func hmacAndHKDFPrimitives() {
        #expect(
            Hex.encode(WebPushCrypto.hmac(key: Array("Jefe".utf8), Array("what do ya want for nothing?".utf8)))
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        // RFC 5869 TC1 with the same HMAC steps the Web Push key schedule uses.
        let ikm = [UInt8](repeating: 0x0b, count: 22)
        let salt = Array(UInt8(0x00)...UInt8(0x0c))
        let info = Array(UInt8(0xf0)...UInt8(0xf9))
        let prk = WebPushCrypto.hmac(key: salt, ikm)
        #expect(Hex.encode(prk) == "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5")
        let t1 = WebPushCrypto.hmac(key: prk, info + [1])
        let t2 = WebPushCrypto.hmac(key: prk, t1 + info + [2])
        #expect(
            Hex.encode(Array((t1 + t2).prefix(42)))
                == "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
    }

    @Test func gzipRoundTrips() throws {
        let text = Array(String(repeating: "{\"to\":\"ExponentPushToken[x]\",\"body\":\"hello\"},", count: 200).utf8)
        let compressed = try #require(Gzip.compress(text))
        #expect(compressed.prefix(2) == [0x1f, 0x8b])
        #expect(compressed.count < text.count / 5)
        #expect(Gzip.decompress(compressed) == text)
        #expect(Gzip.decompress(Array("not gzip".utf8)) == nil)
        #expect(Gzip.decompress(compressed, limit: 100) == nil)
    }
}
