import Foundation
import HeraldCore
import HeraldStore

/// Novu's `_organizationId`: Herald has no organisations, so every record reports this fixed id.
let novuOrganizationId = "686572616c64000000000000"

/// Novu `CreateSubscriberRequestDto` / `PatchSubscriberRequestDto`: profile fields with PATCH semantics.
struct NovuSubscriberBody: Decodable {
    var subscriberId: String?
    var patch: SubscriberProfilePatch
    /// v1 create only: channel credentials to merge.
    var channels: [NovuChannelCredentials]?

    enum CodingKeys: String, CodingKey {
        case subscriberId, firstName, lastName, email, phone, avatar, locale, timezone, data, channels
    }

    /// The patch after field checks: e-mail shape, E.164 phone, `data` an object.
    func validatedPatch() throws -> SubscriberProfilePatch {
        if case .set(let email) = patch.email, !PayloadSchemaFormats.isEmail(email) {
            throw APIError.invalidField("email", "email must be an email", value: .string(email))
        }
        if case .set(let phone) = patch.phone, !PayloadSchemaFormats.isE164(phone) {
            throw APIError.invalidField(
                "phone", "phone must be a valid phone number in E.164 format (e.g. +15550001111)", value: .string(phone))
        }
        if case .set(let data) = patch.data, data.objectValue == nil {
            throw APIError.invalidField("data", "data must be an object")
        }
        return patch
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        subscriberId = try container.decodeIfPresent(String.self, forKey: .subscriberId)
        channels = try container.decodeIfPresent([NovuChannelCredentials].self, forKey: .channels)
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

/// Provider ids Novu's SDK accepts in `channels[].providerId` (its `ChatOrPushProviderEnum`); channels of Herald's
/// own providers (`web-push`, `hms`) are left out of Novu responses so that the SDK can parse them.
let novuChannelProviders: Set<String> = Set(
    ProviderCatalog.specs.filter { $0.novuKnown && ($0.channel == .push || $0.channel == .chat) }.map(\.id))

extension SubscriberChannel {
    /// Novu `ChannelSettingsDto`.
    var novuJSON: JSONValue {
        var credentials = self.credentials
        if !deviceTokens.isEmpty || providerIsPush { credentials["deviceTokens"] = .array(deviceTokens.map(JSONValue.string)) }
        return [
            "providerId": .string(providerId), "credentials": .object(credentials), "_integrationId": .string(integrationId),
            "integrationIdentifier": .string(integrationIdentifier),
        ]
    }

    private var providerIsPush: Bool { ProviderCatalog.channel(of: providerId) == .push }
}

extension Subscriber {
    /// Novu `SubscriberResponseDto` with its channels.
    func novuJSON(channels: [SubscriberChannel]) -> JSONValue {
        guard case .object(var object) = novuJSON else { return novuJSON }
        object["channels"] = .array(channels.filter { novuChannelProviders.contains($0.providerId) }.map(\.novuJSON))
        return .object(object)
    }

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

/// Novu `UpdateSubscriberChannelRequestDto`: `providerId`, `credentials` (`deviceTokens`, `webhookUrl`, `channel`, …)
/// and an optional `integrationIdentifier`.
struct NovuChannelCredentials: Decodable {
    var providerId: String
    var credentials: [String: JSONValue]
    var integrationIdentifier: String?
}

/// `POST /v1/subscribers/bulk`.
struct NovuBulkSubscribers: Decodable {
    var subscribers: [NovuSubscriberBody]
}

/// `PATCH /v1/subscribers/{id}/online-status`.
struct NovuOnlineStatus: Decodable {
    var isOnline: Bool
}

/// Shape checks for subscriber fields.
enum PayloadSchemaFormats {
    static func isEmail(_ text: String) -> Bool {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        return parts.count == 2 && !parts[0].isEmpty && parts[1].contains(".") && !parts[1].hasPrefix(".") && !parts[1].hasSuffix(".")
            && !text.contains(where: \.isWhitespace) && text.count <= 254
    }

    /// E.164: '+', a non-zero digit, then 1–14 digits.
    static func isE164(_ text: String) -> Bool { PhoneNumber.isE164(text) }
}
