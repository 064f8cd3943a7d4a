import Foundation
import HTTPServer
import Logging
import Synchronization
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A MiniMax-compatible upstream (MINIMAX.md §1, §2, §4) on our own engine.
/// For each task it calls the task's `callback_url` as the real service does:
/// the challenge, then `processing`, then `success` with a `file_id` (or
/// `failed`). Flags make it misbehave the way a real upstream can.
public final class Simulator: Sendable {
    public let server: Server
    let core: SimulatorCore

    public var port: Int { server.port }
    /// The base URL to configure as `upstream.base_url`.
    public var baseURL: String { "http://127.0.0.1:\(server.port)" }

    public init(options: Options, logger: Logger = Logger(label: "hailuo-hook.simulator")) throws {
        let core = SimulatorCore(options: options, logger: logger)
        let router = Router()
        router.post("/v1/video_generation", options: RouteOptions(maxBodyBytes: 64 * 1024 * 1024), .async { await core.submit($0) })
        router.get("/v1/query/video_generation", .sync { core.query($0) })
        router.get("/v1/files/retrieve", .sync { core.retrieve($0) })
        router.get("/download/:file", .sync { _ in
            Response(headers: ["Content-Type": "video/mp4"], body: SampleVideo.bytes)
        })
        var configuration = ServerConfiguration()
        configuration.host = options.host
        configuration.port = options.port
        configuration.ioLoops = 1
        self.server = try Server(configuration: configuration, router: router, logger: logger)
        self.core = core
        core.port.store(server.port, ordering: .relaxed)
    }

    public func shutdown() async {
        await server.shutdown()
    }

    public struct Options: Sendable {
        /// The key callers must send; nil accepts any non-empty key.
        public var apiKey: String?
        public var failRate = 0.0
        public var duplicateRate = 0.0
        public var reorderRate = 0.0
        public var dropRate = 0.0
        /// Pause before each callback.
        public var delayMs = 300
        /// Send the challenge and `processing` before answering the submit call,
        /// as the real service may (the receiver must keep and apply them).
        public var earlyCallbacks = false
        public var host = "127.0.0.1"
        public var port = 0

        public init() {}
    }

}

/// The simulator's state and routes; separate so the routes exist before its server starts.
final class SimulatorCore: Sendable {
    typealias Options = Simulator.Options

    struct SimulatedTask: Sendable {
        var status: TaskStatus = .submitted
        var fileID: String
        var callbackURL: String?
        var width: Int
        var height: Int
    }

    let options: Options
    let port = Atomic<Int>(0)
    private let tasks = Mutex<[String: SimulatedTask]>([:])
    private let counter = Atomic<Int>(0)
    private let logger: Logger
    private let session: URLSession

    var baseURL: String { "http://127.0.0.1:\(port.load(ordering: .relaxed))" }

    init(options: Options, logger: Logger) {
        self.options = options
        self.logger = logger
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = 3  // the upstream waits 3 s for the challenge echo
        self.session = URLSession(configuration: configuration)
    }

    // MARK: Routes

    static func answer(_ base: BaseResp, _ fields: [String: JSONValue] = [:]) -> Response {
        var object = fields
        object["base_resp"] = .object(["status_code": .number(Double(base.status_code)), "status_msg": .string(base.status_msg)])
        let body = (try? JSONEncoder().encode(JSONValue.object(object))) ?? Data()
        return Response.json(.ok, Array(body))
    }

    private func authorized(_ request: Request) -> Bool {
        guard let header = request.headers["Authorization"], header.hasPrefix("Bearer ") else { return false }
        let key = String(header.dropFirst(7))
        if let expected = options.apiKey { return CallbackToken.constantTimeEquals(key, expected) }
        return !key.isEmpty
    }

    func submit(_ request: Request) async -> Response {
        guard authorized(request) else { return SimulatorCore.answer(BaseResp(1004, "authentication failed")) }
        let video: VideoRequest
        do {
            video = try VideoRequest.parse(request.body)
        } catch {
            return SimulatorCore.answer(BaseResp(2013, "invalid params, \(error.message)"))
        }
        let n = counter.add(1, ordering: .relaxed).newValue
        let base = 106_916_112_212_000 + Int(Date().timeIntervalSince1970) % 100_000 * 1000
        let taskID = String(base + n)
        let resolution = video.fields["resolution"]?.stringValue?.uppercased() ?? "768P"
        let (width, height) = SimulatorCore.size(of: resolution)
        let callbackURL = video.fields["callback_url"]?.stringValue
        tasks.withLock { $0[taskID] = SimulatedTask(fileID: String(205_258_526_306_000 + n), callbackURL: callbackURL, width: width, height: height) }
        if options.earlyCallbacks {
            let plan = await begin(taskID: taskID, callbackURL: callbackURL, immediately: true)
            Task { await self.end(plan, taskID: taskID, callbackURL: callbackURL) }
        } else {
            Task {
                let plan = await self.begin(taskID: taskID, callbackURL: callbackURL, immediately: false)
                await self.end(plan, taskID: taskID, callbackURL: callbackURL)
            }
        }
        return SimulatorCore.answer(.success, ["task_id": .string(taskID)])
    }

    static func size(of resolution: String) -> (Int, Int) {
        switch resolution {
        case "512P": return (912, 512)
        case "720P": return (1280, 720)
        case "1080P": return (1920, 1080)
        default: return (1366, 768)
        }
    }

    func query(_ request: Request) -> Response {
        guard authorized(request) else { return SimulatorCore.answer(BaseResp(1004, "authentication failed")) }
        guard let id = request.query("task_id"), let task = tasks.withLock({ $0[id] }) else {
            return SimulatorCore.answer(BaseResp(2013, "invalid params, task_id not found"))
        }
        var fields: [String: JSONValue] = ["task_id": .string(id), "status": .string(task.status.queryVocabulary)]
        if task.status == .success {
            fields["file_id"] = .string(task.fileID)
            fields["video_width"] = .number(Double(task.width))
            fields["video_height"] = .number(Double(task.height))
        }
        return SimulatorCore.answer(.success, fields)
    }

    func retrieve(_ request: Request) -> Response {
        guard authorized(request) else { return SimulatorCore.answer(BaseResp(1004, "authentication failed")) }
        guard let id = request.query("file_id"), tasks.withLock({ $0.values.contains { $0.fileID == id && $0.status == .success } }) else {
            return SimulatorCore.answer(BaseResp(2013, "invalid params, file_id not found"))
        }
        let file: [String: JSONValue] = [
            "file_id": .number(Double(id) ?? 0), "bytes": .number(Double(SampleVideo.bytes.count)),
            "created_at": .number(Double(Int(Date().timeIntervalSince1970))), "filename": .string("output.mp4"),
            "purpose": .string("video_generation"), "download_url": .string("\(baseURL)/download/\(id).mp4"),
        ]
        return SimulatorCore.answer(.success, ["file": .object(file)])
    }

    // MARK: A task's life

    /// What will happen to one task, drawn once.
    struct Plan: Sendable {
        var verified: Bool
        var failed: Bool
        var reorder: Bool
    }

    static func update(_ taskID: String, _ status: String, fileID: String? = nil, base: BaseResp = .success) -> [String: JSONValue] {
        var update: [String: JSONValue] = [
            "task_id": .string(taskID), "status": .string(status),
            "base_resp": .object(["status_code": .number(Double(base.status_code)), "status_msg": .string(base.status_msg)]),
        ]
        if let fileID { update["file_id"] = .string(fileID) }
        return update
    }

    /// The challenge, then (after the delay unless `immediately`) `processing`.
    private func begin(taskID: String, callbackURL: String?, immediately: Bool) async -> Plan {
        var plan = Plan(verified: false, failed: Double.random(in: 0..<1) < options.failRate,
                        reorder: Double.random(in: 0..<1) < options.reorderRate)
        if let callbackURL {
            // The URL check: a receiver that does not echo the challenge gets no updates.
            let challenge = UUID().uuidString.lowercased()
            if let echo = await post(callbackURL, ["challenge": .string(challenge)]),
               (try? JSONDecoder().decode([String: String].self, from: echo))?["challenge"] == challenge {
                plan.verified = true
            } else {
                logger.warning("callback URL did not echo the challenge; no updates will be sent", metadata: ["task_id": "\(taskID)"])
            }
        }
        if !immediately { try? await Task.sleep(nanoseconds: delay) }
        setStatus(taskID, .processing)
        // A reordered task sends its processing late, after the end.
        if plan.verified && !plan.reorder { await deliver(SimulatorCore.update(taskID, "processing"), to: callbackURL) }
        return plan
    }

    /// After the delay: `success` with a file id, or `failed`.
    private func end(_ plan: Plan, taskID: String, callbackURL: String?) async {
        try? await Task.sleep(nanoseconds: delay)
        let fileID = tasks.withLock { $0[taskID]?.fileID } ?? ""
        setStatus(taskID, plan.failed ? .failed : .success)
        let final = plan.failed
            ? SimulatorCore.update(taskID, "failed", base: BaseResp(1027, "output video flagged as sensitive"))
            : SimulatorCore.update(taskID, "success", fileID: fileID)
        if plan.verified { await deliver(final, to: callbackURL) }
        if plan.verified && plan.reorder { await deliver(SimulatorCore.update(taskID, "processing"), to: callbackURL) }
    }

    private var delay: UInt64 { UInt64(max(0, options.delayMs)) * 1_000_000 }

    /// One update, subject to the drop and duplicate rates.
    private func deliver(_ update: [String: JSONValue], to url: String?) async {
        guard let url, Double.random(in: 0..<1) >= options.dropRate else { return }
        _ = await post(url, update)
        if Double.random(in: 0..<1) < options.duplicateRate { _ = await post(url, update) }
    }

    private func setStatus(_ taskID: String, _ status: TaskStatus) {
        tasks.withLock { tasks in
            guard let current = tasks[taskID]?.status, !current.isEnded else { return }
            tasks[taskID]?.status = status
        }
    }

    /// POSTs JSON; the answer's body, or nil when the receiver could not be reached.
    private func post(_ url: String, _ body: [String: JSONValue]) async -> Data? {
        guard let target = URL(string: url) else { return nil }
        var request = URLRequest(url: target)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = try? JSONEncoder().encode(JSONValue.object(body))
        do {
            let (data, _) = try await session.data(for: request)
            return data
        } catch {
            logger.warning("callback to \(url) failed: \(error.localizedDescription)")
            return nil
        }
    }
}
