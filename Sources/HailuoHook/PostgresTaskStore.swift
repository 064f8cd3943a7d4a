import Foundation
import Logging
import Synchronization

/// The task store in PostgreSQL (`registry.database_url`), shared by every replica that
/// names the same database. A task is one row: its columns for finding it (token, status,
/// file id, order) and the task itself as the JSON text the journal uses; every change is
/// one transaction that locks the row (`FOR UPDATE`), runs the one state machine
/// (`VideoTask.apply`) and writes the row back, so two replicas that receive the same
/// callback at once record it once (the second sees a duplicate). A change is announced
/// with `pg_notify`; each replica LISTENs, and wakes its `?wait=` callers and its event
/// stream from it (`PostgresListener`), and re-reads after a lost connection.
///
/// Calls block on the database: the routes run them on worker threads (`blocksOnIO`).
public final class PostgresTaskStore: TaskStore {
    public var blocksOnIO: Bool { true }
    public let maxTasks: Int
    public let retention: TimeInterval
    let pool: PostgresPool
    let logger: Logger
    private let listener: PostgresListener
    private let observers = Mutex<[(local: Bool, call: @Sendable (VideoTask) -> Void)]>([])
    private let waiters = Mutex<[String: [ObjectIdentifier: Wake]]>([:])

    static let channel = "hailuo_tasks"
    /// Early callbacks kept for a token whose submission has not been answered yet.
    static let reservationLifetime: TimeInterval = 3600

    /// Connects, migrates the schema (safe when replicas start together) and starts listening.
    public init(url: String, maxTasks: Int = 100_000, retention: TimeInterval = 86_400, poolSize: Int = 8, logger: Logger) throws(StoreError) {
        self.maxTasks = maxTasks
        self.retention = retention
        self.logger = logger
        pool = PostgresPool(url: url, size: poolSize)
        do {
            let applied = try pool.withConnection { c throws(PostgresError) in try PostgresSchema.migrate(c) }
            if !applied.isEmpty { logger.notice("PostgreSQL schema migrated to version \(PostgresSchema.latest) (applied \(applied))") }
        } catch {
            throw StoreError("PostgreSQL at \(PostgresTaskStore.redacted(url)): \(error)")
        }
        listener = PostgresListener(url: url, channel: PostgresTaskStore.channel, lockKey: StoreRole.reconciler.rawValue, logger: logger)
        listener.start { [weak self] event in self?.heard(event) }
    }

    /// The URL without its password, for messages.
    static func redacted(_ url: String) -> String {
        guard var parts = URLComponents(string: url), parts.password != nil else { return url }
        parts.password = "***"
        return parts.string ?? url
    }

    public func close() {
        listener.stop()
    }

    public func holds(_ role: StoreRole) -> Bool {
        switch role {
        case .reconciler: return listener.holdsLock
        }
    }

    public func observe(local: Bool, _ observer: @escaping @Sendable (VideoTask) -> Void) {
        observers.withLock { $0.append((local, observer)) }
    }

    // MARK: Rows

    private static func text(_ task: VideoTask) -> String {
        var writer = JSONWriter(capacity: 512)
        writer.videoTask(task)
        return String(decoding: writer.out, as: UTF8.self)
    }

    static func decode(_ text: String?) throws(PostgresError) -> VideoTask {
        guard let text else { throw PostgresError(.query, "a task row has no task") }
        var copy = text
        if let task = copy.withUTF8({ JSONReader.read(UnsafeRawBufferPointer($0)) { r throws(JSONReader.GiveUp) in try r.videoTask() } }) {
            return task
        }
        guard let task = try? Journal.decoder.decode(VideoTask.self, from: Data(text.utf8)) else {
            throw PostgresError(.query, "a stored task could not be read")
        }
        return task
    }

    /// The row's columns, `$1`…`$8`: task_id, status, token, file_id, created_at, updated_at, last_heard, task.
    private static func row(_ task: VideoTask, token: String?) -> [String?] {
        [task.taskID, task.status.rawValue, token, task.fileID, task.createdAt.timeIntervalSince1970.description,
         task.updatedAt.timeIntervalSince1970.description, (task.events.last?.at ?? task.createdAt).timeIntervalSince1970.description,
         text(task)]
    }

    /// Writes `task` back if its row is still at `version` (nobody changed it since it was
    /// read), announcing it when `announce`; in one statement, so one round trip, and
    /// committed on its own. False when another change won: read again and retry.
    private static func write(_ c: PostgresConnection, _ task: VideoTask, ifVersion version: String, announce: Bool) throws(PostgresError) -> Bool {
        let r = row(task, token: nil)
        let update = """
            WITH changed AS (
                UPDATE hailuo_tasks SET status = $2, file_id = $3, updated_at = $4, last_heard = $5, task = $6, version = version + 1
                WHERE task_id = $1 AND version = $7 RETURNING task_id)
            """
        var parameters = [r[0], r[1], r[3], r[5], r[6], r[7], version]
        if announce { parameters += [channel, notification(task)] }
        let written = try c.query(update + (announce ? "SELECT pg_notify($8, $9) FROM changed" : "SELECT task_id FROM changed"), parameters)
        return written.rows.count == 1
    }

    /// Read, change with the state machine, write back if unchanged meanwhile (else again):
    /// the decision is a conditional update, so two replicas changing one task at once
    /// both apply in turn, and neither holds a lock across round trips.
    /// `change` answers what to return and whether to announce; nil: the task is unknown.
    private func change<T>(_ c: PostgresConnection, find sql: String, _ key: String,
                           _ change: (String, inout VideoTask) throws(PostgresError) -> (result: T, write: Bool, announce: Bool)) throws(PostgresError) -> (T, VideoTask)? {
        for _ in 0..<64 {
            let found = try c.query(sql, [key])
            guard let row = found.rows.first else { return nil }
            var task = try PostgresTaskStore.decode(row[2])
            let outcome = try change(row[0] ?? "", &task)
            guard outcome.write else { return (outcome.result, task) }
            if try PostgresTaskStore.write(c, task, ifVersion: row[1] ?? "0", announce: outcome.announce) { return (outcome.result, task) }
        }
        throw PostgresError(.retryable, "task \(key) kept changing under this update")
    }

    /// Tells every replica (this one too) that `task` changed: the task itself when it fits a
    /// notification, else its id (the listeners then read it).
    private static func announce(_ c: PostgresConnection, _ task: VideoTask) throws(PostgresError) {
        try c.query("SELECT pg_notify($1, $2)", [channel, notification(task)])
    }

    /// A notification's payload: the task when it fits (8000 bytes at most), else its id.
    static func notification(_ task: VideoTask) -> String {
        let body = text(task)
        return body.utf8.count < 7900 ? body : task.taskID
    }

    private func store<T>(_ body: (PostgresConnection) throws(PostgresError) -> T) throws(StoreError) -> T {
        do { return try pool.withConnection(body) } catch { throw StoreError("PostgreSQL: \(error)") }
    }

    private func transaction<T>(_ body: (PostgresConnection) throws(PostgresError) -> T) throws(StoreError) -> T {
        do { return try pool.transaction(body) } catch { throw StoreError("PostgreSQL: \(error)") }
    }

    private func changedHere(_ task: VideoTask?) {
        guard let task else { return }
        for observer in observers.withLock({ $0 }) where observer.local { observer.call(task) }
    }

    // MARK: Writing

    public func reserve(token: CallbackToken) throws(StoreError) {
        _ = try store { c throws(PostgresError) in
            try c.query("INSERT INTO hailuo_reserved_tokens (token, reserved_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                        [token.value, Date().timeIntervalSince1970.description])
        }
    }

    public func release(token: CallbackToken) {
        _ = try? store { c throws(PostgresError) in
            try c.query("DELETE FROM hailuo_reserved_tokens WHERE token = $1", [token.value])
        }
    }

    @discardableResult
    public func insert(_ task: VideoTask, token: CallbackToken?, at now: Date) throws(StoreError) -> VideoTask {
        let stored = try transaction { c throws(PostgresError) -> VideoTask in
            var task = task
            if let token {
                // The reservation first: a callback on this token waits for this transaction.
                let reserved = try c.query("SELECT token FROM hailuo_reserved_tokens WHERE token = $1 FOR UPDATE", [token.value])
                if !reserved.isEmpty {
                    let early = try c.query("SELECT record FROM hailuo_early_callbacks WHERE token = $1 ORDER BY seq", [token.value])
                    for record in early.rows {
                        guard let update = PostgresTaskStore.statusUpdate(record[0]), update.taskID == task.taskID else { continue }
                        task.apply(update, at: now, via: .callback)
                    }
                    try c.query("DELETE FROM hailuo_reserved_tokens WHERE token = $1", [token.value])
                }
            }
            let old = try c.query("SELECT task FROM hailuo_tasks WHERE task_id = $1 FOR UPDATE", [task.taskID])
            if let previous = old.rows.first {
                // The same upstream id seen again (a repeated submission): keep its history.
                task.events = try PostgresTaskStore.decode(previous[0]).events + task.events
            }
            try c.query("""
                INSERT INTO hailuo_tasks (task_id, status, token, file_id, created_at, updated_at, last_heard, task)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                ON CONFLICT (task_id) DO UPDATE SET status = EXCLUDED.status, token = coalesce(EXCLUDED.token, hailuo_tasks.token),
                    file_id = EXCLUDED.file_id, updated_at = EXCLUDED.updated_at, last_heard = EXCLUDED.last_heard, task = EXCLUDED.task,
                    version = hailuo_tasks.version + 1
                """, PostgresTaskStore.row(task, token: token?.value))
            try PostgresTaskStore.announce(c, task)
            return task
        }
        changedHere(stored)
        return stored
    }

    /// An early callback kept under a reservation.
    static func statusUpdate(_ text: String?) -> StatusUpdate? {
        guard let text else { return nil }
        return try? Journal.decoder.decode(StatusUpdate.self, from: Data(text.utf8))
    }

    public func recordCallback(token: String, update: StatusUpdate, at now: Date) -> TaskRegistry.CallbackOutcome {
        do {
            for _ in 0..<2 {
                if let (outcome, task) = try store({ c throws(PostgresError) in
                    try self.change(c, find: "SELECT task_id, version, task FROM hailuo_tasks WHERE token = $1", token) { id, task throws(PostgresError) -> (result: TaskRegistry.CallbackOutcome, write: Bool, announce: Bool) in
                        guard id == update.taskID else { return (.taskMismatch(expected: id), false, false) }
                        let outcome = task.apply(update, at: now, via: .callback)
                        return (.recorded(outcome), true, outcome == .applied)
                    }
                }) {
                    if case .recorded(.applied) = outcome { changedHere(task) }
                    return outcome
                }
                // Not a task's token: a reservation whose submission is still being answered?
                let kept = try transaction { c throws(PostgresError) -> Bool? in
                    let reserved = try c.query("SELECT token FROM hailuo_reserved_tokens WHERE token = $1 FOR UPDATE", [token])
                    guard !reserved.isEmpty else {
                        // The submission may have committed while this looked: look once more.
                        return try c.query("SELECT 1 FROM hailuo_tasks WHERE token = $1", [token]).isEmpty ? false : nil
                    }
                    let kept = Int(try c.query("SELECT count(*) FROM hailuo_early_callbacks WHERE token = $1", [token])[0, 0] ?? "0") ?? 0
                    if kept < VideoTask.maxEvents {
                        var writer = JSONWriter(capacity: 128)
                        writer.journalUpdate(update)
                        try c.query("INSERT INTO hailuo_early_callbacks (token, record) VALUES ($1, $2)",
                                    [token, String(decoding: writer.out, as: UTF8.self)])
                    }
                    return true
                }
                switch kept {
                case true?: return .keptUntilSubmitted
                case false?: return .unknownToken
                case nil: continue
                }
            }
            return .unknownToken
        } catch {
            return .notRecorded(error.description)
        }
    }

    public func apply(_ update: StatusUpdate, via: TaskEvent.Via, createIfMissing: Bool, at now: Date) throws(StoreError) -> ApplyOutcome? {
        let (outcome, changed) = try store { c throws(PostgresError) -> (ApplyOutcome?, VideoTask?) in
            for _ in 0..<8 {
                if let (outcome, task) = try self.change(c, find: "SELECT task_id, version, task FROM hailuo_tasks WHERE task_id = $1", update.taskID,
                                                         { _, task throws(PostgresError) -> (result: ApplyOutcome, write: Bool, announce: Bool) in
                    let outcome = task.apply(update, at: now, via: via)
                    return (outcome, true, outcome == .applied)
                }) {
                    return (outcome, outcome == .applied ? task : nil)
                }
                guard createIfMissing else { return (nil, nil) }
                var task = VideoTask(taskID: update.taskID, source: .external, createdAt: now)
                let outcome = task.apply(update, at: now, via: via)
                let inserted = try c.query("""
                    WITH added AS (
                        INSERT INTO hailuo_tasks (task_id, status, token, file_id, created_at, updated_at, last_heard, task)
                        VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (task_id) DO NOTHING RETURNING task_id)
                    SELECT pg_notify($9, $10) FROM added
                    """, PostgresTaskStore.row(task, token: nil) + [PostgresTaskStore.channel, PostgresTaskStore.notification(task)])
                if inserted.rows.count == 1 { return (outcome, task) }
                // Another replica created it meanwhile: apply to its row.
            }
            throw PostgresError(.retryable, "task \(update.taskID) kept changing under this update")
        }
        changedHere(changed)
        return outcome
    }

    @discardableResult
    public func update(_ taskID: String, notify: Bool, _ change: (inout VideoTask) -> Void) throws(StoreError) -> Bool {
        let changed = try store { c throws(PostgresError) -> VideoTask? in
            try self.change(c, find: "SELECT task_id, version, task FROM hailuo_tasks WHERE task_id = $1", taskID) { _, task throws(PostgresError) -> (result: Void, write: Bool, announce: Bool) in
                change(&task)
                return ((), true, notify)
            }?.1
        }
        if notify { changedHere(changed) }
        return changed != nil
    }

    // MARK: Reading

    public func task(_ id: String) throws(StoreError) -> VideoTask? {
        try store { c throws(PostgresError) -> VideoTask? in
            let found = try c.query("SELECT task FROM hailuo_tasks WHERE task_id = $1", [id])
            return try found.rows.first.map { row throws(PostgresError) in try PostgresTaskStore.decode(row[0]) }
        }
    }

    public func task(fileID: String) throws(StoreError) -> VideoTask? {
        try store { c throws(PostgresError) -> VideoTask? in
            let found = try c.query("SELECT task FROM hailuo_tasks WHERE file_id = $1 ORDER BY seq DESC LIMIT 1", [fileID])
            return try found.rows.first.map { row throws(PostgresError) in try PostgresTaskStore.decode(row[0]) }
        }
    }

    public func list(status: TaskStatus?, limit: Int, cursor: UInt64?) throws(StoreError) -> (tasks: [VideoTask], nextCursor: UInt64?) {
        try store { c throws(PostgresError) -> (tasks: [VideoTask], nextCursor: UInt64?) in
            let found = try c.query("""
                SELECT seq, task FROM hailuo_tasks
                WHERE ($1::text IS NULL OR status = $1) AND ($2::bigint IS NULL OR seq < $2)
                ORDER BY seq DESC LIMIT $3
                """, [status?.rawValue, cursor.map(String.init), String(limit + 1)])
            var tasks: [VideoTask] = []
            var last: UInt64?
            for row in found.rows.prefix(limit) {
                tasks.append(try PostgresTaskStore.decode(row[1]))
                last = row[0].flatMap { UInt64($0) }
            }
            return (tasks, found.rows.count > limit ? last : nil)
        }
    }

    public func countsByStatus() throws(StoreError) -> [(TaskStatus, Int)] {
        let counts = try store { c throws(PostgresError) -> [String: Int] in
            var counts: [String: Int] = [:]
            for row in try c.query("SELECT status, count(*) FROM hailuo_tasks GROUP BY status").rows {
                counts[row[0] ?? ""] = Int(row[1] ?? "0") ?? 0
            }
            return counts
        }
        return TaskStatus.allCases.map { ($0, counts[$0.rawValue] ?? 0) }
    }

    public var count: Int {
        get throws(StoreError) {
            try store { c throws(PostgresError) -> Int in Int(try c.query("SELECT count(*) FROM hailuo_tasks")[0, 0] ?? "0") ?? 0 }
        }
    }

    public func unfinished() throws(StoreError) -> [(taskID: String, lastHeard: Date)] {
        try store { c throws(PostgresError) -> [(taskID: String, lastHeard: Date)] in
            try c.query("SELECT task_id, last_heard FROM hailuo_tasks WHERE status IN ('submitted', 'processing') ORDER BY seq").rows.map {
                ($0[0] ?? "", Date(timeIntervalSince1970: Double($0[1] ?? "0") ?? 0))
            }
        }
    }

    /// In batches of 1,000 rows, each its own statement, so no replica holds long locks:
    /// ended tasks past the retention, then the oldest (ended first) past `max_tasks`, and
    /// reservations nobody claimed within an hour.
    public func expire(now: Date) throws(StoreError) {
        let batch = 1000
        try store { c throws(PostgresError) in
            let cutoff = now.addingTimeInterval(-retention).timeIntervalSince1970.description
            while try c.query("""
                DELETE FROM hailuo_tasks WHERE task_id IN (
                    SELECT task_id FROM hailuo_tasks WHERE status IN ('success', 'failed') AND updated_at < $1 ORDER BY seq LIMIT $2)
                """, [cutoff, String(batch)]).affected == batch {}
            for endedOnly in [true, false] {
                while true {
                    let count = Int(try c.query("SELECT count(*) FROM hailuo_tasks")[0, 0] ?? "0") ?? 0
                    guard count > maxTasks else { break }
                    let excess = min(batch, count - (maxTasks - maxTasks / 100))
                    let removed = try c.query("""
                        DELETE FROM hailuo_tasks WHERE task_id IN (
                            SELECT task_id FROM hailuo_tasks WHERE ($1::text = 'false' OR status IN ('success', 'failed')) ORDER BY seq LIMIT $2)
                        """, [endedOnly ? "true" : "false", String(excess)]).affected
                    if removed == 0 { break }
                }
            }
            try c.query("DELETE FROM hailuo_reserved_tokens WHERE reserved_at < $1",
                        [now.addingTimeInterval(-PostgresTaskStore.reservationLifetime).timeIntervalSince1970.description])
        }
    }

    // MARK: Waiting, across replicas

    /// One `?wait=` caller: woken by a notification for its task, a resync, or its deadline.
    final class Wake: Sendable {
        private let state = Mutex<(fired: Bool, continuation: CheckedContinuation<Void, Never>?)>((false, nil))

        func fire() {
            let continuation = state.withLock { s -> CheckedContinuation<Void, Never>? in
                s.fired = true
                defer { s.continuation = nil }
                return s.continuation
            }
            continuation?.resume()
        }

        func wait() async {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let fired = state.withLock { s -> Bool in
                    if !s.fired { s.continuation = continuation }
                    return s.fired
                }
                if fired { continuation.resume() }
            }
        }
    }

    /// Reads off the cooperative threads (libpq blocks).
    private func read(_ id: String) async throws(StoreError) -> VideoTask? {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<VideoTask?, StoreError>, Never>) in
            DispatchQueue.global().async {
                continuation.resume(returning: Result { () throws(StoreError) -> VideoTask? in try self.task(id) })
            }
        }
        return try result.get()
    }

    public func waitUntilEnded(_ id: String, timeout: Double) async throws(StoreError) -> VideoTask? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            // Registered before reading, so a change between the read and the wait still wakes it.
            let wake = Wake()
            let key = ObjectIdentifier(wake)
            waiters.withLock { $0[id, default: [:]][key] = wake }
            defer {
                waiters.withLock { w in
                    w[id]?[key] = nil
                    if w[id]?.isEmpty == true { w[id] = nil }
                }
            }
            guard let task = try await read(id) else { return nil }
            let left = deadline.timeIntervalSinceNow
            if task.status.isEnded || left <= 0 { return task }
            let timer = Task {
                try? await Task.sleep(nanoseconds: UInt64(left * 1e9))
                wake.fire()
            }
            await wake.wait()
            timer.cancel()
        }
    }

    private func heard(_ event: PostgresListener.Event) {
        switch event {
        case .resync:
            // Notifications may have been missed while the listener was away: every waiter reads again.
            for wake in waiters.withLock({ $0.values.flatMap(\.values) }) { wake.fire() }
        case .notification(let payload):
            var task: VideoTask?
            if payload.hasPrefix("{") {
                task = try? PostgresTaskStore.decode(payload)
            } else {
                task = try? self.task(payload)
            }
            let id = task?.taskID ?? payload
            for wake in waiters.withLock({ $0[id].map { Array($0.values) } ?? [] }) { wake.fire() }
            guard let task else { return }
            for observer in observers.withLock({ $0 }) where !observer.local { observer.call(task) }
        }
    }
}

/// One connection of its own that LISTENs for the store's notifications and holds the
/// reconciler's advisory lock (a session lock: it goes when this replica's session does).
/// Reconnects with back-off; after a reconnection it reports `.resync`.
final class PostgresListener: Sendable {
    enum Event: Sendable {
        case notification(String)
        case resync
    }

    let url: String
    let channel: String
    let lockKey: Int64
    let logger: Logger
    private let running = Atomic<Bool>(true)
    private let locked = Atomic<Bool>(false)

    init(url: String, channel: String, lockKey: Int64, logger: Logger) {
        self.url = url
        self.channel = channel
        self.lockKey = lockKey
        self.logger = logger
    }

    var holdsLock: Bool { locked.load(ordering: .relaxed) }

    func stop() { running.store(false, ordering: .relaxed) }

    func start(_ handler: @escaping @Sendable (Event) -> Void) {
        let thread = Thread { [self] in run(handler) }
        thread.name = "hailuo-hook.pg-listener"
        thread.start()
    }

    private func run(_ handler: @Sendable (Event) -> Void) {
        var delay = 0.1
        var first = true
        while running.load(ordering: .relaxed) {
            do throws(PostgresError) {
                let c = try PostgresConnection(url: url)
                try c.query("LISTEN \(channel)")
                if !first { logger.notice("PostgreSQL listener reconnected") }
                handler(.resync)
                first = false
                delay = 0.1
                while running.load(ordering: .relaxed) {
                    if !holdsLock {
                        let got = try c.query("SELECT pg_try_advisory_lock($1)", [String(lockKey)])[0, 0] == "t"
                        locked.store(got, ordering: .relaxed)
                    }
                    for payload in try c.notifications(waiting: 0.5) { handler(.notification(payload)) }
                }
            } catch {
                locked.store(false, ordering: .relaxed)
                if running.load(ordering: .relaxed) {
                    logger.warning("PostgreSQL listener: \(error); retrying in \(delay) s")
                    Thread.sleep(forTimeInterval: delay)
                    delay = min(delay * 2, 5)
                }
            }
        }
    }
}
