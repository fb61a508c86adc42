import Foundation
import HeraldCore

/// The kinds of queued work the engine runs.
public enum JobKind: String, Sendable, CaseIterable {
    /// Expand an event's recipients page by page (checkpointed), creating notifications and `run` jobs.
    case expand
    /// Start the runs of a batch of notifications.
    case run
    /// Resume a run's delay or digest step.
    case resume
    /// Send a batch of deliveries to one integration.
    case deliver
    /// Fetch the provider's receipts for delivered messages (Expo) and apply them.
    case receipts
    /// Fan a raw send (`send_push_notification`) out to its devices or tokens, page by page (checkpointed).
    case push
    /// Post status-webhook events to one endpoint (README §Status webhooks).
    case webhook
}

/// What a job handler asks the dispatcher to do with its job.
public enum JobResult: Sendable, Equatable {
    /// Finished: delete the job.
    case done
    /// Run it again at this time (a long expansion continuing after its time slice).
    case again(at: Date)
}

protocol JobPayload: Codable {}

extension JobPayload {
    func encoded() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: (try? encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }

    static func decode(_ text: String) throws -> Self {
        do {
            return try JSONDecoder().decode(Self.self, from: Data(text.utf8))
        } catch {
            throw HeraldError(.internal, "malformed \(Self.self) job payload")
        }
    }
}

struct ExpandJob: JobPayload {
    var event: String
}

struct RunJob: JobPayload {
    var notifications: [String]
}

struct ResumeJob: JobPayload {
    var notification: String
    var step: String
    var digest: Bool
    /// Several runs waiting for the same step until the same instant (a topic trigger's delay, or a send window's
    /// opening in one timezone): resumed together by one job. Nil in jobs queued before buckets existed.
    var notifications: [String]? = nil

    /// Every run the job resumes.
    var all: [String] { notifications ?? [notification] }
}

struct DeliverJob: JobPayload {
    var integration: String
    var deliveries: [String]
}

struct ReceiptsJob: JobPayload {
    var integration: String
    var deliveries: [String]
    /// How many times receipts were asked for already (ids without a receipt are asked again, at most 3 times).
    var attempt: Int
}

struct PushJob: JobPayload {
    var push: String
}

/// Fan-out progress of a raw send, saved with it after every page.
struct PushCursor: JobPayload, Equatable {
    /// The last device id done.
    var after: String?
    /// Targets without an active integration of their provider.
    var skipped = 0

    static func decode(_ text: String?) -> PushCursor {
        text.flatMap { try? decode($0) } ?? PushCursor()
    }
}

/// Fan-out progress of an event, saved with it after every page.
struct ExpandCursor: JobPayload, Equatable {
    /// Subscriber objects upserted, explicit subscribers' notifications created.
    var prepared = false
    /// The recipient entry being expanded.
    var index = 0
    /// The last subscriber id done in that entry.
    var after: String?

    static func decode(_ text: String?) -> ExpandCursor {
        text.flatMap { try? decode($0) } ?? ExpandCursor()
    }
}

extension JobKind {
    /// The class a kind's jobs are claimed in (``JobPriority``); retries are queued in the backlog class explicitly.
    var priority: JobPriority {
        switch self {
        case .deliver, .receipts: .send
        case .run, .resume: .plan
        case .expand, .push: .backlog
        // Status events are less urgent than the sends they report (JobPriority.report).
        case .webhook: .report
        }
    }
}

extension NewJob {
    /// A job of one of the engine's kinds, with that kind's priority unless `priority` says otherwise.
    init(
        environmentId: String?, job kind: JobKind, payload: String, transactionId: String? = nil, runAt: Date? = nil,
        priority: JobPriority? = nil
    ) {
        self.init(
            environmentId: environmentId, kind: kind.rawValue, payload: payload, transactionId: transactionId, runAt: runAt,
            priority: priority ?? kind.priority)
    }
}
