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

extension Logger.Level: @retroactive ExpressibleByArgument {}
