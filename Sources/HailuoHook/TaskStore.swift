import Foundation
import HTTPServer

/// A change the store could not make or a read it could not answer (the database is
/// away): the request answers 503 and nothing it asked for was recorded.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Roles only one replica holds at a time.
public enum StoreRole: Int64, Sendable {
    /// Polls the upstream for tasks whose callbacks went quiet.
    case reconciler = 1
}

/// Where the tasks live: in this process (`TaskRegistry`, with its journal when one is
/// configured) or in PostgreSQL, shared by every replica that names it
/// (`PostgresTaskStore`). The routes, the reconciler and the relay see only this; both
/// stores run the one state machine, `VideoTask.apply`.
public protocol TaskStore: AnyObject, Sendable {
    /// Whether calls wait on the network: the routes then run on a blocking pool, never on
    /// an I/O thread (`Handler.blocking`).
    var blocksOnIO: Bool { get }

    /// Calls `observer` after each change: `local` ones see the changes made through this
    /// process only (the relay, so one replica delivers each change), the others also the
    /// changes other replicas made (the event stream).
    func observe(local: Bool, _ observer: @escaping @Sendable (VideoTask) -> Void)

    /// Whether this replica holds `role` now (always, with one process).
    func holds(_ role: StoreRole) -> Bool

    /// Stops background work (PostgreSQL's listener) at shutdown.
    func close()

    /// Reserves `token` for a submission whose task id is not known yet: callbacks that
    /// arrive before the upstream's answer are kept and applied by `insert`.
    func reserve(token: CallbackToken) throws(StoreError)
    /// Forgets a reserved token whose submission failed.
    func release(token: CallbackToken)
    /// Records `task` (under `token`, if any), applying the updates kept for the token.
    @discardableResult
    func insert(_ task: VideoTask, token: CallbackToken?, at now: Date) throws(StoreError) -> VideoTask
    /// Applies a callback received on `token` (`.notRecorded` when it could not be stored).
    func recordCallback(token: String, update: StatusUpdate, at now: Date) -> TaskRegistry.CallbackOutcome
    /// Applies an update by task id (the shared token, polling); nil when the task is unknown
    /// and `createIfMissing` is false.
    func apply(_ update: StatusUpdate, via: TaskEvent.Via, createIfMissing: Bool, at now: Date) throws(StoreError) -> ApplyOutcome?
    /// Changes a task in place (its link, its size, the relay's counters); false when unknown.
    @discardableResult
    func update(_ taskID: String, notify: Bool, _ change: (inout VideoTask) -> Void) throws(StoreError) -> Bool

    func task(_ id: String) throws(StoreError) -> VideoTask?
    /// The task that produced `fileID`.
    func task(fileID: String) throws(StoreError) -> VideoTask?
    /// Newest first, at most `limit`, after `cursor` (from the previous page).
    func list(status: TaskStatus?, limit: Int, cursor: UInt64?) throws(StoreError) -> (tasks: [VideoTask], nextCursor: UInt64?)
    /// The task once it has ended, or as it stands after `timeout` seconds; nil when unknown.
    func waitUntilEnded(_ id: String, timeout: Double) async throws(StoreError) -> VideoTask?
    func countsByStatus() throws(StoreError) -> [(TaskStatus, Int)]
    /// How many tasks there are.
    var count: Int { get throws(StoreError) }
    /// Tasks not ended yet, with when they last changed.
    func unfinished() throws(StoreError) -> [(taskID: String, lastHeard: Date)]
    /// Drops ended tasks past the retention, and the oldest past `max_tasks`.
    func expire(now: Date) throws(StoreError)
}

extension TaskStore {
    @discardableResult
    public func insert(_ task: VideoTask, token: CallbackToken?) throws(StoreError) -> VideoTask {
        try insert(task, token: token, at: Date())
    }

    public func recordCallback(token: String, update: StatusUpdate) -> TaskRegistry.CallbackOutcome {
        recordCallback(token: token, update: update, at: Date())
    }

    public func apply(_ update: StatusUpdate, via: TaskEvent.Via, createIfMissing: Bool) throws(StoreError) -> ApplyOutcome? {
        try apply(update, via: via, createIfMissing: createIfMissing, at: Date())
    }
}

extension TaskStore {
    /// Creates `count` tasks `T0…` with tokens `tok0…`, as the peers' benchmark job does,
    /// through the same calls as real traffic (so a journal, if any, records them).
    public func seedBenchmarkTasks(_ count: Int, shape: TaskRegistry.BenchmarkShape = TaskRegistry.BenchmarkShape(), at now: Date = Date()) {
        let letters = Array("abcdefghijklmnopqrstuvwxyz ")
        for i in 0..<count {
            var request: [String: JSONValue] = [:]
            if shape.promptCharacters > 0 {
                var characters = Array("\(i) ")
                while characters.count < shape.promptCharacters { characters.append(letters[(i &* 31 &+ characters.count) % letters.count]) }
                let prompt = String(characters)
                request = ["model": .string("MiniMax-Hailuo-02"), "prompt": .string(prompt), "duration": .number(6), "resolution": .string("1080P")]
            }
            let token = "tok\(i)"
            _ = try? insert(VideoTask(taskID: "T\(i)", source: .submitted, request: request, createdAt: now), token: CallbackToken(token), at: now)
            if shape.ended {
                let ok = BaseResp(0, "success")
                _ = recordCallback(token: token, update: StatusUpdate(taskID: "T\(i)", status: .processing, baseResp: ok), at: now)
                let done = StatusUpdate(taskID: "T\(i)", status: .success, fileID: "F\(i)", baseResp: ok)
                _ = recordCallback(token: token, update: done, at: now)
                _ = recordCallback(token: token, update: done, at: now)
            }
        }
    }
}

extension Response {
    /// The answer when the store could not be reached: nothing was recorded, send it again.
    static func storeUnavailable(_ error: StoreError) -> Response {
        Response.error(.serviceUnavailable, "the task store is unavailable (\(error.description)); nothing was recorded, send it again", code: "store_unavailable")
    }
}
