import Foundation
import HeraldCore
import HeraldStore
import HeraldTestSupport
import SQLKit
import Testing

@Suite("Subscribers, devices and topics")
struct RegistryTests {
    @Test("subscriber upsert and patch: null clears, absent keeps", arguments: Backend.available)
    func subscriberPatch(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            let env = try await makeEnvironment(store)
            let (created, isNew) = try await store.transaction {
                try await $0.upsertSubscriber(
                    environmentId: env.id, subscriberId: "user-1",
                    patch: SubscriberProfilePatch(
                        setting: SubscriberProfile(firstName: "Ann", lastName: "Lee", email: "ann@example.com", data: ["tier": "gold"]))
                )
            }
            #expect(isNew)
            #expect(ObjectIDGenerator.isValid(created.id))
            var patch = SubscriberProfilePatch()
            patch.lastName = .clear
            patch.phone = .set("+15550001")
            let patched = try await store.transaction { [patch] in
                try await $0.patchSubscriber(environmentId: env.id, subscriberId: "user-1", patch: patch)
            }
            #expect(patched.profile.firstName == "Ann")
            #expect(patched.profile.lastName == nil)
            #expect(patched.profile.phone == "+15550001")
            let loaded = try await store.read { try await $0.subscriber(environmentId: env.id, subscriberId: "user-1") }
            #expect(loaded?.profile == patched.profile)
            #expect(loaded?.profile.data == ["tier": "gold"])
            let again = try await store.transaction {
                try await $0.upsertSubscriber(environmentId: env.id, subscriberId: "user-1", patch: .init())
            }
            #expect(again.created == false)
            #expect(again.subscriber.id == created.id)
            let conflict = await #expect(throws: HeraldError.self) {
                try await store.transaction {
                    try await $0.upsertSubscriber(environmentId: env.id, subscriberId: "user-1", patch: .init(), failIfExists: true)
                }
            }
            #expect(conflict?.code == .conflict)
        }
    }

    @Test("subscriber pages are keyset-paginated in creation order", arguments: Backend.available)
    func subscriberPages(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            let env = try await makeEnvironment(store)
            try await store.transaction { session async throws in
                for index in 0..<25 {
                    _ = try await session.upsertSubscriber(environmentId: env.id, subscriberId: "s\(index)", patch: .init())
                }
            }
            var seen: [String] = []
            var cursor: String? = nil
            repeat {
                let page = try await store.read { [cursor] in try await $0.subscribers(environmentId: env.id, after: cursor, limit: 10) }
                seen += page.items.map(\.subscriberId)
                cursor = page.nextCursor
            } while cursor != nil
            #expect(Set(seen).count == 25)
            #expect(seen.count == 25)
        }
    }

    @Test("a token registered for another subscriber moves, clearing the previous owner's topics", arguments: Backend.available)
    func deviceMoves(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            let env = try await makeEnvironment(store)
            let first = try await store.transaction {
                try await $0.registerDevice(
                    environmentId: env.id,
                    DeviceRegistration(
                        provider: "fcm", token: Secret("shared-phone-token"), platform: "android", subscriberId: "alice",
                        topics: ["alice-news"], meta: ["v": "1"])
                )
            }
            #expect(first.topics == ["alice-news"])
            // Same subscriber again without topics: kept.
            let same = try await store.transaction {
                try await $0.registerDevice(
                    environmentId: env.id, DeviceRegistration(provider: "fcm", token: Secret("shared-phone-token"), subscriberId: "alice"))
            }
            #expect(same.id == first.id)
            #expect(same.topics == ["alice-news"])
            #expect(same.meta == ["v": "1"])
            // Another subscriber: moved, previous owner's attachments cleared.
            let moved = try await store.transaction {
                try await $0.registerDevice(
                    environmentId: env.id, DeviceRegistration(provider: "fcm", token: Secret("shared-phone-token"), subscriberId: "bob"))
            }
            #expect(moved.id == first.id)
            #expect(moved.subscriberId == "bob")
            #expect(moved.topics.isEmpty)
            #expect(moved.meta.isEmpty)
            #expect(moved.platform == "android")
            try await store.read { session async throws in
                #expect(try await session.devices(environmentId: env.id, subscriberId: "alice").isEmpty)
                #expect(try await session.devices(environmentId: env.id, subscriberId: "bob").map(\.id) == [first.id])
                #expect(try await session.deviceTopicMembers(environmentId: env.id, topic: "alice-news", limit: 10).items.isEmpty)
            }
            // The same token under another provider is a different device.
            let apns = try await store.transaction {
                try await $0.registerDevice(
                    environmentId: env.id, DeviceRegistration(provider: "apns", token: Secret("shared-phone-token"), subscriberId: "bob"))
            }
            #expect(apns.id != first.id)
            let count = try await store.read {
                try await $0.db.raw("SELECT COUNT(*) AS n FROM devices").first()?.decode(column: "n", as: Int.self)
            }
            #expect(count == 2)
        }
    }

    @Test("deleting a subscriber removes its devices and subscriptions", arguments: Backend.available)
    func deleteSubscriberCascades(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            let env = try await makeEnvironment(store)
            try await store.transaction { session async throws in
                _ = try await session.upsertSubscriber(environmentId: env.id, subscriberId: "carol", patch: .init())
                _ = try await session.registerDevice(
                    environmentId: env.id, DeviceRegistration(provider: "fcm", token: Secret("t-carol"), subscriberId: "carol"))
                _ = try await session.upsertTopic(environmentId: env.id, key: "news", name: "News")
                try await session.subscribe(environmentId: env.id, topicKey: "news", subscriberIds: ["carol"])
            }
            #expect(try await store.transaction { try await $0.deleteSubscriber(environmentId: env.id, subscriberId: "carol") })
            try await store.read { session async throws in
                #expect(try await session.devices(environmentId: env.id, subscriberId: "carol").isEmpty)
                #expect(try await session.topicMembers(environmentId: env.id, topicKey: "news", limit: 10).items.isEmpty)
            }
        }
    }

    @Test("topic members stream in keyset pages without gaps or repeats", arguments: Backend.available)
    func topicPages(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            let env = try await makeEnvironment(store)
            let members = (0..<250).map { String(format: "member-%04d", $0) }
            try await store.transaction { session async throws in
                _ = try await session.upsertTopic(environmentId: env.id, key: "all-users", name: nil)
                #expect(try await session.subscribe(environmentId: env.id, topicKey: "all-users", subscriberIds: members) == 250)
                #expect(try await session.subscribe(environmentId: env.id, topicKey: "all-users", subscriberIds: ["member-0001"]) == 0)
            }
            var seen: [String] = []
            var cursor: String? = nil
            var pages = 0
            repeat {
                let page = try await store.read { [cursor] in
                    try await $0.topicMembers(environmentId: env.id, topicKey: "all-users", after: cursor, limit: 100)
                }
                seen += page.items
                cursor = page.nextCursor
                pages += 1
            } while cursor != nil
            #expect(seen == members)
            #expect(pages == 3)
            #expect(
                try await store.transaction {
                    try await $0.unsubscribe(environmentId: env.id, topicKey: "all-users", subscriberIds: ["member-0000", "nobody"])
                } == 1)
            #expect(try await store.read { try await $0.topicKeys(environmentId: env.id, subscriberId: "member-0001") } == ["all-users"])
        }
    }
}
