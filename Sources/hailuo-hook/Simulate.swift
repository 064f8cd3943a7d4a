import ArgumentParser
import Foundation
import HailuoHook
import Logging

struct Simulate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a stand-alone MiniMax-compatible upstream that calls back like the real one."
    )

    @Option(help: "Port; 0 picks a free one.") var port = 8090
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Share of tasks that end failed (0-1).") var failRate = 0.0
    @Option(help: "Share of callbacks sent twice (0-1).") var duplicateRate = 0.0
    @Option(help: "Share of tasks whose processing arrives after the end (0-1).") var reorderRate = 0.0
    @Option(help: "Share of callbacks never sent (0-1).") var dropRate = 0.0
    @Option(help: "Pause before each callback, in milliseconds.") var delayMs = 300
    @Flag(help: "Send the challenge and processing before answering the submit call.") var earlyCallbacks = false

    func validate() throws {
        for (name, rate) in [("fail-rate", failRate), ("duplicate-rate", duplicateRate), ("reorder-rate", reorderRate), ("drop-rate", dropRate)] {
            guard (0...1).contains(rate) else { throw ValidationError("--\(name) must be between 0 and 1") }
        }
        guard delayMs >= 0 else { throw ValidationError("--delay-ms must not be negative") }
    }

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        LineLogHandler.bootstrap(level: environment["LOG_LEVEL"] ?? "info", format: environment["LOG_FORMAT"] ?? "text")
        var options = Simulator.Options()
        options.apiKey = environment["MINIMAX_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        options.host = host
        options.port = port
        options.failRate = failRate
        options.duplicateRate = duplicateRate
        options.reorderRate = reorderRate
        options.dropRate = dropRate
        options.delayMs = delayMs
        options.earlyCallbacks = earlyCallbacks
        let logger = Logger(label: "hailuo-hook.simulator")
        let simulator = try Simulator(options: options, logger: logger)
        logger.info("simulating MiniMax on http://\(host):\(simulator.port)", metadata: ["port": "\(simulator.port)"])
        await waitForStopSignal()
        await simulator.shutdown()
    }
}
