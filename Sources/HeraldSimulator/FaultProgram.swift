import Synchronization

/// A fault program that may be limited to a number of uses (`times`; nil: every matching request).
protocol CountedFault {
    var times: Int? { get set }
}

extension Array where Element: CountedFault {
    /// The first fault matching `predicate`, used once: removed when its count runs out.
    mutating func take(where predicate: (Element) -> Bool) -> Element? {
        guard let index = firstIndex(where: predicate) else { return nil }
        let fault = self[index]
        if let times = fault.times {
            if times <= 1 { remove(at: index) } else { self[index].times = times - 1 }
        }
        return fault
    }
}

extension ChatFault: CountedFault {}
extension SMSFault: CountedFault {}
extension EmailFault: CountedFault {}

/// Callbacks run for every record an emulator keeps (`herald dev` prints a line per message).
final class Observers<Record: Sendable>: Sendable {
    private let list = Mutex<[@Sendable (Record) -> Void]>([])

    func add(_ observer: @escaping @Sendable (Record) -> Void) { list.withLock { $0.append(observer) } }

    func notify(_ record: Record) {
        for observer in list.withLock({ $0 }) { observer(record) }
    }
}
