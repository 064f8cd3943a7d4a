import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `--server` and `--token`, shared by the client commands.
struct ServerOptions: ParsableArguments {
    @Option(help: "The hailuo-hook server.") var server = "http://127.0.0.1:8080"
    @Option(help: "API token (prefer $HAILUO_HOOK_API_TOKEN: a flag shows in ps).") var token: String?

    var bearer: String? { ProcessInfo.processInfo.environment["HAILUO_HOOK_API_TOKEN"] ?? token }
}

/// A failed call, said in one line; the command exits 1.
struct ClientFailure: Error, CustomStringConvertible {
    let description: String
}

/// The client side of the HTTP API.
struct APIClient {
    let base: String
    let token: String?
    let session: URLSession

    init(_ options: ServerOptions, timeout: Double = 90) {
        base = options.server.hasSuffix("/") ? String(options.server.dropLast()) : options.server
        token = options.bearer
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        session = URLSession(configuration: configuration)
    }

    /// The JSON object the server answered; a non-2xx answer becomes its error message.
    func call(_ method: String, _ path: String, body: [String: Any]? = nil) async throws -> [String: Any] {
        guard let url = URL(string: base + path) else { throw ClientFailure(description: "bad server URL \(base)") }
        var request = URLRequest(url: url)
        request.httpMethod = method
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        if let body {
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.httpBody = try JSONSerialization.data(withJSONObject: body)
        }
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await session.data(for: request)
        } catch {
            throw ClientFailure(description: "cannot reach \(base): \(error.localizedDescription)")
        }
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        guard (200..<300).contains(status) else {
            let message = (object["error"] as? [String: Any])?["message"] as? String ?? String(decoding: data, as: UTF8.self)
            throw ClientFailure(description: "HTTP \(status): \(message)")
        }
        return object
    }
}

struct Submit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Submit a video-generation task through a running server.")

    @OptionGroup var options: ServerOptions
    @Option(help: "What the video shows (camera commands in brackets, e.g. [Pan left]).") var prompt: String
    @Option(help: "Model.") var model = "MiniMax-Hailuo-02"
    @Option(help: "Seconds: 6 or 10.") var duration = 6
    @Option(help: "512P, 720P, 768P or 1080P.") var resolution = "768P"
    @Option(help: "First frame: an image file (sent as a data URL) or a URL.") var firstFrame: String?
    @Flag(help: "Show progress until the task ends, then print the download URL.") var wait = false

    func run() async throws {
        var body: [String: Any] = ["model": model, "prompt": prompt, "duration": duration, "resolution": resolution]
        if let firstFrame { body["first_frame_image"] = try Submit.image(firstFrame) }
        let client = APIClient(options)
        do {
            let answer = try await client.call("POST", "/v1/video_generation", body: body)
            guard let id = answer["task_id"] as? String else { throw ClientFailure(description: "the server answered no task_id") }
            guard wait else { print(id); return }
            try await Submit.follow(id, client: client)
        } catch let failure as ClientFailure {
            printError(failure.description)
            throw ExitCode(1)
        }
    }

    /// A local file becomes a data URL; anything else is passed as a URL.
    static func image(_ argument: String) throws -> String {
        if argument.hasPrefix("http://") || argument.hasPrefix("https://") || argument.hasPrefix("data:") { return argument }
        guard let data = FileManager.default.contents(atPath: argument) else {
            throw ValidationError("cannot read the first frame \(argument)")
        }
        let ext = (argument as NSString).pathExtension.lowercased()
        let types = ["jpg": "jpeg", "jpeg": "jpeg", "png": "png", "webp": "webp"]
        guard let type = types[ext] else { throw ValidationError("the first frame must be a .jpg, .jpeg, .png or .webp file") }
        return "data:image/\(type);base64,\(data.base64EncodedString())"
    }

    /// Shows status and elapsed time until the task ends; exits non-zero on failure.
    static func follow(_ id: String, client: APIClient) async throws {
        let started = Date()
        let terminal = isatty(STDOUT_FILENO) == 1
        var last = ""
        if !terminal { print("task \(id)") }
        var query = ""
        while true {
            let task = try await client.call("GET", "/v1/tasks/\(id)\(query)")
            query = "?wait=1"  // wakes at the end, or after a second to update the clock
            let status = task["status"] as? String ?? "?"
            let elapsed = String(format: "%.1f s", Date().timeIntervalSince(started))
            if terminal {
                print("\r\u{1B}[2K\(id)  \(status)  \(elapsed)", terminator: "")
                fflush(nil)
            } else if status != last {
                print("\(status) after \(elapsed)")
            }
            last = status
            if status == "failed" {
                if terminal { print() }
                let error = task["error"] as? [String: Any]
                printError("task \(id) failed: \(error?["status_msg"] as? String ?? "no reason given") (\(error?["status_code"] ?? "?"))")
                throw ExitCode(1)
            }
            if status == "success" {
                if terminal { print() }
                // The link is fetched in the background once the task succeeds.
                for _ in 0..<150 {
                    let current = try await client.call("GET", "/v1/tasks/\(id)")
                    if let url = current["download_url"] as? String {
                        print(url)
                        return
                    }
                    try await Task.sleep(nanoseconds: 200_000_000)
                }
                printError("task \(id) succeeded but its download URL is not known yet; try: hailuo-hook status \(id)")
                throw ExitCode(1)
            }
        }
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show one task as the server records it.")
    @OptionGroup var options: ServerOptions
    @Argument(help: "The task id.") var taskID: String

    func run() async throws {
        do {
            let task = try await APIClient(options).call("GET", "/v1/tasks/\(taskID)")
            let data = try JSONSerialization.data(withJSONObject: task, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
            print(String(decoding: data, as: UTF8.self))
        } catch let failure as ClientFailure {
            printError(failure.description)
            throw ExitCode(1)
        }
    }
}

struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List tasks, newest first.")
    @OptionGroup var options: ServerOptions
    @Option(help: "Only tasks in this status: submitted, processing, success or failed.") var status: String?
    @Option(help: "At most this many (1-500).") var limit = 50

    func run() async throws {
        var path = "/v1/tasks?limit=\(limit)"
        if let status { path += "&status=\(status)" }
        do {
            let answer = try await APIClient(options).call("GET", path)
            let tasks = answer["tasks"] as? [[String: Any]] ?? []
            for line in List.rows(tasks) { print(line) }
        } catch let failure as ClientFailure {
            printError(failure.description)
            throw ExitCode(1)
        }
    }

    static func rows(_ tasks: [[String: Any]]) -> [String] {
        tasks.map { task in
            let id = task["task_id"] as? String ?? "?"
            let status = task["status"] as? String ?? "?"
            let updated = task["updated_at"] as? String ?? ""
            let model = (task["request"] as? [String: Any])?["model"] as? String ?? "-"
            return [id.padding(toLength: 20, withPad: " ", startingAt: 0),
                    status.padding(toLength: 11, withPad: " ", startingAt: 0),
                    updated.padding(toLength: 21, withPad: " ", startingAt: 0), model].joined(separator: " ")
        }
    }
}

struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print each change of any task as it happens, from /v1/events (Ctrl-C stops).")
    @OptionGroup var options: ServerOptions

    func run() async throws {
        let client = APIClient(options)
        var lastID: String? = nil
        while true {
            let reader = EventReader(lastEventID: lastID)
            let status = await reader.follow(client)
            lastID = reader.lastEventID ?? lastID
            if let status, status != 200 {
                printError(status == 401 ? "HTTP 401: set HAILUO_HOOK_API_TOKEN" : "HTTP \(status) from /v1/events")
                throw ExitCode(1)
            }
            // The server went away or restarted: resume from the last event seen.
            try await Task.sleep(nanoseconds: 1_000_000_000)
        }
    }
}

/// Reads `text/event-stream` as it arrives and prints one line per task change.
final class EventReader: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    // Touched only on the session's delegate queue (serial), then read after the stream ends.
    private var buffer = ""
    private(set) var lastEventID: String?
    private var status: Int?
    private var done: CheckedContinuation<Int?, Never>?
    private let lock = NSLock()

    init(lastEventID: String?) {
        self.lastEventID = lastEventID
    }

    /// Follows the stream until it ends; the HTTP status, or nil when unreachable.
    func follow(_ client: APIClient) async -> Int? {
        guard let url = URL(string: client.base + "/v1/events") else { return nil }
        var request = URLRequest(url: url, timeoutInterval: 3600)
        request.setValue("text/event-stream", forHTTPHeaderField: "Accept")
        if let token = client.token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        if let lastEventID { request.setValue(lastEventID, forHTTPHeaderField: "Last-Event-ID") }
        let queue = OperationQueue()
        queue.maxConcurrentOperationCount = 1
        let session = URLSession(configuration: .ephemeral, delegate: self, delegateQueue: queue)
        return await withCheckedContinuation { continuation in
            lock.lock(); done = continuation; lock.unlock()
            session.dataTask(with: request).resume()
        }
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        status = (response as? HTTPURLResponse)?.statusCode
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        buffer += String(decoding: data, as: UTF8.self)
        while let end = buffer.range(of: "\n\n") {
            let event = String(buffer[..<end.lowerBound])
            buffer = String(buffer[end.upperBound...])
            var data = ""
            for line in event.split(separator: "\n") {
                if line.hasPrefix("id: ") { lastEventID = String(line.dropFirst(4)) }
                if line.hasPrefix("data: ") { data += line.dropFirst(6) }
            }
            guard !data.isEmpty, let task = (try? JSONSerialization.jsonObject(with: Data(data.utf8))) as? [String: Any] else { continue }
            print(List.rows([task])[0])
            fflush(nil)
        }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        session.finishTasksAndInvalidate()
        lock.lock(); let continuation = done; done = nil; lock.unlock()
        continuation?.resume(returning: status)
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data("hailuo-hook: \(message)\n".utf8))
}
