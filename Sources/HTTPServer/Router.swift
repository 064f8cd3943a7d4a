/// How a route answers: in place on the I/O thread (for work that never
/// waits), in a Swift task (for work that may wait, such as an upstream call),
/// or on a worker thread (for work that blocks, such as a database client's
/// call): never on the I/O thread, which serves every other connection.
public enum Handler: Sendable {
    case sync(@Sendable (Request) -> Response)
    case async(@Sendable (Request) async -> Response)
    case blocking(@Sendable (Request) -> Response)
}

/// What a route accepts besides its method and path.
public struct RouteOptions: Sendable {
    /// The largest body this route reads; nil means the server's default.
    public var maxBodyBytes: Int?
    /// Media types (without parameters) a body must have; empty accepts any.
    public var accepts: [String]

    public init(maxBodyBytes: Int? = nil, accepts: [String] = []) {
        self.maxBodyBytes = maxBodyBytes
        self.accepts = accepts
    }

    public static let json = RouteOptions(accepts: ["application/json"])
}

public struct Route: Sendable {
    public let method: String
    public let pattern: String
    public let options: RouteOptions
    public let handler: Handler
}

/// Methods and path patterns (`/v1/tasks/:id`) to handlers. The patterns are
/// compiled once into a trie, so dispatch walks the path's segments once.
/// 404 and 405 (with `Allow`) come from here, not from handlers. Every GET
/// route also answers HEAD.
public struct Router: Sendable {
    final class Node: @unchecked Sendable {
        // Written only while the router is being built, before it is shared.
        var literals: [Substring: Node] = [:]
        var parameter: (name: String, node: Node)?
        var routes: [String: Route] = [:]
    }

    public enum Match {
        case found(Route, parameters: [String: String])
        case notFound
        case methodNotAllowed(allow: [String])
    }

    private let root = Node()

    public init() {}

    public func get(_ pattern: String, options: RouteOptions = RouteOptions(), _ handler: Handler) {
        add("GET", pattern, options: options, handler)
    }

    public func post(_ pattern: String, options: RouteOptions = RouteOptions(), _ handler: Handler) {
        add("POST", pattern, options: options, handler)
    }

    /// Registers a route; call before the server starts.
    public func add(_ method: String, _ pattern: String, options: RouteOptions = RouteOptions(), _ handler: Handler) {
        var node = root
        for segment in pattern.split(separator: "/") {
            if segment.first == ":" {
                let name = String(segment.dropFirst())
                if let existing = node.parameter {
                    precondition(existing.name == name, "conflicting parameter names in \(pattern)")
                    node = existing.node
                } else {
                    let child = Node()
                    node.parameter = (name, child)
                    node = child
                }
            } else if let child = node.literals[segment] {
                node = child
            } else {
                let child = Node()
                node.literals[segment] = child
                node = child
            }
        }
        precondition(node.routes[method] == nil, "route \(method) \(pattern) registered twice")
        node.routes[method] = Route(method: method, pattern: pattern, options: options, handler: handler)
    }

    public func match(method: String, path: Substring) -> Match {
        var node = root
        var parameters: [String: String] = [:]
        // Walks the segments in place: no array of them is built.
        let bytes = path.utf8
        var i = bytes.startIndex
        while i < bytes.endIndex {
            if bytes[i] == slash { i = bytes.index(after: i); continue }
            var j = i
            while j < bytes.endIndex && bytes[j] != slash { j = bytes.index(after: j) }
            let segment = path[i..<j]
            if let child = node.literals[segment] {
                node = child
            } else if let (name, child) = node.parameter {
                parameters[name] = segment.utf8.contains(UInt8(ascii: "%")) ? segment.removingPercentEncodingOrSelf() : String(segment)
                node = child
            } else {
                return .notFound
            }
            i = j
        }
        if node.routes.isEmpty { return .notFound }
        if let route = node.routes[method] ?? (method == "HEAD" ? node.routes["GET"] : nil) {
            return .found(route, parameters: parameters)
        }
        var allow = Set(node.routes.keys)
        if allow.contains("GET") { allow.insert("HEAD") }
        return .methodNotAllowed(allow: allow.sorted())
    }
}

import Foundation

extension Substring {
    func removingPercentEncodingOrSelf() -> String {
        String(self).removingPercentEncoding ?? String(self)
    }
}
