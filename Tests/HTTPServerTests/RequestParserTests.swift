import HTTPServer
import Testing

/// The parser alone, without sockets.
@Suite struct RequestParserTests {
    /// Feeds `text` in pieces of `step` bytes and collects every output.
    func parse(_ text: String, step: Int = Int.max, limits: RequestParser.Limits = .init()) throws(ParseError) -> [RequestParser.Output] {
        var parser = RequestParser(limits: limits)
        var outputs: [RequestParser.Output] = []
        let bytes = Array(text.utf8)
        var i = 0
        while i < bytes.count {
            let end = min(bytes.count, i + step)
            parser.append(bytes[i..<end])
            i = end
            while let output = try parser.next() { outputs.append(output) }
        }
        return outputs
    }

    func error(of text: String, limits: RequestParser.Limits = .init()) -> ParseError? {
        do {
            _ = try parse(text, limits: limits)
            return nil
        } catch {
            return error
        }
    }

    @Test func simpleGet() throws {
        let outputs = try parse("GET /a?b=c HTTP/1.1\r\nHost: example\r\nX-Y:  spaced value  \r\n\r\n")
        guard case .head(let head) = try #require(outputs.first) else { Issue.record("no head"); return }
        #expect(head.method == "GET")
        #expect(head.target == "/a?b=c")
        #expect(head.path == "/a")
        #expect(head.query == "b=c")
        #expect(head.version == .http1_1)
        #expect(head.headers["host"] == "example")
        #expect(head.headers["X-Y"] == "spaced value")
        #expect(head.framing == .none)
        #expect(head.keepAlive)
        #expect(outputs.count == 1)
    }

    @Test(arguments: [1, 2, 3, 7, 64])
    func anySplitGivesTheSameRequests(step: Int) throws {
        let text = "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloPOST /e HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\nGET /z HTTP/1.0\r\n\r\n"
        let outputs = try parse(text, step: step)
        #expect(outputs.count == 5)
        guard case .body(let first, _) = outputs[1], case .body(let second, let trailers) = outputs[3], case .head(let last) = outputs[4] else {
            Issue.record("unexpected outputs \(outputs)")
            return
        }
        #expect(first == Array("hello".utf8))
        #expect(second == Array("abc".utf8))
        #expect(trailers["t"] == "v")
        #expect(last.version == .http1_0)
        #expect(!last.keepAlive)
    }

    /// Found by the fuzzer: empty lines before a request, cut between a CR and its LF,
    /// once made the CR the start of a request line (400 in pieces, nothing whole).
    @Test(arguments: [1, 2, 11, 12])
    func emptyLinesCutBetweenCRAndLFAreStillSkipped(step: Int) throws {
        let outputs = try parse("\n\n\n\n\n\n\n\n\n\n\r\n\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", step: step)
        guard outputs.count == 1, case .head(let head) = outputs[0] else { Issue.record("unexpected \(outputs)"); return }
        #expect(head.target == "/")
    }

    @Test func emptyContentLengthBodyStillComesOut() throws {
        let outputs = try parse("POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        #expect(outputs.count == 2)
        if case .body(let body, _) = outputs[1] { #expect(body.isEmpty) } else { Issue.record("no body") }
    }

    @Test func refusalsMapToTheirStatus() {
        let cases: [(String, Int)] = [
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12a\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n c\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: x\r\nA: b\rc\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: x\r\nA\t: b\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: x\r\nA: b\u{0}c\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\n\r\n", 400),
            ("GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            ("GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400),
            ("GET / FTP/1.1\r\nHost: x\r\n\r\n", 400),
            ("G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
            ("POST / HTTP/1.1\r\nHost: x\r\n\r\n", 411),
            ("PUT / HTTP/1.1\r\nHost: x\r\n\r\n", 411),
            ("GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505),
            ("GET / HTTP/0.9\r\nHost: x\r\n\r\n", 505),
            ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\rx", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;a\u{1}\r\n", 400),
        ]
        for (text, status) in cases {
            #expect(error(of: text)?.status.code == status, "\(text.debugDescription)")
        }
    }

    @Test func http11MinorVersionsAboveOneAreOneOne() throws {
        guard case .head(let head) = try #require(try parse("GET / HTTP/1.7\r\nHost: x\r\n\r\n").first) else { return }
        #expect(head.version == .http1_1)
    }

    @Test func limitsAtTheirBoundaries() {
        let limits = RequestParser.Limits(maxHeaderBytes: 1024, maxURIBytes: 256)
        let okTarget = "/" + String(repeating: "a", count: 255)
        #expect(error(of: "GET \(okTarget) HTTP/1.1\r\nHost: x\r\n\r\n", limits: limits) == nil)
        #expect(error(of: "GET \(okTarget)a HTTP/1.1\r\nHost: x\r\n\r\n", limits: limits)?.status.code == 414)
        // Header section: every byte after the request line, up to and including the blank line.
        let fill = String(repeating: "v", count: 1024 - "Host: x\r\nA: \r\n\r\n".utf8.count)
        #expect(error(of: "GET / HTTP/1.1\r\nHost: x\r\nA: \(fill)\r\n\r\n", limits: limits) == nil)
        #expect(error(of: "GET / HTTP/1.1\r\nHost: x\r\nA: \(fill)v\r\n\r\n", limits: limits)?.status.code == 431)
    }

    @Test func chunkedBodyLimit() throws {
        var parser = RequestParser()
        parser.append(Array("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".utf8))
        _ = try parser.next()
        parser.bodyLimit = 4
        parser.append(Array("4\r\nabcd\r\n1\r\n".utf8))
        #expect(throws: ParseError.self) { _ = try parser.next() }
    }

    @Test func connectionOptions() throws {
        func head(_ text: String) throws -> RequestHead {
            guard case .head(let h) = try #require(try parse(text).first) else { throw ParseError(.badRequest, "no head") }
            return h
        }
        #expect(try !head("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").keepAlive)
        #expect(try !head("GET / HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive, CLOSE\r\n\r\n").keepAlive)
        #expect(try head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keepAlive)
        #expect(try !head("GET / HTTP/1.0\r\n\r\n").keepAlive)
        #expect(try head("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n").expectsContinue)
    }
}
