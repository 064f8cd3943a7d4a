import CEpoll
import Dispatch
import Glibc

/// One client's connection, driven by its loop: the parser, keep-alive,
/// pipelining (answers in request order: the next request is not started
/// while one is in a handler), the three timeouts, and back-pressure (no more
/// reading or parsing while too much of the answers is unsent).
///
/// Thread-safety: touched only on its loop's queue, hence `@unchecked Sendable`
/// (an async handler's answer comes back through `loop.queue.async`).
final class Connection: @unchecked Sendable {
    /// Unsent answer bytes above which the connection stops taking requests.
    static let highWater = 256 * 1024

    let socket: Socket
    /// The TLS session on this socket when the listener speaks HTTPS.
    private let tls: TLSSession?
    /// Whether the first byte was checked for a plain-HTTP request on the TLS port.
    private var sniffed = false
    private let acceptedAt: UInt64
    /// Strong: an async handler's answer may come back after the server stopped.
    let loop: IOLoop
    private var parser: RequestParser
    private var out: [UInt8] = []
    private var outIndex = 0

    private var readable = false
    private var writable = true
    /// EPOLLOUT is asked for only while an answer waits for socket space:
    /// every ACK would otherwise be an event (and a wake-up through the nested epoll).
    private var watchingWrites = false
    private var peerClosed = false
    /// epoll said the peer half-closed (EPOLLRDHUP); its end of file may still be behind unread data.
    private var finReported = false
    private var inFlight = false
    private var closeAfterWrite = false
    private var lingering = false
    private(set) var closed = false

    private var pending: (head: RequestHead, match: Router.Match)?
    /// The streaming body being sent, if any: nothing else happens on this connection meanwhile.
    private var streaming: ResponseStream?
    private var lastActivity: UInt64
    private var headStartedAt: UInt64 = 0
    private var bodyActivityAt: UInt64 = 0
    private var lingerDeadline: UInt64 = 0

    init(socket: Socket, loop: IOLoop, tls: TLSSession? = nil) {
        self.socket = socket
        self.tls = tls
        self.loop = loop
        self.acceptedAt = loop.now
        self.parser = RequestParser(limits: loop.shared.configuration.limits)
        self.lastActivity = loop.now
    }

    private var shared: ServerShared { loop.shared }
    private var pendingOutput: Int { out.count - outIndex }

    func handle(events: UInt32) {
        // A streaming connection reads nothing, so the peer's close comes only as these flags.
        if streaming != nil && events & (HH_EPOLLRDHUP | HH_EPOLLHUP | HH_EPOLLERR) != 0 {
            close()
            return
        }
        if events & (HH_EPOLLIN | HH_EPOLLRDHUP | HH_EPOLLHUP | HH_EPOLLERR) != 0 { readable = true }
        // The peer's FIN is reported once: remember it, so the end of file is read after the data.
        if events & (HH_EPOLLRDHUP | HH_EPOLLHUP | HH_EPOLLERR) != 0 { finReported = true }
        if events & HH_EPOLLOUT != 0 {
            writable = true
            // A TLS read may have waited for the socket to take bytes.
            if tls?.readWantsWrite == true { readable = true }
        }
        run()
    }

    /// Sends what is pending, takes buffered requests, reads while it may,
    /// until none of the three makes progress.
    private func run() {
        while !closed && !lingering {
            flush()
            guard !closed && !lingering else { break }
            let handled = process()
            let received = readable && wantsInput && readOnce()
            if handled == 0 && !received {
                flush()
                break
            }
        }
        if lingering && !closed { discardInput() }
    }

    /// One read into the loop's scratch buffer; true when it changed anything.
    private func readOnce() -> Bool {
        let result: Socket.ReadResult
        if let tls {
            if !sniffed, let handled = sniffPlainHTTP() { return handled }
            result = tls.read(into: loop.scratch)
        } else {
            result = socket.read(into: loop.scratch)
        }
        switch result {
        case .bytes(let n):
            parser.append(UnsafeRawBufferPointer(rebasing: loop.scratch[0..<n]))
            lastActivity = loop.now
            if parser.isReadingBody { bodyActivityAt = loop.now }
            // A short read drained the socket; edge-triggered epoll reports new data.
            // (Not so under TLS: one read returns at most one record.)
            // (Not when the FIN was already reported: no new edge would come for it.)
            if n < loop.scratch.count && tls == nil && !finReported { readable = false }
            return true
        case .wouldBlock:
            readable = false
            if tls?.readWantsWrite == true && !watchingWrites { watchWrites(true) }
            return false
        case .endOfFile:
            readable = false
            peerClosed = true
            if streaming != nil { close() }
            return true
        case .failed:
            close()
            return false
        }
    }

    /// The TLS port's first byte: a handshake starts with 0x16; a letter is a
    /// plain HTTP request, answered in plain text with a sentence saying so.
    /// Nil to go on with TLS; else `readOnce`'s answer.
    private func sniffPlainHTTP() -> Bool? {
        var byte: UInt8 = 0
        switch socket.peek(&byte) {
        case .wouldBlock:
            readable = false
            return false
        case .bytes where byte >= 0x41 && byte <= 0x5A:
            sniffed = true
            Connection.plainHTTPOnTLSPort.withUnsafeBytes { _ = socket.write($0) }
            observeRefusal(.badRequest)
            closeAfterWrite = true
            startLinger()
            return true
        default:
            // A handshake, or bytes OpenSSL will refuse (and the connection closes).
            sniffed = true
            return nil
        }
    }

    private var wantsInput: Bool {
        !inFlight && !closeAfterWrite && !peerClosed && pendingOutput <= Connection.highWater
    }

    /// Takes every complete request the buffer holds, in order; returns how many parser outputs it took.
    @discardableResult
    private func process() -> Int {
        var taken = 0
        while !closed && !inFlight && !closeAfterWrite && pendingOutput <= Connection.highWater {
            let output: RequestParser.Output?
            do {
                output = try parser.next()
            } catch {
                refuse(error)
                return taken + 1
            }
            guard let output else {
                // Waiting on the client for the rest of a head: the header timeout runs.
                if headStartedAt == 0 && !parser.isIdle && !parser.isReadingBody { headStartedAt = loop.now }
                return taken
            }
            taken += 1
            headStartedAt = 0
            switch output {
            case .head(let head):
                let match = shared.router.match(method: head.method, path: head.path)
                if head.framing == .none {
                    dispatch(head, body: [], trailers: Headers(), match: match)
                    continue
                }
                if let refusal = refusalBeforeBody(head, match) {
                    refuse(refusal)
                    return taken
                }
                pending = (head, match)
                bodyActivityAt = loop.now
                // A client that already sent body bytes did not wait for the 100.
                if head.expectsContinue && parser.bufferedByteCount == 0 {
                    out.append(contentsOf: Connection.continueLine)
                }
            case .body(let body, let trailers):
                guard let (head, match) = pending else { continue }
                pending = nil
                dispatch(head, body: body, trailers: trailers, match: match)
            }
        }
        // Stopped by our own state (a handler, unsent answers), not by the client.
        headStartedAt = 0
        return taken
    }

    /// 413 and 415 are known from the head: refuse before reading (or asking for) the body.
    private func refusalBeforeBody(_ head: RequestHead, _ match: Router.Match) -> ParseError? {
        var limit = shared.configuration.maxBodyBytes
        if case .found(let route, _) = match {
            limit = route.options.maxBodyBytes ?? limit
            if !route.options.accepts.isEmpty, let type = head.headers["Content-Type"], !route.options.accepts.contains(type) {
                let media = type.split(separator: ";", maxSplits: 1).first.map { $0.trimmingOWS().lowercased() } ?? ""
                let acceptable = route.options.accepts.contains(media)
                    || (route.options.accepts.contains("application/json") && media.hasSuffix("+json"))
                if !acceptable {
                    return ParseError(.unsupportedMediaType, "Content-Type \(type) is not accepted here; send \(route.options.accepts.joined(separator: " or "))")
                }
            }
        }
        if case .length(let n) = head.framing, n > limit {
            return ParseError(.payloadTooLarge, "the request body (\(n) bytes) is larger than \(limit) bytes")
        }
        parser.bodyLimit = limit
        return nil
    }

    /// The current request's route and start, for `onResponse`.
    private var routeLabel = "unmatched"
    private var startedAt: UInt64 = 0
    /// Echoed as `X-Request-Id` on the current request's answer.
    private var currentRequestID: String?

    private func observe(_ status: Status, method: String) {
        guard let observer = shared.configuration.onResponse else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        observer(routeLabel, method, status.code, now > startedAt ? now - startedAt : 0)
    }

    private func dispatch(_ head: RequestHead, body: [UInt8], trailers: Headers, match: Router.Match) {
        currentRequestID = requestID(head)
        if shared.configuration.onResponse != nil {
            startedAt = DispatchTime.now().uptimeNanoseconds
            if case .found(let route, _) = match { routeLabel = route.pattern } else { routeLabel = "unmatched" }
        }
        switch match {
        case .notFound:
            write(Response.error(.notFound, "no route for \(head.method) \(head.path)"), for: head)
        case .methodNotAllowed(let allow):
            var response = Response.error(.methodNotAllowed, "\(head.method) is not allowed on \(head.path); use \(allow.joined(separator: ", "))")
            response.headers.add("Allow", allow.joined(separator: ", "))
            write(response, for: head)
        case .found(let route, let parameters):
            var body = body
            if let coding = head.headers["Content-Encoding"]?.trimmingOWS().lowercased(), !coding.isEmpty, coding != "identity" {
                guard coding == "gzip" || coding == "x-gzip" else {
                    write(Response.error(.unsupportedMediaType, "Content-Encoding \(coding) is not supported; send gzip or none"), for: head)
                    return
                }
                let limit = route.options.maxBodyBytes ?? shared.configuration.maxBodyBytes
                do {
                    body = try Gzip.decompress(body, limit: limit)
                } catch .tooLarge {
                    var refusal = head
                    refusal.keepAlive = false
                    write(Response.error(.payloadTooLarge, "the request body inflates to more than \(limit) bytes"), for: refusal)
                    return
                } catch {
                    write(Response.error(.badRequest, "the request body is not valid gzip"), for: head)
                    return
                }
            }
            var request = Request(head: head, body: body, trailers: trailers, parameters: parameters)
            request.id = currentRequestID ?? ""

            switch route.handler {
            case .sync(let handler):
                write(handler(request), for: head)
            case .async(let handler):
                inFlight = true
                Task {
                    let response = await handler(request)
                    self.loop.queue.async { self.finish(response, for: head) }
                }
            case .blocking(let handler):
                inFlight = true
                let request = request
                DispatchQueue.global().async {
                    let response = handler(request)
                    self.loop.queue.async { self.finish(response, for: head) }
                }
            }
        }
    }

    private func finish(_ response: Response, for head: RequestHead) {
        inFlight = false
        guard !closed else { return }
        write(response, for: head)
        run()
    }


    /// Answers a refused request and closes: after a framing error nothing after it can be trusted.
    private func refuse(_ error: ParseError) {
        currentRequestID = nil
        observeRefusal(error.status)
        pending = nil
        closeAfterWrite = true
        serialize(Response.error(error.status, error.message), version: .http1_1, head: false, keepAlive: false)
        flush()
    }

    private func observeRefusal(_ status: Status) {
        guard shared.configuration.onResponse != nil else { return }
        routeLabel = "refused"
        startedAt = DispatchTime.now().uptimeNanoseconds
        observe(status, method: "-")
    }

    /// The client's `X-Request-Id` (if sane), else the process's prefix and a counter: unique, and no randomness per request.
    private func requestID(_ head: RequestHead) -> String {
        if let given = head.headers["X-Request-Id"], !given.isEmpty, given.utf8.count <= 128 { return given }
        return shared.nextRequestID()
    }

    private func write(_ response: Response, for head: RequestHead) {
        observe(response.status, method: head.method)
        if let stream = response.stream {
            startStream(stream, response, head)
            return
        }
        let keepAlive = head.keepAlive && !loop.draining && !closeAfterWrite
        if !keepAlive { closeAfterWrite = true }
        serialize(Connection.encoded(response, for: head), version: head.version, head: head.method == "HEAD", keepAlive: keepAlive)
    }

    /// gzip for clients that accept it, when the body is large enough to gain; `Vary` either way.
    static func encoded(_ response: Response, for head: RequestHead) -> Response {
        guard response.body.count >= Gzip.minimumSize, !response.headers.contains("Content-Encoding"),
              Gzip.compressible(response.headers["Content-Type"]) else { return response }
        var encoded = response
        encoded.headers.add("Vary", "Accept-Encoding")
        guard Gzip.accepted(head.headers["Accept-Encoding"]), let compressed = Gzip.compress(response.body),
              compressed.count < response.body.count else { return encoded }
        encoded.body = compressed
        encoded.headers.add("Content-Encoding", "gzip")
        return encoded
    }

    // MARK: Streaming bodies

    /// Sends the head (no Content-Length, `Connection: close`), then the stream's bytes as they come.
    private func startStream(_ stream: ResponseStream, _ response: Response, _ head: RequestHead) {
        closeAfterWrite = true
        serialize(response, version: head.version, head: true, keepAlive: false, streaming: true)
        if head.method == "HEAD" {
            stream.closed()
            return
        }
        streaming = stream
        let (early, finished) = stream.attach(self)
        for bytes in early { out.append(contentsOf: bytes) }
        if !finished { inFlight = true }  // holds the connection open: no linger, no next request
    }

    func streamWrite(_ bytes: [UInt8], from stream: ResponseStream) {
        guard !closed, streaming === stream else { return }
        if pendingOutput + bytes.count > stream.maxBuffered {
            // A reader this far behind is cut off rather than buffered without end.
            close()
            return
        }
        out.append(contentsOf: bytes)
        flush()
    }

    func streamFinish(_ stream: ResponseStream) {
        guard !closed, streaming === stream else { return }
        inFlight = false
        streaming = nil
        stream.closed()
        flush()
    }

    private func serialize(_ response: Response, version: HTTPVersion, head: Bool, keepAlive: Bool, streaming: Bool = false) {
        let status = response.status
        if status.code >= 0 && status.code < Connection.statusLines.count, let line = Connection.statusLines[status.code], line.reason == status.reason {
            out.append(contentsOf: line.bytes)
        } else {
            out.append(contentsOf: "HTTP/1.1 \(status.code) \(status.reason)\r\n".utf8)
        }
        out.append(contentsOf: Connection.dateName)
        out.append(contentsOf: loop.date.current())
        out.append(contentsOf: Connection.crlf)
        out.append(contentsOf: shared.serverLine)
        for (name, value) in response.headers {
            if Headers.equalNames(name, "Content-Length") || Headers.equalNames(name, "Connection") { continue }
            appendSafe(name)
            out.append(contentsOf: Connection.colonSpace)
            appendSafe(value)
            out.append(contentsOf: Connection.crlf)
        }
        if status.code >= 200 && status.code != 204 && status.code != 304 && !streaming {
            out.append(contentsOf: Connection.contentLengthName)
            appendDecimal(response.body.count)
            out.append(contentsOf: Connection.crlf)
        }
        if let id = currentRequestID {
            out.append(contentsOf: Connection.requestIDName)
            appendSafe(id)
            out.append(contentsOf: Connection.crlf)
            currentRequestID = nil
        }
        if !keepAlive {
            out.append(contentsOf: Connection.connectionClose)
        } else if version == .http1_0 {
            out.append(contentsOf: Connection.connectionKeepAlive)
        }
        out.append(contentsOf: Connection.crlf)
        if !head { out.append(contentsOf: response.body) }
    }

    /// Header text from a handler, with CR, LF and NUL turned into spaces (no header injection).
    private func appendSafe(_ s: String) {
        if !s.utf8.contains(where: { $0 == cr || $0 == lf || $0 == 0 }) {
            out.append(contentsOf: s.utf8)
            return
        }
        for c in s.utf8 {
            out.append(c == cr || c == lf || c == 0 ? sp : c)
        }
    }

    private func appendDecimal(_ n: Int) {
        if n < 10 { out.append(UInt8(48 + n)); return }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        var v = n
        withUnsafeMutableBytes(of: &digits) { d in
            while v > 0 { d[count] = UInt8(48 + v % 10); v /= 10; count += 1 }
            for i in stride(from: count - 1, through: 0, by: -1) { out.append(d[i]) }
        }
    }

    /// Writes as much of the pending output as the socket takes.
    private func flush() {
        guard !closed else { return }
        if outIndex < out.count && !writable { return }
        while outIndex < out.count {
            let result = out.withUnsafeBytes { bytes in
                let rest = UnsafeRawBufferPointer(rebasing: bytes[outIndex...])
                return tls?.write(rest) ?? socket.write(rest)
            }
            switch result {
            case .bytes(let n):
                outIndex += n
                lastActivity = loop.now
            case .wouldBlock:
                writable = false
                watchWrites(true)
                return
            case .failed:
                close()
                return
            }
        }
        if watchingWrites { watchWrites(false) }
        if out.capacity > 1 << 20 { out = [] } else { out.removeAll(keepingCapacity: true) }
        outIndex = 0
        if closeAfterWrite && !inFlight {
            startLinger()
        } else if peerClosed && !inFlight {
            close()
        }
    }

    private func watchWrites(_ on: Bool) {
        watchingWrites = on
        let flags = Connection.readFlags | (on ? HH_EPOLLOUT : 0)
        _ = hh_epoll_mod(loop.epfd, socket.fd, flags, UInt64(socket.fd))
    }

    static let readFlags = HH_EPOLLIN | HH_EPOLLRDHUP | HH_EPOLLET

    /// After the last answer: send FIN, then read and drop until the client
    /// closes (or a short deadline), so that unread input does not turn the
    /// close into a reset that could destroy the answer in flight.
    private func startLinger() {
        guard !lingering else { return }
        lingering = true
        tls?.shutdown()
        socket.shutdownWrite()
        if peerClosed { close(); return }
        lingerDeadline = loop.now + UInt64(shared.configuration.lingerTimeout * 1e9)
        readable = true
        discardInput()
    }

    private func discardInput() {
        while !closed {
            switch socket.read(into: loop.scratch) {
            case .bytes: continue
            case .wouldBlock: return
            case .endOfFile, .failed: close(); return
            }
        }
    }

    func checkTimeouts() {
        guard !closed else { return }
        let now = loop.now
        let config = shared.configuration
        if lingering {
            if now >= lingerDeadline { close() }
        } else if let tls, !tls.isEstablished {
            // A client that stalls mid-handshake (or never starts one).
            if elapsed(since: acceptedAt, now) > config.tlsHandshakeTimeout { close() }
        } else if inFlight {
            return
        } else if pendingOutput > 0 {
            // The client stopped reading its answers.
            if elapsed(since: lastActivity, now) > config.idleTimeout { close() }
        } else if parser.isReadingBody {
            if elapsed(since: bodyActivityAt, now) > config.bodyTimeout {
                refuse(ParseError(.requestTimeout, "no request body bytes arrived for \(Int(config.bodyTimeout)) s"))
            }
        } else if headStartedAt != 0 {
            if elapsed(since: headStartedAt, now) > config.headerTimeout {
                refuse(ParseError(.requestTimeout, "the request head did not arrive within \(Int(config.headerTimeout)) s"))
            }
        } else if elapsed(since: lastActivity, now) > config.idleTimeout {
            close()
        }
    }

    private func elapsed(since t: UInt64, _ now: UInt64) -> Double {
        now > t ? Double(now - t) / 1e9 : 0
    }

    /// The server is draining: an idle connection closes now, a busy one after its answer.
    func drain() {
        if let stream = streaming {
            streamFinish(stream)
            return
        }
        if !inFlight && pendingOutput == 0 && parser.isIdle && pending == nil {
            close()
        }
    }

    func close() {
        guard !closed else { return }
        closed = true
        socket.close()
        streaming?.closed()
        streaming = nil
        loop.forget(self)
    }

    // MARK: Fixed bytes

    static let crlf: [UInt8] = [cr, lf]
    static let colonSpace: [UInt8] = [colon, sp]
    static let dateName = Array("Date: ".utf8)
    static let contentLengthName = Array("Content-Length: ".utf8)
    static let connectionClose = Array("Connection: close\r\n".utf8)
    static let requestIDName = Array("X-Request-Id: ".utf8)
    static let connectionKeepAlive = Array("Connection: keep-alive\r\n".utf8)
    static let continueLine = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)
    static let statusLines: [(reason: String, bytes: [UInt8])?] = (0..<600).map { code in
        guard let reason = Status.standardReasons[code] else { return nil }
        return (reason, Array("HTTP/1.1 \(code) \(reason)\r\n".utf8))
    }

    /// Over `server.max_connections` (or draining): a fixed 503 and close
    /// (on a TLS port just the close: plain bytes would be garbage there).
    static func refuseOverCapacity(_ socket: Socket, draining: Bool, tls: Bool) {
        if tls {
            socket.close()
            return
        }
        (draining ? drainingResponse : overCapacityResponse).withUnsafeBytes { _ = socket.write($0) }
        socket.shutdownWrite()
        socket.close()
    }

    static let plainHTTPOnTLSPort: [UInt8] = {
        let body = #"{"error":{"code":"bad_request","message":"this port speaks HTTPS: a plain HTTP request was sent to it; use https://"}}"#
        return Array(("HTTP/1.1 400 Bad Request\r\nContent-Type: application/json; charset=utf-8\r\n"
            + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body).utf8)
    }()

    static let overCapacityResponse = unavailable("the server is at its connection limit; try again shortly")
    static let drainingResponse = unavailable("the server is shutting down; try again shortly")

    static func unavailable(_ message: String) -> [UInt8] {
        let body = #"{"error":{"code":"service_unavailable","message":"# + JSONText.quote(message) + "}}"
        return Array(("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
            + "Retry-After: 1\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body).utf8)
    }
}
