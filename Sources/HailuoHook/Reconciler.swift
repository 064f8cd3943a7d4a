import Foundation
import Logging
import Synchronization

/// Finds tasks the callbacks forgot: a task that has heard nothing for
/// `reconcile.after_s` (and every unfinished task after a restart) is polled
/// upstream (MINIMAX.md §2), at most `maxConcurrent` at a time, with the
/// interval doubling after each poll that brings no news (up to an hour).
/// What it learns is recorded with `via: "poll"`.
public final class Reconciler: Sendable {
    public static let maxInterval: TimeInterval = 3600

    let registry: any TaskStore
    let client: MiniMaxClient
    let links: DownloadLinks
    let after: TimeInterval
    let maxConcurrent: Int
    let logger: Logger
    /// Per task: when to poll next, and the interval after that.
    private let schedule = Mutex<[String: (next: Date, interval: TimeInterval)]>([:])
    private let polls = Atomic<Int>(0)

    public init(registry: any TaskStore, client: MiniMaxClient, links: DownloadLinks, after: TimeInterval,
                maxConcurrent: Int = 4, logger: Logger) {
        self.registry = registry
        self.client = client
        self.links = links
        self.after = after
        self.maxConcurrent = maxConcurrent
        self.logger = logger
    }

    /// Polls made so far.
    public var pollCount: Int { polls.load(ordering: .relaxed) }

    /// Every unfinished task is due at once (after a restart, callbacks may have been missed).
    public func pollAllUnfinished(now: Date = Date()) {
        let ids = ((try? registry.unfinished()) ?? []).map(\.taskID)
        schedule.withLock { s in
            for id in ids { s[id] = (now, after) }
        }
    }

    /// Runs until cancelled, looking for due tasks a few times per `after`.
    public func run() async {
        let tick = max(0.1, min(after / 4, 5))
        while !Task.isCancelled {
            await pollDue()
            try? await Task.sleep(nanoseconds: UInt64(tick * 1e9))
        }
    }

    /// One pass: the due tasks, `maxConcurrent` at a time.
    public func pollDue(now: Date = Date()) async {
        // With replicas on one database, one of them polls (StoreRole.reconciler).
        guard registry.holds(.reconciler) else { return }
        let unfinished: [(taskID: String, lastHeard: Date)]
        do {
            unfinished = try registry.unfinished()
        } catch {
            logger.warning("reconciler: the task store is unavailable: \(error)")
            return
        }
        let due: [String] = schedule.withLock { s in
            let live = Set(unfinished.map(\.taskID))
            s = s.filter { live.contains($0.key) }
            var due: [String] = []
            for (id, lastHeard) in unfinished {
                if let planned = s[id] {
                    // News since the plan was made resets it.
                    if lastHeard > planned.next.addingTimeInterval(-planned.interval) && now.timeIntervalSince(lastHeard) < after {
                        s[id] = (lastHeard.addingTimeInterval(after), after)
                        continue
                    }
                    if planned.next <= now { due.append(id) }
                } else if now.timeIntervalSince(lastHeard) >= after {
                    due.append(id)
                }
            }
            return due
        }
        guard !due.isEmpty else { return }
        await withTaskGroup(of: Void.self) { group in
            var running = 0
            for id in due {
                if running >= maxConcurrent {
                    await group.next()
                    running -= 1
                }
                group.addTask { await self.poll(id) }
                running += 1
            }
        }
    }

    private func poll(_ taskID: String) async {
        polls.add(1, ordering: .relaxed)
        var news = false
        do {
            let answer = try await client.query(taskID: taskID)
            if let status = TaskStatus(upstream: answer.status), let current = try registry.task(taskID)?.status, status != current {
                let base = status == .failed ? BaseResp(1000, "failed (learned by polling)") : nil
                let update = StatusUpdate(taskID: taskID, status: status, fileID: answer.file_id?.value, baseResp: base)
                if try registry.apply(update, via: .poll, createIfMissing: false) == .applied {
                    news = true
                    logger.info("reconciled by polling", metadata: ["task_id": "\(taskID)", "status": "\(status.rawValue)"])
                    if status == .success, let fileID = update.fileID { links.taskSucceeded(taskID: taskID, fileID: fileID) }
                }
            }
        } catch {
            logger.warning("poll of \(taskID) failed: \(error)")
        }
        let now = Date()
        schedule.withLock { s in
            let interval = news ? after : min(Reconciler.maxInterval, (s[taskID]?.interval ?? after) * 2)
            s[taskID] = (now.addingTimeInterval(interval), interval)
        }
    }
}
