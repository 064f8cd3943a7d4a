import Foundation
import HailuoHook
import Testing

@Suite struct TaskRegistryTests {
    let t0 = Date(timeIntervalSince1970: 1_700_000_000)

    func task(_ id: String, at: Date? = nil) -> VideoTask {
        VideoTask(taskID: id, source: .submitted, createdAt: at ?? t0)
    }

    @Test func callbackByTokenAndMismatch() throws {
        let registry = TaskRegistry()
        let token = CallbackToken.generate()
        try registry.insert(task("A"), token: token)
        #expect(registry.recordCallback(token: token.value, update: StatusUpdate(taskID: "A", status: .processing)) == .recorded(.applied))
        #expect(registry.recordCallback(token: token.value, update: StatusUpdate(taskID: "B", status: .success)) == .taskMismatch(expected: "A"))
        #expect(registry.recordCallback(token: "nope", update: StatusUpdate(taskID: "A", status: .success)) == .unknownToken)
        #expect(registry.task("A")?.status == .processing)
        #expect(registry.task("A")?.events.count == 1)
    }

    @Test func callbackBeforeTheSubmitAnswerIsKeptThenApplied() throws {
        let registry = TaskRegistry()
        let token = CallbackToken.generate()
        registry.reserve(token: token)
        #expect(registry.recordCallback(token: token.value, update: StatusUpdate(taskID: "A", status: .processing)) == .keptUntilSubmitted)
        #expect(registry.task("A") == nil)
        let stored = try registry.insert(task("A"), token: token)
        #expect(stored.status == .processing)
        #expect(registry.task("A")?.events.first?.applied == true)
    }

    @Test func releasedTokenIsUnknown() throws {
        let registry = TaskRegistry()
        let token = CallbackToken.generate()
        registry.reserve(token: token)
        registry.release(token: token)
        #expect(registry.recordCallback(token: token.value, update: StatusUpdate(taskID: "A", status: .processing)) == .unknownToken)
    }

    @Test func tokensAreFreshAndLongEnough() throws {
        let tokens = (0..<1000).map { _ in CallbackToken.generate().value }
        #expect(Set(tokens).count == 1000)
        #expect(tokens.allSatisfy { $0.count == 32 && $0.allSatisfy(\.isHexDigit) })
        #expect(CallbackToken.constantTimeEquals("abc", "abc"))
        #expect(!CallbackToken.constantTimeEquals("abc", "abd"))
        #expect(!CallbackToken.constantTimeEquals("abc", "abcd"))
    }

    @Test func listIsNewestFirstWithStableCursor() throws {
        let registry = TaskRegistry()
        for i in 0..<10 { try registry.insert(task("T\(i)"), token: nil) }
        let first = registry.list(limit: 4)
        #expect(first.tasks.map(\.taskID) == ["T9", "T8", "T7", "T6"])
        // New tasks arriving between pages do not shift the next page.
        try registry.insert(task("T10"), token: nil)
        let second = registry.list(limit: 4, cursor: first.nextCursor)
        #expect(second.tasks.map(\.taskID) == ["T5", "T4", "T3", "T2"])
        let third = registry.list(limit: 4, cursor: second.nextCursor)
        #expect(third.tasks.map(\.taskID) == ["T1", "T0"])
        #expect(third.nextCursor == nil)
    }

    @Test func listFiltersByStatus() throws {
        let registry = TaskRegistry()
        for i in 0..<6 {
            try registry.insert(task("T\(i)"), token: nil)
            if i % 2 == 0 { _ = try registry.apply(StatusUpdate(taskID: "T\(i)", status: .success, fileID: "F\(i)"), via: .poll, createIfMissing: false) }
        }
        let page = registry.list(status: .success, limit: 2)
        #expect(page.tasks.map(\.taskID) == ["T4", "T2"])
        #expect(registry.list(status: .success, limit: 2, cursor: page.nextCursor).tasks.map(\.taskID) == ["T0"])
        #expect(registry.task(fileID: "F2")?.taskID == "T2")
    }

    @Test func boundedByCountDroppingEndedFirst() throws {
        let registry = TaskRegistry(maxTasks: 3)
        try registry.insert(task("old-running"), token: nil)
        try registry.insert(task("old-ended"), token: nil)
        _ = try registry.apply(StatusUpdate(taskID: "old-ended", status: .failed), via: .callback, createIfMissing: false)
        try registry.insert(task("new1"), token: nil)
        try registry.insert(task("new2"), token: nil)
        #expect(registry.count == 3)
        #expect(registry.task("old-ended") == nil)
        #expect(registry.task("old-running") != nil)
    }

    @Test func endedTasksExpireAfterRetention() throws {
        let registry = TaskRegistry(retention: 60)
        try registry.insert(task("ended"), token: nil, at: t0)
        _ = try registry.apply(StatusUpdate(taskID: "ended", status: .success), via: .callback, createIfMissing: false, at: t0)
        try registry.insert(task("running"), token: nil, at: t0)
        registry.expire(now: t0.addingTimeInterval(30))
        #expect(registry.task("ended") != nil)
        registry.expire(now: t0.addingTimeInterval(61))
        #expect(registry.task("ended") == nil)
        #expect(registry.task("running") != nil)
    }

    @Test func sharedTokenCreatesExternalTasks() throws {
        let registry = TaskRegistry()
        #expect(try registry.apply(StatusUpdate(taskID: "X", status: .processing), via: .callback, createIfMissing: true) == .applied)
        #expect(registry.task("X")?.source == .external)
    }

    @Test func waitIsWokenByTheEnd() async throws {
        let registry = TaskRegistry()
        try registry.insert(task("W"), token: nil)
        let started = Date()
        async let waited = registry.waitUntilEnded("W", timeout: 60)
        try? await Task.sleep(nanoseconds: 100_000_000)
        _ = try registry.apply(StatusUpdate(taskID: "W", status: .success), via: .callback, createIfMissing: false)
        let result = await waited
        #expect(result?.status == .success)
        // Woken by the change, not by the 60 s timeout (generous: the suite shares 2 cores).
        #expect(Date().timeIntervalSince(started) < 30)
    }

    @Test func waitTimesOutWithTheStateThen() async throws {
        let registry = TaskRegistry()
        try registry.insert(task("W"), token: nil)
        let started = Date()
        let result = await registry.waitUntilEnded("W", timeout: 0.2)
        #expect(result?.status == .submitted)
        #expect(Date().timeIntervalSince(started) >= 0.2)
        #expect(await registry.waitUntilEnded("unknown", timeout: 0.1) == nil)
    }
}
