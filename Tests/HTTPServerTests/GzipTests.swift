import Foundation
import HTTPServer
import Testing

@Suite struct GzipTests {
    func request(_ path: String, body: [UInt8], encoding: String = "gzip") -> [UInt8] {
        Array("POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Encoding: \(encoding)\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body
    }

    @Test func answersAreCompressedWhenAcceptedAndLargeEnough() async throws {
        try await withServer { server in
            let client = try RawClient(port: server.port)
            let plain = try await client.exchange("GET /json-big HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(plain.header("Content-Encoding") == nil)
            #expect(plain.header("Vary") == "Accept-Encoding")
            let zipped = try await client.exchange("GET /json-big HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br, gzip;q=0.8\r\n\r\n")
            #expect(zipped.header("Content-Encoding") == "gzip")
            #expect(zipped.body.count < plain.body.count / 3)
            #expect(try Gzip.decompress(zipped.body, limit: 1 << 20) == plain.body)
            // Refused with q=0, and small answers are left alone.
            #expect(try await client.exchange("GET /json-big HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip;q=0\r\n\r\n").header("Content-Encoding") == nil)
            #expect(try await client.exchange("GET /hello HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n").header("Content-Encoding") == nil)
        }
    }

    @Test func gzipRequestBodiesAreInflated() async throws {
        try await withServer { server in
            let client = try RawClient(port: server.port)
            let original = Array(String(repeating: "abc", count: 300).utf8)
            let compressed = try #require(Gzip.compress(original))
            try await client.send(request("/echo", body: compressed))
            let r = try #require(try await client.readResponse())
            #expect(r.status == 200)
            #expect(r.body == original)
        }
    }

    @Test func aGzipBombIsRefusedCheaply() async throws {
        try await withServer { server in
            // ~60 KB of gzip that would inflate to 60 MB; the route takes 64 KiB.
            let bomb = try #require(Gzip.compress([UInt8](repeating: 0, count: 60 << 20), level: 9))
            #expect(bomb.count < 64 * 1024)
            let client = try RawClient(port: server.port)
            let started = Date()
            try await client.send(request("/json", body: bomb))
            let r = try #require(try await client.readResponse())
            #expect(r.status == 413)
            #expect(r.text.contains("inflates to more than 65536 bytes"))
            #expect(Date().timeIntervalSince(started) < 1)
        }
    }

    @Test func corruptGzipAndUnknownEncodings() async throws {
        try await withServer { server in
            let client = try RawClient(port: server.port)
            try await client.send(request("/json", body: Array("not gzip at all".utf8)))
            let corrupt = try #require(try await client.readResponse())
            #expect(corrupt.status == 400)
            #expect(corrupt.text.contains("not valid gzip"))
            let truncated = try #require(Gzip.compress(Array(String(repeating: "x", count: 5000).utf8))).dropLast(10)
            try await client.send(request("/json", body: Array(truncated)))
            #expect(try await client.readResponse()?.status == 400)
            try await client.send(request("/json", body: [1, 2, 3], encoding: "br"))
            let unknown = try #require(try await client.readResponse())
            #expect(unknown.status == 415)
            #expect(unknown.text.contains("Content-Encoding br"))
        }
    }
}
