import Crypto
import Foundation
import HeraldCore
import HeraldMigrations

/// One schema migration: a file `NNNN_name.sql` of `migrations/<dialect>/`.
public struct Migration: Sendable, Hashable {
    /// The number the file name starts with; migrations apply in ascending order.
    public var version: Int
    public var name: String
    public var sql: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }

    /// SHA-256 of the file, recorded when applied, so that an edited migration is noticed.
    public var checksum: String { Hex.encode(SHA256.hash(data: Data(sql.utf8))) }

    /// The individual statements of the file.
    public var statements: [String] { SQLStatementSplitter.split(sql) }

    /// The migrations shipped with this binary for `dialect`, in order.
    public static func bundled(for dialect: SQLDialectKind) throws -> [Migration] {
        guard let directory = HeraldMigrations.bundle.url(forResource: dialect.rawValue, withExtension: nil) else {
            throw HeraldError(.schema, "the migrations for \(dialect.rawValue) are missing from this build")
        }
        return try load(from: directory)
    }

    /// Reads `NNNN_name.sql` files from a directory; rejects gaps in numbering and duplicate numbers.
    public static func load(from directory: URL) throws -> [Migration] {
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".sql") }
        var migrations: [Migration] = []
        for file in files {
            let stem = file.dropLast(4)
            guard let underscore = stem.firstIndex(of: "_"), let version = Int(stem[..<underscore]) else {
                throw HeraldError(.schema, "migration file \(file) is not named NNNN_name.sql")
            }
            let sql = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            migrations.append(Migration(version: version, name: String(stem[stem.index(after: underscore)...]), sql: sql))
        }
        migrations.sort { $0.version < $1.version }
        for (index, migration) in migrations.enumerated() where migration.version != index + 1 {
            throw HeraldError(
                .schema, "migrations must be numbered 1, 2, 3, … without gaps; found \(migration.version) at position \(index + 1)")
        }
        return migrations
    }
}

/// Splits a migration file into statements at top-level semicolons, honouring `'…'` and `"…"` quoting and
/// `--` / `/* */` comments. (Migrations use no dollar-quoted bodies; a `$$` in a file is rejected by the database
/// rather than split wrongly, because the splitter treats it as ordinary text.)
enum SQLStatementSplitter {
    static func split(_ sql: String) -> [String] {
        var statements: [String] = []
        var current = ""
        var iterator = Array(sql.unicodeScalars)[...]
        var quote: Unicode.Scalar? = nil
        while let scalar = iterator.popFirst() {
            if let open = quote {
                current.unicodeScalars.append(scalar)
                if scalar == open { quote = nil }
                continue
            }
            switch scalar {
            case "'", "\"":
                quote = scalar
                current.unicodeScalars.append(scalar)
            case "-" where iterator.first == "-":
                while let next = iterator.first, next != "\n" { iterator.removeFirst() }
            case "/" where iterator.first == "*":
                iterator.removeFirst()
                while let next = iterator.popFirst() {
                    if next == "*", iterator.first == "/" {
                        iterator.removeFirst()
                        break
                    }
                }
            case ";":
                let statement = current.trimmingCharacters(in: .whitespacesAndNewlines)
                if !statement.isEmpty { statements.append(statement) }
                current = ""
            default:
                current.unicodeScalars.append(scalar)
            }
        }
        let tail = current.trimmingCharacters(in: .whitespacesAndNewlines)
        if !tail.isEmpty { statements.append(tail) }
        return statements
    }
}
