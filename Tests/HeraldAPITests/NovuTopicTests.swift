import Foundation
import HTTPTypes
import HeraldAPI
import HeraldCore
import HeraldStore
import HeraldTestSupport
import Hummingbird
import HummingbirdTesting
import SQLKit
import Testing

@Suite("Novu topics")
struct NovuTopicTests {
    @Test("v2 topic and subscription routes", arguments: Backend.available)
    func v2(backend: Backend) async throws {
        try await withAPI(backend) { client, _, tenants in
            let api = NovuClient(client: client, key: tenants.developmentKey)
            let members = (0..<7).map { "m\($0)" }
            try await api.createSubscribers(members)
            var reply = try await api.call(.post, "/v2/topics", #"{"key":"news","name":"News"}"#)
            #expect(reply.status == .created && reply.data.objectValue?["key"] == "news")
            #expect(try await api.call(.post, "/v2/topics", #"{"key":"news"}"#).status == .ok)
            #expect(try await api.call(.post, "/v2/topics", #"{"key":"bad key!"}"#).status == .unprocessableContent)
            reply = try await api.call(.post, "/v2/topics?failIfExists=true", #"{"key":"news"}"#)
            #expect(reply.status == .conflict && reply["key"] == "news" && reply["statusCode"] == 409)
            #expect(try await api.call(.patch, "/v2/topics/news", #"{"name":"Daily news"}"#).data.objectValue?["name"] == "Daily news")
            reply = try await api.call(
                .post, "/v2/topics/news/subscriptions",
                #"{"subscriberIds":["# + (members + ["ghost"]).map { "\"\($0)\"" }.joined(separator: ",") + "]}")
            #expect(reply.status == .created)
            #expect(reply["meta"] == ["totalCount": 8, "successful": 7, "failed": 1])
            #expect(reply["errors"]?.arrayItems.first?.objectValue?["code"] == "SUBSCRIBER_NOT_FOUND")
            #expect(reply["data"]?.arrayItems.first?.objectValue?["topic"]?.objectValue?["key"] == "news")
            var listed: [String] = []
            var cursor: String? = nil
            repeat {
                reply = try await api.call(.get, "/v2/topics/news/subscriptions?limit=3" + (cursor.map { "&after=\($0)" } ?? ""))
                listed +=
                    reply["data"]?.arrayItems.compactMap { $0.objectValue?["subscriber"]?.objectValue?["subscriberId"]?.stringValue } ?? []
                cursor = reply["next"]?.stringValue
            } while cursor != nil
            #expect(listed.sorted() == members)
            // Auto-created topic on subscription.
            #expect(
                try await api.call(
                    .post, "/v2/topics/implicit/subscriptions", #"{"subscriptions":["m0",{"identifier":"x","subscriberId":"m1"}]}"#)[
                        "meta"]?.objectValue?["successful"] == 2)
            reply = try await api.call(.delete, "/v2/topics/news/subscriptions", #"{"subscriberIds":["m0","m1","nobody"]}"#)
            #expect(reply.status == .ok && reply["meta"] == ["totalCount": 3, "successful": 2, "failed": 1])
            #expect(try await api.call(.get, "/v2/topics/news/subscriptions")["totalCount"] == 5)
            // m0 is in `implicit` only now; m2 in `news` only; a subscriber in both lists them in key order.
            try await api.call(.post, "/v2/topics/alpha/subscriptions", #"{"subscriberIds":["m2"]}"#)
            reply = try await api.call(.get, "/v2/subscribers/m2/subscriptions")
            #expect(reply["totalCount"] == 2)
            #expect(
                reply["data"]?.arrayItems.compactMap { $0.objectValue?["topic"]?.objectValue?["key"]?.stringValue } == ["alpha", "news"])
            #expect(reply["data"]?.arrayItems.last?.objectValue?["identifier"] == "tk_news:m2")
            reply = try await api.call(.get, "/v2/subscribers/m2/subscriptions?limit=1")
            #expect(reply["totalCount"] == 2 && reply["data"]?.arrayItems.count == 1)
            #expect(try await api.call(.get, "/v2/subscribers/nobody/subscriptions").status == .notFound)
            #expect(try await api.call(.get, "/v2/topics/news/subscriptions/tk_news:m2").data.objectValue?["id"] != nil)
            #expect(try await api.call(.get, "/v2/topics?key=news")["data"]?.arrayItems.count == 1)
            #expect(try await api.call(.delete, "/v2/topics/news").data == ["acknowledged": true])
            #expect(try await api.call(.get, "/v2/topics/news").status == .notFound)
            #expect(
                try await api.call(
                    .post, "/v2/topics/x/subscriptions",
                    #"{"subscriberIds":["# + (0...100).map { "\"s\($0)\"" }.joined(separator: ",") + "]}"
                ).status == .unprocessableContent)
        }
    }

    @Test("v1 legacy topic routes", arguments: Backend.available)
    func v1(backend: Backend) async throws {
        try await withAPI(backend) { client, _, tenants in
            let api = NovuClient(client: client, key: tenants.developmentKey)
            try await api.call(.post, "/v1/subscribers/bulk", #"{"subscribers":[{"subscriberId":"a"},{"subscriberId":"b"}]}"#)
            var reply = try await api.call(.post, "/v1/topics", #"{"key":"legacy","name":"Legacy"}"#)
            #expect(reply.status == .created && reply.data.objectValue?["key"] == "legacy" && reply.data.objectValue?["_id"] != nil)
            #expect(try await api.call(.post, "/v1/topics", #"{"key":"legacy"}"#).status == .unprocessableContent)
            reply = try await api.call(.post, "/v1/topics/legacy/subscribers", #"{"subscribers":["a","b","zz"]}"#)
            #expect(reply.status == .ok && reply.data == ["succeeded": ["a", "b"], "failed": ["notFound": ["zz"]]])
            reply = try await api.call(.get, "/v1/topics/legacy")
            #expect(reply.data.objectValue?["subscribers"] == ["a", "b"])
            reply = try await api.call(.get, "/v1/topics?page=0&pageSize=10")
            #expect(reply["totalCount"] == 1 && reply["pageSize"] == 10)
            #expect(try await api.call(.patch, "/v1/topics/legacy", #"{"name":"Renamed"}"#).data.objectValue?["name"] == "Renamed")
            reply = try await api.call(.get, "/v1/topics/legacy/subscribers/a")
            #expect(reply.data.objectValue?["externalSubscriberId"] == "a" && reply.data.objectValue?["topicKey"] == "legacy")
            #expect(try await api.call(.post, "/v1/topics/legacy/subscribers/removal", #"{"subscribers":["a"]}"#).status == .noContent)
            #expect(try await api.call(.get, "/v1/topics/legacy/subscribers/a").status == .notFound)
            #expect(try await api.call(.delete, "/v1/topics/legacy").status == .noContent)
            #expect(try await api.call(.get, "/v1/topics/legacy").status == .notFound)
        }
    }

    @Test("topic member pages use an index, not a sort of the whole topic (SQLite query plan)")
    func memberPagesUseIndexes() async throws {
        try await withStore(.sqlite) { store, _ in
            let plans = try await store.read { session in
                var plans: [String] = []
                for query in [
                    "SELECT subscriber_id FROM topic_subscriptions WHERE environment_id = 'e' AND topic_key = 't' AND subscriber_id > 'x' ORDER BY subscriber_id LIMIT 101",
                    "SELECT id FROM topic_subscriptions WHERE environment_id = 'e' AND topic_key = 't' AND id < 'x' ORDER BY id DESC LIMIT 11",
                    "SELECT device_id FROM device_topics WHERE environment_id = 'e' AND topic = 't' AND device_id > 'x' ORDER BY device_id LIMIT 101",
                    "SELECT id FROM subscribers WHERE environment_id = 'e' AND id > 'x' ORDER BY id LIMIT 11",
                ] {
                    let rows = try await session.db.raw(SQLQueryString("EXPLAIN QUERY PLAN " + query)).all()
                    plans.append(try rows.map { try $0.decode(column: "detail", as: String.self) }.joined(separator: "; "))
                }
                return plans
            }
            for plan in plans {
                #expect(plan.contains("USING") && plan.contains("INDEX"), "\(plan)")
                #expect(!plan.contains("TEMP B-TREE"), "no sort: \(plan)")
            }
        }
    }
}
