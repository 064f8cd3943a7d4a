import Foundation

/// Where a task stands; `success` and `failed` are final.
public enum TaskStatus: String, Sendable, Codable, CaseIterable {
    case submitted, processing, success, failed

    public var isEnded: Bool { self == .success || self == .failed }

    /// Its place in `allCases`.
    var ordinal: Int {
        switch self {
        case .submitted: return 0
        case .processing: return 1
        case .success: return 2
        case .failed: return 3
        }
    }

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

    // The date first: 16 bytes an event instead of 24 (a million tasks hold millions).
    public var at: Date
    public var status: TaskStatus
    public var via: Via
    public var applied: Bool
    public var reason: Reason?

    public init(status: TaskStatus, at: Date, via: Via, applied: Bool, reason: Reason?) {
        self.at = at
        self.status = status
        self.via = via
        self.applied = applied
        self.reason = reason
    }
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
    /// The submitted fields (images summarised) as their JSON text, keys sorted, as the
    /// task JSON shows them (`JSONWriter.value`): about 300 bytes a task where the
    /// dictionary and its strings took about 630 (bench/README.md, 1M tasks).
    public private(set) var requestJSON: [UInt8]
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

    /// The submitted fields, read back from `requestJSON`.
    public var request: [String: JSONValue] {
        get {
            if let value = requestJSON.withUnsafeBytes({ JSONReader.read($0) { r throws(JSONReader.GiveUp) in try r.value() } }),
               case .object(let fields) = value {
                return fields
            }
            return (try? JSONDecoder().decode([String: JSONValue].self, from: Data(requestJSON))) ?? [:]
        }
        set { requestJSON = JSONWriter.json(.object(newValue)) }
    }

    public init(taskID: String, source: Source, request: [String: JSONValue] = [:], notifyURL: String? = nil, createdAt: Date) {
        self.init(taskID: taskID, source: source, requestJSON: JSONWriter.json(.object(request)), notifyURL: notifyURL, createdAt: createdAt)
    }

    /// With the request already as its canonical JSON text.
    init(taskID: String, source: Source, requestJSON: [UInt8], notifyURL: String?, createdAt: Date) {
        self.taskID = taskID
        self.source = source
        self.requestJSON = requestJSON
        self.notifyURL = notifyURL
        self.createdAt = createdAt
        self.updatedAt = createdAt
    }

    // Codable by hand only because `request` is kept as JSON text: the keys and the shape
    // are those the synthesized conformance wrote (journals written before read the same).
    enum CodingKeys: String, CodingKey {
        case taskID, status, source, request, notifyURL, fileID, downloadURL, downloadURLExpiresAt
        case videoWidth, videoHeight, error, createdAt, updatedAt, events, relay
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        taskID = try c.decode(String.self, forKey: .taskID)
        status = try c.decode(TaskStatus.self, forKey: .status)
        source = try c.decode(Source.self, forKey: .source)
        requestJSON = JSONWriter.json(.object(try c.decode([String: JSONValue].self, forKey: .request)))
        notifyURL = try c.decodeIfPresent(String.self, forKey: .notifyURL)
        fileID = try c.decodeIfPresent(String.self, forKey: .fileID)
        downloadURL = try c.decodeIfPresent(String.self, forKey: .downloadURL)
        downloadURLExpiresAt = try c.decodeIfPresent(Date.self, forKey: .downloadURLExpiresAt)
        videoWidth = try c.decodeIfPresent(Int.self, forKey: .videoWidth)
        videoHeight = try c.decodeIfPresent(Int.self, forKey: .videoHeight)
        error = try c.decodeIfPresent(BaseResp.self, forKey: .error)
        createdAt = try c.decode(Date.self, forKey: .createdAt)
        updatedAt = try c.decode(Date.self, forKey: .updatedAt)
        events = try c.decode([TaskEvent].self, forKey: .events)
        relay = try c.decodeIfPresent(RelayStatus.self, forKey: .relay)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(taskID, forKey: .taskID)
        try c.encode(status, forKey: .status)
        try c.encode(source, forKey: .source)
        try c.encode(request, forKey: .request)
        try c.encodeIfPresent(notifyURL, forKey: .notifyURL)
        try c.encodeIfPresent(fileID, forKey: .fileID)
        try c.encodeIfPresent(downloadURL, forKey: .downloadURL)
        try c.encodeIfPresent(downloadURLExpiresAt, forKey: .downloadURLExpiresAt)
        try c.encodeIfPresent(videoWidth, forKey: .videoWidth)
        try c.encodeIfPresent(videoHeight, forKey: .videoHeight)
        try c.encodeIfPresent(error, forKey: .error)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(updatedAt, forKey: .updatedAt)
        try c.encode(events, forKey: .events)
        try c.encodeIfPresent(relay, forKey: .relay)
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
