/// Why a request was refused before it reached a handler: one status code and
/// one sentence naming the part at fault. After any of these the connection closes.
public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public let status: Status
    public let message: String

    public init(_ status: Status, _ message: String) {
        self.status = status
        self.message = message
    }

    public var description: String { "\(status.code): \(message)" }

    static func bad(_ message: String) -> ParseError { ParseError(.badRequest, message) }
}
