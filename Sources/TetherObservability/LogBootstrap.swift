import Foundation
import Logging

/// How Tether processes write their logs to standard error.
public enum LogFormat: String, Sendable, CaseIterable {
    /// swift-log's human-readable lines.
    case text
    /// One JSON object per line: `time`, `level`, `label`, `message` and every metadata key.
    case json
}

/// Sets up swift-log for a Tether executable. Call once, first thing in `main`.
public enum LogBootstrap {
    public static func bootstrap(format: LogFormat, level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            switch format {
            case .text:
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            case .json:
                var handler = JSONLineLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
        }
    }
}

/// Writes each log record as one line of JSON to standard error, for machines to read.
public struct JSONLineLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    private let label: String

    public init(label: String) {
        self.label = label
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Builds the line by hand: time, level, label, message, then metadata keys in sorted order.
    /// (Foundation's JSONSerialization with sorted keys was a third of the hub's CPU when it
    /// logged thousands of acknowledgements a second.)
    public func log(event: LogEvent) {
        var line = "{\"time\":\"" + Self.timestamp() + "\",\"level\":\"" + event.level.rawValue + "\",\"label\":"
        Self.appendQuoted(label, to: &line)
        line += ",\"message\":"
        Self.appendQuoted(event.message.description, to: &line)
        let merged = self.metadata.merging(event.metadata ?? [:]) { _, new in new }
        for key in merged.keys.sorted() {
            line += ","
            Self.appendQuoted(key, to: &line)
            line += ":"
            Self.append(merged[key] ?? .string(""), to: &line)
        }
        line += "}\n"
        Self.write(Data(line.utf8))
    }

    private static func append(_ value: Logger.MetadataValue, to line: inout String) {
        switch value {
        case .string(let string): appendQuoted(string, to: &line)
        case .stringConvertible(let convertible): appendQuoted(convertible.description, to: &line)
        case .array(let values):
            line += "["
            for (index, element) in values.enumerated() {
                if index > 0 { line += "," }
                append(element, to: &line)
            }
            line += "]"
        case .dictionary(let values):
            line += "{"
            for (index, key) in values.keys.sorted().enumerated() {
                if index > 0 { line += "," }
                appendQuoted(key, to: &line)
                line += ":"
                append(values[key] ?? .string(""), to: &line)
            }
            line += "}"
        }
    }

    /// A JSON string literal: quotes, backslashes and control characters escaped.
    static func appendQuoted(_ text: String, to line: inout String) {
        line += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": line += "\\\""
            case "\\": line += "\\\\"
            case "\n": line += "\\n"
            case "\r": line += "\\r"
            case "\t": line += "\\t"
            case _ where scalar.value < 0x20:
                line += "\\u00" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16)
            default: line.unicodeScalars.append(scalar)
            }
        }
        line += "\""
    }

    /// `2026-11-25T09:15:02.123Z`, from the clock without a date formatter.
    private static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let millis = Int(now.tv_nsec / 1_000_000)
        let fraction = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
        return
            "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(fraction)Z"
    }

    private static let lock = NSLock()

    /// One `write` per record under a lock, so lines from concurrent loggers never interleave.
    private static func write(_ data: Data) {
        lock.lock()
        defer { lock.unlock() }
        FileHandle.standardError.write(data)
    }
}
