import Foundation
import HTTPTypes
import HeraldCore
import HeraldProviders
import Hummingbird
import NIOCore

/// Google's OAuth token endpoint and FCM HTTP v1 (`docs/providers.md` §FCM, §Emulators).
extension PushEmulator {
    static let fcmErrorStatus: [String: (Int, String, String)] = [
        "UNREGISTERED": (404, "NOT_FOUND", "Requested entity was not found."),
        "INVALID_ARGUMENT": (400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token"),
        "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED", "SenderId mismatch"),
        "QUOTA_EXCEEDED": (429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Messages'."),
        "UNAVAILABLE": (503, "UNAVAILABLE", "The service is currently unavailable."),
        "INTERNAL": (500, "INTERNAL", "Internal error encountered."),
        "THIRD_PARTY_AUTH_ERROR": (401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service"),
    ]

    static func fcmError(status: Int, canonical: String, message: String, errorCode: String?, extra: [JSONValue] = []) -> Response {
        var details = extra
        if let errorCode {
            details.append(["@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": .string(errorCode)])
        }
        return json(
            status,
            [
                "error": [
                    "code": .number(Double(status)), "message": .string(message), "status": .string(canonical), "details": .array(details),
                ]
            ])
    }

    func registerGoogle(on router: Router<SimulatorContext>) {
        router.post("/google/token") { request, context -> Response in
            let fields = Self.form(try await Self.body(request))
            if let fault = self.fault(provider: "google", targets: []) {
                if await self.play(fault, context: context) { return Self.json(500, [:]) }
                return Self.json(fault.status, ["error": .string(fault.error ?? "server_error")], headers: Self.retryHeaders(fault))
            }
            func invalid(_ description: String) -> Response {
                Self.json(400, ["error": "invalid_grant", "error_description": .string(description)])
            }
            guard fields["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer" else {
                return Self.json(400, ["error": "unsupported_grant_type", "error_description": "Invalid grant_type"])
            }
            guard let assertion = fields["assertion"], let jws = JWS.Parsed(assertion) else { return invalid("Invalid JWT") }
            guard let issuer = jws.claims["iss"]?.stringValue,
                let account = self.state.withLock({ $0.googleAccounts[issuer] })
            else { return invalid("Invalid grant: account not found") }
            guard jws.verifies(with: account.key) else { return invalid("Invalid JWT Signature.") }
            let audience = jws.claims["aud"]?.stringValue ?? ""
            guard audience == GoogleServiceAccount.audience || audience.hasSuffix("/google/token") else {
                return invalid("Invalid JWT: audience")
            }
            guard jws.claims["scope"]?.stringValue?.split(separator: " ").contains(Substring(GoogleServiceAccount.messagingScope)) == true
            else { return invalid("Invalid OAuth scope") }
            let now = Int64(self.clock().timeIntervalSince1970)
            guard let iat = jws.integer("iat"), let exp = jws.integer("exp"), exp - iat <= 3600, exp > iat, abs(iat - now) <= 300
            else {
                return invalid(
                    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."
                )
            }
            let (token, lifetime) = self.issueToken(provider: "google", account: issuer)
            return Self.json(200, ["access_token": .string(token), "expires_in": .number(Double(lifetime)), "token_type": "Bearer"])
        }

        router.post("/fcm/v1/projects/:project/:action") { request, context -> Response in
            guard context.parameters.get("action") == "messages:send", let project = context.parameters.get("project") else {
                return Self.json(404, ["error": ["code": 404, "message": "Not Found", "status": "NOT_FOUND"]])
            }
            let bytes = try await Self.body(request)
            guard let account = self.account(bearer: request.headers[.authorization], provider: "google") else {
                return Self.fcmError(
                    status: 401, canonical: "UNAUTHENTICATED",
                    message: "Request had invalid authentication credentials. Expected OAuth 2 access token.", errorCode: nil)
            }
            guard self.state.withLock({ $0.googleAccounts[account]?.project }) == project else {
                return Self.fcmError(
                    status: 403, canonical: "PERMISSION_DENIED", message: "Permission 'cloudmessaging.messages.create' denied",
                    errorCode: nil)
            }
            guard case .object(let body)? = try? JSONValue.parse(bytes: bytes), case .object(let message)? = body["message"] else {
                return Self.fcmError(
                    status: 400, canonical: "INVALID_ARGUMENT", message: "Invalid JSON payload received.", errorCode: "INVALID_ARGUMENT")
            }
            let targets = ["token", "topic", "condition"].compactMap { key in message[key]?.stringValue.map { (key, $0) } }
            guard targets.count == 1 else {
                return Self.fcmError(
                    status: 400, canonical: "INVALID_ARGUMENT", message: "Exactly one of token, topic or condition must be set",
                    errorCode: "INVALID_ARGUMENT")
            }
            if let problem = Self.fcmMessageProblem(message) {
                return Self.fcmError(
                    status: 400, canonical: "INVALID_ARGUMENT", message: problem, errorCode: "INVALID_ARGUMENT",
                    extra: [
                        [
                            "@type": "type.googleapis.com/google.rpc.BadRequest",
                            "fieldViolations": [["field": "message", "description": .string(problem)]],
                        ]
                    ])
            }
            let limit = targets[0].0 == "token" ? 4096 : 2048
            let size = (message["notification"]?.jsonString().utf8.count ?? 0) + (message["data"]?.jsonString().utf8.count ?? 0)
            guard size <= limit else {
                return Self.fcmError(
                    status: 400, canonical: "INVALID_ARGUMENT", message: "Message is too big", errorCode: "INVALID_ARGUMENT")
            }
            let target = targets[0].0 == "token" ? targets[0].1 : "/\(targets[0].0)s/\(targets[0].1)"
            let fault = self.fault(provider: "fcm", targets: [target])
            if await self.play(fault, context: context) { return Self.json(500, [:]) }
            let notification = message["notification"]?.objectValue
            var record = PushRecord(
                provider: "fcm", target: target, title: notification?["title"]?.stringValue, body: notification?["body"]?.stringValue,
                payload: .object(message), headers: [:], status: 200, receivedAt: self.clock())
            if let fault {
                let (status, canonical, text) =
                    Self.fcmErrorStatus[fault.error ?? ""] ?? (fault.status, "UNKNOWN", "emulated \(fault.status)")
                record.status = fault.status
                self.record(record)
                return Self.fcmError(
                    status: fault.status == 0 ? status : fault.status, canonical: canonical, message: text, errorCode: fault.error
                ).withHeaders(Self.retryHeaders(fault))
            }
            self.record(record)
            return Self.json(200, ["name": .string("projects/\(project)/messages/\(UInt64.random(in: 1...UInt64.max))")])
        }
    }

    /// What FCM refuses in a message body: non-string `data` values, a malformed `android.ttl` or priority.
    static func fcmMessageProblem(_ message: [String: JSONValue]) -> String? {
        if let data = message["data"] {
            guard case .object(let fields) = data, fields.values.allSatisfy({ $0.stringValue != nil }) else {
                return
                    "Invalid value at 'message.data' (type.googleapis.com/google.firebase.fcm.v1.Message.DataEntry.value), expected string"
            }
        }
        if case .object(let android)? = message["android"] {
            if let ttl = android["ttl"] {
                guard let text = ttl.stringValue, text.hasSuffix("s"), let seconds = Double(text.dropLast()), seconds >= 0,
                    seconds <= 2_419_200
                else { return "Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration)" }
            }
            if let priority = android["priority"] {
                guard let text = priority.stringValue?.lowercased(), ["normal", "high"].contains(text) else {
                    return "Invalid value at 'message.android.priority'"
                }
            }
        }
        return nil
    }
}

extension Response {
    func withHeaders(_ extra: [(HTTPField.Name, String)]) -> Response {
        var copy = self
        for (name, value) in extra { copy.headers[name] = value }
        return copy
    }
}
