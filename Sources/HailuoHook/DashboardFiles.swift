import Foundation
import HTTPServer

/// `GET /` and `/openapi.yaml`: the dashboard's files (HTML, CSS, JS in
/// Sources/HailuoHook/Dashboard) and the API description, read once from the package's resources.
public struct DashboardFiles: Sendable {
    let files: [String: (type: String, bytes: [UInt8])]

    public init() {
        var files: [String: (type: String, bytes: [UInt8])] = [:]
        let types = ["index.html": "text/html; charset=utf-8", "style.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8"]
        for (name, type) in types {
            let parts = name.split(separator: ".")
            if let url = Bundle.module.url(forResource: String(parts[0]), withExtension: String(parts[1]), subdirectory: "Dashboard"),
               let data = try? Data(contentsOf: url) {
                files[name] = (type, Array(data))
            }
        }
        if let url = Bundle.module.url(forResource: "openapi", withExtension: "yaml"), let data = try? Data(contentsOf: url) {
            files["openapi.yaml"] = ("application/yaml; charset=utf-8", Array(data))
        }
        self.files = files
    }

    public func serve(_ name: String) -> Response {
        guard let file = files[name] else {
            return Response.error(.notFound, "the dashboard's \(name) is missing from this build")
        }
        return Response(headers: ["Content-Type": file.type, "Cache-Control": "no-cache"], body: file.bytes)
    }
}
