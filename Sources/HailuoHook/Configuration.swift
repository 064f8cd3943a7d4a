import Foundation
import HTTPServer

/// Every setting of API.md with its default. Loaded from the JSON file, then
/// the environment, then flags, each overriding the one before.
public struct Configuration: Sendable, Equatable {
    public var host = "0.0.0.0"
    public var port = 8080
    public var publicURL: String? = nil
    public var maxConnections = 10_000
    public var idleTimeout = 60.0
    public var headerTimeout = 10.0
    public var bodyTimeout = 30.0
    public var drainTimeout = 10.0
    public var tlsCertFile: String? = nil
    public var tlsKeyFile: String? = nil
    public var tlsHandshakeTimeout = 10.0
    public var maxHeaderBytes = 16_384
    public var maxURIBytes = 8_192
    public var maxSubmitBodyBytes = 64 * 1024 * 1024
    public var maxBodyBytes = 64 * 1024
    public var upstreamBaseURL = "https://api.minimax.io"
    public var upstreamAPIKey: String? = nil
    public var upstreamTimeout = 30.0
    public var apiToken: String? = nil
    public var callbackSharedToken: String? = nil
    public var maxTasks = 100_000
    public var retention = 86_400.0
    public var journal: String? = nil
    public var databaseURL: String? = nil
    public var reconcileAfter = 600.0
    public var logLevel = "info"
    public var logFormat = "text"

    public init() {}

    /// Loads `server.tls.cert_file` and `key_file`; nil when HTTPS is off.
    public func loadTLS() throws(TLSError) -> TLSContext? {
        guard let tlsCertFile, let tlsKeyFile else { return nil }
        return try TLSContext(certificateFile: tlsCertFile, keyFile: tlsKeyFile)
    }

    /// The engine's settings.
    public var server: ServerConfiguration {
        var s = ServerConfiguration()
        s.host = host
        s.port = port
        s.maxConnections = maxConnections
        s.idleTimeout = idleTimeout
        s.headerTimeout = headerTimeout
        s.bodyTimeout = bodyTimeout
        s.drainTimeout = drainTimeout
        s.limits = RequestParser.Limits(maxHeaderBytes: maxHeaderBytes, maxURIBytes: maxURIBytes)
        s.maxBodyBytes = maxBodyBytes
        s.tlsHandshakeTimeout = tlsHandshakeTimeout
        return s
    }

    /// `server.public_url`, or the loopback URL of `port` when unset.
    public func publicURL(port boundPort: Int) -> String {
        if let publicURL { return publicURL.hasSuffix("/") ? String(publicURL.dropLast()) : publicURL }
        return "\(tlsCertFile == nil ? "http" : "https")://127.0.0.1:\(boundPort)"
    }
}

/// A bad file, key or value: one line naming it (the command exits 2).
public struct ConfigurationError: Error, Sendable, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension Configuration {
    enum Kind: Sendable {
        case string
        case optionalString
        case url
        case optionalURL
        case integer(ClosedRange<Int>)
        case seconds
        case oneOf([String])
    }

    /// One key: its dotted name, its environment variables (first wins), its type and where it goes.
    struct Key: Sendable {
        let name: String
        let env: [String]
        let kind: Kind
        let set: @Sendable (inout Configuration, Value) -> Void
    }

    enum Value {
        case string(String?)
        case int(Int)
        case double(Double)

        var string: String? { if case .string(let s) = self { return s } else { return nil } }
        var int: Int { if case .int(let i) = self { return i } else { return 0 } }
        var double: Double { if case .double(let d) = self { return d } else { return 0 } }
    }

    static let keys: [Key] = [
        Key(name: "server.host", env: ["HAILUO_HOOK_HOST"], kind: .string) { $0.host = $1.string ?? "0.0.0.0" },
        Key(name: "server.port", env: ["HAILUO_HOOK_PORT", "PORT"], kind: .integer(0...65535)) { $0.port = $1.int },
        Key(name: "server.public_url", env: ["HAILUO_HOOK_PUBLIC_URL"], kind: .optionalURL) { $0.publicURL = $1.string },
        Key(name: "server.max_connections", env: [], kind: .integer(1...1_000_000)) { $0.maxConnections = $1.int },
        Key(name: "server.idle_timeout_s", env: [], kind: .seconds) { $0.idleTimeout = $1.double },
        Key(name: "server.header_timeout_s", env: [], kind: .seconds) { $0.headerTimeout = $1.double },
        Key(name: "server.body_timeout_s", env: [], kind: .seconds) { $0.bodyTimeout = $1.double },
        Key(name: "server.drain_timeout_s", env: [], kind: .seconds) { $0.drainTimeout = $1.double },
        Key(name: "server.tls.cert_file", env: ["HAILUO_HOOK_TLS_CERT"], kind: .optionalString) { $0.tlsCertFile = $1.string },
        Key(name: "server.tls.key_file", env: ["HAILUO_HOOK_TLS_KEY"], kind: .optionalString) { $0.tlsKeyFile = $1.string },
        Key(name: "server.tls.handshake_timeout_s", env: [], kind: .seconds) { $0.tlsHandshakeTimeout = $1.double },
        Key(name: "limits.max_header_bytes", env: [], kind: .integer(1024...1 << 20)) { $0.maxHeaderBytes = $1.int },
        Key(name: "limits.max_uri_bytes", env: [], kind: .integer(256...1 << 20)) { $0.maxURIBytes = $1.int },
        Key(name: "limits.max_submit_body_bytes", env: [], kind: .integer(1024...1 << 30)) { $0.maxSubmitBodyBytes = $1.int },
        Key(name: "limits.max_body_bytes", env: [], kind: .integer(1024...1 << 30)) { $0.maxBodyBytes = $1.int },
        Key(name: "upstream.base_url", env: ["MINIMAX_BASE_URL"], kind: .url) { $0.upstreamBaseURL = $1.string ?? "" },
        Key(name: "upstream.api_key", env: ["MINIMAX_API_KEY"], kind: .optionalString) { $0.upstreamAPIKey = $1.string },
        Key(name: "upstream.timeout_s", env: ["MINIMAX_TIMEOUT_S"], kind: .seconds) { $0.upstreamTimeout = $1.double },
        Key(name: "api.token", env: ["HAILUO_HOOK_API_TOKEN"], kind: .optionalString) { $0.apiToken = $1.string },
        Key(name: "callbacks.shared_token", env: ["HAILUO_HOOK_CALLBACK_TOKEN"], kind: .optionalString) { $0.callbackSharedToken = $1.string },
        Key(name: "registry.max_tasks", env: [], kind: .integer(1...100_000_000)) { $0.maxTasks = $1.int },
        Key(name: "registry.retention_s", env: [], kind: .seconds) { $0.retention = $1.double },
        Key(name: "registry.journal", env: ["HAILUO_HOOK_JOURNAL"], kind: .optionalString) { $0.journal = $1.string },
        Key(name: "registry.database_url", env: ["HAILUO_HOOK_DATABASE_URL", "DATABASE_URL"], kind: .optionalString) { $0.databaseURL = $1.string },
        Key(name: "reconcile.after_s", env: [], kind: .seconds) { $0.reconcileAfter = $1.double },
        Key(name: "log.level", env: ["LOG_LEVEL"], kind: .oneOf(["trace", "debug", "info", "notice", "warning", "error", "critical"])) { $0.logLevel = $1.string ?? "info" },
        Key(name: "log.format", env: ["LOG_FORMAT"], kind: .oneOf(["text", "json"])) { $0.logFormat = $1.string ?? "text" },
    ]

    /// The keys a secret may never come from a flag for.
    public static let secretKeys: Set<String> = ["upstream.api_key", "api.token", "callbacks.shared_token"]

    /// Loads `file` (or none), then `environment`, then `flags` (dotted key → text).
    public static func load(file: String?, environment: [String: String], flags: [String: String] = [:]) throws(ConfigurationError) -> Configuration {
        var config = Configuration()
        if let file {
            try config.apply(file: file)
        }
        for key in keys {
            for name in key.env {
                guard let text = environment[name] else { continue }
                key.set(&config, try parse(text: text, for: key, from: "environment variable \(name)"))
                break
            }
        }
        for (name, text) in flags.sorted(by: { $0.key < $1.key }) {
            guard let key = keys.first(where: { $0.name == name }), !secretKeys.contains(name) else {
                throw ConfigurationError("config: \(name) cannot be set by a flag")
            }
            key.set(&config, try parse(text: text, for: key, from: "flag --\(flagName(name))"))
        }
        try config.validate()
        return config
    }

    static func flagName(_ key: String) -> String {
        String(key.split(separator: ".").last ?? "").replacingOccurrences(of: "_", with: "-")
    }

    mutating func apply(file: String) throws(ConfigurationError) {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw ConfigurationError("config: cannot read \(file)")
        }
        let root: JSONValue
        do {
            root = try JSONDecoder().decode(JSONValue.self, from: data)
        } catch {
            throw ConfigurationError("config: \(file) is not valid JSON")
        }
        guard case .object(let object) = root else {
            throw ConfigurationError("config: \(file) must hold a JSON object")
        }
        var flat: [String: JSONValue] = [:]
        Configuration.flatten(object, prefix: "", into: &flat)
        for (name, value) in flat.sorted(by: { $0.key < $1.key }) {
            if name.hasPrefix("_") || name.contains("._") { continue }  // comments
            guard let key = Configuration.keys.first(where: { $0.name == name }) else {
                throw ConfigurationError("config: unknown key \(name) in \(file)")
            }
            key.set(&self, try Configuration.parse(json: value, for: key, from: file))
        }
    }

    static func flatten(_ object: [String: JSONValue], prefix: String, into flat: inout [String: JSONValue]) {
        for (k, v) in object {
            let name = prefix.isEmpty ? k : prefix + "." + k
            if case .object(let nested) = v {
                flatten(nested, prefix: name, into: &flat)
            } else {
                flat[name] = v
            }
        }
    }

    static func parse(json value: JSONValue, for key: Key, from source: String) throws(ConfigurationError) -> Value {
        switch (value, key.kind) {
        case (.null, .optionalString), (.null, .optionalURL):
            return .string(nil)
        case (.null, _):
            throw ConfigurationError("config: \(key.name) in \(source) may not be null")
        case (.number(let n), .integer), (.number(let n), .seconds):
            let text = n.rounded() == n && abs(n) < 1e15 ? String(Int64(n)) : String(n)
            return try parse(text: text, for: key, from: source)
        case (_, .integer), (_, .seconds):
            throw ConfigurationError("config: \(key.name) in \(source) must be a number")
        case (.string(let text), _):
            return try parse(text: text, for: key, from: source)
        default:
            throw ConfigurationError("config: \(key.name) in \(source) must be a string")
        }
    }

    static func parse(text: String, for key: Key, from source: String) throws(ConfigurationError) -> Value {
        let shown = secretKeys.contains(key.name) ? "" : " (got \"\(text)\")"
        switch key.kind {
        case .string:
            guard !text.isEmpty else { throw ConfigurationError("config: \(key.name) from \(source) may not be empty") }
            return .string(text)
        case .optionalString:
            return .string(text.isEmpty ? nil : text)
        case .url, .optionalURL:
            if text.isEmpty, case .optionalURL = key.kind { return .string(nil) }
            guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https", url.host != nil else {
                throw ConfigurationError("config: \(key.name) from \(source) must be an http:// or https:// URL\(shown)")
            }
            return .string(text)
        case .integer(let range):
            guard let n = Int(text.trimmingCharacters(in: .whitespaces)), range.contains(n) else {
                throw ConfigurationError("config: \(key.name) from \(source) must be an integer from \(range.lowerBound) to \(range.upperBound)\(shown)")
            }
            return .int(n)
        case .seconds:
            guard let d = Double(text.trimmingCharacters(in: .whitespaces)), d > 0, d.isFinite, d <= 31_536_000 else {
                throw ConfigurationError("config: \(key.name) from \(source) must be a positive number of seconds\(shown)")
            }
            return .double(d)
        case .oneOf(let choices):
            let lower = text.lowercased()
            guard choices.contains(lower) else {
                throw ConfigurationError("config: \(key.name) from \(source) must be one of \(choices.joined(separator: ", "))\(shown)")
            }
            return .string(lower)
        }
    }

    func validate() throws(ConfigurationError) {
        if (tlsCertFile == nil) != (tlsKeyFile == nil) {
            throw ConfigurationError("config: server.tls.cert_file and server.tls.key_file must be set together")
        }
    }
}

