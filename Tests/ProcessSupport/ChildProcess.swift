import Subprocess
import Synchronization
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A program a test runs (the server's executable, curl, openssl), through swift-subprocess.
///
/// Not Foundation's `Process`: on Linux it lists and closes every descriptor of the parent while
/// it prepares the spawn, and it crashed there (SIGSEGV inside `Process.run`) while a parallel
/// test held 2,200 sockets open. swift-subprocess closes them in the child instead
/// (`posix_spawn_file_actions_addclosefrom_np`).
public final class ChildProcess: Sendable {
    private struct State {
        var output: [UInt8] = []
        var errors: [UInt8] = []
        var status: Int32?
    }

    private final class Shared: Sendable {
        let state = Mutex(State())
        func append(_ bytes: [UInt8], toErrors: Bool) {
            state.withLock { toErrors ? $0.errors.append(contentsOf: bytes) : $0.output.append(contentsOf: bytes) }
        }
    }

    public let processIdentifier: pid_t
    private let shared: Shared
    private let exit: Task<Int32, Never>

    /// Starts `path` with `arguments`; returns once it runs. `environment` replaces the
    /// inherited one when given; `input` is written to its standard input, which then closes.
    /// With `mergeErrors` its standard error is collected into `output`, in arrival order.
    public init(_ path: String, _ arguments: [String], environment: [String: String]? = nil,
                input: String? = nil, mergeErrors: Bool = false) async throws {
        let shared = Shared()
        let (started, announce) = AsyncStream<Result<pid_t, any Error>>.makeStream()
        let env: Environment = environment.map { values in
            .custom(Dictionary(uniqueKeysWithValues: values.compactMap { key, value in Environment.Key(rawValue: key).map { ($0, value) } }))
        } ?? .inherit
        exit = Task.detached {
            do {
                let result = try await Subprocess.run(
                    .path(FilePath(path)), arguments: Arguments(arguments), environment: env,
                    input: .string(input ?? ""), output: .sequence, error: .sequence
                ) { execution in
                    announce.yield(.success(execution.processIdentifier.value))
                    // Both pipes drained at once, so neither can fill and stall the child.
                    await withTaskGroup(of: Void.self) { group in
                        group.addTask {
                            do { for try await chunk in execution.standardOutput { shared.append(chunk.withUnsafeBytes { Array($0) }, toErrors: false) } } catch {}
                        }
                        group.addTask {
                            do { for try await chunk in execution.standardError { shared.append(chunk.withUnsafeBytes { Array($0) }, toErrors: !mergeErrors) } } catch {}
                        }
                    }
                }
                let status: Int32 = switch result.terminationStatus {
                case .exited(let code): code
                case .signaled(let signal): signal
                }
                shared.state.withLock { $0.status = status }
                return status
            } catch {
                announce.yield(.failure(error))
                shared.append(Array("\(error)".utf8), toErrors: true)
                shared.state.withLock { $0.status = -1 }
                return -1
            }
        }
        var pid: pid_t = 0
        for await launched in started {
            pid = try launched.get()
            break
        }
        processIdentifier = pid
        self.shared = shared
    }

    /// Standard output so far (with standard error too under `mergeErrors`).
    public var output: String { shared.state.withLock { String(decoding: $0.output, as: UTF8.self) } }
    /// Standard error so far.
    public var errors: String { shared.state.withLock { String(decoding: $0.errors, as: UTF8.self) } }
    public var isRunning: Bool { shared.state.withLock { $0.status == nil } }
    /// The exit code, or the signal that ended it; -1 while it runs.
    public var terminationStatus: Int32 { shared.state.withLock { $0.status ?? -1 } }

    /// SIGTERM.
    public func terminate() {
        if isRunning { kill(processIdentifier, SIGTERM) }
    }

    /// Waits for its end (and for both pipes to close); its exit code or signal.
    @discardableResult public func wait() async -> Int32 { await exit.value }
}

/// A command-line tool run to its end (curl, openssl, sh).
public struct ToolRun: Sendable {
    public var status: Int32
    public var output: String
    public var errors: String
}

public func runTool(_ path: String, _ arguments: [String], input: String? = nil) async throws -> ToolRun {
    let child = try await ChildProcess(path, arguments, input: input)
    let status = await child.wait()
    return ToolRun(status: status, output: child.output, errors: child.errors)
}
