import Foundation
import HTTPServer
import Logging

/// `POST /v1/video_generation`: checks the body against the upstream's
/// rules, puts a callback URL of ours on it, submits it upstream and records
/// the task before answering.
public struct Submissions: Sendable {
    let registry: TaskRegistry
    let client: MiniMaxClient
    /// `<public_url>`, without a trailing slash.
    let publicURL: String
    let logger: Logger

    public init(registry: TaskRegistry, client: MiniMaxClient, publicURL: String, logger: Logger) {
        self.registry = registry
        self.client = client
        self.publicURL = publicURL
        self.logger = logger
    }

    public func handle(_ request: Request) async -> Response {
        let video: VideoRequest
        do {
            video = try VideoRequest.parse(request.body)
        } catch {
            return APIError.minimax(.badRequest, error.message, code: "invalid_request")
        }
        let token = CallbackToken.generate()
        // Reserved first: the upstream may call back before its submit answer arrives.
        registry.reserve(token: token)
        let callbackURL = "\(publicURL)/v1/callbacks/\(token.value)"
        let taskID: String
        do {
            taskID = try await client.submit(video.upstreamBody(callbackURL: callbackURL))
        } catch {
            registry.release(token: token)
            logger.warning("submit refused upstream: \(error)")
            switch error {
            case .timeout:
                return APIError.response(.gatewayTimeout, error.description, code: "upstream_timeout", baseResp: error.baseResp)
            case .upstream, .unavailable:
                return APIError.response(.badGateway, error.description, code: "upstream_error", baseResp: error.baseResp)
            }
        }
        let task = VideoTask(taskID: taskID, source: .submitted, request: video.recorded, notifyURL: video.notifyURL, createdAt: Date())
        registry.insert(task, token: token)
        logger.info("submitted", metadata: ["task_id": "\(taskID)", "model": "\(video.fields["model"]?.stringValue ?? "")"])
        let body: JSONValue = .object([
            "task_id": .string(taskID),
            "base_resp": .object(["status_code": .number(0), "status_msg": .string("success")]),
        ])
        return Response.json(.ok, TaskJSON.encode(body))
    }
}
