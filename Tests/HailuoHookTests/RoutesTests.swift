import Foundation
import HailuoHook
import HTTPServer
import Testing

/// Each route and status code of API.md in the task loop's scope, over real sockets.
@Suite struct RoutesTests {
    @Test(arguments: StoreKind.allCases) func healthz(store: StoreKind) async throws {
        try await withHook(store: store) { _, client in
            let r = try await client.get("/healthz")
            #expect(r.status == 200)
            #expect(r.json["status"] as? String == "ok")
            #expect(r.headers["content-type"] == "application/json; charset=utf-8")
            #expect(try await client.call("HEAD", "/healthz").status == 200)
        }
    }

    @Test(arguments: StoreKind.allCases) func submitRecordsBeforeAnswering(store: StoreKind) async throws {
        try await withHook(store: store) { hook, client in
            let r = try await client.post("/v1/video_generation", seedBody)
            #expect(r.status == 200)
            #expect(r.baseCode == 0)
            let id = try #require(r.json["task_id"] as? String)
            // Recorded by the time the answer was sent.
            #expect(hook.registry.peek(id) != nil)
            let task = try await client.get("/v1/tasks/\(id)")
            #expect(task.status == 200)
            #expect(task.json["source"] as? String == "submitted")
            let request = try #require(task.json["request"] as? [String: Any])
            #expect(request["prompt"] as? String == seedPrompt)
            #expect(request["callback_url"] == nil)
        }
    }

    @Test(arguments: StoreKind.allCases) func submitRefusalsCarryBaseResp2013AndNameTheField(store: StoreKind) async throws {
        try await withHook(store: store) { hook, client in
            let bad = try await client.post("/v1/video_generation", #"{"model":"MiniMax-Hailuo-02","prompt":"x","duration":10,"resolution":"1080P"}"#)
            #expect(bad.status == 400)
            #expect(bad.baseCode == 2013)
            #expect(bad.errorMessage.contains("duration 10 s"))
            let noModel = try await client.post("/v1/video_generation", #"{"prompt":"x"}"#)
            #expect(noModel.status == 400)
            #expect(noModel.errorMessage == "model is required")
            let notJSON = try await client.post("/v1/video_generation", "{nope")
            #expect(notJSON.status == 400)
            #expect(notJSON.baseCode == 2013)
            let text = try await client.call("POST", "/v1/video_generation", json: nil, headers: ["Content-Type": "text/plain"])
            #expect(text.status == 415)
            #expect(hook.registry.peekCount == 0)
        }
    }

    @Test(arguments: StoreKind.allCases) func submitBodyOverTheLimitIs413(store: StoreKind) async throws {
        try await withHook({ $0.maxSubmitBodyBytes = 2048 }, store: store) { _, client in
            let big = #"{"model":"MiniMax-Hailuo-02","prompt":""# + String(repeating: "a", count: 3000) + #""}"#
            let r = try await client.post("/v1/video_generation", big)
            #expect(r.status == 413)
            #expect(r.errorMessage.contains("2048"))
        }
    }

    @Test(arguments: StoreKind.allCases) func upstreamRefusalIs502WithItsBaseResp(store: StoreKind) async throws {
        let upstream = try Simulator(options: fastSimulator { $0.apiKey = "right-key" }, logger: quietLogger())
        try await withHook({ $0.upstreamAPIKey = "wrong-key"; $0.upstreamBaseURL = upstream.baseURL }, store: store) { hook, client in
            let r = try await client.post("/v1/video_generation", seedBody)
            #expect(r.status == 502)
            #expect(r.baseCode == 1004)
            #expect(hook.registry.peekCount == 0)
        }
        await upstream.shutdown()
    }

    @Test(arguments: StoreKind.allCases) func upstreamTimeoutIs504With1001(store: StoreKind) async throws {
        let router = Router()
        router.post("/v1/video_generation", .async { _ in
            try? await Task.sleep(nanoseconds: 3_000_000_000)
            return Response.json(text: "{}")
        })
        var config = ServerConfiguration()
        config.host = "127.0.0.1"
        config.port = 0
        let silent = try Server(configuration: config, router: router, logger: quietLogger())
        try await withHook({ $0.upstreamAPIKey = "k"; $0.upstreamBaseURL = "http://127.0.0.1:\(silent.port)"; $0.upstreamTimeout = 0.5 }, store: store) { _, client in
            let r = try await client.post("/v1/video_generation", seedBody)
            #expect(r.status == 504)
            #expect(r.baseCode == 1001)
        }
        await silent.shutdown()
    }

    @Test(arguments: StoreKind.allCases) func unreachableUpstreamIs502(store: StoreKind) async throws {
        try await withHook({ $0.upstreamAPIKey = "k"; $0.upstreamBaseURL = "http://127.0.0.1:9" }, store: store) { _, client in
            let r = try await client.post("/v1/video_generation", seedBody)
            #expect(r.status == 502)
            #expect(r.baseCode == 1000)
        }
    }

    /// A task under a known token, so the test can play the upstream.
    func seeded(_ hook: HookServer) throws -> String {
        let token = CallbackToken.generate()
        try hook.registry.insert(VideoTask(taskID: "555", source: .submitted, createdAt: Date()), token: token)
        return "/v1/callbacks/\(token.value)"
    }

    @Test(arguments: StoreKind.allCases) func callbackChallengeAndUpdates(store: StoreKind) async throws {
        try await withHook(store: store) { hook, client in
            let path = try seeded(hook)
            let challenge = try await client.post(path, #"{"challenge":"c-1\"2"}"#)
            #expect(challenge.status == 200)
            #expect(challenge.json["challenge"] as? String == "c-1\"2")
            let update = try await client.post(path, #"{"task_id":"555","status":"Processing"}"#)
            #expect(update.status == 200)
            #expect(update.json["status"] as? String == "success")
            #expect(hook.registry.peek("555")?.status == .processing)
            // Numeric ids are accepted too.
            #expect(try await client.post(path, #"{"task_id":555,"status":"success","file_id":205258526306433}"#).status == 200)
            #expect(hook.registry.peek("555")?.fileID == "205258526306433")
        }
    }

    @Test(arguments: StoreKind.allCases) func callbackRefusalsRecordNothing(store: StoreKind) async throws {
        try await withHook(store: store) { hook, client in
            let path = try seeded(hook)
            let cases: [(String, String, Int, String)] = [
                ("/v1/callbacks/unknown-token", #"{"task_id":"555","status":"success"}"#, 404, "unknown callback token"),
                (path, #"{"task_id":"999","status":"success"}"#, 409, "does not belong"),
                (path, #"{"task_id":"555","status":"#, 400, "JSON"),
                (path, #"{"status":"success"}"#, 400, "task_id is required"),
                (path, #"{"task_id":"555"}"#, 400, "status is required"),
                (path, #"{"task_id":"555","status":"done"}"#, 400, "status 'done'"),
                (path, #"{"task_id":"555","status":7}"#, 400, "status"),
                (path, #"[1,2]"#, 400, "JSON"),
            ]
            for (p, body, status, message) in cases {
                let r = try await client.post(p, body)
                #expect(r.status == status, "\(body)")
                #expect(r.errorMessage.contains(message), "\(r.errorMessage)")
            }
            let task = try #require(hook.registry.peek("555"))
            #expect(task.status == .submitted)
            #expect(task.events.isEmpty)
        }
    }

    @Test(arguments: StoreKind.allCases) func duplicateCallbacksAreIdempotentAndMarked(store: StoreKind) async throws {
        try await withHook(store: store) { hook, client in
            let path = try seeded(hook)
            for _ in 0..<3 { #expect(try await client.post(path, #"{"task_id":"555","status":"processing"}"#).status == 200) }
            #expect(try await client.post(path, #"{"task_id":"555","status":"success","file_id":"F"}"#).status == 200)
            #expect(try await client.post(path, #"{"task_id":"555","status":"processing"}"#).status == 200)
            let r = try await client.get("/v1/tasks/555")
            #expect(r.json["status"] as? String == "success")
            let events = try #require(r.json["events"] as? [[String: Any]])
            #expect(events.count == 5)
            #expect(events.map { $0["applied"] as? Bool } == [true, false, false, true, false])
            #expect(events.map { $0["reason"] as? String } == [nil, "duplicate", "duplicate", nil, "after_end"])
        }
    }

    @Test(arguments: StoreKind.allCases) func sharedTokenRoute(store: StoreKind) async throws {
        try await withHook({ $0.callbackSharedToken = "shared-secret" }, store: store) { hook, client in
            let r = try await client.post("/v1/callbacks/shared-secret", #"{"task_id":"777","status":"processing"}"#)
            #expect(r.status == 200)
            #expect(hook.registry.peek("777")?.source == .external)
            #expect(try await client.post("/v1/callbacks/shared-secreT", #"{"task_id":"777","status":"success"}"#).status == 404)
        }
    }

    @Test(arguments: StoreKind.allCases) func taskQueries(store: StoreKind) async throws {
        try await withHook(store: store) { hook, client in
            for i in 0..<5 { try hook.registry.insert(VideoTask(taskID: "L\(i)", source: .submitted, createdAt: Date()), token: nil) }
            _ = try hook.registry.apply(StatusUpdate(taskID: "L1", status: .failed, baseResp: BaseResp(1027, "flagged")), via: .callback, createIfMissing: false)
            #expect(try await client.get("/v1/tasks/none").status == 404)
            #expect(try await client.get("/v1/tasks/L1?wait=61").status == 400)
            #expect(try await client.get("/v1/tasks/L1?wait=x").errorMessage.contains("wait"))
            let one = try await client.get("/v1/tasks/L1?wait=30")  // already ended: at once
            #expect(one.json["status"] as? String == "failed")
            #expect((one.json["error"] as? [String: Any])?["status_code"] as? Int == 1027)
            let page = try await client.get("/v1/tasks?limit=2")
            let tasks = try #require(page.json["tasks"] as? [[String: Any]])
            #expect(tasks.map { $0["task_id"] as? String } == ["L4", "L3"])
            #expect(tasks.allSatisfy { $0["events"] == nil })
            let cursor = try #require(page.json["next_cursor"] as? String)
            let next = try await client.get("/v1/tasks?limit=2&cursor=\(cursor)")
            #expect((next.json["tasks"] as? [[String: Any]])?.map { $0["task_id"] as? String } == ["L2", "L1"])
            let failed = try await client.get("/v1/tasks?status=failed")
            #expect((failed.json["tasks"] as? [[String: Any]])?.count == 1)
            #expect(failed.json["next_cursor"] is NSNull)
            #expect(try await client.get("/v1/tasks?status=weird").status == 400)
            #expect(try await client.get("/v1/tasks?limit=501").status == 400)
            #expect(try await client.get("/v1/tasks?cursor=abc").status == 400)
        }
    }

    @Test(arguments: StoreKind.allCases) func waitIsWokenWhenTheTaskEnds(store: StoreKind) async throws {
        try await withHook(store: store) { hook, client in
            let path = try seeded(hook)
            let started = Date()
            async let waited = client.get("/v1/tasks/555?wait=20")
            try await Task.sleep(nanoseconds: 300_000_000)
            #expect(try await client.post(path, #"{"task_id":"555","status":"success","file_id":"F"}"#).status == 200)
            let r = try await waited
            #expect(r.json["status"] as? String == "success")
            #expect(Date().timeIntervalSince(started) < 10)
        }
    }

    @Test(arguments: StoreKind.allCases) func minimaxQueryFromMemory(store: StoreKind) async throws {
        try await withHook(store: store) { hook, client in
            let path = try seeded(hook)
            var r = try await client.get("/v1/query/video_generation?task_id=555")
            #expect(r.json["status"] as? String == "Queueing")
            #expect(r.baseCode == 0)
            _ = try await client.post(path, #"{"task_id":"555","status":"processing"}"#)
            r = try await client.get("/v1/query/video_generation?task_id=555")
            #expect(r.json["status"] as? String == "Processing")
            let missing = try await client.get("/v1/query/video_generation?task_id=404")
            #expect(missing.status == 404)
            #expect(missing.baseCode == 2013)
            #expect(try await client.get("/v1/query/video_generation").status == 400)
        }
    }

    @Test(arguments: StoreKind.allCases) func minimaxFileUnknownIsNotFoundWithTheUpstreamsBaseResp(store: StoreKind) async throws {
        try await withHook(store: store) { _, client in
            let r = try await client.get("/v1/files/retrieve?file_id=123")
            #expect(r.status == 404)
            #expect(r.baseCode == 2013)
            #expect(try await client.get("/v1/files/retrieve").status == 400)
        }
    }

    @Test(arguments: StoreKind.allCases) func apiTokenGuardsEveryV1RouteButCallbacks(store: StoreKind) async throws {
        try await withHook({ $0.apiToken = "s3cret" }, store: store) { hook, authorized in
            let anonymous = TestClient(base: authorized.base)
            let denied = try await anonymous.get("/v1/tasks")
            #expect(denied.status == 401)
            #expect(denied.headers["www-authenticate"] == "Bearer")
            #expect(denied.errorMessage.contains("Authorization"))
            let wrong = TestClient(base: authorized.base, token: "s3creT")
            #expect(try await wrong.get("/v1/tasks").status == 401)
            let minimax = try await anonymous.post("/v1/video_generation", seedBody)
            #expect(minimax.status == 401)
            #expect(minimax.baseCode == 1004)
            #expect(try await anonymous.get("/v1/query/video_generation?task_id=1").baseCode == 1004)
            #expect(try await authorized.get("/v1/tasks").status == 200)
            #expect(try await anonymous.get("/healthz").status == 200)
            let path = try seeded(hook)
            #expect(try await anonymous.post(path, #"{"challenge":"x"}"#).status == 200)
        }
    }

    @Test(arguments: StoreKind.allCases) func wrongMethodIs405WithAllow(store: StoreKind) async throws {
        try await withHook(store: store) { _, client in
            let r = try await client.call("DELETE", "/v1/tasks")
            #expect(r.status == 405)
            #expect(r.headers["allow"] == "GET, HEAD")
            #expect(try await client.get("/v1/callbacks/abc").headers["allow"] == "POST")
        }
    }

    @Test(arguments: StoreKind.allCases) func dashboardFilesAreServed(store: StoreKind) async throws {
        try await withHook(store: store) { _, client in
            let page = try await client.get("/")
            #expect(page.status == 200)
            #expect(page.headers["content-type"] == "text/html; charset=utf-8")
            #expect(page.text.contains("/dashboard/app.js"))
            let js = try await client.get("/dashboard/app.js")
            #expect(js.headers["content-type"] == "text/javascript; charset=utf-8")
            #expect(js.text.contains("EventSource"))
            #expect(try await client.get("/dashboard/style.css").status == 200)
            let spec = try await client.get("/openapi.yaml")
            #expect(spec.headers["content-type"] == "application/yaml; charset=utf-8")
            #expect(spec.text.hasPrefix("openapi: 3.1.0"))
            for path in ["/v1/video_generation:", "/v1/callbacks/{token}:", "/v1/tasks/{task_id}:", "/v1/events:", "/metrics:", "/readyz:"] {
                #expect(spec.text.contains(path), "\(path)")
            }
        }
    }

    @Test(arguments: StoreKind.allCases) func eventStreamTakesTheTokenAsAQueryParameter(store: StoreKind) async throws {
        try await withHook({ $0.apiToken = "s3cret" }, store: store) { hook, _ in
            let denied = try SSEProbe.status(port: hook.port, path: "/v1/events")
            #expect(denied == 401)
            #expect(try SSEProbe.status(port: hook.port, path: "/v1/events?access_token=wrong") == 401)
            #expect(try SSEProbe.status(port: hook.port, path: "/v1/events?access_token=s3cret") == 200)
            // Only the event stream takes it.
            #expect(try SSEProbe.status(port: hook.port, path: "/v1/tasks?access_token=s3cret") == 401)
        }
    }
}

/// The status line of a GET, read from a raw socket (the event stream never ends).
enum SSEProbe {
    static func status(port: Int, path: String) throws -> Int {
        let socket = try RawSocket(port: port)
        let head = try socket.exchange("GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n")
        return Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
    }
}
