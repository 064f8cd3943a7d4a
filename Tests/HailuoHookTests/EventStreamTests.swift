import Foundation
import Glibc
import HailuoHook
import Synchronization
import Testing

/// A blocking Server-Sent Events reader over a raw socket.
final class SSEReader: @unchecked Sendable {
    let fd: Int32
    private var buffer = ""
    /// Task events read so far (read from other threads).
    private let received = Atomic<Int>(0)

    func hasRead(_ n: Int) -> Bool { received.load(ordering: .relaxed) >= n }

    init(port: Int, lastEventID: Int? = nil, receiveBuffer: Int32? = nil) throws {
        fd = connectLoopback(port: port, receiveBuffer: receiveBuffer)
        guard fd >= 0 else { throw CocoaError(.fileReadUnknown) }
        var request = "GET /v1/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
        if let lastEventID { request += "Last-Event-ID: \(lastEventID)\r\n" }
        request += "\r\n"
        _ = Array(request.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    }

    deinit { close(fd) }

    /// The ids of the next `count` task events (blocking, 10 s per read at most).
    func ids(_ count: Int) -> [Int] {
        var ids: [Int] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while ids.count < count {
            while let end = buffer.range(of: "\n\n") {
                let event = buffer[..<end.lowerBound]
                buffer = String(buffer[end.upperBound...])
                if event.contains("event: task"), let line = event.split(separator: "\n").first(where: { $0.hasPrefix("id: ") }), let id = Int(line.dropFirst(4)) {
                    ids.append(id)
                    received.add(1, ordering: .relaxed)
                    if ids.count == count { return ids }
                }
            }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return ids }
            buffer += String(decoding: chunk[0..<n], as: UTF8.self)
        }
        return ids
    }

    func idsAsync(_ count: Int) async -> [Int] {
        await withCheckedContinuation { continuation in
            DispatchQueue(label: "sse-reader").async { continuation.resume(returning: self.ids(count)) }
        }
    }
}

@Suite(.serialized) struct EventStreamTests {
    func callback(_ client: TestClient, _ id: String, _ status: String = "processing") async throws -> Int {
        try await client.post("/v1/callbacks/shared-ev", #"{"task_id":"\#(id)","status":"\#(status)"}"#).status
    }

    @Test func resumeWithLastEventIDLosesNothingAndRepeatsNothing() async throws {
        try await withHook({ $0.callbackSharedToken = "shared-ev" }) { hook, client in
            let first = try SSEReader(port: hook.port)
            try await Task.sleep(nanoseconds: 100_000_000)
            for i in 0..<30 { #expect(try await callback(client, "S\(i)") == 200) }
            let seen = await first.idsAsync(20)
            #expect(seen == Array(1...20))
            // Gone after 20; back with Last-Event-ID 20 while more events arrive.
            for i in 30..<40 { #expect(try await callback(client, "S\(i)") == 200) }
            let resumed = try SSEReader(port: hook.port, lastEventID: 20)
            try await Task.sleep(nanoseconds: 100_000_000)
            for i in 40..<50 { #expect(try await callback(client, "S\(i)") == 200) }
            let rest = await resumed.idsAsync(30)
            #expect(rest == Array(21...50))
            #expect(Set(seen + rest).count == 50)
        }
    }

    @Test func hundredSubscribersAndAStalledOneDoNotHoldUpCallbacks() async throws {
        try await withHook({ $0.callbackSharedToken = "shared-ev" }) { hook, client in
            let readers = try (0..<100).map { _ in try SSEReader(port: hook.port) }
            // Never reads, with a tiny receive buffer: it falls behind at once.
            let stalled = try SSEReader(port: hook.port, receiveBuffer: 4096)
            #expect(await eventually { hook.events.subscriberCount == 101 })
            let payload = String(repeating: "p", count: 1500)
            var slowest = 0.0
            for i in 0..<800 {
                let started = Date()
                let r = try await client.post("/v1/callbacks/shared-ev", #"{"task_id":"L\#(i)-\#(payload)","status":"processing"}"#)
                #expect(r.status == 200)
                slowest = max(slowest, Date().timeIntervalSince(started))
            }
            print("events: 800 callbacks with 100 subscribers and a stalled one, slowest answer \(Int(slowest * 1000)) ms")
            #expect(slowest < 1.0)
            for reader in readers.prefix(5) {
                let ids = await reader.idsAsync(800)
                #expect(ids == Array(1...800))
            }
            withExtendedLifetime(stalled) {}
        }
    }

    @Test func aStalledReaderIsCutOffAndTheOthersGetEverything() async throws {
        try await withHook({ $0.callbackSharedToken = "shared-ev" }) { hook, client in
            try await stalledScenario(hook, client)
        }
    }

    func stalledScenario(_ hook: HookServer, _ client: TestClient) async throws {
        let active = try SSEReader(port: hook.port)
        let stalled = try SSEReader(port: hook.port, receiveBuffer: 4096)
        #expect(await eventually { hook.events.subscriberCount == 2 })
        async let reading = active.idsAsync(250)
        // 250 events of ~40 KB: 10 MB, far past what the kernel and the 1 MiB budget hold.
        let big = String(repeating: "b", count: 40_000)
        for i in 0..<250 {
            #expect(try await callback(client, "B\(i)-\(big)") == 200)
            // Paced by the active reader (a debug-build test client), so only the stalled one falls behind.
            try await waitFor(active, i - 4)
        }
        let cut = await eventually { hook.events.subscriberCount == 1 }
        let got = await reading
        #expect(cut)
        #expect(got == Array(1...250))
        withExtendedLifetime(stalled) {}
    }

    func waitFor(_ reader: SSEReader, _ n: Int) async throws {
        let deadline = Date().addingTimeInterval(10)
        while !reader.hasRead(n) && Date() < deadline { try await Task.sleep(nanoseconds: 2_000_000) }
    }
}
