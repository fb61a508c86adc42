import Foundation

/// A duration written as `30s`, `10m`, `2h`, `1d`, `1w` or combinations such as `1h30m` (largest unit first).
public struct WorkflowDuration: Sendable, Hashable, CustomStringConvertible {
    public var seconds: Int

    public init(seconds: Int) {
        self.seconds = seconds
    }

    /// The longest accepted duration: one year.
    public static let maximumSeconds = 366 * 86_400

    private static let units: [(Character, Int)] = [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)]

    /// Parses a duration, or explains what is wrong with it.
    public static func parse(_ text: String) -> Result<WorkflowDuration, DurationError> {
        let trimmed = Substring(text).trimmingASCIIWhitespace()
        guard !trimmed.isEmpty else { return .failure(DurationError(message: "duration is empty; write e.g. 30s, 10m, 2h or 1d")) }
        var total = 0
        var number = ""
        var lastUnitIndex = -1
        for character in trimmed {
            if character.isASCII, character.isNumber {
                number.append(character)
                guard number.count <= 9 else { return .failure(DurationError(message: "duration '\(text)' is too long")) }
                continue
            }
            guard let unitIndex = units.firstIndex(where: { $0.0 == character }) else {
                return .failure(DurationError(message: "invalid duration '\(text)': unknown unit '\(character)' (use s, m, h, d or w)"))
            }
            guard !number.isEmpty, let value = Int(number) else {
                return .failure(DurationError(message: "invalid duration '\(text)': expected a number before '\(character)'"))
            }
            guard unitIndex > lastUnitIndex else {
                return .failure(
                    DurationError(message: "invalid duration '\(text)': write units from largest to smallest, each once (e.g. 1h30m)"))
            }
            lastUnitIndex = unitIndex
            total += value * units[unitIndex].1
            number = ""
        }
        guard number.isEmpty else {
            return .failure(
                DurationError(message: "invalid duration '\(text)': '\(number)' has no unit (write e.g. \(number)s or \(number)m)"))
        }
        guard total > 0 else { return .failure(DurationError(message: "duration '\(text)' must be longer than zero")) }
        guard total <= maximumSeconds else { return .failure(DurationError(message: "duration '\(text)' is longer than one year")) }
        return .success(WorkflowDuration(seconds: total))
    }

    public var description: String {
        var remaining = seconds
        var text = ""
        for (unit, size) in Self.units where remaining >= size {
            text += "\(remaining / size)\(unit)"
            remaining %= size
        }
        return text.isEmpty ? "0s" : text
    }

    /// As a Swift `Duration`.
    public var duration: Duration { .seconds(seconds) }
}

/// Why a duration did not parse.
public struct DurationError: Error, Sendable, Equatable {
    public var message: String
}
