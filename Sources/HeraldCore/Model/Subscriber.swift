import Foundation

/// A recipient: the app's user, identified by the app's own ``subscriberId``.
public struct Subscriber: Sendable, Hashable {
    /// Server-generated record id (Novu `_id`).
    public var id: String
    public var environmentId: String
    /// The app's user id, unique within the environment.
    public var subscriberId: String
    public var profile: SubscriberProfile
    public var isOnline: Bool?
    public var lastOnlineAt: Date?
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: String, environmentId: String, subscriberId: String, profile: SubscriberProfile = .init(), isOnline: Bool? = nil,
        lastOnlineAt: Date? = nil, createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.environmentId = environmentId
        self.subscriberId = subscriberId
        self.profile = profile
        self.isOnline = isOnline
        self.lastOnlineAt = lastOnlineAt
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// The profile fields of a subscriber. Every field is optional.
public struct SubscriberProfile: Sendable, Hashable {
    public var firstName: String?
    public var lastName: String?
    public var email: String?
    public var phone: String?
    public var avatar: String?
    public var locale: String?
    public var timezone: String?
    public var data: JSONValue?

    public init(
        firstName: String? = nil, lastName: String? = nil, email: String? = nil, phone: String? = nil, avatar: String? = nil,
        locale: String? = nil, timezone: String? = nil, data: JSONValue? = nil
    ) {
        self.firstName = firstName
        self.lastName = lastName
        self.email = email
        self.phone = phone
        self.avatar = avatar
        self.locale = locale
        self.timezone = timezone
        self.data = data
    }
}

/// A change to a subscriber profile with PATCH semantics: an absent field (`.keep`) stays, `.clear` empties it
/// (JSON `null`), `.set` replaces it.
public struct SubscriberProfilePatch: Sendable, Hashable {
    public var firstName: FieldUpdate<String> = .keep
    public var lastName: FieldUpdate<String> = .keep
    public var email: FieldUpdate<String> = .keep
    public var phone: FieldUpdate<String> = .keep
    public var avatar: FieldUpdate<String> = .keep
    public var locale: FieldUpdate<String> = .keep
    public var timezone: FieldUpdate<String> = .keep
    public var data: FieldUpdate<JSONValue> = .keep

    public init() {}

    /// A patch that sets every field of `profile` that is non-nil and keeps the rest.
    public init(setting profile: SubscriberProfile) {
        firstName = .init(profile.firstName)
        lastName = .init(profile.lastName)
        email = .init(profile.email)
        phone = .init(profile.phone)
        avatar = .init(profile.avatar)
        locale = .init(profile.locale)
        timezone = .init(profile.timezone)
        data = .init(profile.data)
    }

    /// `profile` with this patch applied.
    public func applied(to profile: SubscriberProfile) -> SubscriberProfile {
        var result = profile
        firstName.apply(to: &result.firstName)
        lastName.apply(to: &result.lastName)
        email.apply(to: &result.email)
        phone.apply(to: &result.phone)
        avatar.apply(to: &result.avatar)
        locale.apply(to: &result.locale)
        timezone.apply(to: &result.timezone)
        data.apply(to: &result.data)
        return result
    }
}

/// One field of a PATCH: keep what is stored, clear it, or set a new value.
public enum FieldUpdate<Value: Sendable & Hashable>: Sendable, Hashable {
    case keep
    case clear
    case set(Value)

    /// `.set(value)` for a non-nil value, `.keep` for nil.
    public init(_ value: Value?) {
        self = value.map { .set($0) } ?? .keep
    }

    /// Applies the update to a stored optional value.
    public func apply(to field: inout Value?) {
        switch self {
        case .keep: break
        case .clear: field = nil
        case .set(let value): field = value
        }
    }
}

/// Phone numbers as SMS providers take them.
public enum PhoneNumber {
    /// E.164: '+', a non-zero digit, then 1–14 more digits.
    public static func isE164(_ text: String) -> Bool {
        let digits = text.dropFirst()
        return text.hasPrefix("+") && (2...15).contains(digits.count) && digits.first != "0"
            && digits.allSatisfy { $0.isASCII && $0.isNumber }
    }
}
