/// Where an accepted trigger (``EventRecord``) stands: `accepted` → `expanding` → `expanded`, or `canceled` from
/// either of the first two. The stored form is the raw value.
public enum EventStatus: String, Sendable, Codable, CaseIterable {
    /// Committed; its expansion job has not run yet.
    case accepted
    /// Recipients are being expanded page by page (the cursor says where).
    case expanding
    /// Every recipient has its notification.
    case expanded
    /// The transaction was cancelled before expansion finished.
    case canceled

    /// Whether expansion still has work to do.
    public var isExpanding: Bool { self == .accepted || self == .expanding }

    /// Whether the status may move to `next`.
    public func allows(_ next: EventStatus) -> Bool {
        switch (self, next) {
        case (.accepted, .expanding), (.accepted, .expanded), (.accepted, .canceled), (.expanding, .expanding), (.expanding, .expanded),
            (.expanding, .canceled):
            true
        default: false
        }
    }
}

/// Where one run (``NotificationRecord``) stands: `pending` until its first step starts, then `running` (a channel
/// step in flight) or `waiting` (only a delay or digest open), and finally `completed`, `canceled` (its transaction
/// was cancelled) or `merged` (its event joined another run's digest).
public enum NotificationStatus: String, Sendable, Codable, CaseIterable {
    case pending, running, waiting, completed, canceled, merged

    /// Whether the run will not change any more.
    public var isFinished: Bool { self == .completed || self == .canceled || self == .merged }

    /// Whether the status may move to `next`.
    public func allows(_ next: NotificationStatus) -> Bool {
        switch self {
        case .pending: next != .pending
        case .running, .waiting: next != .pending
        case .completed, .canceled, .merged: next == self
        }
    }
}

/// Where a message (one channel step × one integration, ``MessageRecord``) stands: `pending` while any delivery is
/// open, then Novu's `sent` (all delivered), `warning` (some delivered) or `error` (none delivered).
public enum MessageStatus: String, Sendable, Codable, CaseIterable {
    case pending, sent, warning, error

    /// Whether every delivery of the message is final.
    public var isFinal: Bool { self != .pending }

    /// The final status of a message whose deliveries are all final: `delivered` of them delivered, `failures` not
    /// delivered (cancelled deliveries count as neither).
    public static func final(delivered: Int, failures: Int) -> MessageStatus {
        failures == 0 ? .sent : delivered > 0 ? .warning : .error
    }
}
