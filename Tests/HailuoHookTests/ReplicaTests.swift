import Foundation
import Glibc
import HailuoHook
import HTTPServer
import Synchronization
import Testing

/// Several replicas on one PostgreSQL database (`registry.database_url`): any of them takes
/// any callback and answers any query; nothing acknowledged is lost when one dies or when the
/// database restarts.
@Suite struct ReplicaTests {
    /// Two `serve`s on one fresh database, B started first so A can name B as its public URL.
    func withReplicas(_ url: String? = nil, _ body: (HookServer, TestClient, HookServer, TestClient) async throws -> Void) async throws {
        let database: String
        if let url { database = url } else { database = try await TestDatabase.fresh() }
        try await withHook({ $0.databaseURL = database }) { b, clientB in
            // A's callback URLs name B: the upstream calls B back for tasks submitted on A.
            try await withHook({ $0.databaseURL = database; $0.publicURL = "http://127.0.0.1:\(b.port)" }) { a, clientA in
                try await body(a, clientA, b, clientB)
            }
        }
    }

    @Test func submittedOnACalledBackOnBQueriedOnA() async throws {
        try await withReplicas { a, clientA, b, clientB in
            let submitted = try await clientA.post("/v1/video_generation", seedBody)
            #expect(submitted.status == 200, "\(submitted.text)")
            let id = try #require(submitted.json["task_id"] as? String)
            // The simulator's callbacks reach B (A's public URL names it); A answers from the shared table.
            let done = try await clientA.get("/v1/tasks/\(id)?wait=20")
            #expect(done.json["status"] as? String == "success", "\(done.text)")
            let events = try #require(done.json["events"] as? [[String: Any]])
            #expect(events.compactMap { $0["status"] as? String }.contains("processing"))
            #expect(try await clientB.get("/v1/tasks/\(id)").json["status"] as? String == "success")
            #expect(try a.registry.task(id)?.status == .success)
            _ = b
        }
    }

    @Test func waitOnAIsWokenByACallbackOnB() async throws {
        try await withReplicas { a, clientA, _, clientB in
            let token = CallbackToken.generate()
            try a.registry.insert(VideoTask(taskID: "W1", source: .submitted, createdAt: Date()), token: token)
            let started = Date()
            async let waited = clientA.get("/v1/tasks/W1?wait=30")
            try await Task.sleep(nanoseconds: 500_000_000)
            let callback = try await clientB.post("/v1/callbacks/\(token.value)", #"{"task_id":"W1","status":"success","file_id":"F1"}"#)
            #expect(callback.status == 200)
            let answer = try await waited
            #expect(answer.json["status"] as? String == "success")
            #expect(Date().timeIntervalSince(started) < 10, "woken by the notification, not by the 30 s deadline")
        }
    }

    @Test func theEventStreamOnAShowsChangesMadeOnB() async throws {
        try await withReplicas { a, _, _, clientB in
            let token = CallbackToken.generate()
            try a.registry.insert(VideoTask(taskID: "E1", source: .submitted, createdAt: Date()), token: token)
            let reader = try SSEReader(port: a.port)
            #expect(await eventually { a.events.subscriberCount == 1 })
            async let ids = reader.idsAsync(2)
            #expect(try await clientB.post("/v1/callbacks/\(token.value)", #"{"task_id":"E1","status":"processing"}"#).status == 200)
            #expect(try await clientB.post("/v1/callbacks/\(token.value)", #"{"task_id":"E1","status":"success","file_id":"F"}"#).status == 200)
            #expect(await ids.count == 2, "A's stream got both changes B made")
        }
    }

    /// Retention and max_tasks, enforced in SQL: ended tasks past the retention go, then the
    /// oldest ended ones past max_tasks; unfinished ones stay while ended ones remain.
    @Test func retentionAndMaxTasksAreEnforcedInSQL() async throws {
        let url = try await TestDatabase.fresh()
        let store = try await blocking { try PostgresTaskStore(url: url, maxTasks: 5, retention: 3600, logger: quietLogger()) }
        defer { store.close() }
        let old = Date().addingTimeInterval(-7200)
        try await blocking {
            for i in 0..<4 {  // ended two hours ago: past the retention
                try store.insert(VideoTask(taskID: "old\(i)", source: .submitted, createdAt: old), token: nil, at: old)
                _ = try store.apply(StatusUpdate(taskID: "old\(i)", status: .success), via: .poll, createIfMissing: false, at: old)
            }
            for i in 0..<4 { try store.insert(VideoTask(taskID: "ended\(i)", source: .submitted, createdAt: Date()), token: nil, at: Date())
                _ = try store.apply(StatusUpdate(taskID: "ended\(i)", status: .failed), via: .poll, createIfMissing: false, at: Date()) }
            for i in 0..<3 { try store.insert(VideoTask(taskID: "open\(i)", source: .submitted, createdAt: Date()), token: nil, at: Date()) }
            #expect(try store.count == 11)
            try store.expire(now: Date())
        }
        let left = try await blocking { try store.list(status: nil, limit: 50, cursor: nil).tasks.map(\.taskID) }
        // 7 after the retention; max_tasks 5 drops down to 1% under it, oldest ended first.
        #expect(left.allSatisfy { !$0.hasPrefix("old") }, "\(left)")
        #expect(Set(left).isSuperset(of: ["open0", "open1", "open2"]), "\(left)")
        #expect(left.count <= 5, "\(left)")
    }

    /// An Idempotency-Key is shared: the repeat reaching B is answered what A answered.
    @Test func anIdempotencyKeyIsHonouredByTheOtherReplica() async throws {
        try await withReplicas { _, clientA, _, clientB in
            let key = ["Idempotency-Key": "order-\(UUID().uuidString)"]
            let first = try await clientA.call("POST", "/v1/video_generation", json: seedBody, headers: key)
            #expect(first.status == 200, "\(first.text)")
            let repeated = try await clientB.call("POST", "/v1/video_generation", json: seedBody, headers: key)
            #expect(repeated.status == 200)
            #expect(repeated.headers["idempotent-replayed"] == "true")
            #expect(repeated.json["task_id"] as? String == first.json["task_id"] as? String)
            let other = try await clientB.call("POST", "/v1/video_generation", json: seedBody.replacingOccurrences(of: "reads", with: "writes"), headers: key)
            #expect(other.status == 422, "\(other.text)")
        }
    }

    @Test func theSameCallbackAtAAndBAtOnceIsRecordedOnce() async throws {
        try await withReplicas { a, clientA, _, clientB in
            var paths: [String: String] = [:]
            for i in 0..<20 {
                let token = CallbackToken.generate()
                try a.registry.insert(VideoTask(taskID: "D\(i)", source: .submitted, createdAt: Date()), token: token)
                paths["D\(i)"] = "/v1/callbacks/\(token.value)"
            }
            try await withThrowingTaskGroup(of: Int.self) { group in
                for (id, path) in paths {
                    let body = #"{"task_id":"\#(id)","status":"success","file_id":"F-\#(id)"}"#
                    group.addTask { try await clientA.post(path, body).status }
                    group.addTask { try await clientB.post(path, body).status }
                }
                for try await status in group { #expect(status == 200) }
            }
            for id in paths.keys {
                let task = try #require(try a.registry.task(id))
                #expect(task.status == .success)
                #expect(task.events.filter(\.applied).count == 1, "\(id): \(task.events)")
                #expect(task.events.count == 2, "one applied, one duplicate")
            }
        }
    }

    @Test func aReplicaKilledMidStreamLosesNothingAcknowledged() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: CommandLineTests.binary), "build first: swift build")
        let database = try await TestDatabase.fresh()
        let env = ["HAILUO_HOOK_CALLBACK_TOKEN": "shared-kill", "LOG_LEVEL": "warning", "HAILUO_HOOK_DATABASE_URL": database]
        var acknowledged: [String: String] = [:]
        for round in 0..<3 {
            let serve = try await CommandLineTests.Running(["serve", "--port", "0", "--host", "127.0.0.1", "--log-level", "info"], environment: env)
            let client = TestClient(base: "http://127.0.0.1:\(try await serve.port())")
            let pid = serve.process.processIdentifier
            let killer = Task.detached {
                try? await Task.sleep(nanoseconds: UInt64(Double.random(in: 0.2...0.5) * 1e9))
                kill(pid, SIGKILL)
            }
            var n = 0
            while true {
                let id = "R\(round)-\(n)"
                let status = n % 2 == 1 ? "success" : "processing"
                guard let r = try? await client.post("/v1/callbacks/shared-kill", #"{"task_id":"\#(id)","status":"\#(status)"}"#) else { break }
                if r.status == 200 { acknowledged[id] = status }
                n += 1
            }
            await killer.value
            _ = await serve.stop()
        }
        #expect(acknowledged.count > 3)
        print("replica kill -9: 3 kills, \(acknowledged.count) callbacks acknowledged")
        // Another replica (in this process) reads every acknowledged change from the database.
        try await withHook({ $0.databaseURL = database }) { hook, _ in
            var lost: [String] = []
            for (id, status) in acknowledged where hook.registry.peek(id)?.status.rawValue != status { lost.append(id) }
            #expect(lost.isEmpty, "\(lost.count) of \(acknowledged.count) acknowledged callbacks lost: \(lost.prefix(5))")
        }
    }

    /// The database stopped under a stream of callbacks: 503 (never 200) while it is down,
    /// 200 again once it is back, with no restart of the server.
    @Test func aDatabaseRestartGives503ThenRecovers() async throws {
        let cluster = try await TestDatabase.start()
        defer { Task { await TestDatabase.stop(cluster) } }
        try await withHook({ $0.databaseURL = cluster.url; $0.callbackSharedToken = "shared-db" }) { hook, client in
            func send(_ id: String) async throws -> Int {
                try await client.post("/v1/callbacks/shared-db", #"{"task_id":"\#(id)","status":"processing"}"#).status
            }
            #expect(try await send("B0") == 200)
            try await TestDatabase.control("down", cluster)
            var whileDown: [Int] = []
            for i in 1...3 { whileDown.append(try await send("B\(i)")) }
            #expect(whileDown.allSatisfy { $0 == 503 }, "\(whileDown)")
            try await TestDatabase.control("up", cluster)
            var recovered = false
            for i in 4..<60 {
                if try await send("B\(i)") == 200 { recovered = true; break }
                try await Task.sleep(nanoseconds: 250_000_000)
            }
            #expect(recovered, "the server did not recover by itself")
            // What was answered 503 was not recorded; what was answered 200 was.
            #expect(try hook.registry.task("B0")?.status == .processing)
            for i in 1...3 { #expect(try hook.registry.task("B\(i)") == nil) }
        }
    }
}
