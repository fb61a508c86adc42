/// A source of randomness that can be injected (retry jitter): the system generator in production, a seeded or
/// fixed sequence in tests. Copies share the source.
public struct RandomSource: RandomNumberGenerator, Sendable {
    private let draw: @Sendable () -> UInt64

    public init(_ draw: @escaping @Sendable () -> UInt64) { self.draw = draw }

    /// The system's cryptographically secure generator.
    public static let system = RandomSource {
        var generator = SystemRandomNumberGenerator()
        return generator.next()
    }

    /// Always the same draw (`value`): `0` makes every jittered delay its minimum, `UInt64.max` its maximum.
    public static func constant(_ value: UInt64) -> RandomSource { RandomSource { value } }

    public mutating func next() -> UInt64 { draw() }
}
