import Foundation
import HeraldCore
import Logging
import NIOCore
import NIOPosix
import SQLKit
import SQLiteKit
import SQLiteNIO
import Synchronization
// The SQLite library sqlite-nio vendors and links; SQLiteNIO itself is used for its value type (`SQLiteData`) and
// SQLiteKit for the dialect and the codable fallbacks.
import VaporCSQLite

/// One SQLite connection driven synchronously by the thread that calls it.
///
/// SQLiteNIO runs every statement on NIO's thread pool and completes a future on an event loop: two thread hops, a
/// fresh `sqlite3_prepare` and a generic `Decoder` per row for each of the forty-odd statements of a fan-out
/// transaction, all while the store's single write lock is held. The store's SQLite work already runs on a dedicated
/// thread (``SerialThreadExecutor``) under that lock, so this connection executes statements right there: prepared
/// statements are cached by their SQL text, values are read straight from the columns, and the common column types
/// decode without a `Decoder`.
final class SQLiteHandle: Sendable {
    private struct State: ~Copyable {
        var raw: OpaquePointer?
        var statements: [String: OpaquePointer] = [:]
    }

    /// Prepared statements kept (a full cache is emptied; the engine's statements are a few dozen shapes).
    static let statementCacheLimit = 256

    private let state: Mutex<State>

    /// Opens (creating if needed) the database at `path` (`:memory:` for a private in-memory database).
    init(path: String) throws {
        var raw: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let status = sqlite_nio_sqlite3_open_v2(path, &raw, flags, nil)
        guard status == SQLITE_OK, let raw else {
            let message = raw.flatMap { sqlite_nio_sqlite3_errmsg($0) }.map { String(cString: $0) } ?? "status \(status)"
            if let raw { sqlite_nio_sqlite3_close(raw) }
            throw SQLiteFailure(code: status, message: message)
        }
        sqlite_nio_sqlite3_extended_result_codes(raw, 1)
        // No busy handler: a busy database fails the statement at once and ``SQLiteHandleDatabase`` waits by
        // suspending. Sleeping here would block the store's SQLite thread — and with it the connection holding the
        // lock, when that connection is in the same process.
        sqlite_nio_sqlite3_busy_timeout(raw, 0)
        self.state = Mutex(State(raw: raw))
    }

    /// Runs one statement, calling `onRow` for each row it returns.
    func execute(_ sql: String, binds: [SQLiteData], onRow: (SQLiteRowValues) throws -> Void) throws {
        try state.withLock { state in
            guard let raw = state.raw else { throw SQLiteFailure(code: SQLITE_MISUSE, message: "the connection is closed") }
            let statement: OpaquePointer
            if let cached = state.statements[sql] {
                statement = cached
            } else {
                var prepared: OpaquePointer?
                let status = sqlite_nio_sqlite3_prepare_v3(raw, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &prepared, nil)
                guard status == SQLITE_OK, let prepared else { throw SQLiteFailure(raw, status) }
                if state.statements.count >= Self.statementCacheLimit {
                    for (_, old) in state.statements { sqlite_nio_sqlite3_finalize(old) }
                    state.statements.removeAll(keepingCapacity: true)
                }
                state.statements[sql] = prepared
                statement = prepared
            }
            defer { sqlite_nio_sqlite3_reset(statement) }
            for (offset, value) in binds.enumerated() {
                let index = Int32(offset + 1)
                let status: Int32 =
                    switch value {
                    case .integer(let integer): sqlite_nio_sqlite3_bind_int64(statement, index, Int64(integer))
                    case .float(let double): sqlite_nio_sqlite3_bind_double(statement, index, double)
                    case .null: sqlite_nio_sqlite3_bind_null(statement, index)
                    case .text(let text):
                        sqlite_nio_sqlite3_bind_text64(statement, index, text, UInt64(text.utf8.count), Self.transient, UInt8(SQLITE_UTF8))
                    case .blob(let buffer):
                        buffer.withUnsafeReadableBytes {
                            sqlite_nio_sqlite3_bind_blob64(statement, index, $0.baseAddress, UInt64($0.count), Self.transient)
                        }
                    }
                guard status == SQLITE_OK else { throw SQLiteFailure(raw, status) }
            }
            var columns: SQLiteColumnNames?
            while true {
                let status = sqlite_nio_sqlite3_step(statement)
                if status == SQLITE_DONE { break }
                guard status == SQLITE_ROW else { throw SQLiteFailure(raw, status) }
                let names = try columns ?? SQLiteColumnNames(statement)
                columns = names
                var values: [SQLiteData] = []
                values.reserveCapacity(names.names.count)
                for column in 0..<Int32(names.names.count) { values.append(Self.value(statement, column)) }
                try onRow(SQLiteRowValues(columns: names, values: values))
            }
        }
    }

    /// Copies what it can of the WAL into the database without waiting for the writer (`SQLITE_CHECKPOINT_PASSIVE`).
    /// Returns the WAL's frames and how many of them are now in the database.
    @discardableResult
    func checkpoint() throws -> (frames: Int, checkpointed: Int) {
        try state.withLock { state in
            guard let raw = state.raw else { throw SQLiteFailure(code: SQLITE_MISUSE, message: "the connection is closed") }
            var frames: Int32 = 0
            var done: Int32 = 0
            let status = sqlite_nio_sqlite3_wal_checkpoint_v2(raw, nil, SQLITE_CHECKPOINT_PASSIVE, &frames, &done)
            guard status == SQLITE_OK || status == SQLITE_BUSY else { throw SQLiteFailure(raw, status) }
            return (Int(frames), Int(done))
        }
    }

    /// Closes the connection (finalising the cached statements).
    func close() {
        state.withLock { state in
            for (_, statement) in state.statements { sqlite_nio_sqlite3_finalize(statement) }
            state.statements.removeAll()
            if let raw = state.raw { sqlite_nio_sqlite3_close(raw) }
            state.raw = nil
        }
    }

    deinit { close() }

    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    private static func value(_ statement: OpaquePointer, _ column: Int32) -> SQLiteData {
        switch sqlite_nio_sqlite3_column_type(statement, column) {
        case SQLITE_INTEGER: return .integer(SQLiteInt64(sqlite_nio_sqlite3_column_int64(statement, column)))
        case SQLITE_FLOAT: return .float(sqlite_nio_sqlite3_column_double(statement, column))
        case SQLITE_TEXT:
            guard let text = sqlite_nio_sqlite3_column_text(statement, column) else { return .text("") }
            let count = Int(sqlite_nio_sqlite3_column_bytes(statement, column))
            return .text(String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self))
        case SQLITE_BLOB:
            let count = Int(sqlite_nio_sqlite3_column_bytes(statement, column))
            var buffer = ByteBufferAllocator().buffer(capacity: count)
            if let bytes = sqlite_nio_sqlite3_column_blob(statement, column) {
                buffer.writeBytes(UnsafeRawBufferPointer(start: bytes, count: count))
            }
            return .blob(buffer)
        default: return .null
        }
    }
}

/// Checkpoints a WAL-mode database from its own connection and thread, so that copying the WAL into the database
/// file (and its fsyncs) happens beside the writer instead of inside whichever commit crosses the auto-checkpoint
/// threshold — that commit used to hold the store's lock for the whole copy. The writer keeps a far higher
/// auto-checkpoint threshold as a safety net should this thread fall behind.
final class SQLiteCheckpointer: Sendable {
    /// Pages of WAL after which the writer checkpoints by itself (64 MiB of 4 KiB pages).
    static let writerThreshold = 16_384

    private let handle: SQLiteHandle
    private let stopping = Atomic<Bool>(false)

    init(path: String, synchronous: DatabaseURL.SQLiteSynchronous) throws {
        handle = try SQLiteHandle(path: path)
        // Reading the journal mode opens the WAL on this connection (a checkpoint alone would not, and do nothing).
        try handle.execute("PRAGMA journal_mode = WAL", binds: [], onRow: { _ in })
        // A checkpoint syncs the WAL before copying and the database after unless synchronous is OFF.
        try handle.execute("PRAGMA synchronous = \(synchronous.rawValue.uppercased())", binds: [], onRow: { _ in })
    }

    /// Starts checkpointing every `interval` on a dedicated thread until ``stop()``.
    func start(interval: TimeInterval, logger: Logger) {
        let thread = Thread { [self] in
            var failures = 0
            while !stopping.load(ordering: .relaxed) {
                Thread.sleep(forTimeInterval: interval)
                do {
                    try handle.checkpoint()
                    failures = 0
                } catch {
                    failures += 1
                    if failures == 1 || failures % 100 == 0 {
                        logger.warning("SQLite checkpoint failed", metadata: ["error": "\(error)", "failures": "\(failures)"])
                    }
                }
            }
            handle.close()
        }
        thread.name = "herald-sqlite-checkpoint"
        thread.start()
    }

    func stop() { stopping.store(true, ordering: .relaxed) }
}

/// An SQLite error with its extended result code.
struct SQLiteFailure: Error, CustomStringConvertible {
    let code: Int32
    let message: String

    init(code: Int32, message: String) {
        self.code = code
        self.message = message
    }

    fileprivate init(_ raw: OpaquePointer, _ status: Int32) {
        self.code = sqlite_nio_sqlite3_extended_errcode(raw)
        self.message = sqlite_nio_sqlite3_errmsg(raw).map { String(cString: $0) } ?? "SQLite status \(status)"
    }

    /// `SQLITE_BUSY` or one of its extended codes: another connection holds the lock.
    var isBusy: Bool { code & 0xFF == SQLITE_BUSY }

    /// `SQLITE_CONSTRAINT_UNIQUE` or `SQLITE_CONSTRAINT_PRIMARYKEY`.
    var isUniqueViolation: Bool { code == 2067 || code == 1555 }

    var description: String { "SQLite error \(code): \(message)" }
}

/// The column names of a statement's result, shared by its rows.
final class SQLiteColumnNames: Sendable {
    let names: [String]
    let index: [String: Int]

    fileprivate init(_ statement: OpaquePointer) throws {
        let count = Int(sqlite_nio_sqlite3_column_count(statement))
        var names: [String] = []
        for column in 0..<Int32(count) {
            guard let name = sqlite_nio_sqlite3_column_name(statement, column) else {
                throw SQLiteFailure(code: SQLITE_NOMEM, message: "no name for result column \(column)")
            }
            names.append(String(cString: name))
        }
        self.names = names
        // The first column of a name wins, as in SQLiteNIO.
        self.index = Dictionary(names.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
    }
}

/// One result row. The column types the store reads (text, integers, doubles, booleans) are returned without a
/// `Decoder`; anything else goes through SQLiteKit's.
struct SQLiteRowValues: SQLRow {
    let columns: SQLiteColumnNames
    let values: [SQLiteData]

    var allColumns: [String] { columns.names }

    func contains(column: String) -> Bool { columns.index[column] != nil }

    func decodeNil(column: String) throws -> Bool {
        guard let index = columns.index[column] else { return true }
        return values[index] == .null
    }

    func decode<D: Decodable>(column: String, as type: D.Type) throws -> D {
        guard let index = columns.index[column] else {
            throw DecodingError.keyNotFound(
                SQLColumnKey(column), .init(codingPath: [], debugDescription: "no column \(column) in the result"))
        }
        let value = values[index]
        switch value {
        case .text(let text):
            if D.self == String.self { return text as! D }
        case .integer(let integer):
            if D.self == Int64.self { return Int64(integer) as! D }
            if D.self == Int.self { return Int(integer) as! D }
            if D.self == Bool.self { return (integer != 0) as! D }
            if D.self == Double.self { return Double(integer) as! D }
        case .float(let double):
            if D.self == Double.self { return double as! D }
        case .blob, .null:
            break
        }
        return try SQLiteDataDecoder().decode(D.self, from: value)
    }
}

private struct SQLColumnKey: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }
    init(_ name: String) { stringValue = name }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// SQLKit's view of an ``SQLiteHandle``: statements serialised by SQLKit with SQLiteKit's dialect, run on the
/// calling thread.
struct SQLiteHandleDatabase: SQLDatabase {
    let handle: SQLiteHandle
    let logger: Logger
    let eventLoop: any EventLoop
    var dialect: any SQLDialect { SQLiteDialect() }
    var queryLogLevel: Logger.Level? { .trace }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> Void) -> EventLoopFuture<Void> {
        do {
            try run(query, onRow)
            return eventLoop.makeSucceededVoidFuture()
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
    }

    /// Another connection holding the database (another process, or a second store in this one) is waited for by
    /// suspending and retrying, for up to ``busyTimeout``.
    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> Void) async throws {
        var delay = Duration.milliseconds(1)
        let deadline = ContinuousClock.now + Self.busyTimeout
        while true {
            do {
                return try run(query, onRow)
            } catch let error as SQLiteFailure where error.isBusy && ContinuousClock.now < deadline {
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .milliseconds(50))
            }
        }
    }

    static let busyTimeout: Duration = .seconds(10)

    private func run(_ query: any SQLExpression, _ onRow: (any SQLRow) -> Void) throws {
        if let insert = query as? RowInsert {
            let (sql, binds) = insert.sqlite
            logger.trace("executing query", metadata: ["sql": "\(sql)"])
            return try handle.execute(sql, binds: binds, onRow: { onRow($0) })
        }
        let (sql, binds) = serialize(query)
        logger.trace("executing query", metadata: ["sql": "\(sql)"])
        try handle.execute(sql, binds: try binds.map(Self.value(of:)), onRow: { onRow($0) })
    }

    /// A bound value as SQLite data: the types the store binds directly, anything else through SQLiteKit's encoder.
    static func value(of bind: any Encodable) throws -> SQLiteData {
        switch bind {
        case let text as String: return .text(text)
        case let integer as Int64: return .integer(SQLiteInt64(integer))
        case let integer as Int: return .integer(SQLiteInt64(integer))
        case let double as Double: return .float(double)
        case let flag as Bool: return .integer(flag ? 1 : 0)
        case let data as SQLiteData: return data
        case let optional as any OptionalBind:
            guard let wrapped = optional.wrappedBind else { return .null }
            return try value(of: wrapped)
        default: return try SQLiteDataEncoder().encode(bind)
        }
    }
}

/// Lets ``SQLiteHandleDatabase/value(of:)`` see through optionals (`nil` binds as NULL).
private protocol OptionalBind {
    var wrappedBind: (any Encodable)? { get }
}

extension Optional: OptionalBind where Wrapped: Encodable {
    fileprivate var wrappedBind: (any Encodable)? { self }
}
