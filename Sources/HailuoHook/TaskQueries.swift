import Foundation
import HTTPServer
import Logging

/// The read side: a task, the task list, and MiniMax's own query and file
/// answers served from the registry.
public struct TaskQueries: Sendable {
    let registry: any TaskStore
    let links: DownloadLinks

    public init(registry: any TaskStore, links: DownloadLinks) {
        self.registry = registry
        self.links = links
    }

    public static let maxWait = 60
    public static let maxLimit = 500

    /// `GET /v1/tasks/{id}[?wait=N]`.
    public func task(_ request: Request) async -> Response {
        let id = request.parameters["id"] ?? ""
        var wait = 0
        if let text = request.query("wait") {
            guard let n = Int(text), (0...TaskQueries.maxWait).contains(n) else {
                return APIError.response(.badRequest, "wait must be an integer from 0 to \(TaskQueries.maxWait) (seconds)")
            }
            wait = n
        }
        let found: VideoTask?
        do { found = try await registry.waitUntilEnded(id, timeout: Double(wait)) } catch { return .storeUnavailable(error) }
        guard let task = found else {
            return APIError.response(.notFound, "no task \(id)")
        }
        return Response.json(.ok, JSONWriter.task(task, withEvents: true))
    }

    /// `GET /v1/tasks?status=S&limit=N&cursor=C`, newest first.
    public func list(_ request: Request) -> Response {
        var status: TaskStatus? = nil
        if let text = request.query("status"), !text.isEmpty {
            guard let s = TaskStatus(rawValue: text.lowercased()) else {
                return APIError.response(.badRequest, "status must be one of submitted, processing, success, failed")
            }
            status = s
        }
        var limit = 50
        if let text = request.query("limit") {
            guard let n = Int(text), (1...TaskQueries.maxLimit).contains(n) else {
                return APIError.response(.badRequest, "limit must be an integer from 1 to \(TaskQueries.maxLimit)")
            }
            limit = n
        }
        var cursor: UInt64? = nil
        if let text = request.query("cursor"), !text.isEmpty {
            guard let c = UInt64(text) else { return APIError.response(.badRequest, "cursor is not one this server gave") }
            cursor = c
        }
        let page: (tasks: [VideoTask], nextCursor: UInt64?)
        do { page = try registry.list(status: status, limit: limit, cursor: cursor) } catch { return .storeUnavailable(error) }
        var writer = JSONWriter(capacity: 256 + page.tasks.count * 512)
        writer.raw("{\"next_cursor\":")
        if let next = page.nextCursor { writer.string(String(next)) } else { writer.raw("null") }
        writer.raw(",\"tasks\":[")
        for (i, task) in page.tasks.enumerated() {
            if i > 0 { writer.raw(",") }
            writer.task(task, withEvents: false)
        }
        writer.raw("]}")
        return Response.json(.ok, writer.out)
    }

    /// `GET /v1/query/video_generation?task_id=ID`: MiniMax's query answer, from memory.
    public func minimaxQuery(_ request: Request) -> Response {
        guard let id = request.query("task_id"), !id.isEmpty else {
            return APIError.minimax(.badRequest, "task_id is required")
        }
        let found: VideoTask?
        do { found = try registry.task(id) } catch { return .storeUnavailable(error) }
        guard let task = found else {
            return APIError.minimax(.notFound, "no task \(id)")
        }
        var answer: [String: JSONValue] = ["task_id": .string(task.taskID), "status": .string(task.status.queryVocabulary)]
        if task.status == .success {
            answer["file_id"] = task.fileID.map { .string($0) } ?? .null
            answer["video_width"] = task.videoWidth.map { .number(Double($0)) } ?? .null
            answer["video_height"] = task.videoHeight.map { .number(Double($0)) } ?? .null
        }
        let base = task.status == .failed ? (task.error ?? BaseResp(1000, "failed")) : BaseResp.success
        answer["base_resp"] = .object(["status_code": .number(Double(base.status_code)), "status_msg": .string(base.status_msg)])
        return Response.json(.ok, TaskJSON.encode(JSONValue.object(answer)))
    }

    /// `GET /v1/files/retrieve?file_id=ID`: from memory while the link is fresh, else asked upstream.
    public func minimaxFile(_ request: Request) async -> Response {
        guard let fileID = request.query("file_id"), !fileID.isEmpty else {
            return APIError.minimax(.badRequest, "file_id is required")
        }
        let known: VideoTask?
        do { known = try registry.task(fileID: fileID) } catch { return .storeUnavailable(error) }
        if let task = known, let url = task.downloadURL,
           let expires = task.downloadURLExpiresAt, expires > Date().addingTimeInterval(60) {
            return TaskQueries.fileAnswer(fileID: fileID, url: url, task: task)
        }
        do {
            let answer = try await links.fetch(fileID: fileID, taskID: known?.taskID)
            return TaskQueries.fileAnswer(fileID: fileID, url: answer.file.download_url, task: nil, file: answer.file)
        } catch {
            // The upstream's "invalid params" for a file id is the client's unknown file, not a gateway fault.
            if case .upstream(let r) = error, r.status_code == 2013 {
                return APIError.response(.notFound, "no file \(fileID): \(r.status_msg)", code: "not_found", baseResp: r)
            }
            let status: Status = error == .timeout ? .gatewayTimeout : .badGateway
            return APIError.response(status, error.description, code: "upstream_error", baseResp: error.baseResp)
        }
    }

    static func fileAnswer(fileID: String, url: String, task: VideoTask?, file: MiniMaxClient.FileAnswer.File? = nil) -> Response {
        var f: [String: JSONValue] = [
            "file_id": Int(fileID).map { .number(Double($0)) } ?? .string(fileID),
            "filename": .string(file?.filename ?? "output.mp4"),
            "purpose": .string(file?.purpose ?? "video_generation"),
            "download_url": .string(url),
        ]
        if let bytes = file?.bytes { f["bytes"] = .number(Double(bytes)) }
        if let created = file?.created_at { f["created_at"] = .number(Double(created)) }
        let body: JSONValue = .object([
            "file": .object(f),
            "base_resp": .object(["status_code": .number(0), "status_msg": .string("success")]),
        ])
        return Response.json(.ok, TaskJSON.encode(body))
    }
}

/// Fetches a finished task's download URL (valid ~9 h) and its video size
/// from the upstream, in the background, and records them on the task.
public struct DownloadLinks: Sendable {
    /// How long the upstream says a download URL stays valid.
    public static let validity: TimeInterval = 9 * 3600

    let registry: any TaskStore
    let client: MiniMaxClient
    let logger: Logger

    public init(registry: any TaskStore, client: MiniMaxClient, logger: Logger) {
        self.registry = registry
        self.client = client
        self.logger = logger
    }

    /// Called when a task succeeded with a file id: fetch link and size without holding anyone up.
    public func taskSucceeded(taskID: String, fileID: String) {
        Task {
            _ = try? await fetch(fileID: fileID, taskID: taskID)
            if let answer = try? await client.query(taskID: taskID) {
                // Best effort, as the fetch itself: a size can be asked for again.
                _ = try? registry.update(taskID, notify: true) { task in
                    task.videoWidth = answer.video_width ?? task.videoWidth
                    task.videoHeight = answer.video_height ?? task.videoHeight
                }
            }
        }
    }

    /// Asks the upstream for the file and records its link on the task.
    public func fetch(fileID: String, taskID: String?) async throws(MiniMaxClient.Failure) -> MiniMaxClient.FileAnswer {
        do {
            let answer = try await client.retrieve(fileID: fileID)
            // Valid about 9 h from when it is issued, which is now.
            let expires = Date().addingTimeInterval(DownloadLinks.validity)
            if let taskID {
                _ = try? registry.update(taskID, notify: true) { task in
                    task.downloadURL = answer.file.download_url
                    task.downloadURLExpiresAt = expires
                }
            }
            return answer
        } catch {
            logger.warning("file \(fileID): \(error)")
            throw error
        }
    }
}
