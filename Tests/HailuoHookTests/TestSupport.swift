import Foundation
import Glibc
import HailuoHook
import HTTPServer
import Logging
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// An answer as a client sees it.
struct Answer: Sendable {
    let status: Int
    let headers: [String: String]
    let data: Data

    var json: [String: Any] { ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any]) ?? [:] }
    var text: String { String(decoding: data, as: UTF8.self) }
    var errorMessage: String { (json["error"] as? [String: Any])?["message"] as? String ?? "" }
    var baseCode: Int? { (json["base_resp"] as? [String: Any])?["status_code"] as? Int }
}

/// Real HTTP over loopback, through URLSession.
struct TestClient: Sendable {
    let base: String
    var token: String? = nil

    static let session: URLSession = {
        let c = URLSessionConfiguration.ephemeral
        c.timeoutIntervalForRequest = 30
        return URLSession(configuration: c)
    }()

    func call(_ method: String, _ path: String, json: String? = nil, headers: [String: String] = [:]) async throws -> Answer {
        var request = URLRequest(url: URL(string: base + path)!)
        request.httpMethod = method
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        if let json {
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.httpBody = Data(json.utf8)
        }
        for (k, v) in headers { request.setValue(v, forHTTPHeaderField: k) }
        let (data, response) = try await TestClient.session.data(for: request)
        let http = response as! HTTPURLResponse
        var fields: [String: String] = [:]
        for (k, v) in http.allHeaderFields { fields[String(describing: k).lowercased()] = String(describing: v) }
        return Answer(status: http.statusCode, headers: fields, data: data)
    }

    func get(_ path: String) async throws -> Answer { try await call("GET", path) }
    func post(_ path: String, _ json: String) async throws -> Answer { try await call("POST", path, json: json) }
}

func quietLogger(_ label: String = "test") -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = .critical
    return logger
}

/// The two task stores the route and callback tests run against.
enum StoreKind: String, CaseIterable, Sendable, CustomStringConvertible {
    /// `TaskRegistry`, in the process.
    case memory
    /// `PostgresTaskStore`, on a database of its own in the test cluster (Tests/postgres/cluster.sh).
    case postgres

    var description: String { rawValue }
}

/// A `serve` on port 0 with its in-process simulator (a real listener of its own), for the length of `body`.
func withHook(_ change: (inout Configuration) -> Void = { _ in }, store: StoreKind = .memory, simulator: Simulator.Options = fastSimulator(),
              _ body: (HookServer, TestClient) async throws -> Void) async throws {
    var configuration = Configuration()
    configuration.host = "127.0.0.1"
    configuration.port = 0
    if store == .postgres { configuration.databaseURL = try await TestDatabase.fresh() }
    change(&configuration)
    let hook = try HookServer(configuration: configuration, simulatorOptions: simulator, logger: quietLogger())
    do {
        try await body(hook, TestClient(base: "http://127.0.0.1:\(hook.port)", token: configuration.apiToken))
    } catch {
        await hook.shutdown()
        throw error
    }
    await hook.shutdown()
}

func fastSimulator(_ change: (inout Simulator.Options) -> Void = { _ in }) -> Simulator.Options {
    var o = Simulator.Options()
    o.delayMs = 50
    change(&o)
    return o
}

/// Waits for `condition`, checking every 20 ms, up to `timeout` seconds.
func eventually(timeout: Double = 10, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try await condition() { return true }
        try? await Task.sleep(nanoseconds: 20_000_000)
    }
    return try await condition()
}

let seedPrompt = "A man picks up a book [Pedestal up], then reads [Static shot]."
let seedBody = #"{"model":"MiniMax-Hailuo-02","prompt":"A man picks up a book [Pedestal up], then reads [Static shot].","duration":6,"resolution":"1080P"}"#

/// A blocking TCP socket connected to 127.0.0.1:`port`, reads bounded by `timeout` seconds; -1 on failure.
func connectLoopback(port: Int, timeout: Int = 10, receiveBuffer: Int32? = nil) -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return -1 }
    if var size = receiveBuffer { setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size)) }
    var tv = timeval(tv_sec: timeout, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = UInt16(port).bigEndian
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard rc == 0 else { close(fd); return -1 }
    return fd
}

extension TaskStore {
    /// The task, or nil when it is unknown or the store could not answer (the test's
    /// expectation on it then fails).
    func peek(_ id: String) -> VideoTask? { (try? task(id)) ?? nil }
    /// How many tasks, or -1 when the store could not answer.
    var peekCount: Int { (try? count) ?? -1 }
}
