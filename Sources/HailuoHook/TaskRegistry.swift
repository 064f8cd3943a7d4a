import Foundation
import Synchronization

/// Every task, by task id and by callback token, newest first for listing,
/// bounded by count and age. One lock, short critical sections: nothing
/// slow (I/O, JSON) happens while it is held.
public final class TaskRegistry: Sendable {
    public enum CallbackOutcome: Sendable, Equatable {
        case recorded(ApplyOutcome)
        /// The submit answer has not come back yet: kept, applied when it does.
        case keptUntilSubmitted
        case unknownToken
        case taskMismatch(expected: String)
    }

    enum TokenEntry {
        case task(String)
        case pending([StatusUpdate])
    }

    struct Storage {
        var tasks: [String: Entry] = [:]
        var tokens: [SecretKey: TokenEntry] = [:]
        /// Task ids by creation sequence, oldest first; removed ids are skipped and compacted lazily.
        var order: [(seq: UInt64, id: String)] = []
        var nextSeq: UInt64 = 1
        /// file id → task id, for the MiniMax-compatible file route.
        var files: [String: String] = [:]
        /// `?wait=` callers, woken when their task ends.
        var waiters: [String: [Int: CheckedContinuation<Void, Never>]] = [:]
        var nextWaiter = 0
        /// When ended tasks were last checked against the retention (a full pass).
        var lastRetentionSweep = Date.distantPast
    }

    typealias Wakeups = [CheckedContinuation<Void, Never>]

    struct Entry {
        var task: VideoTask
        var seq: UInt64
        var token: String?
    }

    public let maxTasks: Int
    public let retention: TimeInterval
    private let storage = Mutex(Storage())

    public init(maxTasks: Int = 100_000, retention: TimeInterval = 86_400) {
        self.maxTasks = maxTasks
        self.retention = retention
    }

    public var count: Int { storage.withLock { $0.tasks.count } }

    // MARK: Writing

    /// Reserves `token` for a submission whose task id is not known yet.
    public func reserve(token: CallbackToken) {
        storage.withLock { $0.tokens[SecretKey(token.value)] = .pending([]) }
    }

    /// Forgets a reserved token whose submission failed.
    public func release(token: CallbackToken) {
        storage.withLock { s in
            if case .pending = s.tokens[SecretKey(token.value)] { s.tokens[SecretKey(token.value)] = nil }
        }
    }

    /// Records `task` (under `token`, if any); updates that arrived for the
    /// token before this are applied now. Returns the task as stored.
    @discardableResult
    public func insert(_ task: VideoTask, token: CallbackToken?, at now: Date = Date()) -> VideoTask {
        let (stored, wakeups) = storage.withLock { s -> (VideoTask, Wakeups) in
            var task = task
            if let token, case .pending(let early)? = s.tokens[SecretKey(token.value)] {
                for update in early where update.taskID == task.taskID {
                    task.apply(update, at: now, via: .callback)
                }
            }
            if let old = s.tasks[task.taskID] {
                // The same upstream id seen again (a repeated submission): keep its history.
                task.events = old.task.events + task.events
            }
            let seq = s.nextSeq
            s.nextSeq += 1
            s.tasks[task.taskID] = Entry(task: task, seq: seq, token: token?.value)
            s.order.append((seq, task.taskID))
            if let token { s.tokens[SecretKey(token.value)] = .task(task.taskID) }
            prune(&s, now: now)
            return (task, TaskRegistry.changed(&s, task.taskID))
        }
        wakeups.forEach { $0.resume() }
        return stored
    }

    /// Applies a callback received on `token`.
    public func recordCallback(token: String, update: StatusUpdate, at now: Date = Date()) -> CallbackOutcome {
        let (outcome, wakeups) = storage.withLock { s -> (CallbackOutcome, Wakeups) in
            let key = SecretKey(token)
            guard let entry = s.tokens[key] else { return (.unknownToken, []) }
            switch entry {
            case .pending(var early):
                if early.count < VideoTask.maxEvents { early.append(update) }
                s.tokens[key] = .pending(early)
                return (.keptUntilSubmitted, [])
            case .task(let id):
                guard id == update.taskID else {
                    return (.taskMismatch(expected: id), [])
                }
                guard let outcome = s.tasks[id]?.task.apply(update, at: now, via: .callback) else {
                    return (.unknownToken, [])
                }
                return (.recorded(outcome), outcome == .applied ? TaskRegistry.changed(&s, id) : [])
            }
        }
        wakeups.forEach { $0.resume() }
        return outcome
    }

    /// Applies an update to the task with this id, if known (shared-token
    /// callbacks and polling); an unknown id creates an `external` task when `createIfMissing`.
    public func apply(_ update: StatusUpdate, via: TaskEvent.Via, createIfMissing: Bool, at now: Date = Date()) -> ApplyOutcome? {
        let (outcome, wakeups) = storage.withLock { s -> (ApplyOutcome?, Wakeups) in
            if s.tasks[update.taskID] != nil {
                let outcome = s.tasks[update.taskID]!.task.apply(update, at: now, via: via)
                return (outcome, outcome == .applied ? TaskRegistry.changed(&s, update.taskID) : [])
            }
            guard createIfMissing else { return (nil, []) }
            var task = VideoTask(taskID: update.taskID, source: .external, createdAt: now)
            let outcome = task.apply(update, at: now, via: via)
            let seq = s.nextSeq
            s.nextSeq += 1
            s.tasks[task.taskID] = Entry(task: task, seq: seq, token: nil)
            s.order.append((seq, task.taskID))
            prune(&s, now: now)
            return (outcome, TaskRegistry.changed(&s, task.taskID))
        }
        wakeups.forEach { $0.resume() }
        return outcome
    }

    /// After a change to task `id` (under the lock): indexes its file and
    /// hands back the waiters to wake (outside the lock) if it has ended.
    private static func changed(_ s: inout Storage, _ id: String) -> Wakeups {
        guard let task = s.tasks[id]?.task else { return [] }
        if let fileID = task.fileID { s.files[fileID] = id }
        guard task.status.isEnded, let waiting = s.waiters.removeValue(forKey: id) else { return [] }
        return Array(waiting.values)
    }

    /// The task once it has ended, or as it stands after `timeout` seconds;
    /// nil when unknown. Woken by the change itself, no polling.
    public func waitUntilEnded(_ id: String, timeout: Double) async -> VideoTask? {
        if timeout > 0 {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let waiter = storage.withLock { s -> Int? in
                    guard let entry = s.tasks[id], !entry.task.status.isEnded else { return nil }
                    s.nextWaiter += 1
                    s.waiters[id, default: [:]][s.nextWaiter] = continuation
                    return s.nextWaiter
                }
                guard let waiter else { continuation.resume(); return }
                Task {
                    try? await Task.sleep(nanoseconds: UInt64(timeout * 1e9))
                    let expired = self.storage.withLock { s -> CheckedContinuation<Void, Never>? in
                        let c = s.waiters[id]?.removeValue(forKey: waiter)
                        if s.waiters[id]?.isEmpty == true { s.waiters[id] = nil }
                        return c
                    }
                    expired?.resume()
                }
            }
        }
        return task(id)
    }

    /// The task that produced `fileID`.
    public func task(fileID: String) -> VideoTask? {
        storage.withLock { s in s.files[fileID].flatMap { s.tasks[$0]?.task } }
    }

    /// Changes a task in place (download URL, video size); false when unknown.
    @discardableResult
    public func update(_ taskID: String, _ change: (inout VideoTask) -> Void) -> Bool {
        let (found, wakeups) = storage.withLock { s -> (Bool, Wakeups) in
            guard s.tasks[taskID] != nil else { return (false, []) }
            change(&s.tasks[taskID]!.task)
            return (true, TaskRegistry.changed(&s, taskID))
        }
        wakeups.forEach { $0.resume() }
        return found
    }

    // MARK: Reading

    public func task(_ id: String) -> VideoTask? {
        storage.withLock { $0.tasks[id]?.task }
    }

    /// Newest first, `limit` at most, after `cursor` (the sequence number of
    /// the last task of the previous page). The cursor stays valid while tasks are added.
    public func list(status: TaskStatus? = nil, limit: Int, cursor: UInt64? = nil) -> (tasks: [VideoTask], nextCursor: UInt64?) {
        storage.withLock { s in
            var result: [VideoTask] = []
            var i = s.order.count - 1
            if let cursor {
                // First index whose seq is below the cursor (order is sorted by seq).
                var lo = 0, hi = s.order.count
                while lo < hi {
                    let mid = (lo + hi) / 2
                    if s.order[mid].seq < cursor { lo = mid + 1 } else { hi = mid }
                }
                i = lo - 1
            }
            var last: UInt64? = nil
            while i >= 0 && result.count < limit {
                let (seq, id) = s.order[i]
                i -= 1
                guard let entry = s.tasks[id], entry.seq == seq else { continue }
                if let status, entry.task.status != status { continue }
                result.append(entry.task)
                last = seq
            }
            // More only if some older task would match.
            var more = false
            while i >= 0 {
                let (seq, id) = s.order[i]
                if let entry = s.tasks[id], entry.seq == seq, status == nil || entry.task.status == status { more = true; break }
                i -= 1
            }
            return (result, more ? last : nil)
        }
    }

    // MARK: Bounds

    /// Drops ended tasks older than the retention, then the oldest ended
    /// (then oldest of any kind) while over `maxTasks`. Called under the lock.
    private func prune(_ s: inout Storage, now: Date) {
        if s.tasks.count > maxTasks || s.order.count > 2 * maxTasks + 1024 {
            // Down to 1% under the bound, so the full pass is paid once per many inserts.
            let target = maxTasks - maxTasks / 100
            removeWhile(&s) { s, entry in s.tasks.count > target && entry.task.status.isEnded }
            removeWhile(&s) { s, _ in s.tasks.count > target }
        }
        // A full pass, so at most once a minute (or a tenth of the retention).
        if now.timeIntervalSince(s.lastRetentionSweep) >= min(60, retention / 10) {
            s.lastRetentionSweep = now
            let cutoff = now.addingTimeInterval(-retention)
            removeWhile(&s) { _, entry in entry.task.status.isEnded && entry.task.updatedAt < cutoff }
        }
        if s.order.count > 2 * s.tasks.count + 1024 {
            s.order.removeAll { s.tasks[$0.id]?.seq != $0.seq }
        }
    }

    private func removeWhile(_ s: inout Storage, _ shouldRemove: (Storage, Entry) -> Bool) {
        var kept: [(seq: UInt64, id: String)] = []
        kept.reserveCapacity(s.order.count)
        for item in s.order {
            guard let entry = s.tasks[item.id], entry.seq == item.seq else { continue }
            if shouldRemove(s, entry) {
                s.tasks[item.id] = nil
                if let token = entry.token { s.tokens[SecretKey(token)] = nil }
                if let fileID = entry.task.fileID { s.files[fileID] = nil }
            } else {
                kept.append(item)
            }
        }
        s.order = kept
    }

    /// Drops ended tasks past the retention now; `serve` calls it every minute.
    public func expire(now: Date = Date()) {
        storage.withLock { s in
            s.lastRetentionSweep = .distantPast
            prune(&s, now: now)
        }
    }

    // MARK: Benchmark

    /// Creates `count` tasks `T0…` with tokens `tok0…`, as the peers' benchmark job does.
    public func seedBenchmarkTasks(_ count: Int, at now: Date = Date()) {
        for i in 0..<count {
            insert(VideoTask(taskID: "T\(i)", source: .submitted, createdAt: now), token: CallbackToken("tok\(i)"), at: now)
        }
    }
}
