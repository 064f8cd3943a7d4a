import Foundation
import HTTPServer
import Testing

/// Persistent connections, pipelining, bodies, HEAD and back-pressure, over real sockets.
@Suite struct ConnectionTests {
    @Test func keepAliveServesManyRequestsOnOneConnection() async throws {
        try await withServer { server in
            let client = try RawClient(port: server.port)
            for i in 0..<5 {
                let r = try await client.exchange("GET /items/\(i) HTTP/1.1\r\nHost: x\r\n\r\n")
                #expect(r.status == 200)
                #expect(r.text == "item \(i)")
                #expect(r.header("Connection") == nil)
                #expect(r.header("Server") == "hailuo-hook")
                #expect(r.header("Date")?.hasSuffix("GMT") == true)
            }
            #expect(server.connectionCount == 1)
        }
    }

    @Test func threePipelinedRequestsInOneWriteAnswerInOrder() async throws {
        try await withServer { server in
            let client = try RawClient(port: server.port)
            try await client.send("GET /seq/1 HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\ntwoGET /seq/3 HTTP/1.1\r\nHost: x\r\n\r\n")
            var answers: [String] = []
            for _ in 0..<3 { answers.append(try #require(try await client.readResponse()).text) }
            #expect(answers == ["1", "two", "3"])
        }
    }

    @Test func pipelinedAsyncAndSyncKeepOrder() async throws {
        try await withServer { server in
            let client = try RawClient(port: server.port)
            try await client.send("GET /slow?ms=150 HTTP/1.1\r\nHost: x\r\n\r\nGET /seq/2 HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await client.readResponse()?.text == "slow")
            #expect(try await client.readResponse()?.text == "2")
        }
    }

    @Test func requestWrittenOneByteAtATime() async throws {
        try await withServer { server in
            let client = try RawClient(port: server.port)
            let request = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4;a=b\r\nwiki\r\n5\r\npedia\r\n0\r\nX-T: 1\r\n\r\n"
            for byte in request.utf8 { try await client.send([byte]) }
            let r = try #require(try await client.readResponse())
            #expect(r.status == 200)
            #expect(r.text == "wikipedia")
            #expect(r.header("X-Trailer-X-T") == "1")
        }
    }

    @Test func chunkedWithExtensionsAndTrailers() async throws {
        try await withServer { server in
            let client = try RawClient(port: server.port)
            let r = try await client.exchange("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "5;name=value;flag\r\nhello\r\n1 ; spaced=\"quoted\"\r\n \r\nA\r\n0123456789\r\n0\r\nChecksum: abc\r\nX-Other: 2\r\n\r\n")
            #expect(r.status == 200)
            #expect(r.text == "hello 0123456789")
            #expect(r.header("X-Trailer-Checksum") == "abc")
            #expect(r.header("X-Trailer-X-Other") == "2")
            // Still open for the next request.
            #expect(try await client.exchange("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").text == "hello")
        }
    }

    @Test func expectContinueGetsA100ThenTheAnswer() async throws {
        try await withServer { server in
            let client = try RawClient(port: server.port)
            try await client.send("POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
            let interim = try #require(try await client.readResponse())
            #expect(interim.status == 100)
            try await client.send("body")
            let r = try #require(try await client.readResponse())
            #expect(r.status == 200)
            #expect(r.text == "body")
        }
    }

    @Test func expectContinueRefusedTooLargeWithoutA100() async throws {
        try await withServer { server in
            let client = try RawClient(port: server.port)
            try await client.send("POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4096\r\n\r\n")
            let r = try #require(try await client.readResponse())
            #expect(r.status == 413)
        }
    }

    @Test func headAnswersLikeGetWithoutBody() async throws {
        try await withServer { server in
            let client = try RawClient(port: server.port)
            let r = try await client.exchange("HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n", head: true)
            #expect(r.status == 200)
            #expect(r.header("Content-Length") == "5")
            #expect(r.body.isEmpty)
            // The next answer starts right after the head: no stray body bytes.
            #expect(try await client.exchange("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").text == "hello")
        }
    }

    @Test func connectionCloseIsHonoured() async throws {
        try await withServer { server in
            let client = try RawClient(port: server.port)
            let r = try await client.exchange("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(r.status == 200)
            #expect(r.header("Connection") == "close")
            #expect(try await client.closedByServer())
        }
    }

    @Test func http10ClosesUnlessAskedToKeepAlive() async throws {
        try await withServer { server in
            let plain = try RawClient(port: server.port)
            let r = try await plain.exchange("GET /hello HTTP/1.0\r\n\r\n")
            #expect(r.status == 200)
            #expect(r.header("Connection") == "close")
            #expect(try await plain.closedByServer())

            let kept = try RawClient(port: server.port)
            let k = try await kept.exchange("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            #expect(k.header("Connection") == "keep-alive")
            #expect(try await kept.exchange("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").status == 200)
        }
    }

    @Test func absoluteFormTargetAndQuery() async throws {
        try await withServer { server in
            let client = try RawClient(port: server.port)
            #expect(try await client.exchange("GET http://example.com/items/7?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n").text == "item 7")
            #expect(try await client.exchange("GET /big?n=3 HTTP/1.1\r\nHost: x\r\n\r\n").text == "aaa")
        }
    }

    @Test func requestIDIsEchoedOrMade() async throws {
        try await withServer { server in
            let client = try RawClient(port: server.port)
            let given = try await client.exchange("GET /hello HTTP/1.1\r\nHost: x\r\nX-Request-Id: abc-123\r\n\r\n")
            #expect(given.header("X-Request-Id") == "abc-123")
            let a = try await client.exchange("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").header("X-Request-Id")
            let b = try await client.exchange("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").header("X-Request-Id")
            #expect(a != nil && b != nil && a != b)
            // Refusals of the engine carry none (there was no request to name).
            let refused = try await client.exchange("GET /hello HTTP/1.1\r\nX-Request-Id: r\r\n\r\n")
            #expect(refused.status == 400)
            #expect(refused.header("X-Request-Id") == nil)
        }
    }

    @Test func emptyLinesBeforeARequestAreIgnored() async throws {
        try await withServer { server in
            let client = try RawClient(port: server.port)
            #expect(try await client.exchange("\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n").status == 200)
        }
    }

    /// A client that half-closes right after its request (request and FIN in one
    /// event): answered, then closed at once, not after the idle timeout. Found by
    /// the mutated-request test, where every such client waited for its read timeout.
    @Test func halfCloseAfterARequestIsAnsweredAndClosedAtOnce() async throws {
        try await withServer(.test { $0.idleTimeout = 60; $0.headerTimeout = 60 }) { server in
            for request in ["GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", "GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hel"] {
                let client = try RawClient(port: server.port, timeout: 3)
                let started = Date()
                try await client.send(request)
                client.shutdownWrite()
                #expect(try await client.readResponse()?.status == 200)
                #expect(try await client.closedByServer())
                #expect(Date().timeIntervalSince(started) < 10)  // far below the 60 s timeouts
            }
            // Half a head, then FIN: nothing can complete it, so the connection goes.
            let partial = try RawClient(port: server.port, timeout: 3)
            try await partial.send("GET /hello HTTP/1.1\r\nHo")
            partial.shutdownWrite()
            #expect(try await partial.closedByServer())
            #expect(await eventually { server.connectionCount == 0 })
        }
    }

    @Test func asyncHandlerDoesNotHoldTheLoop() async throws {
        try await withServer(.test { $0.ioLoops = 1 }) { server in
            let slow = try RawClient(port: server.port)
            try await slow.send("GET /slow?ms=2000 HTTP/1.1\r\nHost: x\r\n\r\n")
            // Ordering, not a clock bound: the fast answer arrives before the slow one
            // (each client reads on its own queue), however loaded the machine is.
            let slowAnswered = Task { () -> (String?, Date) in
                let text = try? await slow.readResponse()?.text
                return (text, Date())
            }
            let fast = try RawClient(port: server.port)
            #expect(try await fast.exchange("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").status == 200)
            let fastAt = Date()
            let (slowText, slowAt) = await slowAnswered.value
            #expect(slowText == "slow")
            #expect(fastAt < slowAt)
        }
    }

    @Test func slowReaderGetsEveryAnswerInOrder() async throws {
        // 200 pipelined requests for 64 KiB each (12.5 MiB), not read until all are sent:
        // the server stops taking requests while its answers are unsent, then resumes.
        try await withServer { server in
            let client = try RawClient(port: server.port, timeout: 20)
            let count = 200
            let written = DispatchSemaphore(value: 0)
            DispatchQueue(label: "writer").async {
                defer { written.signal() }
                let request = Array("GET /big?n=65536 HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
                for _ in 0..<count { try? client.sendNow(request) }
            }
            try await Task.sleep(nanoseconds: 300_000_000)
            for _ in 0..<count {
                let r = try #require(try await client.readResponse())
                #expect(r.status == 200)
                #expect(r.body.count == 65536)
            }
            written.wait()  // long finished: every answer has been read
        }
    }

    @Test func hundredClientsTimesHundredRequests() async throws {
        try await withServer { server in
            let port = server.port
            let found = await withTaskGroup(of: [String].self) { group in
                for c in 0..<100 {
                    group.addTask {
                        var failures: [String] = []
                        do {
                            let client = try RawClient(port: port, timeout: 20)
                            for i in 0..<100 {
                                let r = try await client.exchange("GET /items/\(c)-\(i) HTTP/1.1\r\nHost: x\r\n\r\n")
                                if r.status != 200 || r.text != "item \(c)-\(i)" {
                                    failures.append("client \(c) request \(i): \(r.status) \(r.text)")
                                }
                            }
                        } catch {
                            failures.append("client \(c): \(error)")
                        }
                        return failures
                    }
                }
                return await group.reduce(into: []) { $0 += $1 }
            }
            #expect(found.isEmpty, "\(found.prefix(5))")
        }
    }
}
