import Foundation
import Prometheus
import Synchronization

/// `GET /metrics`: Prometheus text from swift-prometheus's registry, plus
/// figures read at scrape time (connections, tasks by status, journal size).
public final class HookMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    /// Route, method and status: a key made without building a string per request.
    struct RequestKey: Hashable {
        let route: String
        let method: String
        let status: Int
    }

    private let requestCounters = Mutex<[RequestKey: Counter]>([:])
    private let latencies = Mutex<[String: DurationHistogram]>([:])
    private let counters = Mutex<[String: Counter]>([:])

    static let buckets: [Duration] = [.microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
                                      .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
                                      .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1), .seconds(5)]

    public init() {}

    /// One answer (the engine's `onResponse`).
    public func request(route: String, method: String, status: Int, nanoseconds: UInt64) {
        let key = RequestKey(route: route, method: method, status: status)
        let counter = requestCounters.withLock { cache in
            if let c = cache[key] { return c }
            let c = registry.makeCounter(
                descriptor: MetricNameDescriptor(namespace: "hailuo", metricName: "http_requests", unitName: "total",
                                                 helpText: "HTTP requests answered, by route pattern, method and status"),
                labels: [("route", route), ("method", method), ("status", String(status))])
            cache[key] = c
            return c
        }
        counter.increment()
        let histogram = latencies.withLock { cache in
            if let h = cache[route] { return h }
            let h = registry.makeDurationHistogram(
                descriptor: MetricNameDescriptor(namespace: "hailuo", metricName: "http_request_duration", unitName: "seconds",
                                                 helpText: "Time from a complete request to its answer being queued"),
                labels: [("route", route)], buckets: HookMetrics.buckets)
            cache[route] = h
            return h
        }
        histogram.recordNanoseconds(Int64(nanoseconds))
    }

    /// A named counter with labels, made on first use.
    public func count(_ name: String, _ labels: [(String, String)], help: String) {
        let key = name + labels.map { "|\($0.0)=\($0.1)" }.joined()
        let counter = counters.withLock { cache in
            if let c = cache[key] { return c }
            let c = registry.makeCounter(
                descriptor: MetricNameDescriptor(namespace: "hailuo", metricName: name, unitName: "total", helpText: help), labels: labels)
            cache[key] = c
            return c
        }
        counter.increment()
    }

    public func callback(_ outcome: String) {
        count("callbacks", [("outcome", outcome)], help: "Callbacks received, by outcome: applied, duplicate, late, out_of_order, kept_early, refused")
    }

    public func upstream(_ call: String, _ result: String) {
        count("upstream_calls", [("call", call), ("result", result)], help: "Calls to the upstream, by call and result")
    }

    public func relay(_ result: String) {
        count("relay_attempts", [("result", result)], help: "Relay deliveries to notify_url, by result")
    }

    /// The text, with scrape-time gauges appended.
    public func render(gauges: [(name: String, help: String, labels: [(String, String)], value: Double)]) -> [UInt8] {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        var lastName = ""
        for gauge in gauges {
            if gauge.name != lastName {
                buffer.append(contentsOf: "# HELP \(gauge.name) \(gauge.help)\n# TYPE \(gauge.name) gauge\n".utf8)
                lastName = gauge.name
            }
            let labels = gauge.labels.isEmpty ? "" : "{" + gauge.labels.map { "\($0.0)=\"\($0.1)\"" }.joined(separator: ",") + "}"
            let value = gauge.value.rounded() == gauge.value ? String(Int64(gauge.value)) : String(gauge.value)
            buffer.append(contentsOf: "\(gauge.name)\(labels) \(value)\n".utf8)
        }
        return buffer
    }
}
