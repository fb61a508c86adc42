import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address, as the SSRF guard classifies it.
public enum IPAddress: Sendable, Hashable, CustomStringConvertible {
    case v4(UInt32)
    case v6([UInt8])

    /// Parses an IP literal the way URL parsers do (WHATWG): IPv4 in 1–4 parts, each decimal, `0x` hex or
    /// `0`-prefixed octal (`2130706433`, `0x7f.1`, `0177.0.0.1` are all 127.0.0.1); IPv6 in any RFC 4291 form,
    /// brackets optional. Nil when `text` is not an IP literal.
    public init?(_ text: String) {
        var text = text
        if text.hasPrefix("["), text.hasSuffix("]") { text = String(text.dropFirst().dropLast()) }
        if text.contains(":") {
            var storage = in6_addr()
            guard !text.contains("%"), inet_pton(AF_INET6, text, &storage) == 1 else { return nil }
            self = .v6(withUnsafeBytes(of: storage) { Array($0) })
            return
        }
        guard let value = Self.whatwgIPv4(text) else { return nil }
        self = .v4(value)
    }

    /// WHATWG IPv4 parsing; nil when any part is not a number or the value overflows.
    static func whatwgIPv4(_ text: String) -> UInt32? {
        var parts = text.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        if parts.count > 1, parts.last == "" { parts.removeLast() }
        guard (1...4).contains(parts.count) else { return nil }
        var numbers: [UInt64] = []
        for part in parts {
            guard !part.isEmpty else { return nil }
            let lower = part.lowercased()
            let value: UInt64?
            if lower.hasPrefix("0x") {
                value = lower.count == 2 ? 0 : UInt64(lower.dropFirst(2), radix: 16)
            } else if lower.count > 1, lower.hasPrefix("0") {
                value = UInt64(lower.dropFirst(), radix: 8)
            } else {
                value = UInt64(lower, radix: 10)
            }
            guard let value, value <= UInt64(UInt32.max) else { return nil }
            numbers.append(value)
        }
        for number in numbers.dropLast() where number > 255 { return nil }
        let last = numbers.last!
        guard last < (UInt64(1) << (8 * UInt64(5 - numbers.count))) else { return nil }
        var result = last
        for (index, number) in numbers.dropLast().enumerated() { result += number << (8 * UInt64(3 - index)) }
        return UInt32(result)
    }

    /// Whether a host looks like an IPv4 literal to a URL parser (its last label is a number), so that a failure
    /// to parse it is an error rather than a host name.
    static func looksNumeric(_ host: String) -> Bool {
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        guard let last = labels.last(where: { !$0.isEmpty }) else { return false }
        let lower = last.lowercased()
        if lower.hasPrefix("0x") { return lower.dropFirst(2).allSatisfy(\.isHexDigit) }
        return lower.allSatisfy(\.isNumber)
    }

    public var description: String {
        switch self {
        case .v4(let value): return "\(value >> 24).\((value >> 16) & 255).\((value >> 8) & 255).\(value & 255)"
        case .v6(let bytes):
            var storage = in6_addr()
            withUnsafeMutableBytes(of: &storage) { $0.copyBytes(from: bytes) }
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            guard inet_ntop(AF_INET6, &storage, &buffer, socklen_t(buffer.count)) != nil else { return "::" }
            return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    /// Why this address must not be reached from a user-supplied URL (loopback, private, link-local, CGNAT,
    /// multicast, reserved, documentation, IPv4-mapped…), or nil for a public unicast address.
    public var restriction: String? {
        switch self {
        case .v4(let value):
            let table: [(UInt32, Int, String)] = [
                (0x0000_0000, 8, "this-network"), (0x0A00_0000, 8, "private"), (0x6440_0000, 10, "carrier-grade NAT"),
                (0x7F00_0000, 8, "loopback"), (0xA9FE_0000, 16, "link-local (cloud metadata)"), (0xAC10_0000, 12, "private"),
                (0xC000_0000, 24, "IETF protocol assignments"), (0xC000_0200, 24, "documentation"), (0xC058_6300, 24, "6to4 relay"),
                (0xC0A8_0000, 16, "private"), (0xC612_0000, 15, "benchmarking"), (0xC633_6400, 24, "documentation"),
                (0xCB00_7100, 24, "documentation"), (0xE000_0000, 4, "multicast"), (0xF000_0000, 4, "reserved"),
            ]
            for (network, length, reason) in table where value >> (32 - length) == network >> (32 - length) { return reason }
            return nil
        case .v6(let bytes):
            let embedded = IPAddress.v4(UInt32(bytes[12]) << 24 | UInt32(bytes[13]) << 16 | UInt32(bytes[14]) << 8 | UInt32(bytes[15]))
            if bytes[0..<15].allSatisfy({ $0 == 0 }) { return bytes[15] == 1 ? "loopback" : "unspecified" }
            if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF { return "IPv4-mapped" }
            if bytes[0..<12].allSatisfy({ $0 == 0 }) { return "IPv4-compatible" }
            if bytes[0...3] == [0x00, 0x64, 0xFF, 0x9B] { return embedded.restriction.map { "NAT64 of \($0)" } }
            if bytes[0] == 0x20, bytes[1] == 0x02 {
                let inner = IPAddress.v4(UInt32(bytes[2]) << 24 | UInt32(bytes[3]) << 16 | UInt32(bytes[4]) << 8 | UInt32(bytes[5]))
                return inner.restriction.map { "6to4 of \($0)" }
            }
            if bytes[0] & 0xFE == 0xFC { return "unique local" }
            if bytes[0] == 0xFE, bytes[1] & 0xC0 == 0x80 { return "link-local" }
            if bytes[0] == 0xFE, bytes[1] & 0xC0 == 0xC0 { return "site-local" }
            if bytes[0] == 0xFF { return "multicast" }
            if bytes[0...3] == [0x20, 0x01, 0x0D, 0xB8] { return "documentation" }
            if bytes[0...1] == [0x01, 0x00], bytes[2..<8].allSatisfy({ $0 == 0 }) { return "discard" }
            if bytes[0...3] == [0x20, 0x01, 0x00, 0x00] { return "Teredo" }
            return nil
        }
    }

    /// Whether `self` lies in `network`/`length`.
    func isIn(_ network: IPAddress, length: Int) -> Bool {
        switch (self, network) {
        case (.v4(let a), .v4(let b)):
            return length == 0 || a >> (32 - min(length, 32)) == b >> (32 - min(length, 32))
        case (.v6(let a), .v6(let b)):
            for bit in 0..<min(length, 128) where (a[bit / 8] >> (7 - bit % 8)) & 1 != (b[bit / 8] >> (7 - bit % 8)) & 1 { return false }
            return true
        default:
            return false
        }
    }
}

/// Why a user-supplied URL is refused.
public struct OutboundURLRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// A user-supplied URL that passed the syntactic checks.
public struct CheckedURL: Sendable, Equatable {
    public var scheme: String
    /// Lower-cased, without brackets or a trailing dot.
    public var host: String
    public var port: Int
    /// Set when the host is an IP literal.
    public var address: IPAddress?
    /// Whether the operator allows this host to be private (`--allow-private-network`).
    public var allowed: Bool
}

/// The SSRF guard's rules for every URL an API user supplies — chat and push webhooks, Web Push endpoints, provider
/// base URLs (`docs/operations.md` §Outbound URL guard; issue #7): `https` only (`http` only for allowed hosts); no user info, no control or
/// whitespace characters, no backslashes or percent-encoded hosts; an IP literal in any spelling (decimal, octal, hex,
/// IPv6, IPv4-mapped) must be public; `localhost` names and cloud-metadata names are refused; a host name must
/// resolve to public addresses only — the transport then connects to the address it checked, so DNS rebinding
/// cannot swap it. ``allowing`` lists the exceptions (`--allow-private-network`): host names (`hooks.internal`,
/// `.corp.example` for a suffix), addresses and CIDR ranges (`10.0.0.0/8`).
public struct OutboundURLPolicy: Sendable, Equatable {
    enum Entry: Sendable, Equatable {
        case host(String)
        case suffix(String)
        case network(IPAddress, Int)
    }

    let entries: [Entry]

    /// The policy that refuses every private address.
    public static let strict = OutboundURLPolicy(entries: [])

    init(entries: [Entry]) { self.entries = entries }

    /// Parses the allow-list entries (comma or whitespace separated lists are accepted too).
    public init(allowing list: [String]) throws {
        var entries: [Entry] = []
        for raw in list.flatMap({ $0.split(whereSeparator: { $0 == "," || $0.isWhitespace }) }).map(String.init) where !raw.isEmpty {
            let item = raw.lowercased()
            if let slash = item.firstIndex(of: "/") {
                guard let address = IPAddress(String(item[..<slash])), let length = Int(item[item.index(after: slash)...]),
                    length >= 0, length <= (address.isV4 ? 32 : 128)
                else { throw OutboundURLRefusal("'\(raw)' is not a CIDR range") }
                entries.append(.network(address, length))
            } else if let address = IPAddress(item) {
                entries.append(.network(address, address.isV4 ? 32 : 128))
            } else if item.hasPrefix(".") || item.hasPrefix("*.") {
                entries.append(.suffix(String(item.drop(while: { $0 == "*" }))))
            } else {
                entries.append(.host(item))
            }
        }
        self.entries = entries
    }

    /// Whether the operator allows `host` (a name) or `address` to be private.
    public func allows(host: String?, address: IPAddress?) -> Bool {
        entries.contains { entry in
            switch entry {
            case .host(let name): return host == name
            case .suffix(let suffix): return host.map { $0.hasSuffix(suffix) } ?? false
            case .network(let network, let length): return address.map { $0.isIn(network, length: length) } ?? false
            }
        }
    }

    /// Host names refused whatever they resolve to.
    static func namedRestriction(_ host: String) -> String? {
        if host == "localhost" || host.hasSuffix(".localhost") || host == "localhost.localdomain" || host.hasPrefix("ip6-") {
            return "loopback host name"
        }
        if ["metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"].contains(host) {
            return "cloud metadata host name"
        }
        return nil
    }

    /// The syntactic checks; no network access.
    public func check(_ text: String) throws -> CheckedURL {
        guard text.utf8.count <= 2048 else { throw OutboundURLRefusal("the URL is longer than 2048 bytes") }
        // Byte-level scans: this runs for every outbound request.
        let bytes = text.utf8
        guard bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\\") }) else {
            throw OutboundURLRefusal("the URL contains spaces, control, non-ASCII characters or backslashes")
        }
        guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")),
            bytes[colon...].starts(with: "://".utf8)
        else { throw OutboundURLRefusal("not an absolute http(s) URL") }
        let scheme = text[..<colon].lowercased()
        guard scheme == "https" || scheme == "http" else { throw OutboundURLRefusal("only https URLs are allowed") }
        let rest = text[bytes.index(colon, offsetBy: 3)...]
        let authorityEnd =
            rest.utf8.firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        guard !authority.contains("@") else { throw OutboundURLRefusal("URLs with user info (user@host) are not allowed") }
        guard !authority.contains("%") else { throw OutboundURLRefusal("percent-encoded hosts are not allowed") }
        var host: Substring
        var portText: Substring = ""
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw OutboundURLRefusal("malformed IPv6 host") }
            host = authority[authority.startIndex...close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw OutboundURLRefusal("malformed host") }
                portText = after.dropFirst()
            }
        } else {
            let parts = authority.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count <= 2 else { throw OutboundURLRefusal("malformed host") }
            host = parts[0]
            if parts.count == 2 { portText = parts[1] }
        }
        let port: Int
        if portText.isEmpty {
            port = scheme == "https" ? 443 : 80
        } else {
            guard portText.allSatisfy(\.isNumber), let value = Int(portText), (1...65535).contains(value) else {
                throw OutboundURLRefusal("malformed port")
            }
            port = value
        }
        return try checkHost(host, port: port, scheme: scheme)
    }

    /// The host checks alone, for endpoints given as a host and a port rather than a URL (an SMTP server).
    public func check(host: String, port: Int, scheme: String = "smtp") throws -> CheckedURL {
        guard host.utf8.count <= 255, host.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }),
            !host.contains("\\"), !host.contains("@"), !host.contains("%"), !host.contains("/")
        else { throw OutboundURLRefusal("malformed host name") }
        guard (1...65535).contains(port) else { throw OutboundURLRefusal("malformed port") }
        return try checkHost(Substring(host), port: port, scheme: scheme)
    }

    /// Host-name and address checks shared by URLs and host/port endpoints; `http` needs an allowed host.
    private func checkHost(_ host: Substring, port: Int, scheme: String) throws -> CheckedURL {
        var name = host.lowercased()
        while name.hasSuffix(".") { name.removeLast() }
        guard !name.isEmpty else { throw OutboundURLRefusal("the URL has no host") }
        let address = IPAddress(name)
        if address == nil {
            guard !name.hasPrefix("["), !IPAddress.looksNumeric(name) else { throw OutboundURLRefusal("malformed IP address") }
            guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." || $0 == "_" }) else {
                throw OutboundURLRefusal("malformed host name")
            }
        }
        let plainName = name.hasPrefix("[") ? String(name.dropFirst().dropLast()) : name
        let allowed = allows(host: plainName, address: address)
        guard scheme != "http" || allowed else { throw OutboundURLRefusal("only https URLs are allowed (http only for allowed hosts)") }
        if !allowed {
            if let address, let restriction = address.restriction { throw OutboundURLRefusal("\(restriction) address \(address)") }
            if address == nil, let restriction = Self.namedRestriction(plainName) { throw OutboundURLRefusal(restriction) }
        }
        return CheckedURL(scheme: scheme, host: plainName, port: port, address: address, allowed: allowed)
    }

    /// The addresses a checked host name resolved to that may be reached: all of them must be public (or allowed),
    /// else the URL is refused — a name with one private record is not trusted with any.
    public func vet(_ url: CheckedURL, resolved: [IPAddress]) throws -> [IPAddress] {
        guard !resolved.isEmpty else { throw OutboundURLRefusal("\(url.host) does not resolve") }
        if url.allowed { return resolved }
        for address in resolved where !allows(host: nil, address: address) {
            if let restriction = address.restriction { throw OutboundURLRefusal("\(url.host) resolves to a \(restriction) address") }
        }
        return resolved
    }
}

extension IPAddress {
    public var isV4: Bool { if case .v4 = self { true } else { false } }

    /// Resolves a host name with the system resolver (getaddrinfo; blocking — call it off the event loops).
    public static func resolve(_ host: String) -> [IPAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else { return [] }
        defer { freeaddrinfo(first) }
        var addresses: [IPAddress] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            if info.pointee.ai_family == AF_INET, let raw = info.pointee.ai_addr {
                let value = raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt32(bigEndian: $0.pointee.sin_addr.s_addr) }
                addresses.append(.v4(value))
            } else if info.pointee.ai_family == AF_INET6, let raw = info.pointee.ai_addr {
                let bytes = raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                    withUnsafeBytes(of: pointer.pointee.sin6_addr) { Array($0) }
                }
                addresses.append(.v6(bytes))
            }
            cursor = info.pointee.ai_next
        }
        var seen: Set<IPAddress> = []
        return addresses.filter { seen.insert($0).inserted }
    }
}
