import CZlib
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

    @Test func curlCompressedRoundTrip() async throws {
        try await withServer { server in
            let url = "http://127.0.0.1:\(server.port)/json-big"
            let plain = try await runTool("/usr/bin/curl", ["-sS", url])
            let zipped = try await runTool("/usr/bin/curl", ["-sS", "--compressed", "-D", "/dev/stderr", "-w", "%{size_download}", "-o", "/dev/null", url])
            let decoded = try await runTool("/usr/bin/curl", ["-sS", "--compressed", url])
            #expect(zipped.errors.lowercased().contains("content-encoding: gzip"))
            #expect(zipped.errors.lowercased().contains("vary: accept-encoding"))
            #expect((Int(zipped.output) ?? .max) < plain.output.utf8.count / 3)
            #expect(decoded.output == plain.output)
            #expect(plain.output.hasPrefix("[{\"n\":0}"))
            // And a gzip request body from curl, inflated by the server.
            let folder = NSTemporaryDirectory() + "hailuo-gzip-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let original = String(repeating: "hello gzip ", count: 80)
            try Data(try #require(Gzip.compress(Array(original.utf8)))).write(to: URL(fileURLWithPath: folder + "/body.gz"))
            let echoed = try await runTool("/usr/bin/curl", ["-sS", "-H", "Content-Encoding: gzip", "--data-binary", "@\(folder)/body.gz",
                                                            "http://127.0.0.1:\(server.port)/echo"])
            #expect(echoed.output == original)
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

    /// `size` zero bytes gzipped at level 9, made a megabyte at a time (the test never holds them).
    static func bomb(inflatingTo size: Int) throws -> [UInt8] {
        var stream = z_stream()
        guard deflateInit2_(&stream, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw RawClient.Failure(description: "deflateInit2 failed")
        }
        defer { deflateEnd(&stream) }
        var zeros = [UInt8](repeating: 0, count: 1 << 20)
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var left = size
        repeat {
            let n = min(left, zeros.count)
            left -= n
            let flush = left == 0 ? Z_FINISH : Z_NO_FLUSH
            var rc: Int32 = Z_OK
            zeros.withUnsafeMutableBufferPointer { input in
                stream.next_in = input.baseAddress
                stream.avail_in = UInt32(n)
                repeat {
                    chunk.withUnsafeMutableBufferPointer { out in
                        stream.next_out = out.baseAddress
                        stream.avail_out = UInt32(out.count)
                        rc = deflate(&stream, flush)
                    }
                    output.append(contentsOf: chunk[0..<(chunk.count - Int(stream.avail_out))])
                } while stream.avail_out == 0
            }
            guard rc != Z_STREAM_ERROR else { throw RawClient.Failure(description: "deflate failed") }
        } while left > 0
        return output
    }

    /// The resident set of this process (the server runs in it), in bytes.
    static func residentBytes() -> Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
    }

    @Test func aGzipBombIsRefusedCheaply() async throws {
        // 256 MiB of zeros in ~250 KB of gzip, to a route that takes 1 MiB: the
        // inflation stops at the limit, so the server never holds more than that.
        // Made on a Dispatch thread: a second of deflate would hold one of Swift's cooperative threads.
        let bomb = try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try Self.bomb(inflatingTo: 256 << 20) }) }
        }
        #expect(bomb.count < 300 * 1024)
        try await withServer { server in
            let client = try RawClient(port: server.port)
            let before = Self.residentBytes()
            let started = Date()
            try await client.send(request("/upload", body: bomb))
            let r = try #require(try await client.readResponse())
            #expect(r.status == 413)
            #expect(r.text.contains("inflates to more than 1048576 bytes"))
            #expect(r.header("Connection") == "close")
            // Behaviour, not speed: generous bounds that a 256 MiB inflation would still break.
            #expect(Date().timeIntervalSince(started) < 5)
            #expect(Self.residentBytes() - before < 64 << 20)
            // The same bomb to a 64 KiB route is refused from its length, before any inflating.
            let small = try RawClient(port: server.port)
            try await small.send(request("/json", body: bomb))
            let refused = try #require(try await small.readResponse())
            #expect(refused.status == 413)
            #expect(refused.text.contains("is larger than 65536 bytes"))
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
