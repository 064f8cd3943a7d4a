import Foundation
import Synchronization
import ProcessSupport
import Testing

/// The real executable, as a user runs it: `serve`, `simulate`, `submit --wait`, `status`, `list`.
@Suite(.serialized) struct CommandLineTests {
    static let binary: String = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/hailuo-hook").path
    }()

    /// A running process whose output (standard output and error together) is collected as it comes.
    final class Running: Sendable {
        let process: ChildProcess

        init(_ arguments: [String], environment: [String: String] = [:], executable: String = CommandLineTests.binary) async throws {
            var env = ProcessInfo.processInfo.environment
            for key in ["MINIMAX_API_KEY", "HAILUO_HOOK_API_TOKEN", "PORT", "HAILUO_HOOK_PORT", "HAILUO_HOOK_CONFIG"] { env[key] = nil }
            env.merge(environment) { $1 }
            process = try await ChildProcess(executable, arguments, environment: env, mergeErrors: true)
        }

        var text: String { process.output }

        /// The port from the "listening on"/"simulating" log line.
        func port() async throws -> Int {
            let pattern = #"port(=|":")\d+"#  // text or JSON logs
            _ = await eventually { self.text.range(of: pattern, options: .regularExpression) != nil || !self.process.isRunning }
            let text = self.text
            guard let range = text.range(of: pattern, options: .regularExpression) else {
                throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "no port in: \(text)"])
            }
            return Int(text[range].filter(\.isNumber))!
        }

        func stop() async -> Int32 {
            process.terminate()
            return await process.wait()
        }
    }

    /// Runs a command to its end; its exit status and output.
    func run(_ arguments: [String], environment: [String: String] = [:], executable: String = CommandLineTests.binary) async throws -> (Int32, String) {
        let running = try await Running(arguments, environment: environment, executable: executable)
        await running.process.wait()  // its end and the last bytes of its output
        return (running.process.terminationStatus, running.text)
    }

    @Test func newUserLoopEndsWithADownloadURL() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build first: swift build")
        let serve = try await Running(["serve", "--port", "0", "--host", "127.0.0.1"])
        let port = try await serve.port()
        #expect(serve.text.contains("simulating MiniMax"))
        let server = "http://127.0.0.1:\(port)"
        let (status, output) = try await run(["submit", "--server", server, "--prompt", "A man picks up a book [Pedestal up], then reads [Static shot].", "--wait"])
        #expect(status == 0, "\(output)")
        let lines = output.split(separator: "\n")
        #expect(lines.first?.hasPrefix("task ") == true)
        #expect(lines.contains("success after") == false)
        #expect(lines.contains { $0.hasPrefix("success after") })
        let url = try #require(lines.last.map(String.init))
        #expect(url.hasPrefix("http://127.0.0.1:") && url.hasSuffix(".mp4"))
        let id = String(lines[0].dropFirst(5))

        let (statusCode, statusOut) = try await run(["status", "--server", server, id])
        #expect(statusCode == 0)
        #expect(statusOut.contains(#""status" : "success""#))
        let (listCode, listOut) = try await run(["list", "--server", server, "--status", "success"])
        #expect(listCode == 0)
        #expect(listOut.contains(id))
        let (missingCode, missingOut) = try await run(["status", "--server", server, "nope"])
        #expect(missingCode == 1)
        #expect(missingOut.contains("HTTP 404"))
        // SIGTERM drains and exits 0.
        #expect(await serve.stop() == 0)
        #expect(serve.text.contains("stopped"))
    }

    @Test func failedTaskExitsNonZero() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build first: swift build")
        let upstream = try await Running(["simulate", "--port", "0", "--fail-rate", "1", "--delay-ms", "50"], environment: ["MINIMAX_API_KEY": "sk-cli"])
        let upstreamPort = try await upstream.port()
        let serve = try await Running(["serve", "--port", "0", "--host", "127.0.0.1", "--upstream-base-url", "http://127.0.0.1:\(upstreamPort)"],
                                environment: ["MINIMAX_API_KEY": "sk-cli"])
        let port = try await serve.port()
        #expect(!serve.text.contains("simulating MiniMax"))
        let (status, output) = try await run(["submit", "--server", "http://127.0.0.1:\(port)", "--prompt", "x", "--wait"])
        #expect(status == 1)
        #expect(output.contains("failed: output video flagged as sensitive (1027)"))
        _ = await serve.stop()
        _ = await upstream.stop()
    }

    @Test func badConfigurationStopsWithExit2() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build first: swift build")
        let (status, output) = try await run(["serve"], environment: ["HAILUO_HOOK_PORT": "eighty"])
        #expect(status == 2)
        #expect(output.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").count == 1)
        #expect(output.contains("server.port"))
        let (flagStatus, _) = try await run(["serve", "--no-such-flag"])
        #expect(flagStatus == 64)
    }

    @Test func jsonLogsCarryRequestAndTaskIdsAndNoSecrets() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build first: swift build")
        let serve = try await Running(["serve", "--port", "0", "--host", "127.0.0.1", "--log-format", "json"],
                                environment: ["HAILUO_HOOK_API_TOKEN": "tok-secret-123"])
        let port = try await serve.port()
        let client = TestClient(base: "http://127.0.0.1:\(port)", token: "tok-secret-123")
        let answer = try await client.call("POST", "/v1/video_generation", json: seedBody, headers: ["X-Request-Id": "req-42"])
        #expect(answer.headers["x-request-id"] == "req-42")
        let id = try #require(answer.json["task_id"] as? String)
        _ = await serve.stop()
        let lines = serve.text.split(separator: "\n").filter { $0.hasPrefix("{") }
        #expect(!lines.isEmpty)
        let objects = lines.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
        #expect(objects.count == lines.count, "every line is one JSON object")
        let submitted = objects.first { $0["message"] as? String == "submitted" }
        #expect(submitted?["request_id"] as? String == "req-42")
        #expect(submitted?["task_id"] as? String == id)
        #expect(!serve.text.contains("tok-secret-123"))
    }

    @Test func healthcheckExitsZeroOnlyWhenTheServerAnswers() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build first: swift build")
        let serve = try await Running(["serve", "--port", "0", "--host", "127.0.0.1"])
        let port = try await serve.port()
        let (up, _) = try await run(["healthcheck"], environment: ["HAILUO_HOOK_PORT": "\(port)"])
        #expect(up == 0)
        _ = await serve.stop()
        let (down, output) = try await run(["healthcheck", "--url", "http://127.0.0.1:\(port)"])
        #expect(down == 1)
        #expect(output.contains("healthcheck"))
    }
}
