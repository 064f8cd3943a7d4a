/// An HTTP status code and its reason phrase.
public struct Status: Sendable, Hashable, CustomStringConvertible {
    public let code: Int
    public let reason: String

    public init(code: Int, reason: String) {
        self.code = code
        self.reason = reason
    }

    /// A status with the standard reason phrase for `code` ("Unknown" when it has none).
    public init(code: Int) {
        self.init(code: code, reason: Status.standardReasons[code] ?? "Unknown")
    }

    public var description: String { "\(code) \(reason)" }

    /// The `snake_case` error code used in JSON error bodies.
    public var errorCode: String {
        reason.lowercased().replacingSpacesAndDashes()
    }

    public static let `continue` = Status(code: 100)
    public static let ok = Status(code: 200)
    public static let created = Status(code: 201)
    public static let accepted = Status(code: 202)
    public static let noContent = Status(code: 204)
    public static let notModified = Status(code: 304)
    public static let badRequest = Status(code: 400)
    public static let unauthorized = Status(code: 401)
    public static let forbidden = Status(code: 403)
    public static let notFound = Status(code: 404)
    public static let methodNotAllowed = Status(code: 405)
    public static let requestTimeout = Status(code: 408)
    public static let conflict = Status(code: 409)
    public static let lengthRequired = Status(code: 411)
    public static let payloadTooLarge = Status(code: 413)
    public static let uriTooLong = Status(code: 414)
    public static let unsupportedMediaType = Status(code: 415)
    public static let expectationFailed = Status(code: 417)
    public static let unprocessableContent = Status(code: 422)
    public static let tooManyRequests = Status(code: 429)
    public static let headerFieldsTooLarge = Status(code: 431)
    public static let internalServerError = Status(code: 500)
    public static let notImplemented = Status(code: 501)
    public static let badGateway = Status(code: 502)
    public static let serviceUnavailable = Status(code: 503)
    public static let gatewayTimeout = Status(code: 504)
    public static let httpVersionNotSupported = Status(code: 505)

    static let standardReasons: [Int: String] = [
        100: "Continue", 200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
        301: "Moved Permanently", 302: "Found", 304: "Not Modified",
        400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
        405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict", 410: "Gone",
        411: "Length Required", 413: "Payload Too Large", 414: "URI Too Long",
        415: "Unsupported Media Type", 417: "Expectation Failed", 422: "Unprocessable Content",
        429: "Too Many Requests", 431: "Request Header Fields Too Large",
        500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
        503: "Service Unavailable", 504: "Gateway Timeout", 505: "HTTP Version Not Supported",
    ]
}

extension String {
    fileprivate func replacingSpacesAndDashes() -> String {
        String(map { $0 == " " || $0 == "-" ? "_" : $0 })
    }
}
