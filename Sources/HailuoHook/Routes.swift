import Foundation
import HTTPServer

/// The server's routes, wired to the domain. `api.token`, when set, guards
/// every `/v1/` route but the callbacks.
public enum Routes {
    static let healthy = Response.json(.ok, text: #"{"status":"ok"}"#)

    public struct Parts: Sendable {
        public var callbacks: Callbacks
        public var submissions: Submissions?
        public var queries: TaskQueries?
        public var events: EventStream?
        public var apiToken: String?
        public var maxBodyBytes: Int
        public var maxSubmitBodyBytes: Int
        /// The store's calls block (PostgreSQL): its routes run on worker threads.
        public var storeBlocks: Bool

        public init(callbacks: Callbacks, submissions: Submissions? = nil, queries: TaskQueries? = nil, events: EventStream? = nil,
                    apiToken: String? = nil, maxBodyBytes: Int, maxSubmitBodyBytes: Int, storeBlocks: Bool = false) {
            self.storeBlocks = storeBlocks
            self.events = events
            self.callbacks = callbacks
            self.submissions = submissions
            self.queries = queries
            self.apiToken = apiToken
            self.maxBodyBytes = maxBodyBytes
            self.maxSubmitBodyBytes = maxSubmitBodyBytes
        }
    }

    public static func make(_ parts: Parts) -> Router {
        let router = Router()
        install(on: router, parts)
        return router
    }

    /// Adds the routes to `router`; call before its server starts.
    public static func install(on router: Router, _ parts: Parts) {
        let callbacks = parts.callbacks
        router.get("/healthz", .sync { _ in healthy })
        let json = RouteOptions(maxBodyBytes: parts.maxBodyBytes, accepts: ["application/json"])
        let guard_ = Guard(token: parts.apiToken, storeBlocks: parts.storeBlocks)
        router.post("/v1/callbacks/:token", options: json, Guard(token: nil, storeBlocks: parts.storeBlocks).store { callbacks.handle($0) })

        if let submissions = parts.submissions {
            let submit = RouteOptions(maxBodyBytes: parts.maxSubmitBodyBytes, accepts: ["application/json"])
            router.post("/v1/video_generation", options: submit, guard_.async(minimax: true) { await submissions.handle($0) })
        }
        if let queries = parts.queries {
            router.get("/v1/tasks", guard_.store { queries.list($0) })
            router.get("/v1/tasks/:id", guard_.async { await queries.task($0) })
            router.get("/v1/query/video_generation", guard_.store(minimax: true) { queries.minimaxQuery($0) })
            router.get("/v1/files/retrieve", guard_.async(minimax: true) { await queries.minimaxFile($0) })
        }
        if let events = parts.events {
            router.get("/v1/events", guard_.sync { events.handle($0) })
        }
        let dashboard = DashboardFiles()
        router.get("/", .sync { _ in dashboard.serve("index.html") })
        router.get("/dashboard/style.css", .sync { _ in dashboard.serve("style.css") })
        router.get("/dashboard/app.js", .sync { _ in dashboard.serve("app.js") })
        router.get("/openapi.yaml", .sync { _ in dashboard.serve("openapi.yaml") })
    }

    /// `Authorization: Bearer <api.token>`, compared in constant time.
    struct Guard: Sendable {
        let token: String?
        var storeBlocks = false

        func refusal(_ request: Request, minimax: Bool) -> Response? {
            guard let token else { return nil }
            let header = request.headers["Authorization"] ?? ""
            var given = header.lowercased().hasPrefix("bearer ") ? String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces) : ""
            // EventSource cannot send headers: the event stream also takes ?access_token=.
            if given.isEmpty, request.path == "/v1/events", let query = request.query("access_token") { given = query }
            if CallbackToken.constantTimeEquals(given, token) { return nil }
            let message = header.isEmpty ? "the Authorization header is missing; send Authorization: Bearer <api.token>"
                                         : "the Authorization header does not carry the right bearer token"
            var response = minimax ? APIError.minimax(.unauthorized, message) : APIError.response(.unauthorized, message)
            response.headers.add("WWW-Authenticate", "Bearer")
            return response
        }

        func sync(minimax: Bool = false, _ handler: @escaping @Sendable (Request) -> Response) -> Handler {
            .sync { request in refusal(request, minimax: minimax) ?? handler(request) }
        }

        /// A route that reads or writes the task store: in place with the in-memory one, on a
        /// worker thread with PostgreSQL.
        func store(minimax: Bool = false, _ handler: @escaping @Sendable (Request) -> Response) -> Handler {
            let guarded: @Sendable (Request) -> Response = { request in refusal(request, minimax: minimax) ?? handler(request) }
            return storeBlocks ? .blocking(guarded) : .sync(guarded)
        }

        func async(minimax: Bool = false, _ handler: @escaping @Sendable (Request) async -> Response) -> Handler {
            .async { request in
                if let refusal = refusal(request, minimax: minimax) { return refusal }
                return await handler(request)
            }
        }
    }
}
