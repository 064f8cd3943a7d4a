import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The upstream's three calls (MINIMAX.md §1, §2, §4) under one configurable
/// base URL (MiniMax global, mainland, or a reseller such as kkiai's `…/minimax`).
public struct MiniMaxClient: Sendable {
    public enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        /// The upstream answered with a non-zero `base_resp`.
        case upstream(BaseResp)
        case timeout
        /// Unreachable, or an answer that is not MiniMax's.
        case unavailable(String)

        public var description: String {
            switch self {
            case .upstream(let r): return "upstream error \(r.status_code): \(r.status_msg)"
            case .timeout: return "the upstream did not answer in time"
            case .unavailable(let why): return "the upstream is unavailable: \(why)"
            }
        }

        /// The `base_resp` a MiniMax client reads for this failure.
        public var baseResp: BaseResp {
            switch self {
            case .upstream(let r): return r
            case .timeout: return BaseResp(1001, "upstream timeout")
            case .unavailable(let why): return BaseResp(1000, "upstream unavailable: \(why)")
            }
        }
    }

    public struct QueryAnswer: Sendable, Decodable {
        public var task_id: LenientString?
        public var status: String
        public var file_id: LenientString?
        public var video_width: Int?
        public var video_height: Int?
    }

    public struct FileAnswer: Sendable, Decodable {
        public struct File: Sendable, Decodable {
            public var file_id: LenientString?
            public var bytes: Int?
            public var created_at: Int?
            public var filename: String?
            public var purpose: String?
            public var download_url: String
        }
        public var file: File
    }

    struct Envelope: Decodable { var base_resp: BaseResp? }
    struct SubmitAnswer: Decodable { var task_id: LenientString? }

    public let baseURL: String
    /// Counts calls and their results when set.
    public var metrics: HookMetrics?
    let apiKey: String
    let timeout: Double
    let session: URLSession

    public init(baseURL: String, apiKey: String, timeout: Double) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.apiKey = apiKey
        self.timeout = timeout
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.timeoutIntervalForResource = timeout
        self.session = URLSession(configuration: configuration)
    }

    /// §1: submits; returns the upstream's task id.
    public func submit(_ body: [String: JSONValue]) async throws(Failure) -> String {
        let data = try await call("POST", "/v1/video_generation", body: try? JSONEncoder().encode(JSONValue.object(body)))
        guard let id = (try? JSONDecoder().decode(SubmitAnswer.self, from: data))?.task_id?.value, !id.isEmpty else {
            throw .unavailable("the submit answer has no task_id")
        }
        return id
    }

    /// §2: where the upstream says a task stands.
    public func query(taskID: String) async throws(Failure) -> QueryAnswer {
        let data = try await call("GET", "/v1/query/video_generation?task_id=\(MiniMaxClient.escape(taskID))")
        guard let answer = try? JSONDecoder().decode(QueryAnswer.self, from: data) else {
            throw .unavailable("the query answer is not MiniMax's")
        }
        return answer
    }

    /// §4: the file and its download URL.
    public func retrieve(fileID: String) async throws(Failure) -> FileAnswer {
        let data = try await call("GET", "/v1/files/retrieve?file_id=\(MiniMaxClient.escape(fileID))")
        guard let answer = try? JSONDecoder().decode(FileAnswer.self, from: data) else {
            throw .unavailable("the file answer is not MiniMax's")
        }
        return answer
    }

    static func escape(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? s
    }

    /// One call; a non-zero `base_resp` (MiniMax answers them with HTTP 200) becomes `.upstream`.
    private func call(_ method: String, _ path: String, body: Data? = nil) async throws(Failure) -> Data {
        let name = path.hasPrefix("/v1/video_generation") ? "submit" : path.hasPrefix("/v1/query") ? "query" : "retrieve"
        do {
            let data = try await perform(method, path, body: body)
            metrics?.upstream(name, "ok")
            return data
        } catch {
            switch error {
            case .upstream(let r): metrics?.upstream(name, "base_resp_\(r.status_code)")
            case .timeout: metrics?.upstream(name, "timeout")
            case .unavailable: metrics?.upstream(name, "unavailable")
            }
            throw error
        }
    }

    private func perform(_ method: String, _ path: String, body: Data? = nil) async throws(Failure) -> Data {
        guard let url = URL(string: baseURL + path) else { throw .unavailable("bad base URL \(baseURL)") }
        var request = URLRequest(url: url, timeoutInterval: timeout)
        request.httpMethod = method
        request.setValue("Bearer \(apiKey)", forHTTPHeaderField: "Authorization")
        request.setValue("application/json", forHTTPHeaderField: "Accept")
        if let body {
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.httpBody = body
        }
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await session.data(for: request)
        } catch let error as URLError where error.code == .timedOut {
            throw .timeout
        } catch {
            throw .unavailable(error.localizedDescription)
        }
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        let envelope = try? JSONDecoder().decode(Envelope.self, from: data)
        if let base = envelope?.base_resp, base.status_code != 0 { throw .upstream(base) }
        if status == 401 || status == 403 { throw .upstream(BaseResp(1004, "authentication failed (HTTP \(status))")) }
        guard status == 200 else { throw .unavailable("HTTP \(status)") }
        guard envelope?.base_resp != nil else { throw .unavailable("the answer has no base_resp") }
        return data
    }
}
