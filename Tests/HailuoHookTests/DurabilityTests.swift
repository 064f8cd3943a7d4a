import Foundation
import HailuoHook
import HTTPServer
import Synchronization
import Testing

/// Nothing lost: kill -9 and restart, a misbehaving upstream, drain, relay, idempotency.
@Suite(.serialized) struct DurabilityTests {
    typealias Running = CommandLineTests.Running

    @Test func killNineNeverLosesAnAcknowledgedCallback() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: CommandLineTests.binary), "build first: swift build")
        let journal = NSTemporaryDirectory() + "hailuo-kill-\(UUID().uuidString).log"
        let env = ["HAILUO_HOOK_CALLBACK_TOKEN": "shared-kill", "LOG_LEVEL": "warning"]
        var acknowledged: [String: String] = [:]  // task id -> last status answered 200
        let kills = 20
        let started = Date()
        for round in 0..<kills {
            let serve = try await Running(["serve", "--port", "0", "--host", "127.0.0.1", "--journal", journal, "--log-level", "info"], environment: env)
            let port: Int
            do { port = try await serve.port() } catch {
                Issue.record("round \(round): \(error); running \(serve.process.isRunning), status \(serve.process.isRunning ? -1 : serve.process.terminationStatus)")
                return
            }
            let client = TestClient(base: "http://127.0.0.1:\(port)")
            // Every task acknowledged in earlier rounds is back, as acknowledged.
            for (id, status) in acknowledged.shuffled().prefix(40) {
                let task = try await client.get("/v1/tasks/\(id)")
                #expect(task.status == 200, "round \(round): task \(id) lost")
                #expect(task.json["status"] as? String == status, "round \(round): task \(id)")
            }
            // A stream of callbacks, and a kill -9 in the middle of it.
            let killAt = Date().addingTimeInterval(Double.random(in: 0.05...0.25))
            let pid = serve.process.processIdentifier
            let killer = Task.detached {
                try? await Task.sleep(nanoseconds: UInt64(max(0, killAt.timeIntervalSinceNow) * 1e9))
                kill(pid, SIGKILL)
            }
            var n = 0
            while true {
                let id = "K\(round)-\(n)"
                let status = n % 3 == 2 ? "success" : "processing"
                guard let r = try? await client.post("/v1/callbacks/shared-kill", #"{"task_id":"\#(id)","status":"\#(status)","file_id":"F\#(n)"}"#) else { break }
                if r.status == 200 { acknowledged[id] = status == "success" ? "success" : "processing" }
                n += 1
            }
            await killer.value
            _ = await serve.stop()
        }
        // The last restart: every acknowledged callback, all of them.
        let serve = try await Running(["serve", "--port", "0", "--host", "127.0.0.1", "--journal", journal, "--log-level", "info"], environment: env)
        let client = TestClient(base: "http://127.0.0.1:\(try await serve.port())")
        var lost = 0
        for (id, status) in acknowledged {
            let task = try await client.get("/v1/tasks/\(id)")
            if task.status != 200 || task.json["status"] as? String != status { lost += 1 }
        }
        _ = await serve.stop()
        print("kill -9: \(kills) kills, \(acknowledged.count) callbacks acknowledged, \(lost) lost, \(Int(Date().timeIntervalSince(started))) s")
        #expect(acknowledged.count > kills)
        #expect(lost == 0)
    }

    @Test func tornAndCorruptJournalStartsAndSaysWhatItCut() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: CommandLineTests.binary), "build first: swift build")
        let path = NSTemporaryDirectory() + "hailuo-torn-\(UUID().uuidString).log"
        let t0 = Date()
        var bytes: [UInt8] = []
        for i in 0..<3 {
            bytes += Journal.line(.apply(update: StatusUpdate(taskID: "G\(i)", status: .processing), via: .callback, createIfMissing: true, at: t0))
            if i == 0 { bytes += Array("#garbage in the middle#\n".utf8) }
        }
        let torn = Journal.line(.apply(update: StatusUpdate(taskID: "G9", status: .processing), via: .callback, createIfMissing: true, at: t0))
        bytes += torn.prefix(30)
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        let serve = try await Running(["serve", "--port", "0", "--host", "127.0.0.1", "--journal", path])
        let client = TestClient(base: "http://127.0.0.1:\(try await serve.port())")
        for i in 0..<3 { #expect(try await client.get("/v1/tasks/G\(i)").status == 200) }
        #expect(try await client.get("/v1/tasks/G9").status == 404)
        #expect(try await client.get("/readyz").status == 200)
        _ = await serve.stop()
        #expect(serve.text.contains("cut 30 bytes of a torn or corrupt tail"))
        #expect(serve.text.contains("skipped corrupt records on lines 2"))
    }

    @Test func faultSoakEveryTaskEndsInItsTrueState() async throws {
        var faults = fastSimulator { $0.failRate = 0.1; $0.duplicateRate = 0.1; $0.reorderRate = 0.1; $0.dropRate = 0.1; $0.delayMs = 20 }
        faults.apiKey = "sk-soak"
        let upstream = try Simulator(options: faults, logger: quietLogger("simulator"))
        let started = Date()
        try await withHook({ $0.upstreamAPIKey = "sk-soak"; $0.upstreamBaseURL = upstream.baseURL; $0.reconcileAfter = 0.5 }) { hook, client in
            var ids: [String] = []
            for _ in 0..<10 {
                let batch = try await withThrowingTaskGroup(of: String?.self) { group in
                    for _ in 0..<20 { group.addTask { try await client.post("/v1/video_generation", seedBody).json["task_id"] as? String } }
                    return try await group.reduce(into: [String]()) { if let id = $1 { $0.append(id) } }
                }
                ids += batch
            }
            #expect(ids.count == 200)
            let truth = TestClient(base: upstream.baseURL, token: "sk-soak")
            // Every task ends, in the upstream's own state.
            let ended = await eventually(timeout: 30) { ids.allSatisfy { hook.registry.peek($0)?.status.isEnded == true } }
            #expect(ended, "stuck: \(ids.filter { hook.registry.peek($0)?.status.isEnded != true }.count)")
            var mismatches = 0, polled = 0, doubled = 0
            for id in ids {
                let upstreamStatus = try await truth.get("/v1/query/video_generation?task_id=\(id)").json["status"] as? String
                let task = try #require(hook.registry.peek(id))
                if task.status.queryVocabulary != upstreamStatus { mismatches += 1 }
                if task.events.contains(where: { $0.via == .poll }) { polled += 1 }
                // Nothing recorded twice: each status applied at most once.
                let applied = task.events.filter(\.applied).map(\.status)
                if Set(applied).count != applied.count { doubled += 1 }
            }
            print("fault soak: 200 tasks, \(mismatches) not in the upstream's state, \(polled) finished by polling, \(doubled) applied twice, \(hook.reconciler.pollCount) polls, \(Int(Date().timeIntervalSince(started))) s")
            #expect(mismatches == 0)
            #expect(doubled == 0)
        }
        await upstream.shutdown()
    }

    @Test func sigtermAnswersRequestsInFlightAndExitsZero() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: CommandLineTests.binary), "build first: swift build")
        let serve = try await Running(["serve", "--port", "0", "--host", "127.0.0.1"], environment: ["HAILUO_HOOK_CALLBACK_TOKEN": "shared-term"])
        let client = TestClient(base: "http://127.0.0.1:\(try await serve.port())")
        #expect(try await client.post("/v1/callbacks/shared-term", #"{"task_id":"T-term","status":"processing"}"#).status == 200)
        #expect(try await client.get("/readyz").status == 200)
        // Five requests that take 2 s each, then SIGTERM while they wait.
        let answers = Task {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<5 { group.addTask { try await client.get("/v1/tasks/T-term?wait=2").status } }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
        }
        try await Task.sleep(nanoseconds: 500_000_000)
        serve.process.terminate()
        let statuses = try await answers.value
        #expect(statuses == [200, 200, 200, 200, 200])
        _ = await eventually { !serve.process.isRunning }
        #expect(serve.process.terminationStatus == 0)
        #expect(serve.text.contains("stopped"))
    }

    /// A receiver that refuses its first `failures` deliveries.
    final class Receiver: Sendable {
        let server: Server
        let state: ReceiverState

        init(failures: Int) throws {
            let router = Router()
            let box = ReceiverState(failures: failures)
            router.post("/hook", .sync { request in
                let n = box.attempts.add(1, ordering: .relaxed).newValue
                if n <= box.failures { return Response(status: .internalServerError) }
                let status = ((try? JSONSerialization.jsonObject(with: Data(request.body))) as? [String: Any])?["status"] as? String ?? "?"
                box.statuses.withLock { $0.append(status) }
                return Response(status: .noContent)
            })
            var config = ServerConfiguration()
            config.host = "127.0.0.1"
            config.port = 0
            server = try Server(configuration: config, router: router, logger: quietLogger())
            state = box
        }
    }

    final class ReceiverState: Sendable {
        let failures: Int
        let attempts = Atomic<Int>(0)
        let statuses = Mutex<[String]>([])
        init(failures: Int) { self.failures = failures }
    }

    @Test func relayDeliversInOrderOnceTheReceiverRecovers() async throws {
        let receiver = try Receiver(failures: 2)
        try await withHook { hook, client in
            let body = #"{"model":"MiniMax-Hailuo-02","prompt":"relay","callback_url":"http://127.0.0.1:\#(receiver.server.port)/hook"}"#
            let id = try #require(try await client.post("/v1/video_generation", body).json["task_id"] as? String)
            // submitted, processing, success, then success again with the link and with the size.
            let delivered = await eventually(timeout: 20) { receiver.state.statuses.withLock { $0 }.count == 5 }
            #expect(delivered)
            let statuses = receiver.state.statuses.withLock { $0 }
            #expect(Array(statuses.prefix(3)) == ["submitted", "processing", "success"])
            #expect(statuses.dropFirst(3).allSatisfy { $0 == "success" })
            let task = try await client.get("/v1/tasks/\(id)").json
            #expect(task["notify_url"] as? String == "http://127.0.0.1:\(receiver.server.port)/hook")
            let relay = try #require(task["relay"] as? [String: Any])
            #expect(relay["attempts"] as? Int == 7)
            #expect(relay["delivered"] as? Int == 5)
            #expect(relay["failed"] as? Int == 0)
            _ = hook
        }
        await receiver.server.shutdown()
    }

    @Test func idempotencyKeyAnswersTheFirstResult() async throws {
        let journal = NSTemporaryDirectory() + "hailuo-idem-\(UUID().uuidString).log"
        var firstID = ""
        try await withHook({ $0.journal = journal }) { hook, client in
            let first = try await client.call("POST", "/v1/video_generation", json: seedBody, headers: ["Idempotency-Key": "order-42"])
            #expect(first.status == 200)
            firstID = try #require(first.json["task_id"] as? String)
            let again = try await client.call("POST", "/v1/video_generation", json: seedBody, headers: ["Idempotency-Key": "order-42"])
            #expect(again.json["task_id"] as? String == firstID)
            #expect(again.headers["idempotent-replayed"] == "true")
            #expect(hook.registry.peekCount == 1)
            let other = try await client.call("POST", "/v1/video_generation", json: #"{"model":"MiniMax-Hailuo-02","prompt":"other"}"#, headers: ["Idempotency-Key": "order-42"])
            #expect(other.status == 422)
            #expect(other.baseCode == 2013)
            #expect(other.errorMessage.contains("order-42"))
        }
        // Kept across a restart, through the journal.
        try await withHook({ $0.journal = journal }) { hook, client in
            let replay = try await client.call("POST", "/v1/video_generation", json: seedBody, headers: ["Idempotency-Key": "order-42"])
            #expect(replay.json["task_id"] as? String == firstID)
            #expect(hook.registry.peekCount == 1)
        }
    }

    @Test func readyzTurns503AtOnceWhenDraining() async throws {
        try await withHook { hook, client in
            #expect(try await client.get("/readyz").status == 200)
            // SIGTERM's path: readiness goes first, then (after the grace) the listener.
            let drained = Task { await hook.shutdown(readinessGrace: 1) }
            try await Task.sleep(nanoseconds: 200_000_000)
            let during = try await client.get("/readyz")
            #expect(during.status == 503)
            #expect(during.json["status"] as? String == "draining")
            #expect(try await client.get("/healthz").status == 200)
            await drained.value
            // Afterwards nothing listens.
            #expect(throws: (any Error).self) { _ = try RawSocket(port: hook.port) }
        }
    }
}

/// A blocking socket for one exchange on a connection opened before the drain.
final class RawSocket {
    let fd: Int32
    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { throw CocoaError(.fileReadUnknown) }
    }
    deinit { close(fd) }
    func exchange(_ text: String) throws -> String {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : ""
    }
}
