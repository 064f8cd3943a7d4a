import Foundation
import Glibc
import HTTPServer
import Logging
@_exported import ProcessSupport

/// A raw HTTP/1.1 client over a blocking loopback socket: it writes exactly
/// the bytes a test gives it and reads answers byte for byte.
/// `send` touches only the descriptor, so one thread may send while another reads.
final class RawClient: @unchecked Sendable {
    struct Failure: Error, CustomStringConvertible { let description: String }

    let fd: Int32
    private var buffer: [UInt8] = []
    /// Blocking calls run here, off Swift's cooperative threads (which the server's async handlers need).
    private let queue = DispatchQueue(label: "raw-client")

    init(port: Int, timeout: Double = 5) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket failed") }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            Glibc.close(fd)
            throw Failure(description: "connect failed: errno \(errno)")
        }
    }

    deinit { Glibc.close(fd) }

    func send(_ text: String) async throws { try await send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) async throws {
        try await blocking { try self.sendNow(bytes) }
    }

    /// The next answer; nil when the server closed the connection first.
    func readResponse(head: Bool = false) async throws -> TestResponse? {
        try await blocking { try self.readResponseNow(head: head) }
    }

    /// `readResponse` on the caller's thread (for tests that drive many clients from one background thread).
    func readResponseBlocking(head: Bool = false) throws -> TestResponse? { try readResponseNow(head: head) }

    /// True when the server closes the connection (reads end of file) with nothing more sent.
    func closedByServer() async throws -> Bool {
        try await blocking { try self.closedByServerNow() }
    }

    /// Sends a request and reads its answer.
    func exchange(_ text: String, head: Bool = false) async throws -> TestResponse {
        try await send(text)
        guard let response = try await readResponse(head: head) else { throw Failure(description: "no answer") }
        return response
    }

    private func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try work() }) }
        }
    }

    /// Sends FIN: the server reads end of file after what was sent.
    func shutdownWrite() { _ = Glibc.shutdown(fd, Int32(SHUT_WR)) }

    func sendNow(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw Failure(description: "send failed: errno \(errno)") }
            sent += n
        }
    }

    /// Reads more bytes; false on end of file (or reset).
    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n > 0 { buffer.append(contentsOf: chunk[0..<n]); return true }
        if n == 0 { return false }
        if errno == EAGAIN || errno == EWOULDBLOCK { throw Failure(description: "timed out waiting for the server") }
        if errno == ECONNRESET { return false }
        throw Failure(description: "recv failed: errno \(errno)")
    }

    private func readResponseNow(head: Bool) throws -> TestResponse? {
        while true {
            if let end = find([13, 10, 13, 10]) {
                let headText = String(decoding: buffer[0..<end], as: UTF8.self)
                var lines = headText.components(separatedBy: "\r\n")
                let statusLine = lines.removeFirst()
                let parts = statusLine.split(separator: " ", maxSplits: 2)
                guard parts.count >= 2, let status = Int(parts[1]) else { throw Failure(description: "bad status line \(statusLine)") }
                let headers = lines.map { line -> (String, String) in
                    let i = line.firstIndex(of: ":")!
                    return (String(line[..<i]), line[line.index(after: i)...].trimmingCharacters(in: .whitespaces))
                }
                var response = TestResponse(status: status, reason: parts.count > 2 ? String(parts[2]) : "", headers: headers, body: [])
                let length = (status < 200 || head) ? 0 : Int(response.header("Content-Length") ?? "0") ?? 0
                while buffer.count < end + 4 + length {
                    guard try fill() else { throw Failure(description: "connection closed inside a body") }
                }
                response.body = Array(buffer[end + 4 ..< end + 4 + length])
                buffer.removeSubrange(0..<end + 4 + length)
                return response
            }
            guard try fill() else {
                if buffer.isEmpty { return nil }
                throw Failure(description: "connection closed inside a head: \(String(decoding: buffer, as: UTF8.self))")
            }
        }
    }

    private func closedByServerNow() throws -> Bool {
        if !buffer.isEmpty { return false }
        return try !fill()
    }

    private func find(_ needle: [UInt8]) -> Int? {
        guard buffer.count >= needle.count else { return nil }
        for i in 0...(buffer.count - needle.count) where buffer[i] == needle[0] {
            if Array(buffer[i..<i + needle.count]) == needle { return i }
        }
        return nil
    }

}

struct TestResponse {
    var status: Int
    var reason: String
    var headers: [(String, String)]
    var body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }

    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
}

/// The routes the engine's tests use.
func testRouter() -> Router {
    let router = Router()
    router.get("/healthz", .sync { _ in Response.json(text: #"{"status":"ok"}"#) })
    router.get("/hello", .sync { _ in Response(headers: ["Content-Type": "text/plain"], body: Array("hello".utf8)) })
    router.get("/items/:id", .sync { r in Response(body: Array("item \(r.parameters["id"] ?? "")".utf8)) })
    router.post("/echo", options: RouteOptions(maxBodyBytes: 1024), .sync { r in
        var response = Response(body: r.body)
        for (name, value) in r.trailers { response.headers.add("X-Trailer-" + name, value) }
        return response
    })
    router.post("/json", options: .json, .sync { _ in Response.json(text: #"{"ok":true}"#) })
    router.post("/upload", options: RouteOptions(maxBodyBytes: 1 << 20), .sync { r in Response(body: Array("\(r.body.count)".utf8)) })
    router.get("/big", .sync { r in Response(body: [UInt8](repeating: 0x61, count: Int(r.query("n") ?? "0") ?? 0)) })
    router.get("/slow", .async { r in
        let ms = UInt64(r.query("ms") ?? "200") ?? 200
        try? await Task.sleep(nanoseconds: ms * 1_000_000)
        return Response(body: Array("slow".utf8))
    })
    router.get("/seq/:n", .sync { r in Response(body: Array((r.parameters["n"] ?? "").utf8)) })
    router.get("/json-big", .sync { _ in Response.json(text: "[" + (0..<400).map { #"{"n":\#($0)}"# }.joined(separator: ",") + "]") })
    return router
}

extension ServerConfiguration {
    static func test(_ change: (inout ServerConfiguration) -> Void = { _ in }) -> ServerConfiguration {
        var c = ServerConfiguration()
        c.host = "127.0.0.1"
        c.port = 0
        c.ioLoops = 2
        change(&c)
        return c
    }
}

/// Starts a real server on a free loopback port for the length of `body`.
func withServer(_ configuration: ServerConfiguration = .test(), router: Router = testRouter(), _ body: (Server) async throws -> Void) async throws {
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    let server = try Server(configuration: configuration, router: router, logger: logger)
    do {
        try await body(server)
    } catch {
        await server.shutdown()
        throw error
    }
    await server.shutdown()
}

/// Waits for `condition` to hold, checking every 10 ms, up to `timeout` seconds.
func eventually(timeout: Double = 5, _ condition: () -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        try? await Task.sleep(nanoseconds: 10_000_000)
    }
    return condition()
}

/// Certificates made by the openssl CLI for one test (Tests/tls/make-certs.sh): a CA, a
/// server pair for localhost/127.0.0.1, a rotated pair, an unrelated pair.
struct TestCertificates: Sendable {
    let folder: String
    var ca: String { folder + "/ca.pem" }
    func certificate(_ name: String = "server") -> String { folder + "/\(name).pem" }
    func key(_ name: String = "server") -> String { folder + "/\(name).key" }

    static func make() async throws -> TestCertificates {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        let folder = NSTemporaryDirectory() + "hailuo-tls-\(UUID().uuidString)"
        let run = try await runTool("/bin/sh", [root.appendingPathComponent("tls/make-certs.sh").path, folder])
        guard run.status == 0 else { throw RawClient.Failure(description: "make-certs.sh failed: \(run.errors)") }
        return TestCertificates(folder: folder)
    }

    func remove() { try? FileManager.default.removeItem(atPath: folder) }
}

/// Raises this process's open-file limit to its hard limit (tests that hold thousands of sockets).
func raiseOpenFileLimit() -> Int {
    var limit = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    limit.rlim_cur = limit.rlim_max
    setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    return Int(limit.rlim_cur)
}
