import CEpoll
import Glibc

/// A failed socket call, with the call's name and its errno.
public struct SocketError: Error, Sendable, CustomStringConvertible {
    public let operation: String
    public let errno: Int32

    public init(_ operation: String, errno: Int32 = Glibc.errno) {
        self.operation = operation
        self.errno = errno
    }

    public var description: String { "\(operation) failed: \(String(cString: strerror(errno))) (errno \(errno))" }
}

/// A thin handle on one non-blocking socket file descriptor: the only place
/// that calls the C socket functions. It does not close itself; its owner does.
public struct Socket: Sendable, Hashable {
    public let fd: Int32

    public init(fd: Int32) { self.fd = fd }

    public enum ReadResult: Equatable {
        case bytes(Int)
        case wouldBlock
        case endOfFile
        case failed(Int32)
    }

    public enum WriteResult: Equatable {
        case bytes(Int)
        case wouldBlock
        case failed(Int32)
    }

    /// An IPv4 or IPv6 literal (or "localhost") and a port as a socket address.
    enum Address {
        case v4(sockaddr_in)
        case v6(sockaddr_in6)

        init(host: String, port: Int) throws(SocketError) {
            let literal = host == "localhost" ? "127.0.0.1" : host
            var v4 = sockaddr_in()
            var v6 = sockaddr_in6()
            if inet_pton(AF_INET, literal, &v4.sin_addr) == 1 {
                v4.sin_family = sa_family_t(AF_INET)
                v4.sin_port = UInt16(port).bigEndian
                self = .v4(v4)
            } else if inet_pton(AF_INET6, literal, &v6.sin6_addr) == 1 {
                v6.sin6_family = sa_family_t(AF_INET6)
                v6.sin6_port = UInt16(port).bigEndian
                self = .v6(v6)
            } else {
                throw SocketError("parse address '\(host)' (an IP address or localhost)", errno: EINVAL)
            }
        }

        var family: Int32 {
            if case .v4 = self { return AF_INET } else { return AF_INET6 }
        }

        /// Calls `body` with the address as a `sockaddr` and its length.
        func withSockaddr<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
            switch self {
            case .v4(var a):
                return withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            case .v6(var a):
                return withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
            }
        }
    }

    /// A listening TCP socket on `host:port` (IPv4 or IPv6 literal, or "localhost"), non-blocking.
    public static func listening(host: String, port: Int, backlog: Int32 = 1024) throws(SocketError) -> Socket {
        let address = try Address(host: host, port: port)
        let fd = Glibc.socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketError("socket") }
        let socket = Socket(fd: fd)
        do throws(SocketError) {
            try socket.setOption(SOL_SOCKET, SO_REUSEADDR, 1)
            guard address.withSockaddr({ bind(fd, $0, $1) }) == 0 else { throw SocketError("bind \(host):\(port)") }
            guard Glibc.listen(fd, backlog) == 0 else { throw SocketError("listen") }
        } catch {
            socket.close()
            throw error
        }
        return socket
    }

    /// A blocking client socket connected to `host:port`, its sends, receives
    /// (and, on Linux, the connect itself) bounded by `timeout` seconds. For probes, not for serving.
    public static func connected(host: String, port: Int, timeout: Double) throws(SocketError) -> Socket {
        let address = try Address(host: host, port: port)
        let fd = Glibc.socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketError("socket") }
        var limit = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        guard address.withSockaddr({ Glibc.connect(fd, $0, $1) }) == 0 else {
            let error = SocketError("connect to \(host):\(port)")
            Glibc.close(fd)
            throw error
        }
        return Socket(fd: fd)
    }

    /// The local port this socket is bound to.
    public var localPort: Int {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard rc == 0 else { return 0 }
        if Int32(storage.ss_family) == AF_INET {
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
            }
        }
        return withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
        }
    }

    /// Accepts one pending connection as a non-blocking socket; nil when none is pending.
    public func accept() throws(SocketError) -> Socket? {
        while true {
            let client = hh_accept_nonblocking(fd)
            if client >= 0 { return Socket(fd: client) }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return nil
            // The peer gave up before we accepted: try the next one.
            case ECONNABORTED, EPROTO: continue
            default: throw SocketError("accept")
            }
        }
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) -> ReadResult {
        Socket.receiving { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    /// The next byte without taking it.
    public func peek(_ byte: inout UInt8) -> ReadResult {
        withUnsafeMutablePointer(to: &byte) { pointer in
            Socket.receiving { Glibc.recv(fd, pointer, 1, Int32(MSG_PEEK)) }
        }
    }

    /// A read-like call's result, retried on EINTR.
    private static func receiving(_ call: () -> Int) -> ReadResult {
        while true {
            let n = call()
            if n > 0 { return .bytes(n) }
            if n == 0 { return .endOfFile }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default: return .failed(errno)
            }
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) -> WriteResult {
        while true {
            let n = Glibc.send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
            if n >= 0 { return .bytes(n) }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default: return .failed(errno)
            }
        }
    }

    /// Sends each answer as soon as it is written: without it a keep-alive
    /// answer can wait ~40 ms for the peer's delayed ACK.
    public func setNoDelay() {
        try? setOption(Int32(IPPROTO_TCP), TCP_NODELAY, 1)
    }

    public func setOption(_ level: Int32, _ name: Int32, _ value: Int32) throws(SocketError) {
        var v = value
        guard setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            throw SocketError("setsockopt")
        }
    }

    /// Sends FIN: the peer reads everything written so far, then end of file.
    public func shutdownWrite() {
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    public func close() {
        _ = Glibc.close(fd)
    }
}
