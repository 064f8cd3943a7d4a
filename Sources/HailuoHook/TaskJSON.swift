import Foundation
import HTTPServer

/// A task as the API shows it (API.md "Tasks"): every field present, null when unknown.
/// Served by `JSONWriter` (hand-written, far cheaper); this Encodable form is the
/// reference a test holds the writer equal to, byte for byte.
struct TaskJSON: Encodable {
    let task: VideoTask
    let withEvents: Bool

    enum Keys: String, CodingKey {
        case task_id, status, source, request, notify_url, file_id, download_url, download_url_expires_at
        case video_width, video_height, error, created_at, updated_at, events, relay
    }

    struct EventJSON: Encodable {
        let event: TaskEvent
        enum Keys: String, CodingKey { case status, at, via, applied, reason }
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: Keys.self)
            try c.encode(event.status, forKey: .status)
            try c.encode(event.at, forKey: .at)
            try c.encode(event.via, forKey: .via)
            try c.encode(event.applied, forKey: .applied)
            if let reason = event.reason { try c.encode(reason, forKey: .reason) }
        }
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(task.taskID, forKey: .task_id)
        try c.encode(task.status, forKey: .status)
        try c.encode(task.source, forKey: .source)
        try c.encode(task.request, forKey: .request)
        try c.encode(task.notifyURL, forKey: .notify_url)
        try c.encode(task.fileID, forKey: .file_id)
        try c.encode(task.downloadURL, forKey: .download_url)
        try c.encode(task.downloadURLExpiresAt, forKey: .download_url_expires_at)
        try c.encode(task.videoWidth, forKey: .video_width)
        try c.encode(task.videoHeight, forKey: .video_height)
        try c.encode(task.error, forKey: .error)
        try c.encode(task.createdAt, forKey: .created_at)
        try c.encode(task.updatedAt, forKey: .updated_at)
        if withEvents { try c.encode(task.events.map(EventJSON.init), forKey: .events) }
        if task.notifyURL != nil { try c.encode(task.relay ?? RelayStatus(), forKey: .relay) }
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(rfc3339(date))
        }
        e.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        return e
    }()

    /// RFC 3339 UTC, whole seconds: `2026-11-24T21:10:00Z`.
    static func rfc3339(_ date: Date) -> String {
        date.formatted(.iso8601)
    }

    static func encode(_ value: some Encodable) -> [UInt8] {
        // Encoding these plain values cannot fail.
        Array((try? encoder.encode(value)) ?? Data("{}".utf8))
    }
}

/// Error answers: API.md's `{"error": {"code", "message"}}`, with `base_resp`
/// beside it on the MiniMax-compatible routes.
enum APIError {
    static func response(_ status: Status, _ message: String, code: String? = nil, baseResp: BaseResp? = nil) -> Response {
        guard let baseResp else { return Response.error(status, message, code: code) }
        let body: [String: JSONValue] = [
            "error": .object(["code": .string(code ?? status.errorCode), "message": .string(message)]),
            "base_resp": .object(["status_code": .number(Double(baseResp.status_code)), "status_msg": .string(baseResp.status_msg)]),
        ]
        return Response.json(status, TaskJSON.encode(JSONValue.object(body)))
    }

    /// A refusal of the client's request on a MiniMax-compatible route: `base_resp` 2013 (1004 for 401).
    static func minimax(_ status: Status, _ message: String, code: String? = nil) -> Response {
        let base = status.code == 401 ? BaseResp(1004, message) : (status.code >= 500 ? BaseResp(1000, message) : BaseResp(2013, message))
        return response(status, message, code: code, baseResp: base)
    }
}
