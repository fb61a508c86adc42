import Foundation
import HeraldCore
import HeraldEngine
import HeraldSimulator
import HeraldStore
import HeraldTestSupport
import Testing

/// The chat providers end to end: trigger → engine → Slack, Discord, Teams, Mattermost and Telegram clients → the
/// simulator's emulators, which check what the services check.
@Suite("Chat providers end to end")
struct ChatProviderTests {
    static let workflow = """
        workflow: deploy-done
        name: Deploy done
        steps:
          - id: chat
            type: chat
            body: "Deploy {{payload.version}} finished"
            overrides:
              slack: { blocks: [{ type: section, text: { type: mrkdwn, text: "*{{payload.version}}* is live" } }] }
              discord: { username: Herald, embeds: [{ title: "{{payload.version}}" }] }
              telegram: { parse_mode: HTML }
        """

    static func integrations(_ herald: EngineHarness) async throws {
        for provider in ["slack", "discord", "msteams", "mattermost"] {
            try await herald.integration(provider, channel: "chat", identifier: "team-\(provider)", credentials: [:])
        }
        try await herald.integration(
            "telegram", channel: "chat", identifier: "team-telegram",
            credentials: ["apiToken": .string(DevAccounts.telegramBotToken), "baseUrl": .string("\(herald.simulatorURL)/telegram")])
    }

    static func channels(
        _ herald: EngineHarness, slack: String = "/slack/services/T1/B1/s3cr3t", discord: String = "/discord/api/webhooks/1/tok"
    ) -> JSONValue {
        [
            [
                "providerId": "slack", "integrationIdentifier": "team-slack",
                "credentials": ["webhookUrl": .string(herald.simulatorURL + slack)],
            ],
            [
                "providerId": "discord", "integrationIdentifier": "team-discord",
                "credentials": ["webhookUrl": .string(herald.simulatorURL + discord)],
            ],
            [
                "providerId": "msteams", "integrationIdentifier": "team-msteams",
                "credentials": ["webhookUrl": .string(herald.simulatorURL + "/teams/workflows/abc")],
            ],
            [
                "providerId": "mattermost", "integrationIdentifier": "team-mattermost",
                "credentials": ["webhookUrl": .string(herald.simulatorURL + "/mattermost/hooks/xyz")],
            ],
            ["providerId": "telegram", "integrationIdentifier": "team-telegram", "credentials": ["chatId": "4242"]],
        ]
    }

    @Test(
        "one chat step reaches Slack, Discord, Teams, Mattermost and Telegram; each request checked field by field",
        arguments: Backend.available)
    func everyProvider(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: [Self.workflow]) { herald in
            try await Self.integrations(herald)
            try await herald.trigger([
                "name": "deploy-done", "payload": ["version": "v1.2"], "to": ["subscriberId": "ops", "channels": Self.channels(herald)],
            ])
            try await herald.settle()
            let chat = herald.chat
            let slack = try #require(chat.messages(provider: "slack").first)
            #expect(slack.target == "/slack/services/T1/B1/s3cr3t" && slack.status == 200)
            #expect(
                slack.body == [
                    "text": "Deploy v1.2 finished",
                    "blocks": [["type": "section", "text": ["type": "mrkdwn", "text": "*v1.2* is live"]]],
                ])
            let discord = try #require(chat.messages(provider: "discord").first)
            #expect(discord.query == "wait=true")
            #expect(discord.body == ["content": "Deploy v1.2 finished", "username": "Herald", "embeds": [["title": "v1.2"]]])
            #expect(chat.messages(provider: "msteams").first?.body == ["text": "Deploy v1.2 finished"])
            #expect(chat.messages(provider: "mattermost").first?.body == ["text": "Deploy v1.2 finished"])
            let telegram = try #require(chat.messages(provider: "telegram").first)
            #expect(telegram.target == "4242" && telegram.body == ["chat_id": 4242, "text": "Deploy v1.2 finished", "parse_mode": "HTML"])
            // Provider message ids are kept where the service gives one (Discord's message id, Telegram's message_id,
            // Slack's and Teams' request ids; Mattermost answers a bare "ok").
            let deliveries = try await herald.store.read {
                try await $0.listDeliveries(
                    environmentId: herald.environment.id, statuses: [.delivered], providerId: nil, after: nil, limit: 10)
            }
            #expect(deliveries.items.count == 5)
            #expect(deliveries.items.filter { $0.providerId != "mattermost" }.allSatisfy { $0.providerMessageId != nil })
        }
    }

    @Test(
        "a revoked webhook deactivates the credential; Discord's 429 waits retry_after; bad payloads fail without retry",
        arguments: Backend.available)
    func errors(_ backend: Backend) async throws {
        try await withEngine(backend, workflows: [Self.workflow]) { herald in
            try await Self.integrations(herald)
            let chat = herald.chat
            chat.addFault(ChatFault(provider: "slack", target: "/slack/services/T1/B1/gone", status: 404, body: "no_service"))
            chat.addFault(
                ChatFault(
                    provider: "discord", status: 429, body: #"{"message":"You are being rate limited.","retry_after":1.5,"global":false}"#,
                    times: 1))
            chat.addFault(ChatFault(provider: "telegram", target: "4242", status: 403, body: "Forbidden: bot was blocked by the user"))
            chat.addFault(ChatFault(provider: "mattermost", status: 400, body: "bad"))
            let started = Date()
            try await herald.trigger([
                "name": "deploy-done", "payload": ["version": "v2"],
                "to": ["subscriberId": "ops", "channels": Self.channels(herald, slack: "/slack/services/T1/B1/gone")],
            ])
            try await herald.eventually("discord retried", timeout: .seconds(20)) {
                chat.messages(provider: "discord").filter { $0.status == 200 }.count == 1
            }
            let discord = chat.messages(provider: "discord")
            #expect(discord.map(\.status) == [429, 200])
            #expect(Date().timeIntervalSince(started) >= 1.5)
            try await herald.settle()
            #expect(chat.messages(provider: "mattermost").count == 1)
            // The Slack and Telegram credentials are deactivated; the next trigger skips them.
            try await herald.trigger(["name": "deploy-done", "payload": ["version": "v3"], "to": "ops"])
            try await herald.settle()
            #expect(chat.messages(provider: "slack").count == 1)
            #expect(chat.messages(provider: "telegram").count == 1)
            #expect(chat.messages(provider: "msteams").count == 2)
        }
    }
}
