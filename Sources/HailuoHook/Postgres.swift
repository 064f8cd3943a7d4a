import CLibPQ
import Foundation
import Synchronization

/// A failure talking to PostgreSQL, sorted by what the caller can do about it.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        /// The server cannot be reached or the connection broke: retry on a new one.
        case connection
        /// A conflict the server asks to retry (serialization failure, deadlock).
        case retryable
        /// The statement itself failed: retrying changes nothing.
        case query
    }

    public let kind: Kind
    /// SQLSTATE, when the server sent one.
    public let state: String?
    public let message: String

    init(_ kind: Kind, _ message: String, state: String? = nil) {
        self.kind = kind
        self.message = message.trimmingCharacters(in: .whitespacesAndNewlines)
        self.state = state
    }

    public var description: String {
        state.map { "\(message) (SQLSTATE \($0))" } ?? message
    }
}

/// Rows of text values (libpq's text format); nil is SQL NULL.
public struct PostgresRows: Sendable {
    public var rows: [[String?]] = []
    /// Rows a command changed (INSERT, UPDATE, DELETE), from the command tag.
    public var affected = 0

    public subscript(row: Int, column: Int) -> String? { rows[row][column] }
    public var isEmpty: Bool { rows.isEmpty }
}

/// One blocking libpq connection, used by one thread at a time (`PostgresPool` lends it).
public final class PostgresConnection: @unchecked Sendable {
    private var connection: OpaquePointer?
    public let url: String

    public init(url: String) throws(PostgresError) {
        self.url = url
        try connect()
    }

    deinit {
        if let connection { PQfinish(connection) }
    }

    private func connect() throws(PostgresError) {
        if let connection { PQfinish(connection) }
        connection = nil
        guard let c = PQconnectdb(url) else { throw PostgresError(.connection, "out of memory") }
        guard PQstatus(c) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(c))
            PQfinish(c)
            throw PostgresError(.connection, message)
        }
        connection = c
    }

    /// Whether the connection is gone (the server restarted, the network broke).
    public var isBroken: Bool {
        guard let connection else { return true }
        return PQstatus(connection) != CONNECTION_OK
    }

    /// Runs one statement with text parameters `$1, $2, …` (nil is NULL).
    @discardableResult
    public func query(_ sql: String, _ parameters: [String?] = []) throws(PostgresError) -> PostgresRows {
        guard let connection, !isBroken else { throw PostgresError(.connection, "the connection to PostgreSQL is closed") }
        let copies = parameters.map { $0.map { strdup($0) } ?? nil }
        defer { for copy in copies { free(copy) } }
        let result: OpaquePointer? = copies.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: UnsafePointer<CChar>?.self) { values in
                PQexecParams(connection, sql, Int32(parameters.count), nil, values.baseAddress, nil, nil, 0)
            }
        }
        return try rows(result)
    }

    /// Runs a script of several statements without parameters (migrations).
    public func execute(_ script: String) throws(PostgresError) {
        guard let connection, !isBroken else { throw PostgresError(.connection, "the connection to PostgreSQL is closed") }
        _ = try rows(PQexec(connection, script))
    }

    /// The payloads of the notifications (LISTEN) that arrived, waiting up to `seconds` for one.
    public func notifications(waiting seconds: Double) throws(PostgresError) -> [String] {
        guard let connection, !isBroken else { throw PostgresError(.connection, "the connection to PostgreSQL is closed") }
        var out: [String] = []
        func drain() {
            while let note = PQnotifies(connection) {
                out.append(String(cString: note.pointee.extra))
                PQfreemem(note)
            }
        }
        drain()
        guard out.isEmpty else { return out }
        var socket = pollfd(fd: PQsocket(connection), events: Int16(POLLIN), revents: 0)
        if poll(&socket, 1, Int32(seconds * 1000)) > 0 {
            guard PQconsumeInput(connection) == 1 else {
                throw PostgresError(.connection, String(cString: PQerrorMessage(connection)))
            }
            drain()
        }
        if isBroken { throw PostgresError(.connection, "the connection to PostgreSQL broke") }
        return out
    }

    private func rows(_ result: OpaquePointer?) throws(PostgresError) -> PostgresRows {
        guard let result else {
            throw PostgresError(isBroken ? .connection : .query, connection.map { String(cString: PQerrorMessage($0)) } ?? "no result")
        }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK else {
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            let message = String(cString: PQresultErrorMessage(result))
            let kind: PostgresError.Kind
            if isBroken || state?.hasPrefix("08") == true || state == "57P01" || state == "57P02" || state == "57P03" {
                kind = .connection  // connection exceptions, admin/crash shutdown, cannot connect now
            } else if state == "40001" || state == "40P01" {
                kind = .retryable
            } else {
                kind = .query
            }
            throw PostgresError(kind, message, state: state)
        }
        var out = PostgresRows()
        let rowCount = Int(PQntuples(result)), columnCount = Int(PQnfields(result))
        out.rows.reserveCapacity(rowCount)
        for r in 0..<rowCount {
            var row: [String?] = []
            row.reserveCapacity(columnCount)
            for c in 0..<columnCount {
                row.append(PQgetisnull(result, Int32(r), Int32(c)) != 0 ? nil : String(cString: PQgetvalue(result, Int32(r), Int32(c))))
            }
            out.rows.append(row)
        }
        out.affected = Int(String(cString: PQcmdTuples(result))) ?? 0
        return out
    }
}

/// A small bounded pool of blocking connections, used off the I/O threads. A connection
/// that broke is dropped, and a call that met a broken connection is retried on a new one
/// with back-off, up to `retryFor` seconds; then the error reaches the caller (a 503).
public final class PostgresPool: Sendable {
    public let url: String
    public let size: Int
    public let retryFor: TimeInterval
    private let idle = Mutex<[PostgresConnection]>([])
    private let slots: DispatchSemaphore

    public init(url: String, size: Int = 4, retryFor: TimeInterval = 2) {
        self.url = url
        self.size = size
        self.retryFor = retryFor
        slots = DispatchSemaphore(value: size)
    }

    /// `body` with a connection of the pool's; retried whole after a connection error or a
    /// retryable conflict, so it must be safe to run again (one transaction, not half of one).
    public func withConnection<T>(_ body: (PostgresConnection) throws(PostgresError) -> T) throws(PostgresError) -> T {
        slots.wait()
        defer { slots.signal() }
        let deadline = Date().addingTimeInterval(retryFor)
        var delay = 0.05
        while true {
            do throws(PostgresError) {
                let connection: PostgresConnection
                if let pooled = idle.withLock({ $0.popLast() }) { connection = pooled } else { connection = try PostgresConnection(url: url) }
                do throws(PostgresError) {
                    let value = try body(connection)
                    if !connection.isBroken { idle.withLock { $0.append(connection) } }
                    return value
                } catch {
                    if !connection.isBroken, error.kind != .connection { idle.withLock { $0.append(connection) } }
                    throw error
                }
            } catch {
                guard error.kind != .query, Date().addingTimeInterval(delay) < deadline else { throw error }
                Thread.sleep(forTimeInterval: delay)
                delay = min(delay * 2, 0.5)
            }
        }
    }

    /// `body` inside one transaction (BEGIN … COMMIT), rolled back when it throws.
    public func transaction<T>(_ body: (PostgresConnection) throws(PostgresError) -> T) throws(PostgresError) -> T {
        try withConnection { connection throws(PostgresError) in
            try connection.query("BEGIN")
            do throws(PostgresError) {
                let value = try body(connection)
                try connection.query("COMMIT")
                return value
            } catch {
                if !connection.isBroken { _ = try? connection.query("ROLLBACK") }
                throw error
            }
        }
    }
}

/// The registry's tables, created and migrated at start: versioned steps, each applied
/// once in its own transaction, under an advisory lock so two replicas starting at once
/// take turns (the second finds the work done).
public enum PostgresSchema {
    /// `pg_advisory_lock` key of the migrations.
    static let migrationLock = 0x4841_494C_554F  // "HAILUO"

    static let steps: [(version: Int, sql: String)] = [
        (1, """
            CREATE TABLE hailuo_tasks (
                task_id    text PRIMARY KEY,
                seq        bigserial UNIQUE NOT NULL,
                status     text NOT NULL,
                token      text UNIQUE,
                file_id    text,
                created_at double precision NOT NULL,
                updated_at double precision NOT NULL,
                last_heard double precision NOT NULL,
                version    bigint NOT NULL DEFAULT 0,
                task       text NOT NULL
            );
            CREATE INDEX hailuo_tasks_status_seq ON hailuo_tasks (status, seq);
            CREATE INDEX hailuo_tasks_file_id ON hailuo_tasks (file_id) WHERE file_id IS NOT NULL;
            CREATE INDEX hailuo_tasks_created ON hailuo_tasks (created_at);
            CREATE TABLE hailuo_reserved_tokens (
                token       text PRIMARY KEY,
                reserved_at double precision NOT NULL
            );
            CREATE TABLE hailuo_early_callbacks (
                seq    bigserial PRIMARY KEY,
                token  text NOT NULL REFERENCES hailuo_reserved_tokens (token) ON DELETE CASCADE,
                record text NOT NULL
            );
            CREATE INDEX hailuo_early_callbacks_token ON hailuo_early_callbacks (token);
            CREATE TABLE hailuo_idempotency (
                key        text PRIMARY KEY,
                entry      text NOT NULL,
                created_at double precision NOT NULL
            );
            """),
    ]

    /// The newest version these steps reach.
    public static var latest: Int { steps.map(\.version).max() ?? 0 }

    /// Brings the database to `latest`; returns the versions it applied (none when current).
    @discardableResult
    public static func migrate(_ connection: PostgresConnection) throws(PostgresError) -> [Int] {
        try connection.query("SELECT pg_advisory_lock($1)", [String(migrationLock)])
        defer { _ = try? connection.query("SELECT pg_advisory_unlock($1)", [String(migrationLock)]) }
        try connection.execute("""
            CREATE TABLE IF NOT EXISTS hailuo_schema (
                version    integer PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """)
        let current = Int(try connection.query("SELECT coalesce(max(version), 0) FROM hailuo_schema")[0, 0] ?? "0") ?? 0
        var applied: [Int] = []
        for step in steps where step.version > current {
            try connection.query("BEGIN")
            do throws(PostgresError) {
                try connection.execute(step.sql)
                try connection.query("INSERT INTO hailuo_schema (version) VALUES ($1)", [String(step.version)])
                try connection.query("COMMIT")
            } catch {
                if !connection.isBroken { _ = try? connection.query("ROLLBACK") }
                throw error
            }
            applied.append(step.version)
        }
        return applied
    }
}
