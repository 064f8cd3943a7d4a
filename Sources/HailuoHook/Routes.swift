import Foundation
import HTTPServer

/// The server's routes, wired to the domain.
public enum Routes {
    static let healthy = Response.json(.ok, text: #"{"status":"ok"}"#)

    public static func make(callbacks: Callbacks, maxBodyBytes: Int) -> Router {
        let router = Router()
        router.get("/healthz", .sync { _ in healthy })
        let json = RouteOptions(maxBodyBytes: maxBodyBytes, accepts: ["application/json"])
        router.post("/v1/callbacks/:token", options: json, .sync { callbacks.handle($0) })
        return router
    }
}
