import HeraldCore

/// Who a channel step sends to through one integration — pure, driven by the provider catalog's target kind
/// (``ProviderTarget``) and topic support, so no provider id is named here.
enum StepTargets {
    /// One delivery's address; `deviceId` and `platform` when it is a registered device (else the platform the
    /// provider implies, for push statistics).
    typealias Target = (target: String, deviceId: String?, platform: String?)

    /// Push: targets named by the merged overrides win, as in Novu — `deviceTokens` (any provider), or `tokens` and a
    /// `topic`/`condition` for providers with topics (a topic is one send, whatever the subscriber's devices);
    /// otherwise the subscriber's devices registered for the integration (or for its provider, without one).
    static func push(integration: Integration, overrides: JSONValue, devices: [Device]) -> [Target] {
        let object = overrides.objectValue ?? [:]
        let topics = ProviderCatalog.spec(integration.providerId)?.supportsTopics ?? false
        if topics, let topic = object["topic"]?.stringValue ?? object["condition"]?.stringValue {
            return [(topic, nil, nil)]
        }
        let implied = ProviderCatalog.spec(integration.providerId)?.platform
        let named = (object["deviceTokens"] ?? (topics ? object["tokens"] : nil))?.arrayValue?.compactMap(\.stringValue) ?? []
        if !named.isEmpty { return named.map { ($0, nil, implied) } }
        return devices.filter {
            $0.integrationId == integration.id || ($0.integrationId == nil && $0.provider == integration.providerId)
        }.map { ($0.token.revealed, $0.id, $0.platform ?? implied) }
    }

    /// Chat: the subscriber's webhook URL, or their chat id (`chatId`, else `channel`; a number is sent as written)
    /// for providers that address chats, from the subscriber's credentials for the integration.
    static func chat(integration: Integration, credentials: [String: JSONValue]?) -> Target? {
        let target: String?
        switch ProviderCatalog.spec(integration.providerId)?.target {
        case .chatId?:
            target = (credentials?["chatId"] ?? credentials?["channel"]).flatMap { $0.stringValue ?? ($0 == .null ? nil : $0.jsonString()) }
        default:
            target = credentials?["webhookUrl"]?.stringValue
        }
        guard let target, !target.isEmpty else { return nil }
        return (target, nil, nil)
    }
}
