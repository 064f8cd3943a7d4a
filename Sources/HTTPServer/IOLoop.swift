import CEpoll
import Dispatch
import Glibc

/// One readiness loop: the sockets it owns in one epoll set, that set watched
/// by a single Dispatch read source on a serial queue, and every ready socket
/// drained per wake-up. One Dispatch source per socket would cost a thread hop
/// per request; this costs one per batch.
///
/// Thread-safety: every stored property is read and written only on `queue`
/// (the only way in is `queue.async`/`queue.sync`), hence `@unchecked Sendable`.
final class IOLoop: @unchecked Sendable {
    static let listenerTag = UInt64.max

    let queue: DispatchQueue
    let shared: ServerShared
    let epfd: Int32
    let scratch: UnsafeMutableRawBufferPointer
    private(set) var now: UInt64 = DispatchTime.now().uptimeNanoseconds
    private(set) var draining = false
    var date = HTTPDate()

    private var connections: [Connection?] = []
    private var liveCount = 0
    private var listener: Socket?
    private var source: DispatchSourceRead?
    private var timer: DispatchSourceTimer?
    private let maxEvents: Int32 = 256
    private let eventFlags: UnsafeMutablePointer<UInt32>
    private let eventData: UnsafeMutablePointer<UInt64>

    init(index: Int, shared: ServerShared, listener: Socket) throws(SocketError) {
        self.shared = shared
        self.queue = DispatchQueue(label: "hailuo-hook.io.\(index)")
        let fd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard fd >= 0 else { throw SocketError("epoll_create1") }
        self.epfd = fd
        self.scratch = .allocate(byteCount: 64 * 1024, alignment: 16)
        self.eventFlags = .allocate(capacity: Int(maxEvents))
        self.eventData = .allocate(capacity: Int(maxEvents))
        self.listener = listener
        // Level-triggered and exclusive: one loop wakes per pending connection.
        guard hh_epoll_add(epfd, listener.fd, HH_EPOLLIN | HH_EPOLLEXCLUSIVE, IOLoop.listenerTag) == 0 else {
            throw SocketError("epoll_ctl(listener)")
        }
    }

    deinit {
        scratch.deallocate()
        eventFlags.deallocate()
        eventData.deallocate()
        Glibc.close(epfd)
    }

    func start() {
        let source = DispatchSource.makeReadSource(fileDescriptor: epfd, queue: queue)
        source.setEventHandler { [unowned self] in self.drainEvents() }
        source.resume()
        self.source = source
        let tick = shared.tickInterval
        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now() + tick, repeating: tick, leeway: .milliseconds(10))
        timer.setEventHandler { [unowned self] in self.sweep() }
        timer.resume()
        self.timer = timer
    }

    /// Runs until epoll has nothing ready: events that arrive while a batch is
    /// being handled are taken in the same wake-up instead of costing another
    /// thread hand-off through Dispatch. Bounded, so the queue's other work
    /// (async answers, the timer) still gets its turn.
    private func drainEvents() {
        for _ in 0..<64 {
            now = DispatchTime.now().uptimeNanoseconds
            let n = hh_epoll_wait(epfd, eventFlags, eventData, maxEvents, 0)
            if n <= 0 { return }
            for i in 0..<Int(n) {
                let tag = eventData[i]
                if tag == IOLoop.listenerTag {
                    acceptPending()
                } else if Int(tag) < connections.count, let connection = connections[Int(tag)] {
                    connection.handle(events: eventFlags[i])
                }
            }
        }
    }

    private func acceptPending() {
        guard let listener, !draining else { return }
        for _ in 0..<64 {
            let accepted: Socket?
            do {
                accepted = try listener.accept()
            } catch {
                shared.logger.warning("accept failed: \(error)")
                return
            }
            guard let socket = accepted else { return }
            let context = shared.tlsContext
            guard shared.admitConnection() else {
                Connection.refuseOverCapacity(socket, draining: draining || shared.isDraining.load(ordering: .relaxed), tls: context != nil)
                continue
            }
            var session: TLSSession?
            if let context {
                session = TLSSession(context: context, fd: socket.fd)
                if session == nil {
                    shared.logger.warning("TLS: cannot start a session: \(TLSContext.lastError())")
                    socket.close()
                    shared.connectionClosed()
                    continue
                }
            }
            socket.setNoDelay()
            let connection = Connection(socket: socket, loop: self, tls: session)
            let fd = Int(socket.fd)
            if fd >= connections.count {
                connections.append(contentsOf: repeatElement(nil, count: max(fd + 1 - connections.count, connections.count)))
            }
            connections[fd] = connection
            liveCount += 1
            if hh_epoll_add(epfd, socket.fd, Connection.readFlags, UInt64(fd)) != 0 {
                shared.logger.warning("\(SocketError("epoll_ctl(add)"))")
                connection.close()
            }
        }
    }

    /// Called by a connection when it closes its socket.
    func forget(_ connection: Connection) {
        let fd = Int(connection.socket.fd)
        if fd < connections.count, connections[fd] === connection {
            connections[fd] = nil
            liveCount -= 1
        }
        shared.connectionClosed()
    }

    /// Timeouts, checked a few times a second rather than armed per request.
    private func sweep() {
        now = DispatchTime.now().uptimeNanoseconds
        guard liveCount > 0 else { return }
        for case let connection? in connections {
            connection.checkTimeouts()
        }
    }

    /// Stops accepting; idle connections close now, busy ones after their answer.
    func beginDrain() {
        draining = true
        if let listener {
            _ = hh_epoll_del(epfd, listener.fd)
            self.listener = nil
        }
        for case let connection? in connections {
            connection.drain()
        }
    }

    /// Closes whatever is still open and stops the loop.
    func stop() {
        for case let connection? in connections {
            connection.close()
        }
        timer?.cancel()
        source?.cancel()
        timer = nil
        source = nil
    }
}
