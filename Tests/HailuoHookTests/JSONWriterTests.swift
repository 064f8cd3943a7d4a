import Foundation
@testable import HailuoHook
import Testing

/// The hand-written task JSON must be byte for byte what JSONEncoder makes of `TaskJSON`.
@Suite struct JSONWriterTests {
    static let awkward = ["", "plain", "quote \" backslash \\ slash / end", "tab\tnew\nline\rcr", "\u{0}\u{1}\u{8}\u{b}\u{c}\u{1f}\u{7f}",
                          "汉字 and emoji 🎬 and \u{2028}\u{2029}", "é (e + combining)", "<script>&amp;</script>"]

    static func tasks() -> [VideoTask] {
        var tasks: [VideoTask] = []
        let base = Date(timeIntervalSince1970: 1_764_000_000.75)
        for (i, text) in awkward.enumerated() {
            var task = VideoTask(taskID: "T\(i)-\(text)", source: i % 2 == 0 ? .submitted : .external,
                                 request: ["prompt": .string(text), "duration": .number(6), "ratio": .number(0.5), "big": .number(1e20),
                                           "flags": .array([.bool(true), .bool(false), .null]), "nested": .object(["z": .string(text), "a": .number(-3)])],
                                 notifyURL: i % 3 == 0 ? "https://example.com/hook?x=\(i)" : nil, createdAt: base.addingTimeInterval(Double(i) * 86_400.3))
            task.apply(StatusUpdate(taskID: task.taskID, status: .processing, baseResp: BaseResp(0, "success")), at: base.addingTimeInterval(10), via: .callback)
            task.apply(StatusUpdate(taskID: task.taskID, status: .processing), at: base.addingTimeInterval(11), via: .poll)
            if i % 2 == 0 {
                task.apply(StatusUpdate(taskID: task.taskID, status: .success, fileID: "F\(i)\(text)"), at: base.addingTimeInterval(12), via: .callback)
                task.downloadURL = "https://cdn.example.com/\(text).mp4"
                task.downloadURLExpiresAt = base.addingTimeInterval(3600)
                task.videoWidth = 1920
                task.videoHeight = 1080
            } else {
                task.apply(StatusUpdate(taskID: task.taskID, status: .failed, baseResp: BaseResp(1027, "flagged: \(text)")), at: base.addingTimeInterval(12), via: .callback)
            }
            task.apply(StatusUpdate(taskID: task.taskID, status: .processing), at: base.addingTimeInterval(13), via: .callback)
            if i % 3 == 0 && i > 0 {
                var relay = RelayStatus()
                relay.attempts = 3; relay.delivered = 1; relay.failed = 1
                relay.last_status = 502; relay.last_error = "HTTP \(text)"; relay.last_attempt_at = base
                task.relay = relay
            }
            tasks.append(task)
        }
        tasks.append(VideoTask(taskID: "bare", source: .submitted, createdAt: Date(timeIntervalSince1970: 0)))
        return tasks
    }

    @Test func matchesJSONEncoderByteForByte() {
        for task in Self.tasks() {
            for withEvents in [true, false] {
                let reference: [UInt8] = TaskJSON.encode(TaskJSON(task: task, withEvents: withEvents))
                let written = JSONWriter.task(task, withEvents: withEvents)
                #expect(written == reference, "\(String(decoding: written, as: UTF8.self))\n!=\n\(String(decoding: reference, as: UTF8.self))")
            }
        }
    }
}
