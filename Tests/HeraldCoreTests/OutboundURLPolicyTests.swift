import HeraldCore
import Testing

/// The SSRF guard's decisions, without a network: every URL of the corpus is refused, allowed hosts pass only when
/// listed, and public URLs pass.
@Suite("SSRF guard")
struct OutboundURLPolicyTests {
    /// What the corpus's host names "resolve" to; any other name resolves to a public address, so that only a
    /// refusal of the guard itself counts.
    static let resolutions: [String: [IPAddress]] = [
        "rebind.example": [IPAddress("10.0.0.5")!], "mixed.example": [IPAddress("93.184.216.34")!, IPAddress("127.0.0.1")!],
        "v6.example": [IPAddress("::1")!], "nat.example": [IPAddress("100.64.1.1")!], "meta.example": [IPAddress("169.254.169.254")!],
        "ula.example": [IPAddress("fd12:3456::1")!], "nowhere.example": [],
        "hooks.internal": [IPAddress("10.1.2.3")!], "a.corp.example": [IPAddress("192.168.1.1")!],
    ]
    static let publicAddress = IPAddress("93.184.216.34")!

    static func verdict(_ url: String, _ policy: OutboundURLPolicy) -> String? {
        do {
            let checked = try policy.check(url)
            let resolved = checked.address.map { [$0] } ?? resolutions[checked.host] ?? [publicAddress]
            _ = try policy.vet(checked, resolved: resolved)
            return nil
        } catch let refusal as OutboundURLRefusal {
            return refusal.reason
        } catch {
            return "\(error)"
        }
    }

    static let hostile = [
        // Loopback and private IPv4 in every spelling URL parsers accept.
        "http://127.0.0.1/", "https://127.0.0.1/", "https://127.1/", "https://127.0.1/", "https://2130706433/", "https://0x7f000001/",
        "https://0x7f.0.0.1/", "https://0x7f.1/", "https://0177.0.0.1/", "https://0177.1/", "https://017700000001/",
        "https://127.000.000.001/", "https://127.0.0.1./", "https://0/", "https://0.0.0.0/", "https://10.0.0.1/",
        "https://10.255.255.255:8443/", "https://172.16.0.1/", "https://172.31.255.254/", "https://192.168.1.1/",
        "https://169.254.169.254/latest/meta-data/", "https://100.64.0.1/", "https://100.127.255.254/", "https://224.0.0.1/",
        "https://239.255.255.250/", "https://255.255.255.255/", "https://240.0.0.1/", "https://192.0.0.1/", "https://198.18.0.1/",
        "https://127.0.0.1:22/", "https://0xA9FEA9FE/", "https://0251.0376.0251.0376/", "https://3232235777/",
        // IPv6 forms.
        "https://[::1]/", "https://[0:0:0:0:0:0:0:1]/", "https://[::]/", "https://[::ffff:127.0.0.1]/", "https://[::ffff:7f00:1]/",
        "https://[::ffff:10.0.0.1]/", "https://[::ffff:169.254.169.254]/", "https://[::ffff:a9fe:a9fe]/", "https://[::127.0.0.1]/",
        "https://[fc00::1]/", "https://[fd00:ec2::254]/", "https://[fe80::1]/", "https://[fe80::1%25eth0]/", "https://[ff02::1]/",
        "https://[64:ff9b::a9fe:a9fe]/", "https://[2002:7f00:1::]/", "https://[::1]:443/",
        // localhost and metadata names.
        "https://localhost/", "https://LOCALHOST/", "https://localhost./", "https://foo.localhost/", "https://localhost.localdomain/",
        "https://ip6-localhost/", "https://metadata.google.internal/computeMetadata/v1/", "https://metadata/",
        // User info, encoding and parser-confusion tricks.
        "https://user:pass@example.com/", "https://example.com@127.0.0.1/", "https://127.0.0.1#@example.com/",
        "https://example.com\\@127.0.0.1/", "https://%31%32%37.0.0.1/", "https:// example.com/", "https://exa mple.com/",
        "https://example.com\t/", "https://éxample.com/", "https://0x7g.1/", "https://1.2.3.4.5/", "https://[::1/",
        // Schemes.
        "http://example.com/hook", "ftp://example.com/", "file:///etc/passwd", "gopher://127.0.0.1:70/", "javascript:alert(1)",
        "//127.0.0.1/", "https:///path",
        // Names that resolve to private addresses, or to a mix, or nowhere.
        "https://rebind.example/", "https://mixed.example/", "https://v6.example/", "https://nat.example/", "https://meta.example/",
        "https://ula.example/", "https://nowhere.example/",
    ]

    @Test("every URL of the hostile corpus is refused")
    func corpus() {
        #expect(Self.hostile.count >= 60)
        for url in Self.hostile {
            #expect(Self.verdict(url, .strict) != nil, "accepted: \(url)")
        }
    }

    @Test("public https URLs pass; private hosts pass only when the operator lists them")
    func allowList() throws {
        for url in [
            "https://hooks.slack.com/services/T0/B0/X", "https://93.184.216.34/", "https://[2606:4700::1111]/hook",
            "https://example.com:8443/path?q=1#f", "https://discord.com/api/webhooks/1/abc",
        ] {
            #expect(Self.verdict(url, .strict) == nil, "refused: \(url)")
        }
        let policy = try OutboundURLPolicy(allowing: ["127.0.0.1", "hooks.internal, 10.0.0.0/8", "*.corp.example"])
        for url in [
            "http://127.0.0.1:8080/hook", "https://hooks.internal/x", "https://a.corp.example/", "http://10.2.3.4/",
            "https://rebind.example/",
        ] {
            #expect(Self.verdict(url, policy) == nil, "refused although listed: \(url)")
        }
        for url in ["https://192.168.1.1/", "https://[::1]/", "http://example.com/", "https://127.0.0.2/", "https://localhost/"] {
            #expect(Self.verdict(url, policy) != nil, "accepted although not listed: \(url)")
        }
        #expect(throws: OutboundURLRefusal.self) { try OutboundURLPolicy(allowing: ["10.0.0.0/99"]) }
    }

    @Test("IP literals parse the way URL parsers read them")
    func literals() {
        #expect(IPAddress("2130706433")?.description == "127.0.0.1")
        #expect(IPAddress("0x7f.1")?.description == "127.0.0.1")
        #expect(IPAddress("0177.0.0.1")?.description == "127.0.0.1")
        #expect(IPAddress("10.1")?.description == "10.0.0.1")
        #expect(IPAddress("256.1.1.1") == nil && IPAddress("1.2.3.4.5") == nil)
        #expect(IPAddress("[::ffff:127.0.0.1]")?.restriction == "IPv4-mapped")
        #expect(IPAddress("8.8.8.8")?.restriction == nil && IPAddress("2001:4860:4860::8888")?.restriction == nil)
    }
}
