import Foundation
import HeraldCore
import Logging
import SQLKit

/// Applies migrations in order, each inside its own transaction together with its `schema_migrations` row, so a
/// failed migration leaves nothing half-applied. Running it again is a no-op. It refuses to touch a database
/// whose schema is newer than this binary, and one whose applied migrations were edited since.
///
/// On PostgreSQL, concurrent starts of several processes serialise on an advisory lock held by each transaction.
public struct Migrator: Sendable {
    /// The outcome of a run.
    public struct Report: Sendable, Equatable {
        /// Versions applied by this run.
        public var applied: [Int]
        /// The schema version after the run.
        public var version: Int
    }

    let store: SQLStore
    let migrations: [Migration]
    let logger: Logger

    /// The version of the newest migration this binary ships.
    public var latestVersion: Int { migrations.last?.version ?? 0 }

    /// Applies every pending migration. Migration sessions are exempt from the session limit (a migration may
    /// rewrite a large table).
    @discardableResult
    public func migrate() async throws -> Report {
        try await SessionLimit.$exempt.withValue(true) { try await migrateAll() }
    }

    private func migrateAll() async throws -> Report {
        try await store.driver.withConnection { db in try await Self.createLedger(db) }
        var applied: [Int] = []
        var version = try await currentVersion()
        let known = Dictionary(uniqueKeysWithValues: migrations.map { ($0.version, $0) })
        if version > latestVersion {
            throw HeraldError(
                .schema,
                "the database schema is at version \(version) but this herald binary knows only up to \(latestVersion); upgrade herald before running it against this database"
            )
        }
        for (recordedVersion, checksum) in try await recordedChecksums() {
            if let migration = known[recordedVersion], migration.checksum != checksum {
                throw HeraldError(
                    .schema,
                    "migration \(String(format: "%04d", recordedVersion))_\(migration.name) was edited after it was applied to this database; restore the file or write a new migration"
                )
            }
        }
        for migration in migrations where migration.version > version {
            let didApply = try await apply(migration)
            if didApply {
                applied.append(migration.version)
                logger.info("applied migration", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
            }
            version = migration.version
        }
        return Report(applied: applied, version: try await currentVersion())
    }

    /// The highest applied version, 0 for an empty database.
    public func currentVersion() async throws -> Int {
        try await store.driver.withConnection { db in
            guard try await Self.ledgerExists(db, dialect: store.dialect) else { return 0 }
            let row = try await db.raw("SELECT COALESCE(MAX(version), 0) AS version FROM schema_migrations").first()
            return try row?.decode(column: "version", as: Int.self) ?? 0
        }
    }

    private func recordedChecksums() async throws -> [(Int, String)] {
        try await store.driver.withConnection { db in
            try await db.raw("SELECT version, checksum FROM schema_migrations ORDER BY version").all().map { row in
                (try row.decode(column: "version", as: Int.self), try row.decode(column: "checksum", as: String.self))
            }
        }
    }

    /// Applies one migration unless another process applied it meanwhile; returns whether it applied it.
    private func apply(_ migration: Migration) async throws -> Bool {
        let dialect = store.dialect
        let now = store.clock.now().millisecondsSince1970
        return try await store.driver.withTransaction(durability: .acknowledged) { db in
            if dialect == .postgres {
                // Serialise concurrent migrators; released at commit.
                try await db.raw("SELECT pg_advisory_xact_lock(7243011)").run()
            }
            let existing = try await db.raw("SELECT version FROM schema_migrations WHERE version = \(bind: migration.version)").first()
            if existing != nil { return false }
            for statement in migration.statements {
                do {
                    try await db.raw(SQLQueryString(statement)).run()
                } catch {
                    throw HeraldError(
                        .schema, "migration \(migration.version)_\(migration.name) failed: \(PostgresDriver.explain(error))"
                    )
                }
            }
            try await db.raw(
                """
                INSERT INTO schema_migrations (version, name, checksum, applied_at)
                VALUES (\(bind: migration.version), \(bind: migration.name), \(bind: migration.checksum), \(bind: now))
                """
            ).run()
            return true
        }
    }

    private static func createLedger(_ db: any SQLDatabase) async throws {
        try await db.raw(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                checksum TEXT NOT NULL,
                applied_at BIGINT NOT NULL
            )
            """
        ).run()
    }

    private static func ledgerExists(_ db: any SQLDatabase, dialect: SQLDialectKind) async throws -> Bool {
        let query: SQLQueryString =
            switch dialect {
            case .sqlite: "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
            case .postgres: "SELECT to_regclass('schema_migrations')::text AS name"
            }
        guard let row = try await db.raw(query).first() else { return false }
        return try row.decodeNil(column: "name") == false
    }
}
