import HeraldCore

/// A workflow the engine can run: everything validated, templates compiled, conditions parsed.
public struct Workflow: Sendable {
    /// The trigger identifier (event name).
    public var id: String
    public var name: String
    public var description: String?
    public var tags: [String]
    /// Inactive workflows reject triggers.
    public var active: Bool
    /// Critical workflows ignore subscriber preferences.
    public var critical: Bool
    /// Preference defaults (`preferences:`); subscribers' own settings are resolved against them (`PreferenceResolver`).
    public var preferences: WorkflowPreferences = WorkflowPreferences()
    /// The schema trigger payloads are validated against; nil accepts any object.
    public var payloadSchema: PayloadSchema?
    /// Steps in file order.
    public var steps: [Step]
    /// Dependencies between the steps.
    public var graph: StepGraph
    /// The file it was loaded from.
    public var file: String
    /// The send window of every channel step without its own (`window:`), in the subscriber's timezone.
    public var window: LocalTimeWindow? = nil
    /// The timezone of subscribers without one (`timezone:`, an IANA name); nil: UTC.
    public var timezone: String? = nil
    /// The default locale (`locale:`, normalised: `en`, `pt-br`): its translations are the fallback of every key.
    public var locale: String = "en"
    /// `translations:` by normalised locale tag, each a flat map of dotted keys (`order.shipped`) to text.
    public var translations: [String: [String: String]] = [:]

    /// The `t` object templates read (`{{t.order.shipped}}`) for a subscriber's locale: the default locale's
    /// translations, overlaid by the language's (`fr`), overlaid by the exact tag's (`fr-ca`); nested by the dots of
    /// the keys.
    public func translationContext(locale subscriberLocale: String?) -> JSONValue {
        guard !translations.isEmpty else { return .object([:]) }
        var merged = translations[locale] ?? [:]
        if let subscriberLocale, !subscriberLocale.isEmpty {
            let tag = Self.normalisedLocale(subscriberLocale)
            if let language = tag.split(separator: "-").first.map(String.init), language != tag, let entries = translations[language] {
                merged.merge(entries, uniquingKeysWith: { $1 })
            }
            if let entries = translations[tag] { merged.merge(entries, uniquingKeysWith: { $1 }) }
        }
        var root: [String: JSONValue] = [:]
        for (key, text) in merged.sorted(by: { $0.key < $1.key }) {
            Self.insert(text, at: key.split(separator: ".").map(String.init)[...], into: &root)
        }
        return .object(root)
    }

    static func insert(_ text: String, at path: ArraySlice<String>, into object: inout [String: JSONValue]) {
        guard let head = path.first else { return }
        if path.count == 1 {
            object[head] = .string(text)
            return
        }
        var child = object[head]?.objectValue ?? [:]
        insert(text, at: path.dropFirst(), into: &child)
        object[head] = .object(child)
    }

    /// `fr_CA` and `FR-ca` are `fr-ca`.
    public static func normalisedLocale(_ tag: String) -> String { tag.replacingOccurrences(of: "_", with: "-").lowercased() }

    /// The step with this id.
    public func step(_ id: String) -> Step? { steps.first { $0.id == id } }
}

/// One step of a workflow.
public struct Step: Sendable {
    public var id: String
    public var name: String?
    public var location: SourceLocation
    /// The steps this one waits for (resolved: the previous step unless `needs` says otherwise).
    public var needs: [String]
    /// The `if:` condition; a false condition skips the step.
    public var condition: Condition?
    public var action: StepAction

    /// `push`, `chat`, `email`, `sms`, `delay` or `digest`.
    public var type: StepType { action.type }
}

/// The kinds of step.
public enum StepType: String, Sendable, CaseIterable {
    case push, chat, email, sms, delay, digest, throttle

    /// The delivery channel of a channel step; nil for delay and digest.
    public var channel: Channel? {
        switch self {
        case .push: .push
        case .chat: .chat
        case .email: .email
        case .sms: .sms
        case .delay, .digest, .throttle: nil
        }
    }
}

/// What a step does.
public enum StepAction: Sendable {
    case push(PushContent, ChannelOptions)
    case chat(ChatContent, ChannelOptions)
    case email(EmailContent, ChannelOptions)
    case sms(SMSContent, ChannelOptions)
    case delay(DelaySpec)
    case digest(DigestSpec)
    case throttle(ThrottleSpec)

    public var type: StepType {
        switch self {
        case .push: .push
        case .chat: .chat
        case .email: .email
        case .sms: .sms
        case .delay: .delay
        case .digest: .digest
        case .throttle: .throttle
        }
    }

    /// The channel options of a channel step.
    public var channelOptions: ChannelOptions? {
        switch self {
        case .push(_, let options), .chat(_, let options), .email(_, let options), .sms(_, let options): options
        case .delay, .digest, .throttle: nil
        }
    }
}

/// Options every channel step takes.
public struct ChannelOptions: Sendable {
    /// Per provider id, deep-merged into that provider's request.
    public var overrides: [String: JSONValue] = [:]
    /// Restricts the fan-out to these integration identifiers; nil means every active integration of the channel.
    public var integrations: [String]? = nil
    /// When the step may send, in the subscriber's local time (`window:`); nil: the workflow's, if any.
    public var window: LocalTimeWindow? = nil
}

/// Push step content. Every text field is a template.
public struct PushContent: Sendable {
    public var title: Template?
    public var body: Template?
    /// Custom data; values are templates (providers want strings).
    public var data: [String: Template] = [:]
    public var image: Template?
    public var sound: Template?
    public var badge: Template?
    /// How long providers keep the message for an offline device.
    public var ttl: WorkflowDuration?
    /// `high` or `normal`.
    public var priority: String?
    public var collapseKey: Template?
}

/// Chat step content.
public struct ChatContent: Sendable {
    public var body: Template
}

/// Email step content: `body` is HTML (values are HTML-escaped), `text` the optional plain-text part.
public struct EmailContent: Sendable {
    public var subject: Template
    public var body: Template
    public var text: Template?
    public var from: Template?
    public var senderName: Template?
}

/// SMS step content.
public struct SMSContent: Sendable {
    public var body: Template
}

/// How long a delay step waits: a fixed duration or until a rendered timestamp.
public enum DelaySpec: Sendable {
    case duration(WorkflowDuration)
    case until(Template)
}

/// A digest collects the events of one subscriber (and rendered key) during `window`, then continues once.
public struct DigestSpec: Sendable {
    public var window: WorkflowDuration
    public var key: Template?
}

/// A throttle step: at most `limit` runs pass it per `window` for each rendered `key` (default the subscriber id);
/// counted in the store, across processes (docs/workflows.md §Throttle).
public struct ThrottleSpec: Sendable {
    public var limit: Int
    public var window: WorkflowDuration
    public var key: Template?
}

/// A parsed `if:` condition with its source text.
public struct Condition: Sendable {
    public var source: String
    public var expression: Expression
    public var location: SourceLocation
}
