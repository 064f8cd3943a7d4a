import Foundation
import Logging
import Synchronization
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// What the relay did for a task, shown on it.
public struct RelayStatus: Sendable, Codable, Equatable {
    public var attempts = 0
    public var delivered = 0
    /// Deliveries given up after the last retry, or dropped from a full queue.
    public var failed = 0
    public var last_status: Int?
    public var last_error: String?
    public var last_attempt_at: Date?

    public init() {}
}

/// POSTs each change of a task that has a `notify_url` there, as the task
/// JSON, in order per task: one delivery at a time per task, retried with
/// exponential back-off and jitter; a bounded queue per task.
public final class Relay: Sendable {
    public struct Policy: Sendable {
        public var maxAttempts = 8
        public var baseDelay = 0.5
        public var maxDelay = 60.0
        public var queuePerTask = 32
        public var timeout = 10.0
        public init() {}
    }

    struct Lane {
        var pending: [VideoTask] = []
        var running = false
    }

    let registry: any TaskStore
    let metrics: HookMetrics?
    let policy: Policy
    let logger: Logger
    let session: URLSession
    private let lanes = Mutex<[String: Lane]>([:])

    public init(registry: any TaskStore, metrics: HookMetrics? = nil, policy: Policy = Policy(), logger: Logger) {
        self.registry = registry
        self.metrics = metrics
        self.policy = policy
        self.logger = logger
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = policy.timeout
        self.session = URLSession(configuration: configuration)
    }

    /// Queues a change of `task` (called by the registry after each change).
    public func enqueue(_ task: VideoTask) {
        guard task.notifyURL != nil else { return }
        let (start, dropped) = lanes.withLock { lanes -> (Bool, Bool) in
            var lane = lanes[task.taskID] ?? Lane()
            var dropped = false
            if lane.pending.count >= policy.queuePerTask {
                lane.pending.removeFirst()  // the newest state matters most
                dropped = true
            }
            lane.pending.append(task)
            let start = !lane.running
            lane.running = true
            lanes[task.taskID] = lane
            return (start, dropped)
        }
        if dropped { record(task.taskID) { $0.failed += 1; $0.last_error = "queue full: an older change was dropped" } }
        if start { Task { await self.drain(task.taskID) } }
    }

    /// Delivers a task's queued changes one after another.
    private func drain(_ taskID: String) async {
        while true {
            let next = lanes.withLock { lanes -> VideoTask? in
                guard var lane = lanes[taskID], !lane.pending.isEmpty else {
                    lanes[taskID] = nil
                    return nil
                }
                let task = lane.pending.removeFirst()
                lanes[taskID] = lane
                return task
            }
            guard let task = next else { return }
            await deliver(task)
        }
    }

    private func deliver(_ task: VideoTask) async {
        guard let target = task.notifyURL.flatMap(URL.init(string:)) else { return }
        let body = Data(JSONWriter.task(task, withEvents: true))
        for attempt in 1...policy.maxAttempts {
            var request = URLRequest(url: target)
            request.httpMethod = "POST"
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.setValue("hailuo-hook relay", forHTTPHeaderField: "User-Agent")
            request.httpBody = body
            var status: Int? = nil
            var failure: String? = nil
            do {
                let (_, response) = try await session.data(for: request)
                status = (response as? HTTPURLResponse)?.statusCode
                if !(200..<300).contains(status ?? 0) { failure = "HTTP \(status ?? 0)" }
            } catch {
                failure = error.localizedDescription
            }
            let now = Date()
            record(task.taskID) { r in
                r.attempts += 1
                r.last_status = status
                r.last_error = failure
                r.last_attempt_at = now
                if failure == nil { r.delivered += 1 }
            }
            metrics?.relay(failure == nil ? "delivered" : "failed_attempt")
            if failure == nil { return }
            if attempt == policy.maxAttempts { break }
            // Exponential back-off with full jitter.
            let cap = min(policy.maxDelay, policy.baseDelay * pow(2, Double(attempt - 1)))
            try? await Task.sleep(nanoseconds: UInt64(Double.random(in: cap / 2...cap) * 1e9))
        }
        record(task.taskID) { $0.failed += 1 }
        metrics?.relay("gave_up")
        logger.warning("relay to \(task.notifyURL ?? "") gave up after \(policy.maxAttempts) attempts", metadata: ["task_id": "\(task.taskID)"])
    }

    private func record(_ taskID: String, _ change: @escaping (inout RelayStatus) -> Void) {
        // Bookkeeping, best effort: a lost counter is not worth a failed delivery.
        _ = try? registry.update(taskID, notify: false) { task in
            var relay = task.relay ?? RelayStatus()
            change(&relay)
            task.relay = relay
        }
    }
}
