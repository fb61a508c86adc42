import Foundation
import HeraldCore
import HeraldProviders
import HeraldSimulator
import HeraldTestSupport
import Logging
import NIOCore
import Synchronization
import Testing

/// The SSRF guard where it matters: the transport refuses before connecting, connects to the address it vetted,
/// never follows a redirect, and the API refuses hostile URLs when they are stored.
@Suite("SSRF guard in the transport and the API")
struct SSRFGuardTests {
    @Test("the transport refuses headers no encoder can carry, on the single and the batch path, before connecting")
    func unsendableHeaders() async throws {
        // Port 9 (discard) on loopback: nothing listens, so a request that got past the check would fail differently.
        let single = { (headers: [(String, String)]) in
            try await testTransport.post("http://127.0.0.1:9/hook", headers: headers, body: ByteBuffer(string: "{}"))
        }
        await #expect(throws: OutboundURLRefusal.self) { _ = try await single([("x-ünïcode", "1")]) }
        await #expect(throws: OutboundURLRefusal.self) { _ = try await single([("x-injected", "a\r\nSet-Cookie: 1")]) }
        // The batch path (APNs, FCM) would hand a non-ASCII name to NIO's HPACK encoder, which stops the process.
        let results = await testTransport.send(
            base: "https://127.0.0.1:9", [HTTPBatchRequest(path: "/3/device/ab", headers: [("apns-ì", "1")], body: nil)])
        guard case .failure(let error) = results[0] else {
            Issue.record("a header with a non-ASCII name was sent")
            return
        }
        #expect(error is OutboundURLRefusal)
    }

    @Test("the transport refuses private targets before connecting, pins vetted addresses and does not follow redirects")
    func transport() async throws {
        let simulator = try Simulator()
        try await simulator.withRunning(logger: Logger(label: "test")) { endpoints in
            let url = endpoints.plain + "/hooks/ssrf"
            let body = ByteBuffer(string: "{}")
            // Strict: loopback refused, and nothing reaches the emulator.
            let strict = HTTPTransport(policy: .strict)
            await #expect(throws: OutboundURLRefusal.self) { try await strict.post(url, headers: [], body: body) }
            #expect(simulator.webhooks.requests(hook: "ssrf").isEmpty)
            #expect(HTTPOutcome.transportFailure(OutboundURLRefusal("x")) == .badRequest(reason: "URL refused: x"))

            // A name the operator allows, resolved once (cached) and connected to at the vetted address.
            let port = Int(endpoints.plain.split(separator: ":").last!)!
            let lookups = Atomic<Int>(0)
            let pinned = HTTPTransport(
                policy: try OutboundURLPolicy(allowing: ["hooks.test", "127.0.0.1"]),
                resolver: { host in
                    lookups.add(1, ordering: .relaxed)
                    return host == "hooks.test" ? [IPAddress("127.0.0.1")!] : []
                })
            for _ in 0..<2 {
                let response = try await pinned.post("http://hooks.test:\(port)/hooks/ssrf", headers: [], body: body)
                #expect((200..<300).contains(response.status))
            }
            #expect(lookups.load(ordering: .relaxed) == 1)
            #expect(simulator.webhooks.requests(hook: "ssrf").count == 2)

            // A name that resolves to a private address is refused although the address itself would be allowed by
            // a name-based rule elsewhere, and a mixed answer is not trusted.
            let rebinding = HTTPTransport(
                policy: try OutboundURLPolicy(allowing: ["127.0.0.1"]),
                resolver: { _ in [IPAddress("93.184.216.34")!, IPAddress("10.0.0.7")!] })
            await #expect(throws: OutboundURLRefusal.self) { try await rebinding.post("https://evil.test/", headers: [], body: body) }

            // A redirect to the metadata address is returned, not followed.
            let response = try await pinned.post(
                endpoints.plain + "/redirect?to=http://169.254.169.254/latest/meta-data/", headers: [], body: body)
            #expect(response.status == 302)
            #expect(HTTPOutcome.classify(response) == .badRequest(reason: "HTTP 302: "))
            // HTTPS through a pinned connection: TLS verifies the host name (the simulator's certificate names
            // `localhost`), while the connection goes to the vetted address.
            let caFile = FileManager.default.temporaryDirectory.appendingPathComponent("ssrf-ca-\(UUID().uuidString).pem").path
            try simulator.identity.writeCA(to: caFile)
            defer { try? FileManager.default.removeItem(atPath: caFile) }
            let tlsPort = Int(endpoints.tls.split(separator: ":").last!)!
            let named = HTTPTransport(
                caFile: caFile, policy: try OutboundURLPolicy(allowing: ["localhost"]), resolver: { _ in [IPAddress("127.0.0.1")!] })
            let health = try await named.send(.GET, "https://localhost:\(tlsPort)/_control/health", headers: [], body: nil)
            #expect(health.status == 200 && health.text == "ok")
            for transport in [strict, pinned, rebinding, named] { await transport.shutdown() }
        }
    }

    @Test("hostile URLs are refused when stored, with the field named", arguments: Backend.available)
    func storing(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: []) { herald in
            for (index, url) in [
                "http://10.0.0.1/hook", "https://169.254.169.254/", "https://[::ffff:10.0.0.2]/", "https://3232235777/",
                "https://localhost/x",
            ]
            .enumerated() {
                let body: JSONValue = [
                    "providerId": "chat-webhook", "channel": "chat", "identifier": .string("hook-\(index)"), "active": true,
                    "credentials": ["webhookUrl": .string(url)],
                ]
                let response = try await herald.call(.post, "/v1/integrations", body.jsonString())
                #expect(response.status == .unprocessableContent, "\(url): \(response.status)")
                #expect(String(buffer: response.body).contains("credentials.webhookUrl is refused"), "\(String(buffer: response.body))")
            }
            try await herald.webhookIntegration("chat-webhook", channel: "chat", identifier: "team-chat")
            let subscriber = try await herald.call(.post, "/v1/subscribers", #"{"subscriberId":"eve"}"#)
            #expect(subscriber.status == .created)
            let credentials = try await herald.call(
                .put, "/v1/subscribers/eve/credentials",
                #"{"providerId":"chat-webhook","integrationIdentifier":"team-chat","credentials":{"webhookUrl":"https://0xA9FEA9FE/x"}}"#)
            #expect(credentials.status == .unprocessableContent)
            #expect(String(buffer: credentials.body).contains("link-local (cloud metadata) address 169.254.169.254"))
            let endpoint =
                #"{\"endpoint\":\"https://192.168.0.10/push\",\"keys\":{\"p256dh\":\"BAcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc\",\"auth\":\"AQEBAQEBAQEBAQEBAQEBAQ\"}}"#
            let register = try await herald.call(
                .post, "/api/device_register", #"{"provider":"webpush","platform":"web","token":"\#(endpoint)"}"#)
            #expect(String(buffer: register.body).contains("the web-push endpoint is refused: private address 192.168.0.10"))
        }
    }
}
