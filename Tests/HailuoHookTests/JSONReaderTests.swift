import Foundation
import HailuoHook
import Testing

/// The in-place JSON readers (a callback's body, the journal's task and callback records)
/// against JSONDecoder: the same answer whenever they answer, and they do answer for what
/// the upstream and the journal really write.
@Suite struct JSONReaderTests {
    static let bodies: [String] = [
        #"{"task_id":"T1","status":"success","file_id":"F1","base_resp":{"status_code":0,"status_msg":"success"}}"#,
        #"{"challenge":"c-123"}"#,
        #"{"challenge":null,"task_id":106916112212032,"status":"processing"}"#,
        #" { "task_id" : "T\"2\\" , "status" : "failed", "base_resp" : {"status_code":1027,"status_msg":"flagged \u4e66 \ud83d\ude00","extra":[1,2.5e3,{"a":null}]} } "#,
        #"{"task_id":"书","status":"success","file_id":-0,"unknown":{"deep":[true,false,null,"x"]}}"#,
        #"{"task_id":"T3","status":"success","file_id":null,"base_resp":null}"#,
        #"{}"#,
    ]

    /// Inputs it must leave to JSONDecoder (which reads or refuses them in its own words).
    static let leftAlone: [String] = [
        #"{"task_id":"T1","task_id":"T2","status":"success"}"#,      // a repeated key
        #"{"task\u005fid":"T1","status":"success"}"#,               // an escaped key
        #"{"task_id":1.0,"status":"success"}"#,                      // not a plain integer
        #"{"task_id":12345678901234567890,"status":"success"}"#,     // past 18 digits
        #"{"task_id":"\ud800","status":"success"}"#,                 // a lone surrogate
        #"{"task_id":"T1","status":"success"} x"#,                   // trailing bytes
        #"{"task_id":"T1","status":"success","#,                     // cut short
        #"{"base_resp":{"status_code":0}}"#,                         // a required key missing
        #"{"status":5}"#,                                            // wrong type
        #"[1,2]"#, #""#, #"null"#, "{\"task_id\":\"a\u{1}b\"}",    // not an object / a raw control
    ]

    @Test func callbackBodiesReadAsJSONDecoderReadsThem() {
        for body in Self.bodies {
            #expect(JSONReaderCheck.readsCallbackBody(Array(body.utf8)), "not read: \(body)")
            #expect(JSONReaderCheck.callbackBody(Array(body.utf8)) == nil, "\(body)")
        }
        for body in Self.leftAlone {
            #expect(!JSONReaderCheck.readsCallbackBody(Array(body.utf8)), "read, should be left alone: \(body)")
        }
        var invalidUTF8 = Array(#"{"task_id":""#.utf8) + [0xC3, 0x28] + Array(#"","status":"success"}"#.utf8)
        #expect(!JSONReaderCheck.readsCallbackBody(invalidUTF8))
        invalidUTF8 = Array(#"{"task_id":"é","status":"success"}"#.utf8)
        #expect(JSONReaderCheck.readsCallbackBody(invalidUTF8))
    }

    static func tasks() -> [(VideoTask, String?)] {
        let t0 = Date(timeIntervalSince1970: 1_764_082_800.123456)
        var plain = VideoTask(taskID: "T1", source: .submitted,
                              request: ["model": .string("MiniMax-Hailuo-02"), "prompt": .string("A man [Pedestal up], \"quoted\" \\ 书 😀\n\t\u{1}"),
                                        "duration": .number(6), "ratio": .number(1.5), "big": .number(1e300), "neg": .number(-42),
                                        "flags": .array([.bool(true), .null, .object(["k": .string("v")])])],
                              createdAt: t0)
        plain.apply(StatusUpdate(taskID: "T1", status: .processing), at: t0.addingTimeInterval(1), via: .callback)
        plain.apply(StatusUpdate(taskID: "T1", status: .processing), at: t0.addingTimeInterval(2), via: .poll)
        plain.apply(StatusUpdate(taskID: "T1", status: .success, fileID: "F1"), at: t0.addingTimeInterval(3), via: .callback)
        plain.apply(StatusUpdate(taskID: "T1", status: .failed), at: t0.addingTimeInterval(4), via: .callback)
        plain.downloadURL = "https://example.com/v.mp4?x=1&y=/2"
        plain.downloadURLExpiresAt = t0.addingTimeInterval(3600)
        plain.videoWidth = 1920
        plain.videoHeight = 1080
        var relayed = VideoTask(taskID: "E2", source: .external, notifyURL: "http://127.0.0.1:9/hook", createdAt: Date(timeIntervalSince1970: 0))
        relayed.apply(StatusUpdate(taskID: "E2", status: .failed, baseResp: BaseResp(1026, "sensitive")), at: Date(timeIntervalSince1970: 5), via: .poll)
        var relay = RelayStatus()
        relay.attempts = 3; relay.failed = 1; relay.last_status = 502; relay.last_error = "bad gateway"; relay.last_attempt_at = Date(timeIntervalSince1970: 6)
        relayed.relay = relay
        var fresh = VideoTask(taskID: "", source: .submitted, createdAt: Date(timeIntervalSince1970: 1e-7))
        fresh.relay = RelayStatus()
        return [(plain, "tok1"), (relayed, nil), (fresh, "")]
    }

    @Test func journalRecordsWrittenByHandReadBackTheSameEveryWay() throws {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        var records = Self.tasks().map { JournalRecord.task($0.0, token: $0.1) }
        records.append(.callback(token: "tok\n", update: StatusUpdate(taskID: "T\"1", status: .success, fileID: "F\u{1}", baseResp: BaseResp(0, "ok 书")),
                                 at: Date(timeIntervalSince1970: 1_764_082_800.5)))
        records.append(.callback(token: "t", update: StatusUpdate(taskID: "T2", status: .processing), at: Date(timeIntervalSince1970: 1)))
        for record in records {
            let line = Journal.line(record)
            let json = Array(line[9..<(line.count - 1)])
            // The hand-written line is what JSONDecoder reads back as the record…
            #expect(try decoder.decode(JournalRecord.self, from: Data(json)) == record)
            // …and what the reader reads, taking it itself.
            #expect(JSONReaderCheck.readsJournalRecord(json))
            #expect(JSONReaderCheck.journalRecord(json) == nil)
            // A journal written by JSONEncoder (before the hand-written lines) reads the same.
            let encoded = Array(try encoder.encode(record))
            #expect(JSONReaderCheck.readsJournalRecord(encoded))
            #expect(JSONReaderCheck.journalRecord(encoded) == nil)
        }
    }

    /// A task record's request is taken as it stands only when it is already the canonical
    /// text; every other spelling is parsed and rewritten. Either way the task equals what
    /// JSONDecoder makes of the record.
    @Test func requestTextIsKeptOnlyWhenCanonical() {
        let requests = [
            #"{"a":1,"b":"x","c":[true,false,null,{"d":-5}],"e":{}}"#,        // canonical
            #"{"b":1,"a":2}"#, #"{"a":1, "b":2}"#, #"{"a":-0}"#, #"{"a":1.5}"#, #"{"a":1e3}"#,
            #"{"a":1234567890123456}"#, #"{"a":"x\ny"}"#, #"{"a":"\u00e9"}"#, #"{"é":1,"z":2}"#,
            #"{"z":1,"é":2}"#, #"{"a":"书"}"#, #"{"a":[1,[2,[3]]]}"#, #"{"a":0,"a":1}"#, #"{"aa":1,"a":2}"#, #"{"a":1,"aa":2}"#,
        ]
        for request in requests {
            let record = #"{"task":{"_0":{"taskID":"T","status":"submitted","source":"submitted","request":"# + request
                + #","createdAt":1,"updatedAt":1,"events":[]},"token":"t"}}"#
            #expect(JSONReaderCheck.journalRecord(Array(record.utf8)) == nil, "\(request)")
        }
        let canonical = #"{"task":{"_0":{"taskID":"T","status":"submitted","source":"submitted","request":{"a":1,"b":"x"},"createdAt":1,"updatedAt":1,"events":[]}}}"#
        #expect(JSONReaderCheck.readsJournalRecord(Array(canonical.utf8)))
    }
}
