import Foundation
import HailuoHook
import Testing

/// `serve` against the simulator as the upstream, each on its own listener,
/// the upstream calling back over HTTP as MiniMax does.
@Suite struct EndToEndTests {
    /// A stand-alone simulator, and `serve` pointed at it with a key.
    func withLoop(_ simulator: Simulator.Options, _ body: (HookServer, TestClient, Simulator) async throws -> Void) async throws {
        var options = simulator
        options.apiKey = "sk-e2e"
        let upstream = try Simulator(options: options, logger: quietLogger("simulator"))
        do {
            try await withHook({ $0.upstreamAPIKey = "sk-e2e"; $0.upstreamBaseURL = upstream.baseURL }) { hook, client in
                try await body(hook, client, upstream)
            }
        } catch {
            await upstream.shutdown()
            throw error
        }
        await upstream.shutdown()
    }

    func submitAndWait(_ client: TestClient) async throws -> [String: Any] {
        let submitted = try await client.post("/v1/video_generation", seedBody)
        #expect(submitted.status == 200, "\(submitted.text)")
        let id = try #require(submitted.json["task_id"] as? String)
        let ended = try await client.get("/v1/tasks/\(id)?wait=20")
        return ended.json
    }

    @Test func successEndsWithADownloadURLThatServesAnMP4() async throws {
        try await withLoop(fastSimulator()) { hook, client, _ in
            let task = try await submitAndWait(client)
            #expect(task["status"] as? String == "success")
            let id = try #require(task["task_id"] as? String)
            let events = try #require(task["events"] as? [[String: Any]])
            #expect(events.compactMap { $0["status"] as? String } == ["processing", "success"])
            #expect(events.allSatisfy { $0["via"] as? String == "callback" && $0["applied"] as? Bool == true })
            // The link and the size are fetched in the background.
            #expect(try await eventually { try await client.get("/v1/tasks/\(id)").json["video_width"] as? Int != nil })
            let done = try await client.get("/v1/tasks/\(id)").json
            #expect(done["video_width"] as? Int == 1920)
            #expect(done["video_height"] as? Int == 1080)
            #expect(done["download_url_expires_at"] as? String != nil)
            let url = try #require(done["download_url"] as? String)
            let (video, _) = try await TestClient.session.data(from: URL(string: url)!)
            #expect(video.count > 1000)
            #expect(String(decoding: video[4..<8], as: UTF8.self) == "ftyp")
            // MiniMax's own query and file answers, from memory.
            let query = try await client.get("/v1/query/video_generation?task_id=\(id)")
            #expect(query.json["status"] as? String == "Success")
            #expect(query.json["file_id"] as? String == done["file_id"] as? String)
            let fileID = try #require(done["file_id"] as? String)
            let file = try await client.get("/v1/files/retrieve?file_id=\(fileID)")
            #expect((file.json["file"] as? [String: Any])?["download_url"] as? String == url)
            #expect(hook.registry.peek(id)?.source == .submitted)
        }
    }

    @Test func failedTaskCarriesTheUpstreamReason() async throws {
        try await withLoop(fastSimulator { $0.failRate = 1 }) { _, client, _ in
            let task = try await submitAndWait(client)
            #expect(task["status"] as? String == "failed")
            let error = try #require(task["error"] as? [String: Any])
            #expect(error["status_code"] as? Int == 1027)
            let id = try #require(task["task_id"] as? String)
            let query = try await client.get("/v1/query/video_generation?task_id=\(id)")
            #expect(query.json["status"] as? String == "Fail")
            #expect(query.baseCode == 1027)
        }
    }

    @Test func duplicatedAndReorderedCallbacks() async throws {
        try await withLoop(fastSimulator { $0.duplicateRate = 1; $0.reorderRate = 1 }) { _, client, _ in
            let task = try await submitAndWait(client)
            #expect(task["status"] as? String == "success")
            let id = try #require(task["task_id"] as? String)
            // success twice, then the late processing twice.
            #expect(try await eventually { (try await client.get("/v1/tasks/\(id)").json["events"] as? [Any])?.count == 4 })
            let events = try #require(try await client.get("/v1/tasks/\(id)").json["events"] as? [[String: Any]])
            #expect(events.map { $0["status"] as? String } == ["success", "success", "processing", "processing"])
            #expect(events.map { $0["reason"] as? String } == [nil, "duplicate", "after_end", "after_end"])
            #expect(try await client.get("/v1/tasks/\(id)").json["status"] as? String == "success")
        }
    }

    @Test func callbackBeforeTheSubmitAnswerIsApplied() async throws {
        try await withLoop(fastSimulator { $0.earlyCallbacks = true }) { hook, client, _ in
            let submitted = try await client.post("/v1/video_generation", seedBody)
            let id = try #require(submitted.json["task_id"] as? String)
            // processing arrived while the submit call was still open, and is on the task.
            let task = try #require(hook.registry.peek(id))
            #expect(task.events.first?.status == .processing)
            #expect(task.events.first?.applied == true)
            let ended = try await client.get("/v1/tasks/\(id)?wait=20")
            #expect(ended.json["status"] as? String == "success")
        }
    }

    @Test func droppedCallbacksLeaveTheTaskWhereItWas() async throws {
        try await withLoop(fastSimulator { $0.dropRate = 1 }) { _, client, upstream in
            let submitted = try await client.post("/v1/video_generation", seedBody)
            let id = try #require(submitted.json["task_id"] as? String)
            // Once the upstream says success (polled: the suite shares 2 cores), no callback
            // came, so the receiver still says submitted.
            let upstreamClient = TestClient(base: upstream.baseURL, token: "sk-e2e")
            let succeeded = try await eventually(timeout: 20) {
                try await upstreamClient.get("/v1/query/video_generation?task_id=\(id)").json["status"] as? String == "Success"
            }
            #expect(succeeded)
            #expect(try await client.get("/v1/tasks/\(id)").json["status"] as? String == "submitted")
        }
    }
}
