import Foundation
import HTTPServer
import Testing

@Suite struct ServerTests {
    @Test func drainFinishesTheRequestInFlightWithConnectionClose() async throws {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let server = try Server(configuration: .test(), router: testRouter(), logger: logger)
        let busy = try RawClient(port: server.port)
        let idle = try RawClient(port: server.port)
        #expect(try await idle.exchange("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").status == 200)
        try await busy.send("GET /slow?ms=2000 HTTP/1.1\r\nHost: x\r\n\r\n")
        try await Task.sleep(nanoseconds: 100_000_000)  // let the request reach its handler

        let shutdown = Task { await server.shutdown() }
        // The idle keep-alive connection is closed at once.
        #expect(try await idle.closedByServer())
        // The busy one gets its answer, marked as the last.
        let r = try #require(try await busy.readResponse())
        #expect(r.status == 200)
        #expect(r.text == "slow")
        #expect(r.header("Connection") == "close")
        #expect(try await busy.closedByServer())
        await shutdown.value
        // Nothing listens any more.
        #expect(throws: (any Error).self) { _ = try RawClient(port: server.port) }
    }

    @Test func drainGivesUpAfterItsTimeout() async throws {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let server = try Server(configuration: .test { $0.drainTimeout = 0.3 }, router: testRouter(), logger: logger)
        let client = try RawClient(port: server.port)
        try await client.send("GET /slow?ms=5000 HTTP/1.1\r\nHost: x\r\n\r\n")
        try await Task.sleep(nanoseconds: 100_000_000)
        let started = Date()
        await server.shutdown()
        #expect(Date().timeIntervalSince(started) < 3)
        #expect(server.connectionCount == 0)
    }

    @Test func portZeroPicksAFreePort() async throws {
        try await withServer { server in
            #expect(server.port > 0)
            let client = try RawClient(port: server.port)
            #expect(try await client.exchange("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").status == 200)
        }
    }

    @Test func clientThatVanishesMidRequestIsCleanedUp() async throws {
        try await withServer { server in
            do {
                let client = try RawClient(port: server.port)
                try await client.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
                #expect(await eventually { server.connectionCount == 1 })
            }
            #expect(await eventually { server.connectionCount == 0 })
        }
    }
}

import Logging
