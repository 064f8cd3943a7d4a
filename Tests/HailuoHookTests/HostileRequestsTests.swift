import Foundation
import Glibc
import HailuoHook
import Testing

/// 2000 mutated requests over real sockets against the whole server: it answers
/// each with a 2xx/4xx (or a 502 from the upstream, or closes), never a 500, and
/// what it had recorded before is all still there.
@Suite struct HostileRequestsTests {
    /// A deterministic generator (SplitMix64), so a failure replays.
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
    }

    static let interesting: [UInt8] = [0, 9, 10, 13, 32, 34, 44, 58, 59, 123, 125, 0x7F, 0x80, 0xFF] + Array("0123456789-+".utf8)

    static func mutate(_ request: [UInt8], _ random: inout Random) -> [UInt8] {
        var bytes = request
        for _ in 0..<(1 + random.below(4)) {
            guard !bytes.isEmpty else { break }
            let at = random.below(bytes.count)
            switch random.below(7) {
            case 0: bytes[at] = UInt8(truncatingIfNeeded: random.next())
            case 1: bytes[at] = interesting[random.below(interesting.count)]
            case 2: bytes.insert(interesting[random.below(interesting.count)], at: at)
            case 3: bytes.removeSubrange(at..<min(bytes.count, at + 1 + random.below(8)))
            case 4: bytes = Array(bytes[..<at])  // truncated
            case 5:  // a line repeated (duplicate headers, a second request line)
                let lines = bytes.split(separator: 10, omittingEmptySubsequences: false)
                let line = lines[random.below(lines.count)]
                bytes.insert(contentsOf: Array(line) + [10], at: at)
            default: bytes.insert(contentsOf: [UInt8](repeating: bytes[at], count: 1 + random.below(300)), at: at)
            }
        }
        return bytes
    }

    /// Sends the bytes, half-closes, reads to the end; the status of the first answer, or nil.
    static func exchange(port: Int, _ bytes: [UInt8]) -> Int? {
        let fd = connectLoopback(port: port, timeout: 5)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        shutdown(fd, Int32(SHUT_WR))
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while answer.count < 1 << 20 {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            answer.append(contentsOf: chunk[0..<n])
        }
        let line = String(decoding: answer.prefix { $0 != 13 }, as: UTF8.self).split(separator: " ")
        guard line.count >= 2, line[0].hasPrefix("HTTP/1.") else { return nil }
        return Int(line[1])
    }

    @Test func twoThousandMutatedRequestsBreakNothingAndLoseNothing() async throws {
        try await withHook({ $0.callbackSharedToken = "shared" }) { hook, client in
            // Recorded first: three tasks through the simulator to success.
            var ids: [String] = []
            for _ in 0..<3 {
                let answer = try await client.post("/v1/video_generation", seedBody)
                ids.append(try #require(answer.json["task_id"] as? String))
            }
            for id in ids { _ = try await client.get("/v1/tasks/\(id)?wait=10") }
            let before = ids.map { hook.registry.peek($0)! }
            #expect(before.allSatisfy { $0.status == .success })

            let callback = #"{"task_id":"M1","status":"processing","base_resp":{"status_code":0,"status_msg":"success"}}"#
            let templates: [String] = [
                "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                "GET /v1/tasks?limit=5&status=success HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n",
                "GET /v1/tasks/\(ids[0]) HTTP/1.1\r\nHost: x\r\n\r\n",
                "GET /v1/query/video_generation?task_id=\(ids[1]) HTTP/1.1\r\nHost: x\r\n\r\n",
                "POST /v1/callbacks/shared HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(callback.utf8.count)\r\n\r\n\(callback)",
                "POST /v1/callbacks/shared HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\(String(callback.utf8.count, radix: 16))\r\n\(callback)\r\n0\r\n\r\n",
                "POST /v1/video_generation HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(seedBody.utf8.count)\r\n\r\n\(seedBody)",
                "GET /v1/tasks/\(ids[2]) HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            ]
            var random = Random(state: 20261125)
            var requests: [[UInt8]] = []
            for i in 0..<2000 { requests.append(Self.mutate(Array(templates[i % templates.count].utf8), &random)) }

            let port = hook.port
            // URLSession's kept-alive connections (the test client's, the simulator's callbacks).
            let baseline = hook.server.connectionCount
            let statuses = await withTaskGroup(of: [Int?].self) { group in
                for worker in 0..<8 {
                    let mine = stride(from: worker, to: requests.count, by: 8).map { requests[$0] }
                    group.addTask { await Self.offPool { mine.map { Self.exchange(port: port, $0) } } }
                }
                var all: [Int?] = []
                for await part in group { all += part }
                return all
            }
            #expect(statuses.count == 2000)
            let answered = statuses.compactMap { $0 }
            let allowed: Set<Int> = [200, 400, 401, 404, 405, 408, 409, 411, 413, 414, 415, 417, 422, 431, 501, 502, 505]
            let unexpected = answered.filter { !allowed.contains($0) }
            #expect(unexpected.isEmpty, "unexpected statuses: \(Set(unexpected))")
            let histogram = Dictionary(grouping: answered, by: { $0 }).mapValues(\.count).sorted { $0.key < $1.key }
            print("mutated requests: \(answered.count) of 2000 answered, the rest closed; statuses \(histogram.map { "\($0.key)×\($0.value)" }.joined(separator: " "))")
            #expect(answered.count > 1000, "most mutated requests still get an answer: \(answered.count)")

            // Alive, and nothing recorded before is lost.
            #expect(try await client.get("/healthz").status == 200)
            for old in before {
                let now = try #require(hook.registry.peek(old.taskID))
                #expect(now.status == .success)
                #expect(now.fileID == old.fileID)
                #expect(Array(now.events.prefix(old.events.count)) == old.events)
            }
            // None of the 2000 connections is left open (each client half-closed and went). Allowed
            // beside the baseline: kept-alive URLSession connections, the test client's and those
            // the simulator opened to call back the tasks the mutated submissions created (CI saw
            // 3 against a baseline of 1); a leak of the burst's own sockets would show hundreds.
            let settled = await eventually { hook.server.connectionCount <= baseline + 4 }
            #expect(settled, "connections still open: \(hook.server.connectionCount), before: \(baseline)")
        }
    }

    /// Blocking socket work on a Dispatch thread, not on Swift's cooperative pool (which the server's handlers use).
    static func offPool<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: work()) }
        }
    }
}
