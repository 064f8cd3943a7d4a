import Foundation
import HTTPServer

/// `POST /v1/callbacks/{token}`: the upstream's challenge and status updates.
public struct Callbacks: Sendable {
    struct Body: Decodable, Equatable {
        var challenge: String?
        var task_id: LenientString?
        var status: String?
        var file_id: LenientString?
        var base_resp: BaseResp?

        /// The body read in place when `JSONReader` is sure of it, else by JSONDecoder
        /// (which also words the error).
        static func read(_ bytes: [UInt8]) throws -> Body {
            if let body = bytes.withUnsafeBytes(JSONReader.callbackBody) { return body }
            return try Callbacks.decoder.decode(Body.self, from: Data(bytes))
        }
    }

    let registry: any TaskStore
    /// `callbacks.shared_token`: one token for tasks submitted elsewhere.
    let sharedToken: String?
    /// Called (outside the lock) when an update made a task succeed with a file id.
    let onSuccess: @Sendable (_ taskID: String, _ fileID: String) -> Void
    /// Counts outcomes when set.
    public var metrics: HookMetrics?

    public init(registry: any TaskStore, sharedToken: String?, onSuccess: @escaping @Sendable (String, String) -> Void = { _, _ in }) {
        self.registry = registry
        self.sharedToken = sharedToken
        self.onSuccess = onSuccess
    }

    static let decoder = JSONDecoder()
    static let recorded = Response.json(.ok, text: #"{"status":"success"}"#)
    static let duplicate = withOutcome("duplicate")
    static let late = withOutcome("late")
    static let outOfOrder = withOutcome("out_of_order")
    static let keptEarly = withOutcome("kept_early")

    /// The same answer, marked for the metrics (the header also tells a curious upstream what happened).
    static func withOutcome(_ outcome: String) -> Response {
        var r = recorded
        r.headers.add("X-Callback-Outcome", outcome)
        return r
    }

    public func handle(_ request: Request) -> Response {
        let response = answer(request)
        if let metrics {
            let outcome: String
            switch response.status.code {
            case 200: outcome = lastOutcome(response)
            default: outcome = "refused"
            }
            metrics.callback(outcome)
        }
        return response
    }

    /// The outcome label of an accepted callback, from the answer built for it.
    private func lastOutcome(_ response: Response) -> String {
        response.headers["X-Callback-Outcome"] ?? "applied"
    }

    private func answer(_ request: Request) -> Response {
        let body: Body
        do {
            body = try Body.read(request.body)
        } catch {
            return Response.error(.badRequest, "the body is not a JSON callback object: \(JSONErrors.describe(error))", code: "bad_json")
        }
        if let challenge = body.challenge {
            var echo = Response.json(.ok, text: #"{"challenge":"# + JSONText.quote(challenge) + "}")
            echo.headers.add("X-Callback-Outcome", "challenge")
            return echo
        }
        guard let taskID = body.task_id?.value, !taskID.isEmpty else {
            return Response.error(.badRequest, "task_id is required")
        }
        guard let statusText = body.status else {
            return Response.error(.badRequest, "status is required")
        }
        guard let status = TaskStatus(upstream: statusText) else {
            return Response.error(.badRequest, "status '\(statusText)' is not one of processing, success, failed")
        }
        let update = StatusUpdate(taskID: taskID, status: status, fileID: body.file_id?.value, baseResp: body.base_resp)
        let token = request.parameters["token"] ?? ""
        let outcome: TaskRegistry.CallbackOutcome
        if let sharedToken, CallbackToken.constantTimeEquals(token, sharedToken) {
            do {
                outcome = try registry.apply(update, via: .callback, createIfMissing: true).map { .recorded($0) } ?? .unknownToken
            } catch {
                outcome = .notRecorded(error.description)
            }
        } else {
            outcome = registry.recordCallback(token: token, update: update)
        }
        switch outcome {
        case .recorded(let applied):
            if applied == .applied, status == .success, let fileID = update.fileID { onSuccess(taskID, fileID) }
            switch applied {
            case .applied: return Callbacks.recorded
            case .ignored(.duplicate): return Callbacks.duplicate
            case .ignored(.afterEnd): return Callbacks.late
            case .ignored(.outOfOrder): return Callbacks.outOfOrder
            }
        case .keptUntilSubmitted:
            return Callbacks.keptEarly
        case .unknownToken:
            return Response.error(.notFound, "unknown callback token")
        case .notRecorded(let why):
            return Response.error(.serviceUnavailable, "the callback could not be recorded (\(why)); send it again", code: "not_recorded")
        case .taskMismatch:
            return Response.error(.conflict, "task_id \(taskID) does not belong to this callback URL", code: "task_mismatch")
        }
    }
}

/// One-line descriptions of decoding errors, naming the field.
enum JSONErrors {
    static func describe(_ error: Error) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        switch error {
        case .typeMismatch(let type, let context):
            return "\(path(context)) must be \(typeName(type))"
        case .valueNotFound(let type, let context):
            return "\(path(context)) must be \(typeName(type)), not null"
        case .keyNotFound(let key, let context):
            return "\(path(context, key)) is required"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty { return "invalid JSON" }
            return "\(path(context)) is invalid"
        @unknown default:
            return "invalid JSON"
        }
    }

    private static func path(_ context: DecodingError.Context, _ key: CodingKey? = nil) -> String {
        let keys = context.codingPath + (key.map { [$0] } ?? [])
        let text = keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        return text.isEmpty ? "the body" : text
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type, is LenientString.Type: return "a string"
        case is Int.Type, is Double.Type: return "a number"
        case is Bool.Type: return "true or false"
        default: return "an object"
        }
    }
}
