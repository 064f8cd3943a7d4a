import Foundation
import HTTPServer
import Testing

/// Every refusal of API.md's "HTTP/1.1 behaviour", each over a real socket:
/// its status code, a JSON body with a sentence, and (for framing errors) the close.
@Suite struct RefusalTests {
    /// Sends `request`, expects `status` with a message containing `mention`, then (if `closes`) end of file.
    func expectRefusal(_ request: String, _ status: Int, mentioning mention: String, closes: Bool = true,
                       configuration: ServerConfiguration = .test()) async throws {
        try await withServer(configuration) { server in
            let client = try RawClient(port: server.port)
            let response = try await client.exchange(request)
            #expect(response.status == status, "\(response.status) \(response.text)")
            #expect(response.header("Content-Type") == "application/json; charset=utf-8")
            #expect(response.text.contains(#""message":"#))
            #expect(response.text.lowercased().contains(mention.lowercased()), "\(response.text)")
            if closes {
                #expect(response.header("Connection") == "close")
                #expect(try await client.closedByServer())
            }
        }
    }

    @Test func bothContentLengthAndTransferEncoding() async throws {
        try await expectRefusal("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                                400, mentioning: "both Content-Length and Transfer-Encoding")
    }

    @Test func differingDuplicateContentLength() async throws {
        try await expectRefusal("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
                                400, mentioning: "differing Content-Length")
    }

    /// The request-smuggling checklist: each refused with 400 and the connection closed.
    static let smuggling: [(request: String, mention: String)] = [
        ("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", "Content-Length is repeated"),
        ("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc", "one number, not a list"),
        ("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", "both Content-Length and Transfer-Encoding"),
        ("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", "chunked must be the last"),
        ("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n", "chunked must be the last"),
        ("GET /hello HTTP/1.1\r\nHost: x\r\nX-A: a\u{0}b\r\n\r\n", "header"),
        ("GET /hel\u{0}lo HTTP/1.1\r\nHost: x\r\n\r\n", "request"),
        ("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -3\r\n\r\nabc", "invalid Content-Length"),
        ("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc", "invalid Content-Length"),
        ("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", "invalid Content-Length"),
        ("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0000000000000000000000000001\r\na\r\n0\r\n\r\n", "chunk size"),
        ("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\na\r\n0\r\n\r\n", "chunk size"),
        ("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\na\r\n0\r\n\r\n", "chunk"),
        ("GET /hello HTTP/1.1\rHost: x\r\n\r\n", "CR"),
        ("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", "whitespace before the colon"),
    ]

    @Test(arguments: RefusalTests.smuggling)
    func smugglingAttemptIsRefusedAndClosed(_ attempt: (request: String, mention: String)) async throws {
        try await expectRefusal(attempt.request, 400, mentioning: attempt.mention)
    }

    @Test func invalidContentLength() async throws {
        try await expectRefusal("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, mentioning: "invalid Content-Length")
    }

    @Test func obsFold() async throws {
        try await expectRefusal("GET /hello HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  continued\r\n\r\n", 400, mentioning: "folding")
    }

    @Test func bareCRInHeader() async throws {
        try await expectRefusal("GET /hello HTTP/1.1\r\nHost: x\r\nX-A: 1\r2\r\n\r\n", 400, mentioning: "bare CR")
    }

    @Test func bareCRInRequestLine() async throws {
        try await expectRefusal("GET /hello\rHTTP/1.1\r\nHost: x\r\n\r\n", 400, mentioning: "bare CR")
    }

    @Test func bareLF() async throws {
        try await expectRefusal("GET /hello HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n", 400, mentioning: "bare LF")
    }

    @Test func whitespaceBeforeColon() async throws {
        try await expectRefusal("GET /hello HTTP/1.1\r\nHost : x\r\n\r\n", 400, mentioning: "whitespace before the colon in header Host")
    }

    @Test func missingHost() async throws {
        try await expectRefusal("GET /hello HTTP/1.1\r\nAccept: */*\r\n\r\n", 400, mentioning: "missing Host")
    }

    @Test func twoHosts() async throws {
        try await expectRefusal("GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, mentioning: "more than one Host")
    }

    @Test func badChunkSize() async throws {
        try await expectRefusal("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
                                400, mentioning: "bad chunk size")
    }

    @Test func chunkSizeOverflow() async throws {
        try await expectRefusal("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n",
                                400, mentioning: "bad chunk size")
    }

    @Test func chunkDataLongerThanItsSize() async throws {
        try await expectRefusal("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
                                400, mentioning: "chunk data")
    }

    @Test func badRequestLine() async throws {
        try await expectRefusal("GARBAGE\r\n\r\n", 400, mentioning: "malformed request line")
    }

    @Test func badRequestTarget() async throws {
        try await expectRefusal("GET hello HTTP/1.1\r\nHost: x\r\n\r\n", 400, mentioning: "request target")
    }

    @Test func chunkedNotLast() async throws {
        try await expectRefusal("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                                400, mentioning: "chunked must be the last")
    }

    @Test func unknownTransferCoding() async throws {
        try await expectRefusal("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: zstd-foo\r\n\r\n",
                                501, mentioning: "Transfer-Encoding zstd-foo is not supported")
    }

    @Test func unknownCodingBeforeChunked() async throws {
        try await expectRefusal("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: foo, chunked\r\n\r\n0\r\n\r\n",
                                501, mentioning: "foo")
    }

    @Test func notFound() async throws {
        try await expectRefusal("GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", 404, mentioning: "no route for GET /nowhere", closes: false)
    }

    @Test func methodNotAllowedNamesAllow() async throws {
        try await withServer { server in
            let client = try RawClient(port: server.port)
            let r = try await client.exchange("DELETE /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(r.status == 405)
            #expect(r.header("Allow") == "GET, HEAD")
            #expect(r.text.contains("DELETE is not allowed"))
            // Not a framing error: the connection stays open.
            #expect(try await client.exchange("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").status == 200)
        }
    }

    @Test func lengthRequired() async throws {
        try await expectRefusal("POST /echo HTTP/1.1\r\nHost: x\r\n\r\n", 411, mentioning: "needs Content-Length")
    }

    @Test func payloadTooLargeByContentLength() async throws {
        try await expectRefusal("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", 413, mentioning: "larger than 1024 bytes")
    }

    @Test func payloadTooLargeChunked() async throws {
        let chunk = String(repeating: "a", count: 800)
        try await expectRefusal("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n320\r\n\(chunk)\r\n320\r\n\(chunk)\r\n0\r\n\r\n",
                                413, mentioning: "larger than 1024 bytes")
    }

    @Test func uriTooLong() async throws {
        let long = "/" + String(repeating: "a", count: 9000)
        try await expectRefusal("GET \(long) HTTP/1.1\r\nHost: x\r\n\r\n", 414, mentioning: "longer than 8192 bytes")
    }

    @Test func uriTooLongBeforeTheLineEnds() async throws {
        // The server refuses without waiting for the rest of the line.
        let long = "/" + String(repeating: "a", count: 9000)
        try await expectRefusal("GET \(long)", 414, mentioning: "longer than 8192 bytes")
    }

    @Test func unsupportedMediaType() async throws {
        try await expectRefusal("POST /json HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi",
                                415, mentioning: "Content-Type text/plain is not accepted")
    }

    @Test func headerFieldsTooLarge() async throws {
        let big = String(repeating: "b", count: 17000)
        try await expectRefusal("GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: \(big)\r\n\r\n", 431, mentioning: "header section is larger than 16384")
    }

    @Test func headerFieldsTooLargeWithoutEnd() async throws {
        let big = String(repeating: "b", count: 17000)
        try await expectRefusal("GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: \(big)", 431, mentioning: "header section is larger")
    }

    @Test func httpVersionNotSupported() async throws {
        try await expectRefusal("GET /hello HTTP/2.0\r\nHost: x\r\n\r\n", 505, mentioning: "HTTP/2.0 is not supported")
    }

    @Test func expectationFailed() async throws {
        try await expectRefusal("POST /echo HTTP/1.1\r\nHost: x\r\nExpect: something\r\nContent-Length: 1\r\n\r\n", 417, mentioning: "Expect")
    }

    @Test func overMaxConnections() async throws {
        try await withServer(.test { $0.maxConnections = 2 }) { server in
            let a = try RawClient(port: server.port)
            let b = try RawClient(port: server.port)
            #expect(try await a.exchange("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").status == 200)
            #expect(try await b.exchange("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").status == 200)
            let c = try RawClient(port: server.port)
            let r = try #require(try await c.readResponse())
            #expect(r.status == 503)
            #expect(r.text.contains("connection limit"))
            #expect(try await c.closedByServer())
            // The first two still work.
            #expect(try await a.exchange("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").status == 200)
        }
    }

    @Test func headerTimeout() async throws {
        try await withServer(.test { $0.headerTimeout = 0.3 }) { server in
            let client = try RawClient(port: server.port)
            try await client.send("GET /hello HTTP/1.1\r\nHost: x\r\n")
            let r = try #require(try await client.readResponse())
            #expect(r.status == 408)
            #expect(r.text.contains("did not arrive"))
            #expect(try await client.closedByServer())
        }
    }

    @Test func bodyTimeout() async throws {
        try await withServer(.test { $0.bodyTimeout = 0.3 }) { server in
            let client = try RawClient(port: server.port)
            try await client.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
            let r = try #require(try await client.readResponse())
            #expect(r.status == 408)
            #expect(r.text.contains("body"))
            #expect(try await client.closedByServer())
        }
    }

    @Test func idleTimeoutClosesSilently() async throws {
        try await withServer(.test { $0.idleTimeout = 0.3 }) { server in
            let client = try RawClient(port: server.port)
            #expect(try await client.exchange("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").status == 200)
            // No answer, just the close.
            #expect(try await client.closedByServer())
            #expect(await eventually { server.connectionCount == 0 })
        }
    }
}
