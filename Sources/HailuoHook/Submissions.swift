import Foundation
import HTTPServer
import Logging

/// `POST /v1/video_generation`: checks the body against the upstream's
/// rules, puts a callback URL of ours on it, submits it upstream and records
/// the task before answering.
public struct Submissions: Sendable {
    let registry: any TaskStore
    let client: MiniMaxClient
    /// `<public_url>`, without a trailing slash.
    let publicURL: String
    let logger: Logger
    let keys: IdempotencyKeys

    public init(registry: any TaskStore, client: MiniMaxClient, publicURL: String, keys: IdempotencyKeys, logger: Logger) {
        self.keys = keys
        self.registry = registry
        self.client = client
        self.publicURL = publicURL
        self.logger = logger
    }

    public func handle(_ request: Request) async -> Response {
        guard let key = request.headers["Idempotency-Key"] else { return await submit(request) }
        guard (1...255).contains(key.utf8.count) else {
            return APIError.minimax(.badRequest, "Idempotency-Key must be 1 to 255 characters")
        }
        let begun: IdempotencyKeys.Begin
        do { begun = try keys.begin(key: key, body: request.body) } catch { return .storeUnavailable(error) }
        switch begun {
        case .replay(let entry):
            var response = Response.json(Status(code: entry.status), entry.answer)
            response.headers.add("Idempotent-Replayed", "true")
            return response
        case .otherBody:
            return APIError.minimax(.unprocessableContent, "Idempotency-Key \(key) was already used with another body", code: "idempotency_key_reused")
        case .inProgress:
            return APIError.minimax(.conflict, "a submission with Idempotency-Key \(key) is still in progress; retry shortly", code: "idempotency_key_in_progress")
        case .proceed:
            let response = await submit(request)
            // Keep what repeating would give again; let upstream failures be retried.
            if response.status.code == 200 || response.status.code == 400 {
                keys.finish(key: key, body: request.body, status: response.status.code, answer: response.body)
            } else {
                keys.abandon(key: key)
            }
            return response
        }
    }

    private func submit(_ request: Request) async -> Response {
        let video: VideoRequest
        do {
            video = try VideoRequest.parse(request.body)
        } catch {
            return APIError.minimax(.badRequest, error.message, code: "invalid_request")
        }
        let token = CallbackToken.generate()
        // Reserved first: the upstream may call back before its submit answer arrives.
        do { try registry.reserve(token: token) } catch { return .storeUnavailable(error) }
        let callbackURL = "\(publicURL)/v1/callbacks/\(token.value)"
        let taskID: String
        do {
            taskID = try await client.submit(video.upstreamBody(callbackURL: callbackURL))
        } catch {
            registry.release(token: token)
            logger.warning("submit refused upstream: \(error)", metadata: ["request_id": "\(request.id)"])
            switch error {
            case .timeout:
                return APIError.response(.gatewayTimeout, error.description, code: "upstream_timeout", baseResp: error.baseResp)
            case .upstream, .unavailable:
                return APIError.response(.badGateway, error.description, code: "upstream_error", baseResp: error.baseResp)
            }
        }
        let task = VideoTask(taskID: taskID, source: .submitted, request: video.recorded, notifyURL: video.notifyURL, createdAt: Date())
        do {
            try registry.insert(task, token: token)
        } catch {
            // Submitted upstream but not recorded: say so, with the id, rather than lose it silently.
            logger.error("task \(taskID) submitted but not recorded: \(error)")
            return APIError.response(.internalServerError, "task \(taskID) was submitted upstream but could not be recorded: \(error)",
                                     code: "not_recorded", baseResp: BaseResp(1000, "task \(taskID) not recorded"))
        }
        logger.info("submitted", metadata: ["task_id": "\(taskID)", "request_id": "\(request.id)", "model": "\(video.fields["model"]?.stringValue ?? "")"])
        let body: JSONValue = .object([
            "task_id": .string(taskID),
            "base_resp": .object(["status_code": .number(0), "status_msg": .string("success")]),
        ])
        return Response.json(.ok, TaskJSON.encode(body))
    }
}
