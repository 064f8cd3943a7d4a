import Foundation
import HailuoHook
import Testing

@Suite struct JournalTests {
    func temporaryPath() -> String {
        NSTemporaryDirectory() + "hailuo-journal-\(UUID().uuidString).log"
    }

    let t0 = Date(timeIntervalSince1970: 1_700_000_000)

    func record(_ i: Int) -> JournalRecord {
        .apply(update: StatusUpdate(taskID: "J\(i)", status: .processing), via: .callback, createIfMissing: true, at: t0)
    }

    func ids(_ path: String) throws -> (ids: [String], report: Journal.ReplayReport) {
        var ids: [String] = []
        let report = try Journal(path: path).replay { record in
            if case .apply(let update, _, _, _) = record { ids.append(update.taskID) }
        }
        return (ids, report)
    }

    @Test func roundTrip() throws {
        let path = temporaryPath()
        let journal = try Journal(path: path)
        for i in 0..<5 { try journal.append(Journal.line(record(i))) }
        let (ids, report) = try ids(path)
        #expect(ids == ["J0", "J1", "J2", "J3", "J4"])
        #expect(report == Journal.ReplayReport(records: 5, cutBytes: 0, skippedLines: []))
    }

    @Test func tornLastRecordIsCutAndTheRestKept() throws {
        let path = temporaryPath()
        let journal = try Journal(path: path)
        for i in 0..<3 { try journal.append(Journal.line(record(i))) }
        let torn = Journal.line(record(3))
        try journal.append(Array(torn.prefix(torn.count / 2)))  // a crash mid-write
        let sizeBefore = journal.size
        let (ids, report) = try ids(path)
        #expect(ids == ["J0", "J1", "J2"])
        #expect(report.cutBytes == torn.count / 2)
        #expect(report.skippedLines.isEmpty)
        // The file was cut: appending after it gives a clean journal.
        let after = try Journal(path: path)
        #expect(after.size == sizeBefore - torn.count / 2)
        try after.append(Journal.line(record(9)))
        #expect(try self.ids(path).ids == ["J0", "J1", "J2", "J9"])
    }

    @Test func garbageInTheMiddleIsSkippedAndReported() throws {
        let path = temporaryPath()
        let journal = try Journal(path: path)
        try journal.append(Journal.line(record(0)))
        try journal.append(Array("this is not a record\n".utf8))
        var flipped = Journal.line(record(1))
        flipped[20] ^= 0x01  // one bit: the CRC no longer matches
        try journal.append(flipped)
        try journal.append(Journal.line(record(2)))
        let (ids, report) = try ids(path)
        #expect(ids == ["J0", "J2"])
        #expect(report.skippedLines == [2, 3])
        #expect(report.cutBytes == 0)
    }

    @Test func corruptTailAfterGoodRecordsIsCut() throws {
        let path = temporaryPath()
        let journal = try Journal(path: path)
        try journal.append(Journal.line(record(0)))
        try journal.append(Array("garbage\nmore garbage\n".utf8))
        let (ids, report) = try ids(path)
        #expect(ids == ["J0"])
        #expect(report.cutBytes == "garbage\nmore garbage\n".utf8.count)
    }

    @Test func registryRestartKeepsTasksEventsAndTokens() throws {
        let path = temporaryPath()
        let token = CallbackToken.generate()
        do {
            let registry = TaskRegistry(journal: try Journal(path: path))
            try registry.insert(VideoTask(taskID: "R1", source: .submitted, notifyURL: nil, createdAt: t0), token: token)
            _ = registry.recordCallback(token: token.value, update: StatusUpdate(taskID: "R1", status: .processing), at: t0)
            _ = registry.recordCallback(token: token.value, update: StatusUpdate(taskID: "R1", status: .processing), at: t0)
            _ = try registry.apply(StatusUpdate(taskID: "X1", status: .success, fileID: "F"), via: .callback, createIfMissing: true, at: t0)
            #expect(registry.recordCallback(token: "nope", update: StatusUpdate(taskID: "R1", status: .success)) == .unknownToken)
        }
        let journal = try Journal(path: path)
        let restored = TaskRegistry(journal: journal)
        let report = try journal.replay { restored.restore($0) }
        #expect(report.records == 4)
        let r1 = try #require(restored.task("R1"))
        #expect(r1.status == .processing)
        #expect(r1.events.map(\.applied) == [true, false])
        #expect(restored.task("X1")?.status == .success)
        #expect(restored.task(fileID: "F")?.taskID == "X1")
        // The token still leads to its task.
        #expect(restored.recordCallback(token: token.value, update: StatusUpdate(taskID: "R1", status: .success)) == .recorded(.applied))
        // Compaction keeps the same state in fewer records.
        try restored.compactJournal { [] }
        let again = TaskRegistry(journal: try Journal(path: path))
        let compacted = try Journal(path: path).replay { again.restore($0) }
        #expect(compacted.records == 2)
        #expect(again.task("R1")?.status == .success)
        #expect(again.task("R1")?.events.count == 3)
    }

    @Test func compactionKeepsChangesMadeWhileItWrites() async throws {
        let path = temporaryPath()
        let registry = TaskRegistry(journal: try Journal(path: path))
        for i in 0..<2000 {
            _ = try registry.apply(StatusUpdate(taskID: "C\(i)", status: .processing), via: .callback, createIfMissing: true)
        }
        let writer = Task.detached {
            for i in 0..<2000 {
                _ = try registry.apply(StatusUpdate(taskID: "C\(i)", status: .success, fileID: "F\(i)"), via: .callback, createIfMissing: false)
            }
        }
        for _ in 0..<5 { try registry.compactJournal { [] } }
        try await writer.value
        let restored = TaskRegistry()
        _ = try Journal(path: path).replay { restored.restore($0) }
        #expect(restored.count == 2000)
        let notDone = (0..<2000).filter { restored.task("C\($0)")?.status != .success }
        #expect(notDone.isEmpty, "\(notDone.count) lost")
    }

    @Test func handWrittenCallbackRecordReadsBackLikeCodable() throws {
        let cases = [
            StatusUpdate(taskID: "T\"1\\", status: .success, fileID: "F\u{1}", baseResp: BaseResp(1027, "flagged \"x\"")),
            StatusUpdate(taskID: "书", status: .processing),
        ]
        for update in cases {
            let at = Date(timeIntervalSince1970: 1_700_000_000.123456)
            let line = Journal.line(.callback(token: "tok\n", update: update, at: at))
            let path = temporaryPath()
            let journal = try Journal(path: path)
            try journal.append(line)
            var decoded: JournalRecord?
            _ = try journal.replay { decoded = $0 }
            guard case .callback(let token, let back, let when)? = decoded else { Issue.record("not read back"); continue }
            #expect(token == "tok\n")
            #expect(back == update)
            #expect(abs(when.timeIntervalSince(at)) < 1e-6)
        }
    }
}
