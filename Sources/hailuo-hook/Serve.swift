import ArgumentParser
import Dispatch
import Foundation
import HailuoHook
import HTTPServer
import Logging
import Synchronization

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the server: submit tasks upstream, receive their callbacks, answer queries."
    )

    @Option(help: "Configuration file (default: $HAILUO_HOOK_CONFIG, else config/hailuo-hook.json if present).")
    var config: String?
    @Option(help: "Address to listen on (server.host).") var host: String?
    @Option(help: "Port; 0 picks a free one (server.port).") var port: String?
    @Option(help: "URL the upstream reaches this server at (server.public_url).") var publicURL: String?
    @Option(help: "Append-only journal file (registry.journal).") var journal: String?
    @Option(help: "PostgreSQL URL of a shared registry (registry.database_url).") var databaseURL: String?
    @Option(help: "trace, debug, info, notice, warning, error or critical (log.level).") var logLevel: String?
    @Option(help: "text or json (log.format).") var logFormat: String?
    @Option(help: "Upstream base URL (upstream.base_url).") var upstreamBaseURL: String?
    @Option(help: .hidden) var benchTasks: Int = 0
    @Option(help: .hidden) var benchPromptChars: Int = 0
    @Flag(help: .hidden) var benchEnded = false
    @Flag(help: .hidden) var benchExitAfterSeeding = false

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        var flags: [String: String] = [:]
        flags["server.host"] = host
        flags["server.port"] = port
        flags["server.public_url"] = publicURL
        flags["registry.journal"] = journal
        flags["registry.database_url"] = databaseURL
        flags["log.level"] = logLevel
        flags["log.format"] = logFormat
        flags["upstream.base_url"] = upstreamBaseURL
        let file = config ?? environment["HAILUO_HOOK_CONFIG"]
            ?? (FileManager.default.fileExists(atPath: "config/hailuo-hook.json") ? "config/hailuo-hook.json" : nil)
        let configuration: Configuration
        do {
            configuration = try Configuration.load(file: file, environment: environment, flags: flags)
        } catch {
            FileHandle.standardError.write(Data("hailuo-hook: \(error)\n".utf8))
            throw ExitCode(2)
        }
        LineLogHandler.bootstrap(level: configuration.logLevel, format: configuration.logFormat)
        let logger = Logger(label: "hailuo-hook")

        let hook: HookServer
        do {
            hook = try HookServer(configuration: configuration, benchmarkTasks: benchTasks,
                                  benchmarkShape: .init(promptCharacters: benchPromptChars, ended: benchEnded), logger: logger)
        } catch let error as TLSError {
            // A bad certificate or key is a configuration error: one line, exit 2.
            FileHandle.standardError.write(Data("hailuo-hook: \(error)\n".utf8))
            throw ExitCode(2)
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode(1)
        }
        if benchExitAfterSeeding {
            // For bench/: a journal of the seeded tasks, written through the real path, then stop.
            await hook.shutdown(readinessGrace: 0)
            return
        }
        let scheme = hook.server.isTLS ? "https" : "http"
        logger.info("listening on \(scheme)://\(configuration.host):\(hook.port)", metadata: ["port": "\(hook.port)", "public_url": "\(hook.publicURL)"])
        let reload = onSignal(SIGHUP) { hook.reloadTLS() }

        await waitForStopSignal()
        logger.info("draining (up to \(configuration.drainTimeout) s)")
        // /readyz says 503 at once; the listener closes a moment later (within the drain timeout).
        await hook.shutdown(readinessGrace: min(1, configuration.drainTimeout / 10))
        logger.info("stopped")
        withExtendedLifetime(reload) {}
    }
}

/// Runs `action` on every `sig` for as long as the returned source lives.
func onSignal(_ sig: Int32, _ action: @escaping @Sendable () -> Void) -> DispatchSourceSignal {
    signal(sig, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: sig, queue: DispatchQueue(label: "hailuo-hook.signal.\(sig)"))
    source.setEventHandler(handler: action)
    source.resume()
    return source
}

/// Returns on the first SIGTERM or SIGINT.
func waitForStopSignal() async {
    let once = Once()
    var sources: [DispatchSourceSignal] = []
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                if once.first() { continuation.resume() }
            }
            source.resume()
            sources.append(source)
        }
    }
    withExtendedLifetime(sources) {}
}

final class Once: Sendable {
    private let done = Atomic<Bool>(false)
    func first() -> Bool { !done.exchange(true, ordering: .relaxed) }
}
