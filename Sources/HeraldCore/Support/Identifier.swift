import Foundation

/// Makes record ids: 24 lowercase hex characters laid out like a MongoDB ObjectId (4 bytes of seconds since
/// the epoch, then 8 random bytes), because Novu clients see and sometimes validate `_id` values of that shape.
/// Ids sort by creation time, which keyset pagination and "newest first" listings rely on.
public protocol IDGenerator: Sendable {
    /// A new, unique id.
    func next() -> String
}

/// The production id generator: time prefix from the system clock, randomness from the system RNG.
public struct ObjectIDGenerator: IDGenerator {
    public init() {}

    public func next() -> String {
        var generator = SystemRandomNumberGenerator()
        return Self.make(seconds: UInt32(truncatingIfNeeded: Int(Date().timeIntervalSince1970)), using: &generator)
    }

    /// Formats an id from its time prefix and random tail.
    public static func make(seconds: UInt32, using generator: inout some RandomNumberGenerator) -> String {
        var bytes = [UInt8]()
        bytes.reserveCapacity(12)
        withUnsafeBytes(of: seconds.bigEndian) { bytes.append(contentsOf: $0) }
        let tail = generator.next() as UInt64
        withUnsafeBytes(of: tail) { bytes.append(contentsOf: $0) }
        return Hex.encode(bytes)
    }

    /// Whether `value` has the shape of an id this generator makes.
    public static func isValid(_ value: some StringProtocol) -> Bool {
        value.utf8.count == 24 && value.utf8.allSatisfy { Hex.value(of: $0) != nil }
    }
}

/// Lowercase hexadecimal encoding.
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    /// `bytes` as lowercase hex.
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var out = [UInt8]()
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The bytes of an even-length hex string, or nil when it is not one.
    public static func decode(_ text: String) -> [UInt8]? {
        let characters = Array(text.utf8)
        guard characters.count % 2 == 0 else { return nil }
        var bytes = [UInt8]()
        bytes.reserveCapacity(characters.count / 2)
        for index in stride(from: 0, to: characters.count, by: 2) {
            guard let high = value(of: characters[index]), let low = value(of: characters[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    /// The value of one hex digit, or nil.
    public static func value(of character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): character - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): character - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): character - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
