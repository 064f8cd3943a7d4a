import Foundation
import Glibc

/// The task JSON written by hand, byte for byte what `JSONEncoder` (sorted keys,
/// unescaped slashes, RFC 3339 dates) makes of `TaskJSON` — a test holds the two
/// equal over many tasks — at a fraction of its cost: the encoder took about
/// half of a `GET /v1/tasks/{id}` and of every change's event (perf, bench/README.md).
struct JSONWriter {
    var out: [UInt8] = []

    init(capacity: Int = 512) { out.reserveCapacity(capacity) }

    mutating func raw(_ s: StaticString) {
        s.withUTF8Buffer { out.append(contentsOf: $0) }
    }

    /// A string as JSONEncoder writes it: `"` `\` and controls escaped (`\b \f \n \r \t`, else `\u00XX`), nothing else.
    mutating func string(_ s: String) {
        out.append(0x22)
        var s = s
        s.withUTF8 { bytes in
            var clean = 0
            for (i, c) in bytes.enumerated() where c < 0x20 || c == 0x22 || c == 0x5C {
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[clean..<i]))
                clean = i + 1
                switch c {
                case 0x22: out.append(contentsOf: [0x5C, 0x22])
                case 0x5C: out.append(contentsOf: [0x5C, 0x5C])
                case 0x08: out.append(contentsOf: [0x5C, 0x62])
                case 0x0C: out.append(contentsOf: [0x5C, 0x66])
                case 0x0A: out.append(contentsOf: [0x5C, 0x6E])
                case 0x0D: out.append(contentsOf: [0x5C, 0x72])
                case 0x09: out.append(contentsOf: [0x5C, 0x74])
                default:
                    let hex = Array("0123456789abcdef".utf8)
                    out.append(contentsOf: [0x5C, 0x75, 0x30, 0x30, hex[Int(c >> 4)], hex[Int(c & 0xF)]])
                }
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[clean...]))
        }
        out.append(0x22)
    }

    mutating func int(_ n: Int) { out.append(contentsOf: String(n).utf8) }

    /// RFC 3339 UTC, whole seconds (as `TaskJSON.rfc3339`).
    mutating func date(_ date: Date) {
        var t = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ n: Int32) -> [UInt8] { [UInt8(48 + n / 10), UInt8(48 + n % 10)] }
        let year = Int(parts.tm_year) + 1900
        guard (0...9999).contains(year) else { string(TaskJSON.rfc3339(date)); return }
        out.append(0x22)
        out.append(contentsOf: [UInt8(48 + year / 1000), UInt8(48 + year / 100 % 10), UInt8(48 + year / 10 % 10), UInt8(48 + year % 10), 0x2D])
        out.append(contentsOf: two(parts.tm_mon + 1)); out.append(0x2D)
        out.append(contentsOf: two(parts.tm_mday)); out.append(0x54)
        out.append(contentsOf: two(parts.tm_hour)); out.append(0x3A)
        out.append(contentsOf: two(parts.tm_min)); out.append(0x3A)
        out.append(contentsOf: two(parts.tm_sec)); out.append(contentsOf: [0x5A, 0x22])
    }

    mutating func value(_ v: JSONValue) {
        switch v {
        case .null: raw("null")
        case .bool(let b): if b { raw("true") } else { raw("false") }
        case .number(let n):
            if n.rounded() == n && abs(n) < 1e15 { int(Int(n)) } else { out.append(contentsOf: TaskJSON.encode(v)) }
        case .string(let s): string(s)
        case .array(let a):
            out.append(0x5B)
            for (i, item) in a.enumerated() {
                if i > 0 { out.append(0x2C) }
                value(item)
            }
            out.append(0x5D)
        case .object(let o):
            out.append(0x7B)
            for (i, key) in o.keys.sorted().enumerated() {
                if i > 0 { out.append(0x2C) }
                string(key)
                out.append(0x3A)
                value(o[key]!)
            }
            out.append(0x7D)
        }
    }

    mutating func baseResp(_ b: BaseResp) {
        raw("{\"status_code\":"); int(b.status_code)
        raw(",\"status_msg\":"); string(b.status_msg)
        out.append(0x7D)
    }

    /// `TaskJSON(task:withEvents:)`, keys in sorted order.
    mutating func task(_ task: VideoTask, withEvents: Bool) {
        raw("{\"created_at\":"); date(task.createdAt)
        raw(",\"download_url\":"); optional(task.downloadURL) { $0.string($1) }
        raw(",\"download_url_expires_at\":"); optional(task.downloadURLExpiresAt) { $0.date($1) }
        raw(",\"error\":"); optional(task.error) { $0.baseResp($1) }
        if withEvents {
            raw(",\"events\":[")
            for (i, event) in task.events.enumerated() {
                if i > 0 { out.append(0x2C) }
                raw("{\"applied\":"); if event.applied { raw("true") } else { raw("false") }
                raw(",\"at\":"); date(event.at)
                if let reason = event.reason { raw(",\"reason\":"); string(reason.rawValue) }
                raw(",\"status\":"); string(event.status.rawValue)
                raw(",\"via\":"); string(event.via.rawValue)
                out.append(0x7D)
            }
            out.append(0x5D)
        }
        raw(",\"file_id\":"); optional(task.fileID) { $0.string($1) }
        raw(",\"notify_url\":"); optional(task.notifyURL) { $0.string($1) }
        if task.notifyURL != nil {
            let relay = task.relay ?? RelayStatus()
            raw(",\"relay\":{\"attempts\":"); int(relay.attempts)
            raw(",\"delivered\":"); int(relay.delivered)
            raw(",\"failed\":"); int(relay.failed)
            if let at = relay.last_attempt_at { raw(",\"last_attempt_at\":"); date(at) }
            if let error = relay.last_error { raw(",\"last_error\":"); string(error) }
            if let status = relay.last_status { raw(",\"last_status\":"); int(status) }
            out.append(0x7D)
        }
        raw(",\"request\":"); out.append(contentsOf: task.requestJSON)
        raw(",\"source\":"); string(task.source.rawValue)
        raw(",\"status\":"); string(task.status.rawValue)
        raw(",\"task_id\":"); string(task.taskID)
        raw(",\"updated_at\":"); date(task.updatedAt)
        raw(",\"video_height\":"); optional(task.videoHeight) { $0.int($1) }
        raw(",\"video_width\":"); optional(task.videoWidth) { $0.int($1) }
        out.append(0x7D)
    }

    private mutating func optional<T>(_ value: T?, _ write: (inout JSONWriter, T) -> Void) {
        if let value { write(&self, value) } else { raw("null") }
    }

    // MARK: The journal's records, in the layout the synthesized `Codable` of `JournalRecord`
    // reads (camelCase keys, dates as seconds); `JournalTests` decode them with JSONDecoder.

    /// A date as seconds since 1970, the shortest text that reads back to the same Double.
    mutating func seconds(_ date: Date) {
        out.append(contentsOf: date.timeIntervalSince1970.description.utf8)
    }

    mutating func journalUpdate(_ update: StatusUpdate) {
        raw("{\"taskID\":"); string(update.taskID)
        raw(",\"status\":"); string(update.status.rawValue)
        if let fileID = update.fileID { raw(",\"fileID\":"); string(fileID) }
        if let base = update.baseResp { raw(",\"baseResp\":"); baseResp(base) }
        out.append(0x7D)
    }

    /// `JournalRecord.callback`.
    mutating func journalCallback(token: String, update: StatusUpdate, at: Date) {
        raw("{\"callback\":{\"token\":"); string(token)
        raw(",\"update\":"); journalUpdate(update)
        raw(",\"at\":"); seconds(at)
        raw("}}")
    }

    /// `JournalRecord.task`.
    mutating func journalTask(_ task: VideoTask, token: String?) {
        raw("{\"task\":{\"_0\":")
        videoTask(task)
        if let token { raw(",\"token\":"); string(token) }
        raw("}}")
    }

    /// A `VideoTask` as its `Codable` conformance writes it (the journal; a PostgreSQL row).
    mutating func videoTask(_ task: VideoTask) {
        raw("{\"taskID\":"); string(task.taskID)
        raw(",\"status\":"); string(task.status.rawValue)
        raw(",\"source\":"); string(task.source.rawValue)
        raw(",\"request\":"); out.append(contentsOf: task.requestJSON)
        if let url = task.notifyURL { raw(",\"notifyURL\":"); string(url) }
        if let id = task.fileID { raw(",\"fileID\":"); string(id) }
        if let url = task.downloadURL { raw(",\"downloadURL\":"); string(url) }
        if let at = task.downloadURLExpiresAt { raw(",\"downloadURLExpiresAt\":"); seconds(at) }
        if let width = task.videoWidth { raw(",\"videoWidth\":"); int(width) }
        if let height = task.videoHeight { raw(",\"videoHeight\":"); int(height) }
        if let error = task.error { raw(",\"error\":"); baseResp(error) }
        raw(",\"createdAt\":"); seconds(task.createdAt)
        raw(",\"updatedAt\":"); seconds(task.updatedAt)
        raw(",\"events\":[")
        for (i, event) in task.events.enumerated() {
            if i > 0 { out.append(0x2C) }
            raw("{\"status\":"); string(event.status.rawValue)
            raw(",\"at\":"); seconds(event.at)
            raw(",\"via\":"); string(event.via.rawValue)
            raw(",\"applied\":"); if event.applied { raw("true") } else { raw("false") }
            if let reason = event.reason { raw(",\"reason\":"); string(reason.rawValue) }
            out.append(0x7D)
        }
        out.append(0x5D)
        if let relay = task.relay {
            raw(",\"relay\":{\"attempts\":"); int(relay.attempts)
            raw(",\"delivered\":"); int(relay.delivered)
            raw(",\"failed\":"); int(relay.failed)
            if let status = relay.last_status { raw(",\"last_status\":"); int(status) }
            if let error = relay.last_error { raw(",\"last_error\":"); string(error) }
            if let at = relay.last_attempt_at { raw(",\"last_attempt_at\":"); seconds(at) }
            out.append(0x7D)
        }
        out.append(0x7D)
    }

    /// A value's JSON text as `value` writes it, in an array of its own size (kept on every
    /// task: the writer's doubling left 512 bytes of room around a 285-byte request).
    static func json(_ v: JSONValue) -> [UInt8] {
        var writer = JSONWriter(capacity: 256)
        writer.value(v)
        return writer.out.withUnsafeBufferPointer { Array($0) }
    }

    static func task(_ task: VideoTask, withEvents: Bool) -> [UInt8] {
        var writer = JSONWriter(capacity: withEvents ? 1024 : 512)
        writer.task(task, withEvents: withEvents)
        return writer.out
    }
}
