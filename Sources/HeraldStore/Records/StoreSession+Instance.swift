import HeraldCore
import SQLKit

extension StoreSession {
    /// Checks that the configured encryption key is the one this database's credentials are sealed with, recording
    /// it on first use. Starting with a different key would make every integration unreadable, so it is refused
    /// up front with a clear message instead of failing at the first delivery.
    public func verifyEncryptionKey() async throws {
        let row = try await db.raw("SELECT value FROM instance_settings WHERE name = 'encryption_key_id'").first()
        if let recorded = try row?.decode(column: "value", as: String.self) {
            guard cipher.knowsKey(id: recorded) else {
                throw HeraldError(
                    .configuration,
                    "the credential encryption key (id \(cipher.current.id)) is not the one this database was set up with (id \(recorded)); set HERALD_ENCRYPTION_KEY to the original key (or add it to HERALD_ENCRYPTION_KEY_PREVIOUS while rotating)"
                )
            }
            return
        }
        try await db.raw(
            """
            INSERT INTO instance_settings (name, value) VALUES ('encryption_key_id', \(bind: cipher.current.id))
            ON CONFLICT (name) DO NOTHING
            """
        ).run()
    }
}

extension SQLStore {
    /// Whether the database answers and carries the schema this binary expects (`/readyz`).
    public func readiness() async throws -> (ready: Bool, detail: String) {
        let migrator = try self.migrator()
        let version = try await migrator.currentVersion()
        if version == migrator.latestVersion { return (true, "schema version \(version)") }
        if version < migrator.latestVersion {
            return (false, "schema version \(version); migrations up to \(migrator.latestVersion) are pending")
        }
        return (false, "schema version \(version) is newer than this binary (\(migrator.latestVersion))")
    }
}
