import Foundation
import Logging
import HTTPServer
import Synchronization

/// One line per log record on standard error, as text or as JSON (`log.format`).
public struct LineLogHandler: LogHandler {
    public enum Format: String, Sendable { case text, json }

    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    let label: String
    let format: Format

    public init(label: String, level: Logger.Level, format: Format) {
        self.label = label
        self.logLevel = level
        self.format = format
    }

    /// Installs this handler for every logger of the process.
    public static func bootstrap(level: String, format: String) {
        let level = Logger.Level(rawValue: level) ?? .info
        let format = Format(rawValue: format) ?? .text
        LoggingSystem.bootstrap { LineLogHandler(label: $0, level: level, format: format) }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    static let lock = Mutex(())

    public func log(event: LogEvent) {
        let level = event.level, message = event.message
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        if let error = event.error { all["error"] = "\(error)" }
        let time = Date().formatted(.iso8601)
        let text: String
        switch format {
        case .text:
            let fields = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            text = "\(time) \(level) \(label): \(message)\(fields.isEmpty ? "" : " " + fields)\n"
        case .json:
            var parts = [
                "\"time\":" + JSONText.quote(time), "\"level\":" + JSONText.quote(level.rawValue),
                "\"logger\":" + JSONText.quote(label), "\"message\":" + JSONText.quote(message.description),
            ]
            for (k, v) in all.sorted(by: { $0.key < $1.key }) {
                parts.append(JSONText.quote(k) + ":" + JSONText.quote(v.description))
            }
            text = "{" + parts.joined(separator: ",") + "}\n"
        }
        LineLogHandler.lock.withLock { _ in
            FileHandle.standardError.write(Data(text.utf8))
        }
    }
}
