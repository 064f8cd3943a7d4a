import Dispatch
import Synchronization

/// The body of a response that is written as it is produced (Server-Sent
/// Events). The connection sends the head without `Content-Length`, then
/// every `write`, and closes when either side ends. A reader that falls more
/// than `maxBuffered` bytes behind is cut off, so it cannot hold memory or
/// the writer.
public final class ResponseStream: Sendable {
    public let maxBuffered: Int
    private let state = Mutex<State>(State())
    private let closedSignal = Mutex<[@Sendable () -> Void]>([])

    struct State {
        var connection: Connection?
        var early: [[UInt8]] = []
        var finished = false
        var closed = false
    }

    public init(maxBuffered: Int = 1 << 20) {
        self.maxBuffered = maxBuffered
    }

    /// Queues bytes for the client; false once the stream is closed.
    @discardableResult
    public func write(_ bytes: [UInt8]) -> Bool {
        let target = state.withLock { s -> Connection?? in
            if s.closed { return .some(nil) }
            guard let c = s.connection else { s.early.append(bytes); return nil }
            return .some(c)
        }
        switch target {
        case .none: return true          // not attached yet: kept until it is
        case .some(nil): return false    // closed
        case .some(let connection?):
            connection.loop.queue.async { connection.streamWrite(bytes, from: self) }
            return true
        }
    }

    /// Ends the response: the connection closes once everything is sent.
    public func finish() {
        let connection = state.withLock { s -> Connection? in
            s.finished = true
            return s.connection
        }
        if let connection { connection.loop.queue.async { connection.streamFinish(self) } }
    }

    /// Runs `handler` once when the stream closes (the client left, or it was cut off).
    public func onClose(_ handler: @escaping @Sendable () -> Void) {
        let already = state.withLock { $0.closed }
        if already { handler(); return }
        closedSignal.withLock { $0.append(handler) }
    }

    public var isClosed: Bool { state.withLock { $0.closed } }

    /// Called on the connection's queue once the head is written.
    func attach(_ connection: Connection) -> (early: [[UInt8]], finished: Bool) {
        state.withLock { s in
            s.connection = connection
            defer { s.early = [] }
            return (s.early, s.finished)
        }
    }

    /// Called by the connection when it closes.
    func closed() {
        let first = state.withLock { s -> Bool in
            if s.closed { return false }
            s.closed = true
            s.connection = nil
            return true
        }
        guard first else { return }
        for handler in closedSignal.withLock({ h -> [@Sendable () -> Void] in defer { h = [] }; return h }) { handler() }
    }
}
