import ArgumentParser
import Logging

/// `--log-format` and `--log-level`, shared by every Tether executable.
public struct LoggingOptions: ParsableArguments, Sendable {
    @Option(name: .long, help: "Log format: text (for people) or json (one object per line, for machines).")
    public var logFormat: LogFormat = .text

    @Option(name: .long, help: "Least severe level logged: trace, debug, info, notice, warning, error, critical.")
    public var logLevel: Logger.Level = .info

    public init() {}

    /// Sets up swift-log with these options; call once, first thing in `run`.
    public func bootstrap() {
        LogBootstrap.bootstrap(format: logFormat, level: logLevel)
    }
}

extension LogFormat: ExpressibleByArgument {}

// swift-format-ignore: AvoidRetroactiveConformances
// Log levels are parsed from the command line; neither swift-log nor ArgumentParser can declare it.
extension Logger.Level: @retroactive ExpressibleByArgument {}

/// A duration written as on Go and Kubernetes command lines: `8760h`, `30m`, `90s`, `1h30m`, or days `365d`.
public struct DurationArgument: Sendable {
    public let duration: Duration

    public init?(_ text: String) {
        var total = 0.0
        var number = ""
        var sawUnit = false
        for character in text {
            if character.isNumber || character == "." {
                number.append(character)
                continue
            }
            guard let value = Double(number) else { return nil }
            switch character {
            case "d": total += value * 86_400
            case "h": total += value * 3_600
            case "m": total += value * 60
            case "s": total += value
            default: return nil
            }
            number = ""
            sawUnit = true
        }
        guard sawUnit, number.isEmpty, total > 0 else { return nil }
        self.duration = .milliseconds(Int64(total * 1000))
    }
}

/// Parses a `DurationArgument` for an `@Option(transform:)`, with an error that shows the form.
public func parseDurationArgument(_ text: String) throws -> Duration {
    guard let parsed = DurationArgument(text) else {
        throw ValidationError("'\(text)' is not a duration; write it like 8760h, 30d, 90m or 1h30m")
    }
    return parsed.duration
}
