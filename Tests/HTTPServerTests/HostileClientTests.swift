import Foundation
import Glibc
import HTTPServer
import Synchronization
import Testing

/// What a public endpoint meets: slowloris, crowds of idle sockets, floods past the cap.
@Suite(.serialized) struct HostileClientTests {
    /// 2000 idle connections and 200 slowloris clients (a header byte a second):
    /// `/healthz` on a new connection still answers within 1 s, the slow ones are
    /// cut at the header timeout, the idle ones still work.
    @Test func slowlorisAndIdleCrowdsDoNotStarveNewClients() async throws {
        let files = raiseOpenFileLimit()
        try #require(files >= 5000, "needs 5000 open files, the hard limit is \(files)")
        try await withServer(.test { $0.headerTimeout = 3 }) { server in
            var idle: [RawClient] = []
            for _ in 0..<2000 { idle.append(try RawClient(port: server.port)) }
            var slow: [RawClient] = []
            for _ in 0..<200 { slow.append(try RawClient(port: server.port)) }
            #expect(await eventually { server.connectionCount == 2200 })

            let trickle = Trickle(clients: slow)
            trickle.start(seconds: 5)
            var worst = 0.0
            for _ in 0..<8 {
                let started = Date()
                let probe = try RawClient(port: server.port)
                let answer = try await probe.exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                worst = max(worst, Date().timeIntervalSince(started))
                #expect(answer.status == 200)
                try await Task.sleep(nanoseconds: 500_000_000)
            }
            // The bound is 1 s. It is asserted where the test has the machine to itself
            // (`.ci/run` runs this suite alone with HAILUO_STRICT_TIMING=1); inside the parallel
            // suite, on 2 cores shared with kill -9 loops, only starvation (5 s) is.
            let bound = ProcessInfo.processInfo.environment["HAILUO_STRICT_TIMING"] == "1" ? 1.0 : 5.0
            print("slowloris: slowest /healthz on a new connection among 2000 idle and 200 slowloris connections: \(Int(worst * 1000)) ms (bound \(bound) s)")
            #expect(worst < bound, "slowest /healthz on a new connection: \(worst) s")
            trickle.stop()
            // Every slowloris client got 408 (or the close) once its head took over 3 s.
            var cut = 0
            for client in slow {
                if let answer = try? await client.readResponse() {
                    if answer.status == 408 { cut += 1 }
                } else {
                    cut += 1
                }
            }
            #expect(cut == 200)
            // The idle crowd is still served.
            for client in idle.prefix(20) {
                #expect(try await client.exchange("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").status == 200)
            }
            withExtendedLifetime(idle) {}
        }
    }

    /// A flood far past `server.max_connections`: each extra connection gets the
    /// fixed 503 or is closed, while the clients already in are served throughout.
    @Test func aFloodPastTheCapIsRefusedWhileExistingClientsAreServed() async throws {
        try await withServer(.test { $0.maxConnections = 50 }) { server in
            var held: [RawClient] = []
            for _ in 0..<50 {
                let client = try RawClient(port: server.port)
                #expect(try await client.exchange("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").status == 200)
                held.append(client)
            }
            let port = server.port
            async let flood = Self.flood(port: port, count: 1000)
            var served = 0
            for round in 0..<5 {
                for client in held where try await client.exchange("GET /seq/\(round) HTTP/1.1\r\nHost: x\r\n\r\n").text == "\(round)" {
                    served += 1
                }
            }
            let (refused, closed, other) = try await flood
            #expect(served == 250)
            #expect(refused + closed == 1000, "503: \(refused), closed: \(closed), other: \(other)")
            #expect(refused > 0)
            #expect(await eventually { server.connectionCount == 50 })
        }
    }

    /// Opens `count` connections one after another; counts 503s, bare closes and anything else.
    static func flood(port: Int, count: Int) async throws -> (Int, Int, Int) {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result {
                    var refused = 0, closed = 0, other = 0
                    for _ in 0..<count {
                        guard let client = try? RawClient(port: port, timeout: 5) else { closed += 1; continue }
                        try? client.sendNow(Array("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
                        let answer = try? client.readResponseBlocking()
                        switch answer?.status {
                        case 503?: refused += 1
                        case nil: closed += 1
                        default: other += 1
                        }
                    }
                    return (refused, closed, other)
                })
            }
        }
    }
}

/// Sends one byte of a never-ending head to each client every second, off the test's threads.
final class Trickle: Sendable {
    let clients: [RawClient]
    private let running = Atomic<Bool>(true)
    private static let head = Array("GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: ".utf8) + [UInt8](repeating: 0x61, count: 1000)

    init(clients: [RawClient]) { self.clients = clients }

    func start(seconds: Int) {
        DispatchQueue.global().async {
            for i in 0..<seconds {
                guard self.running.load(ordering: .relaxed) else { return }
                for client in self.clients { try? client.sendNow([Trickle.head[i]]) }
                Thread.sleep(forTimeInterval: 1)
            }
        }
    }

    func stop() { running.store(false, ordering: .relaxed) }
}
