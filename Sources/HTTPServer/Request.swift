import Foundation

/// How a request's body is delimited (RFC 9112 §6).
public enum BodyFraming: Sendable, Equatable {
    case none
    case length(Int)
    case chunked
}

/// A request's head as the parser read it.
public struct RequestHead: Sendable {
    public var method: String
    /// The request target as sent (origin form: path and query).
    public var target: String
    public var version: HTTPVersion
    public var headers: Headers
    public var framing: BodyFraming
    /// False when the client asked to close (or, in HTTP/1.0, did not ask to keep alive).
    public var keepAlive: Bool
    public var expectsContinue: Bool

    /// The path part of the target, before any `?`.
    public var path: Substring {
        if let q = target.utf8.firstIndex(of: UInt8(ascii: "?")) { return target[..<q] }
        return target[...]
    }

    /// The query part of the target, after the `?`, or nil.
    public var query: Substring? {
        guard let q = target.utf8.firstIndex(of: UInt8(ascii: "?")) else { return nil }
        return target[target.utf8.index(after: q)...]
    }
}

/// A complete request handed to a handler.
public struct Request: Sendable {
    public var head: RequestHead
    public var body: [UInt8]
    public var trailers: Headers
    /// Values of the route pattern's `:name` segments.
    public var parameters: [String: String]
    /// `X-Request-Id` as sent, or one the server made; echoed on the answer.
    public var id: String = ""

    public init(head: RequestHead, body: [UInt8] = [], trailers: Headers = Headers(), parameters: [String: String] = [:]) {
        self.head = head
        self.body = body
        self.trailers = trailers
        self.parameters = parameters
    }

    public var method: String { head.method }
    public var path: Substring { head.path }
    public var headers: Headers { head.headers }

    /// The first value of query parameter `name`, percent-decoded (`+` is a space), or nil.
    public func query(_ name: String) -> String? {
        guard let query = head.query else { return nil }
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if Request.decode(parts[0]) == name {
                return parts.count > 1 ? Request.decode(parts[1]) : ""
            }
        }
        return nil
    }

    static func decode(_ s: Substring) -> String {
        let plus = s.replacingOccurrences(of: "+", with: " ")
        return plus.removingPercentEncoding ?? plus
    }
}
