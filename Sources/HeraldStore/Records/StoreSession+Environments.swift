import Crypto
import Foundation
import HeraldCore
import SQLKit

extension StoreSession {
    // MARK: Environments

    /// Creates an environment. Throws `conflict` if the name is taken.
    public func createEnvironment(named name: String) async throws -> Environment {
        guard Environment.isValidName(name) else {
            throw HeraldError.invalidInput("environment names are 1–64 characters of a-z, 0-9, '-' and '_'", context: ["name": name])
        }
        let environment = Environment(id: ids.next(), name: name, createdAt: Date(millisecondsSince1970: nowMilliseconds))
        do {
            try await db.raw(
                """
                INSERT INTO environments (id, name, created_at, unsubscribe_key)
                VALUES (\(bind: environment.id), \(bind: name), \(bind: nowMilliseconds),
                    \(bind: try Self.sealedUnsubscribeKey(cipher: cipher, environmentId: environment.id)))
                """
            ).run()
        } catch  where isUniqueViolation(error) {
            throw HeraldError.conflict("environment '\(name)' already exists", context: ["name": name])
        }
        return environment
    }

    /// The environment with this name.
    public func environment(named name: String) async throws -> Environment? {
        try await db.raw("SELECT id, name, created_at FROM environments WHERE name = \(bind: name)").first().map(Self.environment(from:))
    }

    /// Every environment, oldest first.
    public func environments() async throws -> [Environment] {
        try await db.raw("SELECT id, name, created_at FROM environments ORDER BY id").all().map(Self.environment(from:))
    }

    private static func environment(from row: any SQLRow) throws -> Environment {
        Environment(
            id: try row.decode(column: "id", as: String.self), name: try row.decode(column: "name", as: String.self),
            createdAt: try row.date("created_at"))
    }

    /// On an empty database, creates the `development` environment with one API key: `providedKey` if given
    /// (`HERALD_API_KEY`), otherwise a generated one. Returns the environment and the key's plaintext when it created
    /// them, nil when environments already existed. Safe to call from several processes at once.
    public func bootstrap(providedKey: String?) async throws -> (Environment, Secret)? {
        if let providedKey { try APIKeyFormat.validateProvided(providedKey) }
        let existing = try await db.raw("SELECT COUNT(*) AS n FROM environments").first()?.decode(column: "n", as: Int.self) ?? 0
        guard existing == 0 else { return nil }
        let environment: Environment
        do {
            environment = try await createEnvironment(named: Environment.defaultName)
        } catch let error as HeraldError where error.code == .conflict {
            return nil  // another process bootstrapped first
        }
        let (_, secret) = try await createAPIKey(environmentId: environment.id, plaintext: providedKey)
        return (environment, secret)
    }

    // MARK: API keys

    /// Creates an API key for an environment and returns its record and plaintext — the only time the plaintext
    /// exists; the database keeps its SHA-256.
    public func createAPIKey(environmentId: String, plaintext: String? = nil) async throws -> (APIKey, Secret) {
        let secret = plaintext ?? APIKeyFormat.generate()
        let key = APIKey(
            id: ids.next(), environmentId: environmentId, prefix: String(secret.prefix(APIKey.prefixLength)),
            createdAt: Date(millisecondsSince1970: nowMilliseconds)
        )
        do {
            try await db.raw(
                """
                INSERT INTO api_keys (id, environment_id, key_hash, prefix, created_at)
                VALUES (\(bind: key.id), \(bind: environmentId), \(bind: APIKeyFormat.hash(secret)), \(bind: key.prefix), \(bind: nowMilliseconds))
                """
            ).run()
        } catch  where isUniqueViolation(error) {
            throw HeraldError.conflict("this API key is already in use")
        }
        return (key, Secret(secret))
    }

    /// The keys of an environment, revoked ones included, oldest first.
    public func apiKeys(environmentId: String) async throws -> [APIKey] {
        try await db.raw(
            """
            SELECT id, environment_id, prefix, created_at, last_used_at, revoked_at FROM api_keys
            WHERE environment_id = \(bind: environmentId) ORDER BY id
            """
        ).all().map(Self.apiKey(from:))
    }

    /// Revokes the key of `environmentId` whose id or prefix is `reference`. Throws `notFound`, or `conflict` when a
    /// prefix matches several keys.
    public func revokeAPIKey(environmentId: String, reference: String) async throws -> APIKey {
        let matches = try await apiKeys(environmentId: environmentId).filter {
            ($0.id == reference || $0.prefix.hasPrefix(reference)) && $0.revokedAt == nil
        }
        guard !reference.isEmpty, let key = matches.first else {
            throw HeraldError.notFound("no active API key matches '\(reference)' in this environment")
        }
        guard matches.count == 1 else {
            throw HeraldError.conflict("'\(reference)' matches \(matches.count) keys; give a longer prefix or the key id")
        }
        try await db.raw("UPDATE api_keys SET revoked_at = \(bind: nowMilliseconds) WHERE id = \(bind: key.id)").run()
        var revoked = key
        revoked.revokedAt = Date(millisecondsSince1970: nowMilliseconds)
        return revoked
    }

    /// The environment of an active API key, or nil for an unknown or revoked key.
    public func authenticate(apiKey: String) async throws -> Environment? {
        guard !apiKey.isEmpty, apiKey.utf8.count <= APIKeyFormat.maxLength else { return nil }
        let row = try await db.raw(
            """
            SELECT e.id, e.name, e.created_at FROM api_keys k JOIN environments e ON e.id = k.environment_id
            WHERE k.key_hash = \(bind: APIKeyFormat.hash(apiKey)) AND k.revoked_at IS NULL
            """
        ).first()
        return try row.map(Self.environment(from:))
    }

    private static func apiKey(from row: any SQLRow) throws -> APIKey {
        APIKey(
            id: try row.decode(column: "id", as: String.self), environmentId: try row.decode(column: "environment_id", as: String.self),
            prefix: try row.decode(column: "prefix", as: String.self), createdAt: try row.date("created_at"),
            lastUsedAt: try row.optionalDate("last_used_at"), revokedAt: try row.optionalDate("revoked_at")
        )
    }
}

/// How API keys look and are stored.
public enum APIKeyFormat {
    /// Longest key accepted.
    public static let maxLength = 256

    /// A new key: `hk_` and 48 hex characters (192 random bits).
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<24).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return "hk_" + Hex.encode(bytes)
    }

    /// The stored form: SHA-256 in hex.
    public static func hash(_ key: String) -> String {
        Hex.encode(SHA256.hash(data: Data(key.utf8)))
    }

    /// Checks an operator-provided key (`HERALD_API_KEY`): 16–256 printable ASCII characters, no spaces.
    public static func validateProvided(_ key: String) throws {
        guard (16...maxLength).contains(key.utf8.count), key.utf8.allSatisfy({ (0x21...0x7e).contains($0) }) else {
            throw HeraldError(.configuration, "HERALD_API_KEY must be 16–256 printable ASCII characters without spaces")
        }
    }
}
