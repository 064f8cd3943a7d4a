import Foundation
import HTTPServer
import Logging
import Synchronization

/// `serve`: the registry, the upstream client (or, with no API key, the
/// built-in simulator), the routes and the HTTP server, started together.
public final class HookServer: Sendable {
    public let configuration: Configuration
    /// The task store: in this process (`TaskRegistry`), or PostgreSQL with `registry.database_url`.
    public let registry: any TaskStore
    public let server: Server
    /// The in-process upstream when no `upstream.api_key` is configured.
    public let simulator: Simulator?
    public let publicURL: String
    let logger: Logger
    private let housekeeping: Task<Void, Never>
    private let reconciling: Task<Void, Never>
    public let reconciler: Reconciler
    public let keys: IdempotencyKeys
    public let events: EventStream
    public let metrics: HookMetrics
    /// False until the journal is replayed and the listener serves; false again once draining.
    private let ready = Flag()

    public var port: Int { server.port }

    /// Reads the certificate and key files again (SIGHUP): new connections get
    /// the new pair; on any error the old one stays and the error is logged.
    @discardableResult
    public func reloadTLS() -> Bool {
        guard server.isTLS else {
            logger.notice("SIGHUP: no TLS certificate to reload (server.tls is not set)")
            return false
        }
        do {
            guard let context = try configuration.loadTLS() else { return false }
            server.reloadTLS(context)
            logger.notice("reloaded the TLS certificate: \(context.subject), valid until \(context.notAfter)")
            if context.isExpired { logger.warning("the reloaded TLS certificate expired on \(context.notAfter)") }
            return true
        } catch {
            logger.error("TLS reload failed, keeping the current certificate: \(error)")
            return false
        }
    }

    public init(configuration: Configuration, simulatorOptions: Simulator.Options = Simulator.Options(),
                benchmarkTasks: Int = 0, benchmarkShape: TaskRegistry.BenchmarkShape = TaskRegistry.BenchmarkShape(), logger: Logger = Logger(label: "hailuo-hook")) throws {
        self.configuration = configuration
        self.logger = logger
        // With PostgreSQL the database is the record: a journal (the image sets one) is not kept.
        if configuration.databaseURL != nil, let path = configuration.journal {
            logger.notice("registry.journal \(path) is not used: registry.database_url is set, and the database is the record")
        }
        let journal = try (configuration.databaseURL == nil ? configuration.journal : nil).map { try Journal(path: $0) }
        let memory = configuration.databaseURL == nil
            ? TaskRegistry(maxTasks: configuration.maxTasks, retention: configuration.retention, journal: journal) : nil
        let registry: any TaskStore
        if let url = configuration.databaseURL {
            registry = try PostgresTaskStore(url: url, maxTasks: configuration.maxTasks, retention: configuration.retention,
                                             logger: logger)
            logger.info("task store: PostgreSQL at \(PostgresTaskStore.redacted(url))")
        } else {
            registry = memory!
        }
        let keys = (registry as? PostgresTaskStore).map { IdempotencyKeys(pool: $0.pool) } ?? IdempotencyKeys(journal: journal)
        if let journal, let registry = memory {
            let started = Date()
            let report = try journal.replay { record in
                if case .idempotency(let entry) = record { keys.restore(entry) } else { registry.restore(record) }
            }
            logger.info("journal \(journal.path): replayed \(report.records) records, \(registry.count) tasks in \(Int(Date().timeIntervalSince(started) * 1000)) ms")
            if report.cutBytes > 0 {
                logger.warning("journal \(journal.path): cut \(report.cutBytes) bytes of a torn or corrupt tail; the records before it are kept")
            }
            if !report.skippedLines.isEmpty {
                logger.warning("journal \(journal.path): skipped corrupt records on lines \(report.skippedLines.map(String.init).joined(separator: ", ")); the rest are kept")
            }
            // Start from one record a task.
            try registry.compactJournal { keys.entries().map { .idempotency($0) } }
        }
        if benchmarkTasks > 0 {
            let started = Date()
            registry.seedBenchmarkTasks(benchmarkTasks, shape: benchmarkShape)
            logger.notice("benchmark: seeded \(benchmarkTasks) tasks in \(Int(Date().timeIntervalSince(started) * 1000)) ms")
        }
        self.registry = registry
        self.keys = keys

        var simulator: Simulator? = nil
        let baseURL: String
        let apiKey: String
        if let key = configuration.upstreamAPIKey {
            baseURL = configuration.upstreamBaseURL
            apiKey = key
        } else {
            var options = simulatorOptions
            options.apiKey = nil
            simulator = try Simulator(options: options, logger: Logger(label: "hailuo-hook.simulator"))
            baseURL = simulator!.baseURL
            apiKey = "simulator"
        }
        self.simulator = simulator
        let metrics = HookMetrics()
        self.metrics = metrics
        var client = MiniMaxClient(baseURL: baseURL, apiKey: apiKey, timeout: configuration.upstreamTimeout)
        client.metrics = metrics

        // The public URL names the port, which is only known once bound: bind first, route after.
        let router = Router()
        do {
            var serverConfiguration = configuration.server
            serverConfiguration.tls = try configuration.loadTLS()
            if let tls = serverConfiguration.tls {
                logger.info("TLS certificate \(tls.subject), valid until \(tls.notAfter)")
                if tls.isExpired { logger.warning("the TLS certificate in \(configuration.tlsCertFile ?? "") expired on \(tls.notAfter)") }
            }
            serverConfiguration.onResponse = { metrics.request(route: $0, method: $1, status: $2, nanoseconds: $3) }
            self.server = try Server(configuration: serverConfiguration, router: router, logger: Logger(label: "hailuo-hook.http"), start: false)
        } catch {
            if let simulator { Task { await simulator.shutdown() } }
            throw error
        }
        self.publicURL = configuration.publicURL(port: server.port)
        let links = DownloadLinks(registry: registry, client: client, logger: logger)
        let reconciler = Reconciler(registry: registry, client: client, links: links, after: configuration.reconcileAfter, logger: logger)
        self.reconciler = reconciler
        let relay = Relay(registry: registry, metrics: metrics, logger: logger)
        // The relay delivers the changes made here (so one replica delivers each); the event
        // stream shows every change, other replicas' too.
        registry.observe(local: true) { relay.enqueue($0) }
        let events = EventStream()
        self.events = events
        registry.observe(local: false) { events.publish($0) }
        var callbacks = Callbacks(registry: registry, sharedToken: configuration.callbackSharedToken) { taskID, fileID in
            links.taskSucceeded(taskID: taskID, fileID: fileID)
        }
        callbacks.metrics = metrics
        Routes.install(on: router, Routes.Parts(
            callbacks: callbacks,
            submissions: Submissions(registry: registry, client: client, publicURL: publicURL, keys: keys, logger: logger),
            queries: TaskQueries(registry: registry, links: links),
            events: events,
            apiToken: configuration.apiToken,
            maxBodyBytes: configuration.maxBodyBytes,
            maxSubmitBodyBytes: configuration.maxSubmitBodyBytes,
            storeBlocks: registry.blocksOnIO
        ))
        let ready = self.ready
        let server = self.server
        let metricsRoute: @Sendable (Request) -> Response = { [registry, events] _ in
            var gauges: [(name: String, help: String, labels: [(String, String)], value: Double)] = [
                ("hailuo_open_connections", "Open client connections", [], Double(server.connectionCount)),
            ]
            // Without the store (PostgreSQL away) the task counts are left out, not invented.
            for (status, n) in (try? registry.countsByStatus()) ?? [] {
                gauges.append(("hailuo_tasks", "Tasks in the registry, by status", [("status", status.rawValue)], Double(n)))
            }
            gauges.append(("hailuo_event_subscribers", "Clients following /v1/events", [], Double(events.subscriberCount)))
            if let journal {
                gauges.append(("hailuo_journal_bytes", "Size of the journal file", [], Double(journal.size)))
            }
            return Response(headers: ["Content-Type": "text/plain; version=0.0.4; charset=utf-8"], body: metrics.render(gauges: gauges))
        }
        router.get("/metrics", registry.blocksOnIO ? .blocking(metricsRoute) : .sync(metricsRoute))
        router.get("/readyz", .sync { _ in
            switch ready.state {
            case .ready where !server.isDraining: return Response.json(.ok, text: #"{"status":"ready"}"#)
            case .starting: return Response.json(.serviceUnavailable, text: #"{"status":"starting"}"#)
            default: return Response.json(.serviceUnavailable, text: #"{"status":"draining"}"#)
            }
        })
        server.start()
        ready.set(.ready)
        // After a restart every unfinished task may have missed its callbacks.
        if journal != nil { reconciler.pollAllUnfinished() }
        self.reconciling = Task { await reconciler.run() }
        // Once a second: the journal to disk, and compacted when it has grown well past the registry;
        // once a minute: ended tasks past the retention.
        self.housekeeping = Task { [registry, memory, keys, logger] in
            var seconds = 0
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: 1_000_000_000)
                seconds += 1
                if let journal {
                    journal.sync()
                    if journal.wantsCompaction {
                        do { try memory?.compactJournal { keys.entries().map { .idempotency($0) } } } catch {
                            logger.error("journal compaction failed: \(error)")
                        }
                    }
                }
                if seconds % 60 == 0 {
                    // Off the cooperative threads: with PostgreSQL this waits on the network.
                    DispatchQueue.global().async {
                        do { try registry.expire(now: Date()) } catch { logger.warning("retention: \(error)") }
                    }
                }
            }
        }

        if let simulator {
            logger.notice("no upstream.api_key: simulating MiniMax in this process at \(simulator.baseURL)")
        } else {
            logger.info("upstream \(baseURL)")
            if HookServer.isLocal(publicURL) && !HookServer.isLocal(baseURL) {
                logger.warning("server.public_url \(publicURL) is a loopback or private address but the upstream \(baseURL) is remote: it could never call back; set server.public_url")
            }
        }
    }

    /// Drains the HTTP server, then the simulator.
    /// `readinessGrace`: seconds during which `/readyz` already says 503 but
    /// requests are still served, so a load balancer stops sending new ones
    /// before the listener closes (`serve` gives it on SIGTERM).
    public func shutdown(readinessGrace: Double = 0) async {
        ready.set(.draining)
        if readinessGrace > 0 { try? await Task.sleep(nanoseconds: UInt64(readinessGrace * 1e9)) }
        reconciling.cancel()
        housekeeping.cancel()
        await server.shutdown()
        (registry as? TaskRegistry)?.journal?.sync()
        registry.close()
        await simulator?.shutdown()
    }

    /// Whether a URL's host is loopback, private or link-local (unreachable from the internet).
    static func isLocal(_ url: String) -> Bool {
        guard let host = URL(string: url)?.host?.lowercased() else { return false }
        if host == "localhost" || host == "::1" || host.hasSuffix(".local") || host.hasSuffix(".internal") { return true }
        let parts = host.split(separator: ".").compactMap { Int($0) }
        guard parts.count == 4 else { return false }
        switch (parts[0], parts[1]) {
        case (127, _), (10, _), (0, _), (169, 254), (192, 168): return true
        case (172, 16...31): return true
        default: return false
        }
    }
}

/// Starting, ready or draining, shared with the `/readyz` route.
final class Flag: Sendable {
    enum State: Int { case starting, ready, draining }
    private let value = Atomic<Int>(State.starting.rawValue)
    var state: State { State(rawValue: value.load(ordering: .relaxed)) ?? .starting }
    func set(_ state: State) { value.store(state.rawValue, ordering: .relaxed) }
}
