import Foundation

/// A named audience. Subscribers subscribe to topics (Novu topics, which are also Centrifugo user topics);
/// devices subscribe directly (Centrifugo device topics).
public struct Topic: Sendable, Hashable {
    public var id: String
    public var environmentId: String
    public var key: String
    public var name: String?
    public var createdAt: Date
    public var updatedAt: Date

    public init(id: String, environmentId: String, key: String, name: String?, createdAt: Date, updatedAt: Date) {
        self.id = id
        self.environmentId = environmentId
        self.key = key
        self.name = name
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    /// Whether `key` is a valid topic key: 1–256 characters of `a-z A-Z 0-9 - _ : . @ +` (Novu allows
    /// `a-zA-Z0-9-_:` and e-mail addresses).
    public static func isValidKey(_ key: String) -> Bool {
        (1...256).contains(key.utf8.count)
            && key.utf8.allSatisfy { c in
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(c)
                    || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) || "-_:.@+".utf8.contains(c)
            }
    }
}

/// A subscriber's membership in a topic.
public struct TopicSubscription: Sendable, Hashable {
    public var id: String
    public var environmentId: String
    public var topicKey: String
    public var subscriberId: String
    public var createdAt: Date

    public init(id: String, environmentId: String, topicKey: String, subscriberId: String, createdAt: Date) {
        self.id = id
        self.environmentId = environmentId
        self.topicKey = topicKey
        self.subscriberId = subscriberId
        self.createdAt = createdAt
    }
}

/// One page of a keyset-paginated listing: the items and the cursor to pass for the next page (nil at the end).
public struct Page<Item: Sendable>: Sendable {
    public var items: [Item]
    public var nextCursor: String?

    public init(items: [Item], nextCursor: String?) {
        self.items = items
        self.nextCursor = nextCursor
    }
}
