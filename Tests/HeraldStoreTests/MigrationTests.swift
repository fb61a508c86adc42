import Foundation
import HeraldCore
import HeraldStore
import HeraldTestSupport
import SQLKit
import Testing

@Suite("Migrations")
struct MigrationTests {
    @Test("migrate from empty applies every migration, and again applies nothing", arguments: Backend.available)
    func fromEmptyAndReapplied(backend: Backend) async throws {
        let (url, cleanUp) = try await makeTestDatabase(backend)
        defer { Task { try await cleanUp() } }
        let store = try await SQLStore.open(url, cipher: CredentialCipher(current: .random()), logger: testLogger)
        try await store.withRunning { store in
            let migrator = try store.migrator()
            #expect(try await migrator.currentVersion() == 0)
            let first = try await migrator.migrate()
            #expect(first.applied == Array(1...migrator.latestVersion))
            #expect(first.version == migrator.latestVersion)
            let second = try await migrator.migrate()
            #expect(second.applied.isEmpty)
            #expect(second.version == migrator.latestVersion)
            #expect(try await store.readiness().ready)
            // Every table of the model exists and is empty.
            for table in [
                "environments", "api_keys", "integrations", "subscribers", "subscriber_channels", "devices", "topics",
                "topic_subscriptions",
                "device_topics", "events", "notifications", "messages", "pushes", "deliveries", "execution_details", "digests", "jobs",
                "idempotency_keys",
            ] {
                let count = try await store.read {
                    try await $0.db.raw("SELECT COUNT(*) AS n FROM \(ident: table)").first()?.decode(column: "n", as: Int.self)
                }
                #expect(count == 0, "table \(table)")
            }
        }
    }

    @Test("a database newer than the binary is refused", arguments: Backend.available)
    func newerDatabaseRefused(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            try await store.transaction {
                try await $0.db.raw("INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (999, 'future', 'x', 0)")
                    .run()
            }
            let error = await #expect(throws: HeraldError.self) { try await store.migrator().migrate() }
            #expect(error?.code == .schema)
            #expect(error?.message.contains("999") == true)
            #expect(try await store.readiness().ready == false)
        }
    }

    @Test("an applied migration that was edited is refused", arguments: Backend.available)
    func editedMigrationRefused(backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            try await store.transaction {
                try await $0.db.raw("UPDATE schema_migrations SET checksum = 'tampered' WHERE version = 1").run()
            }
            let error = await #expect(throws: HeraldError.self) { try await store.migrator().migrate() }
            #expect(error?.message.contains("edited") == true)
        }
    }

    @Test("statement splitter honours quotes and comments")
    func splitter() throws {
        let migration = Migration(
            version: 1, name: "t",
            sql: """
                -- a comment; with a semicolon
                CREATE TABLE a (x TEXT DEFAULT ';');
                /* block; comment */ INSERT INTO a VALUES ('it''s; fine');
                SELECT "weird;name" FROM a
                """
        )
        #expect(
            migration.statements == [
                "CREATE TABLE a (x TEXT DEFAULT ';')", "INSERT INTO a VALUES ('it''s; fine')", "SELECT \"weird;name\" FROM a",
            ]
        )
    }

    @Test("both dialects ship the same migrations")
    func dialectsInStep() throws {
        let sqlite = try Migration.bundled(for: .sqlite)
        let postgres = try Migration.bundled(for: .postgres)
        #expect(sqlite.map(\.version) == postgres.map(\.version))
        #expect(sqlite.map(\.name) == postgres.map(\.name))
        // Same tables and indexes in the same order. Foreign-key checks and logging may differ: PostgreSQL's
        // per-delivery tables drop theirs (migration 0017: each check is a query there, in-process on SQLite), and its
        // sent journal is unlogged (0018; SQLite's is a file).
        func objects(_ migrations: [Migration]) -> [String] {
            let postgresOnly = ["DROP CONSTRAINT", "SET UNLOGGED"]
            return migrations.flatMap(\.statements).filter { statement in
                !postgresOnly.contains { statement.contains($0) }
            }.compactMap { statement in
                let words = statement.split(whereSeparator: { $0.isWhitespace })
                guard let index = words.firstIndex(where: { $0 == "TABLE" || $0 == "INDEX" }), index + 1 < words.count else { return nil }
                return "\(words[index]) \(words[index + 1])"
            }
        }
        #expect(objects(sqlite) == objects(postgres))
        #expect(objects(sqlite).count > 30)
    }
}
