import HeraldCore
import HeraldStore
import Testing

@Suite("Database URLs")
struct DatabaseURLTests {
    @Test("parses every supported form")
    func parses() throws {
        #expect(try DatabaseURL(parsing: "sqlite://./herald.sqlite") == .sqlite(path: "./herald.sqlite", synchronous: .full))
        #expect(
            try DatabaseURL(parsing: "sqlite:///var/lib/herald.db?synchronous=normal")
                == .sqlite(path: "/var/lib/herald.db", synchronous: .normal))
        #expect(try DatabaseURL(parsing: "sqlite::memory:") == .sqliteMemory)
        guard case .postgres(let location) = try DatabaseURL(parsing: "postgres://app:p%40ss@db.internal:6543/herald?sslmode=require")
        else {
            Issue.record("not postgres")
            return
        }
        #expect(location.host == "db.internal")
        #expect(location.port == 6543)
        #expect(location.username == "app")
        #expect(location.password?.revealed == "p@ss")
        #expect(location.database == "herald")
        #expect(location.sslMode == "require")
    }

    @Test("the password never appears in the description")
    func redacted() throws {
        let url = try DatabaseURL(parsing: "postgres://app:hunter2@localhost/herald")
        #expect("\(url)" == "postgres://app:***@localhost:5432/herald")
    }

    @Test(
        "bad URLs get clear errors",
        arguments: ["mysql://x", "sqlite://", "postgres://localhost/db", "postgres://u@localhost", "sqlite://x.db?journal=off"])
    func rejects(text: String) {
        let error = #expect(throws: HeraldError.self) { try DatabaseURL(parsing: text) }
        #expect(error?.code == .configuration)
    }
}
