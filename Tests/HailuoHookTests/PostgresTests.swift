import Foundation
import Glibc
import HailuoHook
import ProcessSupport
import Synchronization
import Testing

struct TestSetupError: Error, CustomStringConvertible {
    let description: String
}

/// The clusters this process started, stopped at exit if a test did not.
final class ClusterFolders: Sendable {
    static let shared = ClusterFolders()
    let folders = Mutex<[String]>([])

    private init() {
        atexit {
            for folder in ClusterFolders.shared.folders.withLock({ $0 }) {
                _ = system("/bin/bash '\(TestDatabase.script)' stop '\(folder)' >/dev/null 2>&1")
            }
        }
    }
}

/// The throw-away PostgreSQL cluster of this test process (Tests/postgres/cluster.sh),
/// started on first use and stopped when the process exits.
enum TestDatabase {
    struct Cluster: Sendable {
        let url: String
        let folder: String
    }

    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("postgres/cluster.sh").path

    /// A cluster of its own (stopped by `stop`, or at exit).
    static func start() async throws -> Cluster {
        let run = try await runTool("/bin/bash", [script, "start"])
        let lines = run.output.split(separator: "\n").map(String.init)
        guard run.status == 0, lines.count == 2 else {
            throw TestSetupError(description: "cluster.sh start failed (\(run.status)): \(run.errors)")
        }
        ClusterFolders.shared.folders.withLock { $0.append(lines[1]) }
        return Cluster(url: lines[0], folder: lines[1])
    }

    static func stop(_ cluster: Cluster) async {
        _ = try? await runTool("/bin/bash", [script, "stop", cluster.folder])
        ClusterFolders.shared.folders.withLock { $0.removeAll { $0 == cluster.folder } }
    }

    /// `cluster.sh down|up|restart FOLDER`.
    static func control(_ command: String, _ cluster: Cluster) async throws {
        let run = try await runTool("/bin/bash", [script, command, cluster.folder])
        guard run.status == 0 else { throw TestSetupError(description: "cluster.sh \(command): \(run.errors)") }
    }

    static let shared = Task { try await start() }

    /// A database of its own in the shared cluster, for one test.
    static func fresh() async throws -> String {
        let cluster = try await shared.value
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        _ = try await blocking { try PostgresConnection(url: cluster.url).query("CREATE DATABASE \(name)") }
        return String(cluster.url.dropLast("postgres".count)) + name
    }
}

/// Runs blocking work (libpq) off Swift's cooperative threads.
func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
    }
}

@Suite(.serialized) struct PostgresTests {
    @Test func migrationsApplyOnceAndTwoStartersTakeTurns() async throws {
        let url = try await TestDatabase.fresh()
        async let first = blocking { try PostgresSchema.migrate(PostgresConnection(url: url)) }
        async let second = blocking { try PostgresSchema.migrate(PostgresConnection(url: url)) }
        let applied = try await [first, second].sorted { $0.count < $1.count }
        #expect(applied == [[], Array(1...PostgresSchema.latest)], "one starter migrates, the other finds it done")
        let versions = try await blocking { try PostgresConnection(url: url).query("SELECT version FROM hailuo_schema ORDER BY version").rows }
        #expect(versions == (1...PostgresSchema.latest).map { [String($0)] })
        #expect(try await blocking { try PostgresSchema.migrate(PostgresConnection(url: url)) } == [])
    }

    @Test func parametersNullsAndErrorsComeBackAsSent() async throws {
        let url = try await TestDatabase.fresh()
        try await blocking {
            let c = try PostgresConnection(url: url)
            try PostgresSchema.migrate(c)
            let text = "书 \"quoted\" \\ 'single' \n; DROP TABLE hailuo_tasks; --"
            let inserted = try c.query("INSERT INTO hailuo_idempotency (key, entry, created_at) VALUES ($1, $2, $3)", ["k1", text, "1.5"])
            #expect(inserted.affected == 1)
            let back = try c.query("SELECT entry, created_at, NULL::text FROM hailuo_idempotency WHERE key = $1", ["k1"])
            #expect(back.rows == [[text, "1.5", nil]])
            do {
                try c.query("INSERT INTO hailuo_idempotency (key, entry, created_at) VALUES ($1, $2, $3)", ["k1", "again", "2"])
                Issue.record("a duplicate key was accepted")
            } catch let error as PostgresError {
                #expect(error.kind == .query)
                #expect(error.state == "23505")
            }
            do {
                try c.query("INSERT INTO hailuo_idempotency (key, entry, created_at) VALUES ($1, $2, $3)", ["k2", nil, "2"])
                Issue.record("NULL was accepted in a NOT NULL column")
            } catch let error as PostgresError {
                #expect(error.state == "23502")
            }
            // The connection is still good after errors.
            #expect(try c.query("SELECT count(*) FROM hailuo_idempotency")[0, 0] == "1")
        }
    }

    @Test func aTransactionThatThrowsLeavesNothing() async throws {
        let url = try await TestDatabase.fresh()
        let pool = PostgresPool(url: url, size: 2)
        try await blocking {
            _ = try pool.withConnection { c throws(PostgresError) in try PostgresSchema.migrate(c) }
            do {
                try pool.transaction { c throws(PostgresError) in
                    try c.query("INSERT INTO hailuo_idempotency (key, entry, created_at) VALUES ('a', 'x', 1)")
                    try c.query("INSERT INTO hailuo_idempotency (key, entry, created_at) VALUES ('a', 'y', 1)")
                }
                Issue.record("the second insert should have failed")
            } catch let error as PostgresError {
                #expect(error.state == "23505")
            }
            let count = try pool.withConnection { c throws(PostgresError) in try c.query("SELECT count(*) FROM hailuo_idempotency")[0, 0] }
            #expect(count == "0")
        }
    }

    /// The server stopped under the pool: calls fail as connection errors once the retry
    /// window is over, and succeed again by themselves once it is back.
    @Test func thePoolOutlivesARestartedServer() async throws {
        let cluster = try await TestDatabase.start()
        defer { Task { await TestDatabase.stop(cluster) } }
        let patient = PostgresPool(url: cluster.url, size: 2, retryFor: 15)
        let impatient = PostgresPool(url: cluster.url, size: 2, retryFor: 0.3)
        for pool in [patient, impatient] {
            #expect(try await blocking { try pool.withConnection { c throws(PostgresError) in try c.query("SELECT 1")[0, 0] } } == "1")
        }
        try await TestDatabase.control("down", cluster)
        do {
            _ = try await blocking { try impatient.withConnection { c throws(PostgresError) in try c.query("SELECT 1") } }
            Issue.record("a query succeeded with the server down")
        } catch let error as PostgresError {
            #expect(error.kind == .connection, "\(error)")
        }
        // Back up after a second, while a patient call is retrying.
        async let answer = blocking { try patient.withConnection { c throws(PostgresError) in try c.query("SELECT 2")[0, 0] } }
        try await Task.sleep(nanoseconds: 1_000_000_000)
        try await TestDatabase.control("up", cluster)
        #expect(try await answer == "2")
        #expect(try await blocking { try impatient.withConnection { c throws(PostgresError) in try c.query("SELECT 3")[0, 0] } } == "3")
    }
}
