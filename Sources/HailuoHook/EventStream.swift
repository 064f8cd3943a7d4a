import Dispatch
import Foundation
import HTTPServer
import Synchronization

/// `GET /v1/events`: every change of any task as a Server-Sent Event
/// (`event: task`, `id: <seq>`, `data: <the task without events>`), a
/// bounded backlog for `Last-Event-ID`, and a heartbeat comment so proxies
/// keep the connection. Encoding and fan-out run on the stream's own queue,
/// off the path that answers the callback.
public final class EventStream: Sendable {
    public static let backlogSize = 1000

    struct State {
        var nextID = 1
        var backlog: [(id: Int, bytes: [UInt8])] = []
        var subscribers: [ObjectIdentifier: ResponseStream] = [:]
    }

    private let queue = DispatchQueue(label: "hailuo-hook.events")
    private let state = Mutex(State())
    private let heartbeat = Mutex<Task<Void, Never>?>(nil)

    public init(heartbeatInterval: Double = 15) {
        let task = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: UInt64(heartbeatInterval * 1e9))
                self?.broadcast(Array(": heartbeat\n\n".utf8))
            }
        }
        heartbeat.withLock { $0 = task }
    }

    deinit { heartbeat.withLock { $0?.cancel() } }

    public var subscriberCount: Int { state.withLock { $0.subscribers.count } }

    /// Called by the registry after each change.
    public func publish(_ task: VideoTask) {
        queue.async {
            let data = JSONWriter.task(task, withEvents: false)
            let subscribers = self.state.withLock { s -> [ResponseStream] in
                let id = s.nextID
                s.nextID += 1
                var bytes = Array("id: \(id)\nevent: task\ndata: ".utf8)
                bytes.append(contentsOf: data)
                bytes.append(contentsOf: [0x0A, 0x0A])
                s.backlog.append((id, bytes))
                if s.backlog.count > EventStream.backlogSize { s.backlog.removeFirst(s.backlog.count - EventStream.backlogSize) }
                return Array(s.subscribers.values)
            }
            let last = self.state.withLock { $0.backlog.last!.bytes }
            for subscriber in subscribers { subscriber.write(last) }
        }
    }

    private func broadcast(_ bytes: [UInt8]) {
        for subscriber in state.withLock({ Array($0.subscribers.values) }) { subscriber.write(bytes) }
    }

    /// The route: resumes after `Last-Event-ID` from the backlog, then follows live.
    public func handle(_ request: Request) -> Response {
        let stream = ResponseStream(maxBuffered: 1 << 20)
        let lastID = request.headers["Last-Event-ID"].flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let key = ObjectIdentifier(stream)
        // Backlog and registration in one step on the stream's queue: nothing missed, nothing twice.
        queue.sync {
            let replay = state.withLock { s -> [[UInt8]] in
                s.subscribers[key] = stream
                guard let lastID else { return [] }
                return s.backlog.filter { $0.id > lastID }.map(\.bytes)
            }
            stream.write(Array("retry: 2000\n\n".utf8))
            for bytes in replay { stream.write(bytes) }
        }
        stream.onClose { [weak self] in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: key) }
        }
        return Response.streaming(stream, headers: [
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        ])
    }
}
