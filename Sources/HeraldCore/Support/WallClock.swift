import Foundation
import Synchronization

/// Where time comes from. Injected everywhere a timestamp is written or a deadline computed, so that tests can
/// move time by hand instead of sleeping.
public protocol WallClock: Sendable {
    /// The current instant.
    func now() -> Date
}

/// The system clock.
public struct SystemWallClock: WallClock {
    public init() {}
    public func now() -> Date { Date() }
}

extension Date {
    /// Milliseconds since the Unix epoch: the representation of every timestamp column in the schema, identical on
    /// SQLite and PostgreSQL and cheap to compare and index.
    public var millisecondsSince1970: Int64 { Int64((timeIntervalSince1970 * 1000).rounded()) }

    /// The instant `milliseconds` after the Unix epoch.
    public init(millisecondsSince1970 milliseconds: Int64) {
        self.init(timeIntervalSince1970: TimeInterval(milliseconds) / 1000)
    }

    /// ISO 8601 with milliseconds and `Z`, as Novu writes timestamps (`2025-01-01T00:00:00.000Z`).
    public var iso8601Milliseconds: String {
        // Formatted from the whole milliseconds so that binary floating point never turns .123 into .122.
        let milliseconds = millisecondsSince1970
        let (seconds, fraction) = milliseconds.quotientAndRemainder(dividingBy: 1000)
        let whole = Date(timeIntervalSince1970: TimeInterval(fraction < 0 ? seconds - 1 : seconds))
        let base = whole.formatted(Date.ISO8601FormatStyle())  // 2025-01-01T00:00:00Z
        let millis = fraction < 0 ? fraction + 1000 : fraction
        let padding = millis < 10 ? "00" : millis < 100 ? "0" : ""
        return "\(base.dropLast()).\(padding)\(millis)Z"
    }
}

/// A clock that moves only when told to: for tests and simulations.
public final class ManualWallClock: WallClock {
    private let current: Mutex<Date>

    public init(_ start: Date = Date(timeIntervalSince1970: 1_790_000_000)) {
        self.current = Mutex(start)
    }

    public func now() -> Date { current.withLock { $0 } }

    /// Moves the clock forward.
    public func advance(by interval: Duration) {
        let seconds = Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18
        current.withLock { $0 = $0.addingTimeInterval(seconds) }
    }
}
