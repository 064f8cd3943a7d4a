import Foundation
import HailuoHook
import Testing

@Suite struct MetricsTests {
    /// `name{labels} value` lines of the exposition, by series.
    func series(_ text: String) -> [String: Double] {
        var values: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            values[String(line[..<space])] = value
        }
        return values
    }

    @Test func countersMoveWithTraffic() async throws {
        try await withHook({ $0.callbackSharedToken = "shared-m" }) { hook, client in
            let before = series(try await client.get("/metrics").text)
            for _ in 0..<7 { #expect(try await client.get("/healthz").status == 200) }
            #expect(try await client.post("/v1/callbacks/shared-m", #"{"task_id":"M1","status":"processing"}"#).status == 200)
            #expect(try await client.post("/v1/callbacks/shared-m", #"{"task_id":"M1","status":"processing"}"#).status == 200)
            #expect(try await client.post("/v1/callbacks/shared-m", #"{"task_id":"M1","status":"success"}"#).status == 200)
            #expect(try await client.post("/v1/callbacks/shared-m", #"{"task_id":"M1","status":"processing"}"#).status == 200)
            #expect(try await client.post("/v1/callbacks/nope", #"{"task_id":"M1","status":"processing"}"#).status == 404)
            #expect(try await client.post("/v1/video_generation", seedBody).status == 200)
            let response = try await client.get("/metrics")
            #expect(response.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
            let after = series(response.text)
            func delta(_ key: String) -> Double { (after[key] ?? 0) - (before[key] ?? 0) }
            #expect(delta(#"hailuo_http_requests_total{route="/healthz",method="GET",status="200"}"#) == 7)
            #expect(delta(#"hailuo_http_request_duration_seconds_count{route="/healthz"}"#) == 7)
            #expect(delta(#"hailuo_callbacks_total{outcome="applied"}"#) >= 2)
            #expect(delta(#"hailuo_callbacks_total{outcome="duplicate"}"#) == 1)
            #expect(delta(#"hailuo_callbacks_total{outcome="late"}"#) == 1)
            #expect(delta(#"hailuo_callbacks_total{outcome="refused"}"#) == 1)
            #expect(delta(#"hailuo_upstream_calls_total{call="submit",result="ok"}"#) == 1)
            #expect(after[#"hailuo_tasks{status="success"}"#] == 1)
            #expect((after["hailuo_open_connections"] ?? 0) >= 1)
            _ = hook
        }
    }
}
