import Foundation

/// Where a task stands; `success` and `failed` are final.
public enum TaskStatus: String, Sendable, Codable, CaseIterable {
    case submitted, processing, success, failed

    public var isEnded: Bool { self == .success || self == .failed }

    /// Order of progress: an update may only move a task forward.
    var rank: Int {
        switch self {
        case .submitted: return 0
        case .processing: return 1
        case .success, .failed: return 2
        }
    }

    /// Reads a status in the callback vocabulary (`processing`, `success`,
    /// `failed`) or the query one (`Preparing`, `Queueing`, `Processing`,
    /// `Success`, `Fail`), case-insensitively.
    public init?(upstream text: String) {
        switch text.lowercased() {
        case "processing": self = .processing
        case "success", "succeeded": self = .success
        case "failed", "fail", "failure": self = .failed
        case "queueing", "preparing", "submitted": self = .submitted
        default: return nil
        }
    }

    /// The status as MiniMax's query answer spells it.
    public var queryVocabulary: String {
        switch self {
        case .submitted: return "Queueing"
        case .processing: return "Processing"
        case .success: return "Success"
        case .failed: return "Fail"
        }
    }
}

/// MiniMax's `base_resp`.
public struct BaseResp: Sendable, Codable, Equatable {
    public var status_code: Int
    public var status_msg: String

    public init(_ code: Int, _ message: String) {
        status_code = code
        status_msg = message
    }

    public static let success = BaseResp(0, "success")
}

/// One status update from the upstream, by callback or by polling.
public struct StatusUpdate: Sendable, Equatable, Codable {
    public var taskID: String
    public var status: TaskStatus
    public var fileID: String?
    public var baseResp: BaseResp?

    public init(taskID: String, status: TaskStatus, fileID: String? = nil, baseResp: BaseResp? = nil) {
        self.taskID = taskID
        self.status = status
        self.fileID = fileID
        self.baseResp = baseResp
    }
}

/// Every update received, applied or not.
public struct TaskEvent: Sendable, Codable, Equatable {
    public enum Via: String, Sendable, Codable { case callback, poll }
    /// Why an update changed nothing.
    public enum Reason: String, Sendable, Codable {
        case duplicate
        case afterEnd = "after_end"
        case outOfOrder = "out_of_order"
    }

    public var status: TaskStatus
    public var at: Date
    public var via: Via
    public var applied: Bool
    public var reason: Reason?
}

/// The outcome of applying one update to a task.
public enum ApplyOutcome: Sendable, Equatable {
    case applied
    case ignored(TaskEvent.Reason)
}

/// A video-generation task and its state machine:
/// `submitted → processing → success | failed`, ended states final, every
/// update kept as an event. Pure: no clock, no I/O.
public struct VideoTask: Sendable, Codable, Equatable {
    public enum Source: String, Sendable, Codable { case submitted, external }

    /// Events kept per task. Past it the oldest event that changed nothing is
    /// dropped, so the transitions themselves are always kept.
    public static let maxEvents = 64

    public var taskID: String
    public var status: TaskStatus = .submitted
    public var source: Source
    /// The submitted fields, images summarised.
    public var request: [String: JSONValue]
    public var notifyURL: String?
    public var fileID: String?
    public var downloadURL: String?
    public var downloadURLExpiresAt: Date?
    public var videoWidth: Int?
    public var videoHeight: Int?
    public var error: BaseResp?
    public var createdAt: Date
    public var updatedAt: Date
    public var events: [TaskEvent] = []
    /// Deliveries to `notify_url`, when there is one.
    public var relay: RelayStatus?

    public init(taskID: String, source: Source, request: [String: JSONValue] = [:], notifyURL: String? = nil, createdAt: Date) {
        self.taskID = taskID
        self.source = source
        self.request = request
        self.notifyURL = notifyURL
        self.createdAt = createdAt
        self.updatedAt = createdAt
    }

    /// Applies `update` if it moves the task forward; records it as an event either way.
    @discardableResult
    public mutating func apply(_ update: StatusUpdate, at: Date, via: TaskEvent.Via) -> ApplyOutcome {
        let outcome: ApplyOutcome
        if update.status == status {
            outcome = .ignored(.duplicate)
        } else if status.isEnded {
            outcome = .ignored(.afterEnd)
        } else if update.status.rank <= status.rank {
            outcome = .ignored(.outOfOrder)
        } else {
            outcome = .applied
            status = update.status
            updatedAt = at
            if update.status == .success, let fileID = update.fileID { self.fileID = fileID }
            if update.status == .failed { error = update.baseResp ?? BaseResp(1000, "failed") }
        }
        var reason: TaskEvent.Reason? = nil
        if case .ignored(let r) = outcome { reason = r }
        appendEvent(TaskEvent(status: update.status, at: at, via: via, applied: reason == nil, reason: reason))
        return outcome
    }

    private mutating func appendEvent(_ event: TaskEvent) {
        if events.count >= VideoTask.maxEvents {
            if let i = events.firstIndex(where: { !$0.applied }) {
                events.remove(at: i)
            } else {
                events.removeFirst()
            }
        }
        events.append(event)
    }
}
