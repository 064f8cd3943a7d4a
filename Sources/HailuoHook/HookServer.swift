import Foundation
import HTTPServer
import Logging

/// `serve`: the registry, the upstream client (or, with no API key, the
/// built-in simulator), the routes and the HTTP server, started together.
public final class HookServer: Sendable {
    public let configuration: Configuration
    public let registry: TaskRegistry
    public let server: Server
    /// The in-process upstream when no `upstream.api_key` is configured.
    public let simulator: Simulator?
    public let publicURL: String
    let logger: Logger
    private let housekeeping: Task<Void, Never>

    public var port: Int { server.port }

    public init(configuration: Configuration, simulatorOptions: Simulator.Options = Simulator.Options(),
                benchmarkTasks: Int = 0, logger: Logger = Logger(label: "hailuo-hook")) throws {
        self.configuration = configuration
        self.logger = logger
        let registry = TaskRegistry(maxTasks: configuration.maxTasks, retention: configuration.retention)
        if benchmarkTasks > 0 { registry.seedBenchmarkTasks(benchmarkTasks) }
        self.registry = registry

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
        let client = MiniMaxClient(baseURL: baseURL, apiKey: apiKey, timeout: configuration.upstreamTimeout)

        // The public URL names the port, which is only known once bound: bind first, route after.
        let router = Router()
        do {
            self.server = try Server(configuration: configuration.server, router: router, logger: Logger(label: "hailuo-hook.http"), start: false)
        } catch {
            if let simulator { Task { await simulator.shutdown() } }
            throw error
        }
        self.publicURL = configuration.publicURL(port: server.port)
        let links = DownloadLinks(registry: registry, client: client, logger: logger)
        let callbacks = Callbacks(registry: registry, sharedToken: configuration.callbackSharedToken) { taskID, fileID in
            links.taskSucceeded(taskID: taskID, fileID: fileID)
        }
        Routes.install(on: router, Routes.Parts(
            callbacks: callbacks,
            submissions: Submissions(registry: registry, client: client, publicURL: publicURL, logger: logger),
            queries: TaskQueries(registry: registry, links: links),
            apiToken: configuration.apiToken,
            maxBodyBytes: configuration.maxBodyBytes,
            maxSubmitBodyBytes: configuration.maxSubmitBodyBytes
        ))
        server.start()
        // Ended tasks past the retention go even when no new task arrives.
        self.housekeeping = Task { [registry] in
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: 60_000_000_000)
                registry.expire()
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
    public func shutdown() async {
        housekeeping.cancel()
        await server.shutdown()
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
