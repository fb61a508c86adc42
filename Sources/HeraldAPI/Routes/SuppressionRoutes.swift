import Foundation
import HeraldCore
import HeraldStore
import Hummingbird

/// The suppression list (docs/webhooks.md §Suppression list): addresses a provider refused for good, which Herald no
/// longer sends to. Listed and lifted here; entries are added by the engine.
struct SuppressionRoutes {
    let store: SQLStore

    func register(on group: RouterGroup<HeraldRequestContext>) {
        group.get("/v1/suppressions") { request, context in
            let environment = try context.requireEnvironment()
            let query = NovuQuery(request)
            let channel = try query.string("channel").map(Self.channel)
            let address = query.string("address")
            if address != nil, channel == nil { throw APIError.invalidField("channel", "channel is required with address") }
            let limit = try query.integer("limit", default: 100, range: 1...500)
            let after = try query.string("after").map { cursor -> (channel: String, address: String) in
                guard let colon = cursor.firstIndex(of: ":"), ["email", "sms"].contains(cursor[..<colon]) else {
                    throw APIError.invalidField("after", "after is not a valid cursor (use next)")
                }
                return (String(cursor[..<colon]), String(cursor[cursor.index(after: colon)...]))
            }
            let entries = try await store.read {
                try await $0.listSuppressions(
                    environmentId: environment.id, channel: channel, address: address, after: after, limit: limit + 1)
            }
            let page = entries.prefix(limit)
            return JSONResponse.make([
                "data": .array(page.map(Self.json)),
                "next": entries.count > limit ? page.last.map { .string("\($0.channel.rawValue):\($0.address)") } ?? .null : .null,
            ])
        }
        group.delete("/v1/suppressions/{channel}/{address}") { _, context in
            let environment = try context.requireEnvironment()
            let channel = try Self.channel(try context.parameters.require("channel"))
            let address = try context.parameters.require("address")
            guard
                try await store.transaction({
                    try await $0.deleteSuppression(environmentId: environment.id, channel: channel, address: address)
                })
            else { throw APIError(.notFound, "\(address) is not suppressed for \(channel.rawValue)") }
            return JSONResponse.data(["acknowledged": true])
        }
    }

    static func channel(_ text: String) throws -> Channel {
        guard let channel = Channel(rawValue: text), channel == .email || channel == .sms else {
            throw APIError.invalidField("channel", "channel must be one of the following values: email, sms", value: .string(text))
        }
        return channel
    }

    static func json(_ entry: Suppression) -> JSONValue {
        [
            "channel": .string(entry.channel.rawValue), "address": .string(entry.address), "reason": .string(entry.reason),
            "providerId": entry.providerId.map(JSONValue.string) ?? .null, "createdAt": .string(entry.createdAt.iso8601Milliseconds),
        ]
    }
}
