import Foundation
import HailuoHook
import Testing

/// The state machine alone: pure, no clock, no server.
@Suite struct TaskTests {
    let t0 = Date(timeIntervalSince1970: 1_700_000_000)

    func task() -> VideoTask { VideoTask(taskID: "T1", source: .submitted, createdAt: t0) }
    func update(_ status: TaskStatus, file: String? = nil, base: BaseResp? = nil) -> StatusUpdate {
        StatusUpdate(taskID: "T1", status: status, fileID: file, baseResp: base)
    }

    @Test func forwardTransitionsApply() {
        var t = task()
        #expect(t.apply(update(.processing), at: t0, via: .callback) == .applied)
        #expect(t.status == .processing)
        #expect(t.apply(update(.success, file: "F1"), at: t0.addingTimeInterval(5), via: .callback) == .applied)
        #expect(t.status == .success)
        #expect(t.fileID == "F1")
        #expect(t.updatedAt == t0.addingTimeInterval(5))
        #expect(t.events.map(\.status) == [.processing, .success])
        #expect(t.events.allSatisfy { $0.applied && $0.reason == nil })
    }

    @Test func submittedCanEndDirectly() {
        var s = task()
        #expect(s.apply(update(.success, file: "F"), at: t0, via: .poll) == .applied)
        #expect(s.events.first?.via == .poll)
        var f = task()
        #expect(f.apply(update(.failed, base: BaseResp(1027, "flagged")), at: t0, via: .callback) == .applied)
        #expect(f.status == .failed)
        #expect(f.error == BaseResp(1027, "flagged"))
    }

    @Test func failedWithoutBaseRespStillHasAnError() {
        var t = task()
        t.apply(update(.failed), at: t0, via: .callback)
        #expect(t.error?.status_code == 1000)
    }

    @Test func duplicateIsKeptButChangesNothing() {
        var t = task()
        t.apply(update(.processing), at: t0, via: .callback)
        #expect(t.apply(update(.processing), at: t0.addingTimeInterval(1), via: .callback) == .ignored(.duplicate))
        #expect(t.status == .processing)
        #expect(t.updatedAt == t0)
        #expect(t.events.count == 2)
        #expect(t.events[1].applied == false)
        #expect(t.events[1].reason == .duplicate)
    }

    @Test func endedIsFinal() {
        for end in [TaskStatus.success, .failed] {
            var t = task()
            t.apply(update(end, file: "F"), at: t0, via: .callback)
            for later in TaskStatus.allCases where later != end {
                #expect(t.apply(update(later), at: t0, via: .callback) == .ignored(.afterEnd))
                #expect(t.status == end)
            }
            #expect(t.apply(update(end), at: t0, via: .callback) == .ignored(.duplicate))
            #expect(t.events.filter(\.applied).count == 1)
        }
    }

    @Test func outOfOrderProcessingAfterSuccessIsMarked() {
        var t = task()
        t.apply(update(.success, file: "F"), at: t0, via: .callback)
        #expect(t.apply(update(.processing), at: t0, via: .callback) == .ignored(.afterEnd))
        #expect(t.events.last?.reason == .afterEnd)
    }

    @Test func queueingAfterProcessingGoesNowhere() {
        var t = task()
        t.apply(update(.processing), at: t0, via: .poll)
        #expect(t.apply(update(.submitted), at: t0, via: .poll) == .ignored(.outOfOrder))
        #expect(t.status == .processing)
    }

    @Test func eventsAreBoundedAndTransitionsSurvive() {
        var t = task()
        t.apply(update(.processing), at: t0, via: .callback)
        for _ in 0..<200 { t.apply(update(.processing), at: t0, via: .callback) }
        t.apply(update(.success, file: "F"), at: t0, via: .callback)
        #expect(t.events.count == VideoTask.maxEvents)
        #expect(t.events.filter(\.applied).map(\.status) == [.processing, .success])
    }

    @Test(arguments: [
        ("processing", TaskStatus.processing), ("Processing", .processing), ("PROCESSING", .processing),
        ("success", .success), ("Success", .success), ("failed", .failed), ("Fail", .failed),
        ("Queueing", .submitted), ("Preparing", .submitted),
    ])
    func statusVocabulary(text: String, status: TaskStatus) {
        #expect(TaskStatus(upstream: text) == status)
    }

    @Test func unknownStatusIsRefused() {
        #expect(TaskStatus(upstream: "done") == nil)
        #expect(TaskStatus(upstream: "") == nil)
    }

    @Test func queryVocabulary() {
        #expect(TaskStatus.allCases.map(\.queryVocabulary) == ["Queueing", "Processing", "Success", "Fail"])
    }
}
