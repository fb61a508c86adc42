import HeraldCore
import HeraldProviders
import Testing

/// The provider catalog is the one table of providers: the factory builds a client for exactly its ids.
@Suite("Provider catalog")
struct ProviderCatalogTests {
    @Test("the factory has a client for every catalog id and no other")
    func factoryMatchesCatalog() {
        #expect(StandardProviderFactory.providerIds == Set(ProviderCatalog.all))
    }

    @Test("ids are unique, each channel has providers, and batch limits are positive")
    func tableIsSound() {
        #expect(Set(ProviderCatalog.all).count == ProviderCatalog.all.count)
        for channel in [Channel.push, .chat, .email, .sms] { #expect(!ProviderCatalog.ids(channel).isEmpty) }
        for spec in ProviderCatalog.specs {
            #expect(spec.batchLimit > 0, "\(spec.id)")
            #expect(ProviderCatalog.batchLimit(spec.id) == spec.batchLimit)
            #expect(ProviderCatalog.channel(of: spec.id) == spec.channel)
        }
        #expect(ProviderCatalog.channel(of: "carrier-pigeon") == nil)
    }

    @Test("targets follow the channel: push to tokens, email to addresses, SMS to numbers, chat to URLs or chat ids")
    func targets() {
        for spec in ProviderCatalog.specs {
            switch spec.channel {
            case .push: #expect(spec.target == .deviceToken, "\(spec.id)")
            case .email: #expect(spec.target == .emailAddress, "\(spec.id)")
            case .sms: #expect(spec.target == .phoneNumber, "\(spec.id)")
            case .chat: #expect(spec.target == .webhookURL || spec.target == .chatId, "\(spec.id)")
            case .inApp: Issue.record("no in-app provider is shipped: \(spec.id)")
            }
        }
        #expect(ProviderCatalog.specs.filter(\.supportsTopics).map(\.id) == ["fcm"])
        #expect(ProviderCatalog.spec("telegram")?.target == .chatId)
    }
}
