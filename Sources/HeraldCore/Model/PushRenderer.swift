/// Renders a raw send's payloads for devices (`use_templating`, `localizations`; docs/api.md §Personalisation).
/// Devices whose variables have the same values share one rendering — the same `MessageContent` value — so the
/// providers' batching by content (HMS multi-token, FCM and APNs request batches) still groups them. One renderer
/// serves one delivery job; it is not shared between tasks.
public struct PushRenderer {
    public let request: PushSendRequest
    private var templates: [String: PushTemplate] = [:]
    /// The variables each provider's payload reads, parsed on first use.
    private var variables: [String: [PushTemplate.Variable]] = [:]
    private var memo: [String: MessageContent] = [:]
    /// The plain content per provider.
    private var bases: [String: MessageContent] = [:]
    /// Translations by the device locale as written (`fr-CA`), resolved once per locale.
    private var translationsByLocale: [String: [String: String]] = [:]

    public init(request: PushSendRequest) {
        self.request = request
    }

    /// The content for `providerId` as `device` gets it; the plain content when the send has no templating.
    public mutating func content(providerId: String, device: Device?) -> MessageContent? {
        let base: MessageContent
        if let known = bases[providerId] {
            base = known
        } else {
            guard let content = request.content(providerId: providerId) else { return nil }
            bases[providerId] = content
            base = content
        }
        guard request.personalization.templating, let device, let raw = base.raw else { return base }
        if variables[providerId] == nil {
            var used: [PushTemplate.Variable] = []
            try? PushSendRequest.forEachString(in: raw, path: "") { text, _ in
                guard let template = template(text) else { return }
                used += template.variables
            }
            variables[providerId] = Array(Set(used)).sorted { "\($0)" < "\($1)" }
        }
        let locale = device.locale ?? ""
        let translations: [String: String]
        if let known = translationsByLocale[locale] {
            translations = known
        } else {
            translations = request.personalization.translations(locale: device.locale)
            translationsByLocale[locale] = translations
        }
        let lookup = { (variable: PushTemplate.Variable) -> String? in Self.value(variable, device: device, translations: translations) }
        let key = ([providerId] + (variables[providerId] ?? []).map { lookup($0) ?? "" }).joined(separator: "\u{1}")
        if let known = memo[key] { return known }
        var content = base
        content.raw = render(raw, lookup)
        if memo.count < 10_000 { memo[key] = content }
        return content
    }

    private mutating func template(_ text: String) -> PushTemplate? {
        guard PushTemplate.hasActions(text) else { return nil }
        if let known = templates[text] { return known }
        // Validated when the send was accepted; a string that no longer parses is sent as written.
        guard let parsed = try? PushTemplate(text, allowMeta: request.personalization.useMeta) else { return nil }
        templates[text] = parsed
        return parsed
    }

    private mutating func render(_ value: JSONValue, _ lookup: (PushTemplate.Variable) -> String?) -> JSONValue {
        switch value {
        case .string(let text): return template(text).map { .string($0.render(lookup)) } ?? value
        case .array(let items): return .array(items.map { render($0, lookup) })
        case .object(let entries): return .object(entries.mapValues { render($0, lookup) })
        default: return value
        }
    }

    /// A variable's value for a device.
    public static func value(_ variable: PushTemplate.Variable, device: Device, translations: [String: String]) -> String? {
        switch variable {
        case .device("id"): device.id
        case .device("user"): device.subscriberId
        case .device("platform"): device.platform
        case .device("provider"): PushSendRequest.providers.first { $0.herald == device.provider }?.centrifugo ?? device.provider
        case .device("locale"): device.locale
        case .device("timezone"): device.timezone
        case .device: nil
        case .meta(let key): device.meta[key]
        case .l10n(let key): translations[key]
        }
    }

    /// The rate-limit key of a device: the `key` template rendered, or the device id.
    public static func rateLimitKey(_ limit: PushRateLimit, device: Device) -> String {
        guard let key = limit.key else { return device.id }
        return key.render { value($0, device: device, translations: [:]) }
    }
}
