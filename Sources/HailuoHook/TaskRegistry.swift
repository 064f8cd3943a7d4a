import Foundation
import Synchronization

/// Every task, by task id and by callback token, newest first for listing,
/// bounded by count and age. One lock, short critical sections: nothing
/// slow (I/O, JSON) happens while it is held.
public final class TaskRegistry: TaskStore {
    public enum CallbackOutcome: Sendable, Equatable {
        case recorded(ApplyOutcome)
        /// The submit answer has not come back yet: kept, applied when it does.
        case keptUntilSubmitted
        case unknownToken
        case taskMismatch(expected: String)
        /// The journal could not be written: nothing was recorded.
        case notRecorded(String)
    }

    enum TokenEntry {
        case task(String)
        case pending([StatusUpdate])
    }

    /// The tasks by id, keeping two indexes current on every write: the unfinished
    /// ids (for the reconciler) and the count per status (for /metrics). Both were
    /// full passes under the lock: with a million tasks, a 0.5 s stall every 5 s.
    ///
    /// The entries sit in one array of slots (a freed slot is reused) and the id index maps
    /// to a slot number: a dictionary of whole entries kept twice the entries' room empty
    /// (its load factor), 250 MB of a million tasks (bench/README.md). A change goes
    /// through `_modify` on the slot in place, never a copy of the entry.
    struct TaskTable {
        private var slots: [Entry?] = []
        private var freeSlots: [Int32] = []
        private var index: [String: Int32] = [:]
        private(set) var unfinished: Set<String> = []
        /// Tasks per status, by `TaskStatus.ordinal`.
        private var counts = [Int](repeating: 0, count: TaskStatus.allCases.count)

        var count: Int { index.count }

        func count(_ status: TaskStatus) -> Int { counts[status.ordinal] }

        /// Reads part of an entry in place (the getter copies the whole entry).
        func read<T>(_ id: String, _ body: (Entry) -> T) -> T? {
            guard let slot = index[id] else { return nil }
            return slots.withUnsafeBufferPointer { $0[Int(slot)].map(body) }
        }

        subscript(id: String) -> Entry? {
            get { index[id].flatMap { slots[Int($0)] } }
            _modify {
                let before: TaskStatus?
                let after: TaskStatus?
                if let slot = index[id].map(Int.init) {
                    before = slots[slot]?.task.status
                    yield &slots[slot]
                    after = slots[slot]?.task.status
                    if after == nil {
                        index[id] = nil
                        freeSlots.append(Int32(slot))
                    }
                } else {
                    var added: Entry?
                    yield &added
                    before = nil
                    after = added?.task.status
                    if let added {
                        if let slot = freeSlots.popLast() {
                            slots[Int(slot)] = added
                            index[id] = slot
                        } else {
                            index[id] = Int32(slots.count)
                            slots.append(added)
                        }
                    }
                }
                guard before != after else { return }
                if let before { counts[before.ordinal] -= 1 }
                if let after { counts[after.ordinal] += 1 }
                if let after, !after.isEnded { unfinished.insert(id) } else { unfinished.remove(id) }
            }
        }
    }

    struct Storage {
        var tasks = TaskTable()
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

    /// Written before a change is acknowledged, inside the lock, so the file's order is the registry's.
    public let journal: Journal?
    /// Called outside the lock with each task an update changed (relay, event stream).
    private let observers = Mutex<[@Sendable (VideoTask) -> Void]>([])

    public init(maxTasks: Int = 100_000, retention: TimeInterval = 86_400, journal: Journal? = nil) {
        self.maxTasks = maxTasks
        self.retention = retention
        self.journal = journal
    }

    /// In this process: the routes call it on the I/O threads.
    public var blocksOnIO: Bool { false }

    /// One process holds every role.
    public func holds(_ role: StoreRole) -> Bool { true }

    public func close() {}

    /// Calls `observer` with every task a change applied to, after the change (every
    /// change is local to this process).
    public func observe(local: Bool = true, _ observer: @escaping @Sendable (VideoTask) -> Void) {
        observers.withLock { $0.append(observer) }
    }

    private func notify(_ task: VideoTask?) {
        guard let task else { return }
        for observer in observers.withLock({ $0 }) { observer(task) }
    }

    /// Appends under the registry's lock; throws (and nothing changes) when the write failed.
    private func journaled(_ line: @autoclosure () -> [UInt8]) throws(StoreError) {
        guard let journal else { return }
        do {
            try journal.append(line())
        } catch {
            throw StoreError("the journal could not be written: \(error)")
        }
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
    public func insert(_ task: VideoTask, token: CallbackToken?, at now: Date) throws(StoreError) -> VideoTask {
        let (stored, wakeups) = try storage.withLock { s throws(StoreError) -> (VideoTask, Wakeups) in
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
            try journaled(Journal.line(.task(task, token: token?.value)))
            let seq = s.nextSeq
            s.nextSeq += 1
            s.tasks[task.taskID] = Entry(task: task, seq: seq, token: token?.value)
            s.order.append((seq, task.taskID))
            if let token { s.tokens[SecretKey(token.value)] = .task(task.taskID) }
            prune(&s, now: now)
            return (task, TaskRegistry.changed(&s, task.taskID))
        }
        wakeups.forEach { $0.resume() }
        notify(stored)
        return stored
    }

    /// Applies a callback received on `token`.
    public func recordCallback(token: String, update: StatusUpdate, at now: Date) -> CallbackOutcome {
        // Encoded before the lock is taken; written inside it only if the callback is accepted.
        let line = journal == nil ? [] : Journal.line(.callback(token: token, update: update, at: now))
        let (outcome, wakeups, changed) = storage.withLock { s -> (CallbackOutcome, Wakeups, VideoTask?) in
            let key = SecretKey(token)
            guard let entry = s.tokens[key] else { return (.unknownToken, [], nil) }
            switch entry {
            case .pending(var early):
                if early.count < VideoTask.maxEvents { early.append(update) }
                s.tokens[key] = .pending(early)
                return (.keptUntilSubmitted, [], nil)
            case .task(let id):
                guard id == update.taskID else {
                    return (.taskMismatch(expected: id), [], nil)
                }
                guard s.tasks[id] != nil else { return (.unknownToken, [], nil) }
                do throws(StoreError) { try journaled(line) } catch { return (.notRecorded(error.description), [], nil) }
                let outcome = s.tasks[id]!.task.apply(update, at: now, via: .callback)
                guard outcome == .applied else { return (.recorded(outcome), [], nil) }
                return (.recorded(outcome), TaskRegistry.changed(&s, id), s.tasks[id]?.task)
            }
        }
        wakeups.forEach { $0.resume() }
        notify(changed)
        return outcome
    }

    /// Applies an update to the task with this id, if known (shared-token
    /// callbacks and polling); an unknown id creates an `external` task when `createIfMissing`.
    public func apply(_ update: StatusUpdate, via: TaskEvent.Via, createIfMissing: Bool, at now: Date) throws(StoreError) -> ApplyOutcome? {
        let line = journal == nil ? [] : Journal.line(.apply(update: update, via: via, createIfMissing: createIfMissing, at: now))
        let (outcome, wakeups, changed) = try storage.withLock { s throws(StoreError) -> (ApplyOutcome?, Wakeups, VideoTask?) in
            if s.tasks[update.taskID] != nil {
                try journaled(line)
                let outcome = s.tasks[update.taskID]!.task.apply(update, at: now, via: via)
                guard outcome == .applied else { return (outcome, [], nil) }
                return (outcome, TaskRegistry.changed(&s, update.taskID), s.tasks[update.taskID]?.task)
            }
            guard createIfMissing else { return (nil, [], nil) }
            try journaled(line)
            var task = VideoTask(taskID: update.taskID, source: .external, createdAt: now)
            let outcome = task.apply(update, at: now, via: via)
            let seq = s.nextSeq
            s.nextSeq += 1
            s.tasks[task.taskID] = Entry(task: task, seq: seq, token: nil)
            s.order.append((seq, task.taskID))
            prune(&s, now: now)
            return (outcome, TaskRegistry.changed(&s, task.taskID), task)
        }
        wakeups.forEach { $0.resume() }
        notify(changed)
        return outcome
    }

    /// After a change to task `id` (under the lock): indexes its file and
    /// hands back the waiters to wake (outside the lock) if it has ended.
    private static func changed(_ s: inout Storage, _ id: String) -> Wakeups {
        guard let (status, fileID) = s.tasks.read(id, { ($0.task.status, $0.task.fileID) }) else { return [] }
        if let fileID { s.files[fileID] = id }
        guard status.isEnded, let waiting = s.waiters.removeValue(forKey: id) else { return [] }
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

    /// How many tasks there are in each status.
    public func countsByStatus() -> [(TaskStatus, Int)] {
        storage.withLock { s in TaskStatus.allCases.map { ($0, s.tasks.count($0)) } }
    }

    /// The task that produced `fileID`.
    public func task(fileID: String) -> VideoTask? {
        storage.withLock { s in s.files[fileID].flatMap { s.tasks[$0]?.task } }
    }

    /// Changes a task in place (download URL, video size, relay counters);
    /// false when unknown. `notify`: tell the observers (the event stream, the
    /// relay), as for a link that arrived; not for the relay's own bookkeeping.
    @discardableResult
    public func update(_ taskID: String, notify shouldNotify: Bool = false, _ change: (inout VideoTask) -> Void) -> Bool {
        let (found, wakeups, changed) = storage.withLock { s -> (Bool, Wakeups, VideoTask?) in
            guard let entry = s.tasks[taskID] else { return (false, [], nil) }
            var task = entry.task
            change(&task)
            // Best effort: a link or a size can be fetched again after a restart.
            try? journaled(Journal.line(.task(task, token: entry.token)))
            s.tasks[taskID]!.task = task
            return (true, TaskRegistry.changed(&s, taskID), task)
        }
        wakeups.forEach { $0.resume() }
        if shouldNotify { notify(changed) }
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
            // Only tasks created before the cutoff can be past it, and `order` is in creation
            // order: scan that prefix, not the whole registry (a full pass over a million tasks
            // under the lock was a 0.5 s stall every minute). Tasks restored out of order are
            // caught by a later sweep.
            var end = 0
            while end < s.order.count {
                let item = s.order[end]
                if let entry = s.tasks[item.id], entry.seq == item.seq, entry.task.createdAt >= cutoff { break }
                end += 1
            }
            if end > 0 {
                removeWhile(&s, prefix: end) { _, entry in entry.task.status.isEnded && entry.task.updatedAt < cutoff }
            }
        }
        if s.order.count > 2 * s.tasks.count + 1024 {
            s.order.removeAll { s.tasks[$0.id]?.seq != $0.seq }
        }
    }

    /// Removes the entries of `order`'s first `prefix` items (all by default) that `shouldRemove` picks.
    private func removeWhile(_ s: inout Storage, prefix: Int? = nil, _ shouldRemove: (Storage, Entry) -> Bool) {
        var kept: [(seq: UInt64, id: String)] = []
        kept.reserveCapacity(s.order.count)
        let end = prefix ?? s.order.count
        for item in s.order[..<end] {
            guard let entry = s.tasks[item.id], entry.seq == item.seq else { continue }
            if shouldRemove(s, entry) {
                s.tasks[item.id] = nil
                if let token = entry.token { s.tokens[SecretKey(token)] = nil }
                if let fileID = entry.task.fileID { s.files[fileID] = nil }
            } else {
                kept.append(item)
            }
        }
        if end < s.order.count { kept.append(contentsOf: s.order[end...]) }
        s.order = kept
    }

    /// Drops ended tasks past the retention now; `serve` calls it every minute.
    public func expire(now: Date = Date()) {
        storage.withLock { s in
            s.lastRetentionSweep = .distantPast
            prune(&s, now: now)
        }
    }

    // MARK: Journal

    /// Applies a replayed record without writing it again.
    public func restore(_ record: JournalRecord) {
        storage.withLock { s in
            switch record {
            case .task(let task, let token):
                if let existing = s.tasks[task.taskID] {
                    s.tasks[task.taskID]!.task = task
                    if let token, existing.token == nil { s.tasks[task.taskID]!.token = token }
                } else {
                    let seq = s.nextSeq
                    s.nextSeq += 1
                    s.tasks[task.taskID] = Entry(task: task, seq: seq, token: token)
                    s.order.append((seq, task.taskID))
                }
                if let token { s.tokens[SecretKey(token)] = .task(task.taskID) }
            case .callback(let token, let update, let at):
                guard case .task(let id)? = s.tokens[SecretKey(token)], id == update.taskID else { return }
                // An update that changed nothing (a duplicate) changes no index either.
                guard s.tasks[id]?.task.apply(update, at: at, via: .callback) == .applied else { return }
            case .apply(let update, let via, let create, let at):
                if s.tasks[update.taskID] != nil {
                    s.tasks[update.taskID]!.task.apply(update, at: at, via: via)
                } else if create {
                    var task = VideoTask(taskID: update.taskID, source: .external, createdAt: at)
                    task.apply(update, at: at, via: via)
                    let seq = s.nextSeq
                    s.nextSeq += 1
                    s.tasks[task.taskID] = Entry(task: task, seq: seq, token: nil)
                    s.order.append((seq, task.taskID))
                }
            case .idempotency:
                return
            }
            _ = TaskRegistry.changed(&s, {
                switch record {
                case .task(let t, _): return t.taskID
                case .callback(_, let u, _), .apply(let u, _, _, _): return u.taskID
                case .idempotency: return ""
                }
            }())
        }
    }

    /// Rewrites the journal as one record a task (plus `extra`). The lock is
    /// held only to take the snapshot and, at the end, to add what arrived
    /// while the snapshot was being written; the writing itself runs outside it.
    public func compactJournal(extra: () -> [JournalRecord]) throws {
        guard let journal else { return }
        let records: [JournalRecord] = storage.withLock { s in
            var records: [JournalRecord] = []
            records.reserveCapacity(s.tasks.count)
            for (seq, id) in s.order {
                guard let entry = s.tasks[id], entry.seq == seq else { continue }
                records.append(.task(entry.task, token: entry.token))
            }
            journal.beginCapture()
            return records
        }
        try journal.rewrite(records + extra()) { last in
            try storage.withLock { _ in try last() }
        }
    }

    /// Unfinished tasks, oldest first, with when they last heard anything.
    public func unfinished() -> [(taskID: String, lastHeard: Date)] {
        storage.withLock { s in
            s.tasks.unfinished.compactMap { id -> (seq: UInt64, taskID: String, lastHeard: Date)? in
                guard let entry = s.tasks[id] else { return nil }
                return (entry.seq, id, entry.task.events.last?.at ?? entry.task.createdAt)
            }
            .sorted { $0.seq < $1.seq }
            .map { ($0.taskID, $0.lastHeard) }
        }
    }

    // MARK: Benchmark

    /// What the benchmark tasks look like.
    public struct BenchmarkShape: Sendable {
        /// Characters of the prompt each task's request carries (0: no request recorded).
        public var promptCharacters = 0
        /// Each task goes through processing and success (with a file id), plus one duplicate success.
        public var ended = false
        public init(promptCharacters: Int = 0, ended: Bool = false) {
            self.promptCharacters = promptCharacters
            self.ended = ended
        }
    }
}
