/// Everything the engine needs to know, with API.md's defaults.
public struct ServerConfiguration: Sendable {
    public var host: String = "0.0.0.0"
    public var port: Int = 8080
    public var maxConnections: Int = 10_000
    public var idleTimeout: Double = 60
    public var headerTimeout: Double = 10
    public var bodyTimeout: Double = 30
    public var drainTimeout: Double = 10
    public var limits = RequestParser.Limits()
    /// The body limit of routes that do not name their own.
    public var maxBodyBytes: Int = 64 * 1024
    /// I/O loops (threads serving sockets); nil means one per CPU this process may use.
    public var ioLoops: Int?
    /// How long a closing connection waits for the client's FIN after the last answer.
    public var lingerTimeout: Double = 2
    public var serverName: String = "hailuo-hook"
    /// The certificate and key when the listener speaks HTTPS (replaceable while serving: `Server.reloadTLS`).
    public var tls: TLSContext?
    /// How long a TLS client has from connecting to finishing its handshake.
    public var tlsHandshakeTimeout: Double = 10
    /// Called after each answer is queued: route pattern (or `unmatched` /
    /// `refused`), method, status, and nanoseconds from the complete request to the answer.
    public var onResponse: (@Sendable (_ route: String, _ method: String, _ status: Int, _ nanoseconds: UInt64) -> Void)?

    public init() {}
}
