import Foundation
import HeraldCore
import Logging

/// Finds the credential encryption key (`README.md` §Configuration):
///
/// * `HERALD_ENCRYPTION_KEY` (base64 of 32 bytes) when set; `HERALD_ENCRYPTION_KEY_PREVIOUS` (comma-separated)
///   adds keys that still open values sealed before a rotation;
/// * otherwise, on SQLite, the key file `<database>.key` next to the database, created with mode 0600 and a
///   warning on first start;
/// * otherwise, on PostgreSQL, an error: several processes must share one key, so it cannot be generated locally.
public enum EncryptionKeyLoader {
    public static func load(for database: DatabaseURL, environment: [String: String], logger: Logger) throws -> CredentialCipher {
        let previous = try (environment["HERALD_ENCRYPTION_KEY_PREVIOUS"] ?? "")
            .split(separator: ",")
            .map { try CredentialCipher.Key(base64: String($0)) }
        if let text = environment["HERALD_ENCRYPTION_KEY"], !text.isEmpty {
            return CredentialCipher(current: try CredentialCipher.Key(base64: text), previous: previous)
        }
        switch database {
        case .sqliteMemory:
            return CredentialCipher(current: .random(), previous: previous)
        case .postgres:
            throw HeraldError(
                .configuration,
                "HERALD_ENCRYPTION_KEY is required with PostgreSQL (32 random bytes in base64: openssl rand -base64 32); every herald process must use the same key"
            )
        case .sqlite(let path, _):
            let keyPath = path + ".key"
            return CredentialCipher(current: try loadOrCreateKeyFile(at: keyPath, logger: logger), previous: previous)
        }
    }

    /// Reads the key file, or creates it (mode 0600) when it does not exist.
    static func loadOrCreateKeyFile(at path: String, logger: Logger) throws -> CredentialCipher.Key {
        let manager = FileManager.default
        if manager.fileExists(atPath: path) {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw HeraldError(.configuration, "cannot read the encryption key file \(path)")
            }
            do {
                return try CredentialCipher.Key(base64: text)
            } catch {
                throw HeraldError(.configuration, "the encryption key file \(path) does not hold 32 bytes in base64")
            }
        }
        let key = CredentialCipher.Key.random()
        let created = manager.createFile(
            atPath: path, contents: Data((key.base64 + "\n").utf8), attributes: [.posixPermissions: 0o600]
        )
        guard created else {
            throw HeraldError(.configuration, "cannot create the encryption key file \(path)")
        }
        logger.warning(
            "generated a credential encryption key; back it up with the database, or set HERALD_ENCRYPTION_KEY",
            metadata: ["path": "\(path)"]
        )
        return key
    }
}
