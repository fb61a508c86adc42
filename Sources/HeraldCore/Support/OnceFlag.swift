import Synchronization

/// A flag that is set once and read from any task (a shutdown begun, a connection acquired).
public final class OnceFlag: Sendable {
    private let value = Atomic<Bool>(false)

    public init() {}

    public func set() { value.store(true, ordering: .relaxed) }

    public var isSet: Bool { value.load(ordering: .relaxed) }
}
