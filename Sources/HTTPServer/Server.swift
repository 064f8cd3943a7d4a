import CEpoll
import Dispatch
import Logging
import Synchronization

/// What every loop of one server shares: settings, routes, the connection count.
final class ServerShared: Sendable {
    let configuration: ServerConfiguration
    let router: Router
    let logger: Logger
    let serverLine: [UInt8]
    let tickInterval: DispatchTimeInterval
    private let connections = Atomic<Int>(0)
    private let requestCounter = Atomic<UInt64>(0)
    /// Random per process, so ids from two runs or replicas do not collide.
    let requestIDPrefix = String(UInt32.random(in: .min ... .max), radix: 16)

    /// A request id for a request that came without one.
    func nextRequestID() -> String {
        "\(requestIDPrefix)-\(requestCounter.add(1, ordering: .relaxed).newValue)"
    }
    let isDraining = Atomic<Bool>(false)
    private let tls: Mutex<TLSContext?>
    /// The context new connections start with (nil: plain HTTP).
    var tlsContext: TLSContext? { tls.withLock { $0 } }
    func replaceTLS(_ context: TLSContext) { tls.withLock { $0 = context } }
    private let drained = Mutex<DrainSignal?>(nil)

    init(configuration: ServerConfiguration, router: Router, logger: Logger) {
        self.configuration = configuration
        self.router = router
        self.logger = logger
        self.serverLine = Array("Server: \(configuration.serverName)\r\n".utf8)
        self.tls = Mutex(configuration.tls)
        var shortest = min(configuration.idleTimeout, configuration.headerTimeout, configuration.bodyTimeout)
        if configuration.tls != nil { shortest = min(shortest, configuration.tlsHandshakeTimeout) }
        let tick = max(0.05, min(1.0, shortest / 4))
        self.tickInterval = .milliseconds(Int(tick * 1000))
    }

    var connectionCount: Int { connections.load(ordering: .relaxed) }

    /// Counts a new connection, or says no when at the cap or draining.
    func admitConnection() -> Bool {
        if isDraining.load(ordering: .relaxed) { return false }
        let (_, new) = connections.add(1, ordering: .relaxed)
        if new > configuration.maxConnections {
            connections.subtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    func connectionClosed() {
        let (_, left) = connections.subtract(1, ordering: .relaxed)
        if left == 0 && isDraining.load(ordering: .relaxed) {
            drained.withLock { $0 }?.fire()
        }
    }

    func setDrainSignal(_ signal: DrainSignal) {
        drained.withLock { $0 = signal }
    }
}

/// A one-shot signal an async caller can wait on; fired at most once.
final class DrainSignal: Sendable {
    private let state = Mutex<(fired: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    func fire() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if s.fired { return nil }
            s.fired = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let fired = state.withLock { s -> Bool in
                if s.fired { return true }
                s.waiter = continuation
                return false
            }
            if fired { continuation.resume() }
        }
    }
}

/// The listening socket, its I/O loops, the connection cap and graceful drain.
public final class Server: Sendable {
    public let port: Int
    let shared: ServerShared
    private let loops: [IOLoop]
    private let listener: Socket
    private let stopped = DrainSignal()
    private let state = Mutex<Phase>(.created)

    enum Phase { case created, serving, draining, stopped }

    /// Binds and listens; `port` is the bound port (useful with port 0). With
    /// `start: false` nothing is served until `start()`, so routes that need
    /// the port can be added first (a router must not change once serving).
    public init(configuration: ServerConfiguration, router: Router, logger: Logger = Logger(label: "hailuo-hook.http"), start: Bool = true) throws(SocketError) {
        let listener = try Socket.listening(host: configuration.host, port: configuration.port)
        let shared = ServerShared(configuration: configuration, router: router, logger: logger)
        let count = max(1, configuration.ioLoops ?? Int(hh_cpu_count()))
        var loops: [IOLoop] = []
        do throws(SocketError) {
            for i in 0..<count { loops.append(try IOLoop(index: i, shared: shared, listener: listener)) }
        } catch {
            listener.close()
            throw error
        }
        self.listener = listener
        self.shared = shared
        self.loops = loops
        self.port = listener.localPort
        if start { self.start() }
    }

    /// Starts serving (once).
    public func start() {
        let first = state.withLock { phase -> Bool in
            guard phase == .created else { return false }
            phase = .serving
            return true
        }
        guard first else { return }
        for loop in loops { loop.queue.async { loop.start() } }
    }

    /// Open connections right now.
    public var connectionCount: Int { shared.connectionCount }

    public var isDraining: Bool { shared.isDraining.load(ordering: .relaxed) }

    /// Whether the listener speaks HTTPS.
    public var isTLS: Bool { shared.tlsContext != nil }

    /// New connections use `context` from now on; open ones keep theirs.
    /// Only a server that started with TLS can reload (a plain listener stays plain).
    public func reloadTLS(_ context: TLSContext) {
        guard isTLS else { return }
        shared.replaceTLS(context)
    }

    /// Graceful stop: no new connections, idle ones closed, requests in flight
    /// answered with `Connection: close`; whatever is still open after
    /// `drain_timeout_s` is closed. Returns when the server has stopped.
    public func shutdown() async {
        let first = state.withLock { phase -> Bool in
            guard phase == .serving || phase == .created else { return false }
            phase = .draining
            return true
        }
        guard first else { await stopped.wait(); return }
        let drained = DrainSignal()
        shared.setDrainSignal(drained)
        shared.isDraining.store(true, ordering: .relaxed)
        for loop in loops { loop.queue.sync { loop.beginDrain() } }
        listener.close()
        if shared.connectionCount > 0 {
            let timeout = shared.configuration.drainTimeout
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout) { drained.fire() }
            await drained.wait()
        }
        let left = shared.connectionCount
        if left > 0 { shared.logger.warning("drain timed out; closing \(left) connection(s)") }
        for loop in loops { loop.queue.sync { loop.stop() } }
        state.withLock { $0 = .stopped }
        stopped.fire()
    }

    /// Returns once `shutdown()` has finished.
    public func waitUntilStopped() async {
        await stopped.wait()
    }
}
