import Foundation
import HTTPTypes
import HeraldAPI
import HeraldCore
import HeraldStore
import HeraldTestSupport
import Hummingbird
import HummingbirdTesting
import Testing

@Suite("Centrifugo push API")
struct CentrifugoTests {
    static func call(
        _ client: any TestClientProtocol, _ key: String, _ method: String, _ body: String, transport: Bool = false
    ) async throws -> (
        HTTPResponse.Status, JSONValue
    ) {
        var headers: HTTPFields = [HTTPField.Name("X-API-Key")!: key, .contentType: "application/json"]
        if transport { headers[HTTPField.Name("X-Centrifugo-Error-Mode")!] = "transport" }
        return try await client.execute(uri: "/api/\(method)", method: .post, headers: headers, body: ByteBuffer(string: body)) {
            response in
            let text = String(buffer: response.body)
            return (response.status, text.isEmpty ? .null : try JSONValue.parse(text))
        }
    }

    @Test("errors use Centrifugo's envelope and codes", arguments: Backend.available)
    func errors(backend: Backend) async throws {
        try await withAPI(backend) { client, _, tenants in
            let key = tenants.developmentKey
            let cases: [(String, String, Int)] = [
                ("no_such_method", "{}", 104),
                ("device_register", #"{"provider":"fcm","#, 107),
                ("device_register", #"{"provider":"fcm","platform":"android"}"#, 107),
                ("device_register", #"{"provider":"pigeon","token":"t","platform":"ios"}"#, 107),
                ("device_register", #"{"provider":"fcm","token":"t","platform":"tv"}"#, 107),
                ("device_topic_update", #"{"device_id":"000000000000000000000000","op":"add","topics":["x"]}"#, 104),
                ("device_remove", "{}", 107),
                ("device_list", #"{"limit":5000}"#, 107),
                // A wrong type is refused, never read as "absent" (it was: a user_update with a number cleared the user).
                ("device_list", #"{"limit":"10"}"#, 107),
                ("device_list", #"{"filter":"users"}"#, 107),
                ("device_list", #"{"include_topics":"yes"}"#, 107),
                ("device_list", #"{"cursor":5}"#, 107),
                ("device_update", #"{"ids":["x"],"user_update":{"user":5}}"#, 107),
                ("device_update", #"{"ids":["x"],"timezone_update":"UTC"}"#, 107),
                ("device_register", #"{"provider":"fcm","token":"t","platform":"android","user":42}"#, 107),
                ("user_topic_list", #"{"filter":{"topic_prefix":1}}"#, 107),
                // Lists are bounded (each entry is one bound parameter of a statement).
                ("device_remove", #"{"ids":["# + Array(repeating: #""x""#, count: 10_001).joined(separator: ",") + "]}", 107),
            ]
            for (method, body, code) in cases {
                let (status, json) = try await Self.call(client, key, method, body)
                #expect(status == .ok, "\(method)")
                #expect(
                    json.objectValue?["error"]?.objectValue?["code"] == .number(Double(code)), "\(method) \(body) → \(json.jsonString())")
            }
            // The wrong-typed update changed nothing; null is the same as absent.
            let (_, registered) = try await Self.call(
                client, key, "device_register", #"{"provider":"fcm","token":"t-1","platform":"android","user":"u1"}"#)
            let id = registered.objectValue?["result"]?.objectValue?["id"]?.stringValue ?? ""
            _ = try await Self.call(client, key, "device_update", #"{"ids":["\#(id)"],"user_update":{"user":5}}"#)
            let (_, listed) = try await Self.call(client, key, "device_list", #"{"filter":{"ids":["\#(id)"]},"cursor":null,"limit":null}"#)
            #expect(listed.objectValue?["result"]?.objectValue?["items"]?.arrayItems.first?.objectValue?["user"] == "u1")
            let (status, json) = try await Self.call(client, key, "no_such_method", "{}", transport: true)
            #expect(status == .notFound && json.objectValue?["code"] == 104)
            let (badStatus, _) = try await Self.call(client, key, "device_register", "{}", transport: true)
            #expect(badStatus == .badRequest)
        }
    }

    @Test("device registry: full-state register, move between users, user topics reach existing devices", arguments: Backend.available)
    func registry(backend: Backend) async throws {
        try await withAPI(backend) { client, store, tenants in
            let key = tenants.developmentKey
            let (_, registered) = try await Self.call(
                client, key, "device_register", #"{"provider":"fcm","token":"tok-1","platform":"android","user":"alice","topics":["a"]}"#)
            let id = try #require(registered.objectValue?["result"]?.objectValue?["id"]?.stringValue)
            let (_, moved) = try await Self.call(
                client, key, "device_register", #"{"provider":"fcm","token":"tok-1","platform":"android","user":"bob"}"#)
            #expect(moved.objectValue?["result"]?.objectValue?["id"]?.stringValue == id)
            let device = try #require(try await store.read { try await $0.device(environmentId: tenants.development.id, id: id) })
            #expect(device.subscriberId == "bob" && device.topics.isEmpty)
            // A user topic added after registration reaches the user's existing device (resolved when sending).
            _ = try await Self.call(client, key, "user_topic_update", #"{"user":"bob","op":"add","topics":["late"]}"#)
            let (_, listed) = try await Self.call(client, key, "device_list", #"{"filter":{"topics":["late"]},"include_total_count":true}"#)
            #expect(listed.objectValue?["result"]?.objectValue?["total_count"] == 1)
            // The Novu view of the same records: bob is subscribed to topic "late".
            #expect(try await store.read { try await $0.topicKeys(environmentId: tenants.development.id, subscriberId: "bob") } == ["late"])
            // Another environment sees nothing.
            let (_, other) = try await Self.call(client, tenants.productionKey, "device_list", #"{"filter":{"ids":["\#(id)"]}}"#)
            #expect(other.objectValue?["result"]?.objectValue?["items"] == [])
            let (_, guarded) = try await Self.call(
                client, key, "device_topic_update", #"{"device_id":"\#(id)","op":"add","topics":["x"],"user":"alice"}"#)
            #expect(guarded.objectValue?["error"]?.objectValue?["code"] == 113)
        }
    }

    @Test(
        "a user's topics are its devices' topics: listed by device_list and device_topic_list, kept by register, moved on a user switch, gone on detach",
        arguments: Backend.available)
    func userTopicsOnDevices(backend: Backend) async throws {
        try await withAPI(backend) { client, _, tenants in
            let key = tenants.developmentKey
            func topics(_ id: String) async throws -> [String] {
                let (_, listed) = try await Self.call(client, key, "device_list", #"{"filter":{"ids":["\#(id)"]},"include_topics":true}"#)
                let device = listed.objectValue?["result"]?.objectValue?["items"]?.arrayItems.first?.objectValue
                return device?["topics"]?.arrayItems.compactMap(\.stringValue) ?? []
            }
            func entries(
                _ filter: String, limit: Int = 100, cursor: String? = nil
            ) async throws -> (topics: [String], next: String?, total: Int?) {
                let cursorField = cursor.map { #","cursor":"\#($0)""# } ?? ""
                let (_, listed) = try await Self.call(
                    client, key, "device_topic_list", #"{"filter":\#(filter),"limit":\#(limit),"include_total_count":true\#(cursorField)}"#)
                let result = listed.objectValue?["result"]?.objectValue
                let items = result?["items"]?.arrayItems ?? []
                #expect(items.allSatisfy { $0.objectValue?["device"]?.objectValue?["id"] != nil }, "every entry carries its device")
                let total: Int? = if case .number(let n)? = result?["total_count"] { Int(n) } else { nil }
                return (items.compactMap { $0.objectValue?["topic"]?.stringValue }, result?["next_cursor"]?.stringValue, total)
            }
            _ = try await Self.call(client, key, "user_topic_update", #"{"user":"carol","op":"add","topics":["news","sports"]}"#)
            let (_, registered) = try await Self.call(
                client, key, "device_register", #"{"provider":"fcm","token":"tok-ut","platform":"android","user":"carol","topics":["own"]}"#
            )
            let id = try #require(registered.objectValue?["result"]?.objectValue?["id"]?.stringValue)
            #expect(try await topics(id) == ["news", "own", "sports"])
            #expect(try await entries(#"{"device_ids":["\#(id)"]}"#).topics == ["news", "own", "sports"])
            #expect(try await entries(#"{"topics":["news"]}"#).topics == ["news"])
            #expect(try await entries(#"{"device_users":["carol"]}"#).total == 3)
            // Paging walks the union in (device, topic) order.
            let first = try await entries(#"{"device_ids":["\#(id)"]}"#, limit: 2)
            #expect(first.topics == ["news", "own"])
            let second = try await entries(#"{"device_ids":["\#(id)"]}"#, limit: 2, cursor: first.next)
            #expect(second.topics == ["sports"] && second.next == nil)
            // A register with topics replaces the device's own topics and keeps the user's.
            _ = try await Self.call(
                client, key, "device_register",
                #"{"provider":"fcm","token":"tok-ut","platform":"android","user":"carol","topics":["own2"]}"#)
            #expect(try await topics(id) == ["news", "own2", "sports"])
            // A user switch takes the old user's topics away and brings the new user's.
            _ = try await Self.call(client, key, "device_update", #"{"ids":["\#(id)"],"user_update":{"user":"dave"}}"#)
            #expect(try await topics(id) == ["own2"])
            _ = try await Self.call(client, key, "user_topic_update", #"{"user":"dave","op":"add","topics":["dave-only"]}"#)
            #expect(try await topics(id) == ["dave-only", "own2"])
            #expect(try await entries(#"{"topics":["news"]}"#).topics == [])
            // Detached: only its own topics.
            _ = try await Self.call(client, key, "device_update", #"{"ids":["\#(id)"],"user_update":{"user":""}}"#)
            #expect(try await topics(id) == ["own2"])
            #expect(try await entries(#"{"device_ids":["\#(id)"]}"#).topics == ["own2"])
        }
    }
}
