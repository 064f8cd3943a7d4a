/// An answer from a handler. The engine adds `Date`, `Server`, `Content-Length`
/// and `Connection`; a handler sets everything else.
public struct Response: Sendable {
    public var status: Status
    public var headers: Headers
    public var body: [UInt8]
    /// When set, the body is this stream instead (no Content-Length; the connection closes after it).
    public var stream: ResponseStream?

    public init(status: Status = .ok, headers: Headers = Headers(), body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A response whose body is written as it is produced.
    public static func streaming(_ stream: ResponseStream, headers: Headers) -> Response {
        var response = Response(status: .ok, headers: headers)
        response.stream = stream
        return response
    }

    public static let jsonContentType = "application/json; charset=utf-8"

    /// A JSON answer from already-encoded bytes.
    public static func json(_ status: Status = .ok, _ body: [UInt8]) -> Response {
        Response(status: status, headers: ["Content-Type": jsonContentType], body: body)
    }

    /// A JSON answer from UTF-8 text.
    public static func json(_ status: Status = .ok, text: String) -> Response {
        json(status, Array(text.utf8))
    }

    /// The error body every refusal uses: `{"error": {"code": ..., "message": ...}}`.
    public static func error(_ status: Status, _ message: String, code: String? = nil) -> Response {
        let code = code ?? status.errorCode
        return json(status, text: #"{"error":{"code":"# + JSONText.quote(code) + #","message":"# + JSONText.quote(message) + "}}")
    }
}

/// Minimal JSON string quoting, for the engine's own error bodies.
public enum JSONText {
    public static func quote(_ s: String) -> String {
        var out = "\""
        out.reserveCapacity(s.utf8.count + 2)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
        return out
    }
}
