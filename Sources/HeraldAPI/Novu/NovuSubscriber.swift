import Foundation
import HeraldCore

/// Novu's `_organizationId`: Herald has no organisations, so every record reports this fixed id.
let novuOrganizationId = "686572616c64000000000000"

/// Novu `CreateSubscriberRequestDto` / `PatchSubscriberRequestDto`: profile fields with PATCH semantics.
struct NovuSubscriberBody: Decodable {
    var subscriberId: String?
    var patch: SubscriberProfilePatch

    enum CodingKeys: String, CodingKey {
        case subscriberId, firstName, lastName, email, phone, avatar, locale, timezone, data
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        subscriberId = try container.decodeIfPresent(String.self, forKey: .subscriberId)
        patch = SubscriberProfilePatch()
        patch.firstName = try container.decodeUpdate(String.self, forKey: .firstName)
        patch.lastName = try container.decodeUpdate(String.self, forKey: .lastName)
        patch.email = try container.decodeUpdate(String.self, forKey: .email)
        patch.phone = try container.decodeUpdate(String.self, forKey: .phone)
        patch.avatar = try container.decodeUpdate(String.self, forKey: .avatar)
        patch.locale = try container.decodeUpdate(String.self, forKey: .locale)
        patch.timezone = try container.decodeUpdate(String.self, forKey: .timezone)
        patch.data = try container.decodeUpdate(JSONValue.self, forKey: .data)
    }
}

extension Subscriber {
    /// Novu `SubscriberResponseDto`.
    var novuJSON: JSONValue {
        var object: [String: JSONValue] = [
            "_id": .string(id), "subscriberId": .string(subscriberId), "_organizationId": .string(novuOrganizationId),
            "_environmentId": .string(environmentId), "deleted": false, "createdAt": .string(createdAt.iso8601Milliseconds),
            "updatedAt": .string(updatedAt.iso8601Milliseconds),
        ]
        let fields: [(String, String?)] = [
            ("firstName", profile.firstName), ("lastName", profile.lastName), ("email", profile.email), ("phone", profile.phone),
            ("avatar", profile.avatar), ("locale", profile.locale), ("timezone", profile.timezone),
        ]
        for (key, value) in fields { if let value { object[key] = .string(value) } }
        if let data = profile.data { object["data"] = data }
        if let isOnline { object["isOnline"] = .bool(isOnline) }
        return .object(object)
    }
}
