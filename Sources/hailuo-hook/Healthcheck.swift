import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The container's HEALTHCHECK, with no curl in the image: exit 0 when /healthz answers 200.
struct Healthcheck: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Exit 0 if the local server answers GET /healthz with 200 (for HEALTHCHECK).")

    @Option(help: "Base URL (default: http://127.0.0.1:$HAILUO_HOOK_PORT or $PORT or 8080).") var url: String?
    @Option(help: "Seconds to wait for the answer.") var timeout = 3.0

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        let port = env["HAILUO_HOOK_PORT"] ?? env["PORT"] ?? "8080"
        let base = url ?? "http://127.0.0.1:\(port)"
        guard let target = URL(string: base + "/healthz") else { throw ExitCode(2) }
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        let session = URLSession(configuration: configuration)
        do {
            let (_, response) = try await session.data(from: target)
            guard (response as? HTTPURLResponse)?.statusCode == 200 else { throw ExitCode(1) }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            printError("healthcheck: \(base)/healthz: \(error.localizedDescription)")
            throw ExitCode(1)
        }
    }
}
