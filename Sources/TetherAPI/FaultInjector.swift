import Foundation
import Synchronization

/// Failures the API is told to produce for a while: how tests see an agent cope with a sick
/// member cluster. Only the simulated cluster creates one; the hub never does.
///
/// Controlled at `/debug/faults` (admin only): `PUT` a ``Fault`` to start, `DELETE` to stop,
/// `GET` to read. While a fault is active, resource requests are delayed by
/// `delayMilliseconds` and then, if `status` is set, answered with that status.
public final class FaultInjector: Sendable {
    public struct Fault: Codable, Sendable, Equatable {
        /// 500 or 503: the status every resource request gets.
        public var status: Int?
        /// Added before every resource request is answered.
        public var delayMilliseconds: Int?
        /// How long the fault lasts.
        public var seconds: Double

        public init(status: Int? = nil, delayMilliseconds: Int? = nil, seconds: Double) {
            self.status = status
            self.delayMilliseconds = delayMilliseconds
            self.seconds = seconds
        }
    }

    private let state = Mutex<(fault: Fault, until: ContinuousClock.Instant)?>(nil)

    public init() {}

    func start(_ fault: Fault) throws {
        guard fault.seconds > 0, fault.seconds <= 3600 else { throw APIError.invalid("seconds must be in (0, 3600]") }
        if let status = fault.status, ![500, 502, 503, 504].contains(status) {
            throw APIError.invalid("status must be 500, 502, 503 or 504")
        }
        if let delay = fault.delayMilliseconds, !(0...60_000).contains(delay) {
            throw APIError.invalid("delayMilliseconds must be between 0 and 60000")
        }
        state.withLock { $0 = (fault, .now + .milliseconds(Int64(fault.seconds * 1000))) }
    }

    func stop() { state.withLock { $0 = nil } }

    /// The fault in force now, if any.
    var active: Fault? {
        state.withLock { current in
            guard let entry = current, entry.until > .now else {
                current = nil
                return nil
            }
            return entry.fault
        }
    }

    /// Applies the active fault to one request: waits out its delay, then throws its status.
    func apply() async throws {
        guard let fault = active else { return }
        if let delay = fault.delayMilliseconds, delay > 0 {
            try await Task.sleep(for: .milliseconds(delay))  // the injected slowness itself
        }
        if let status = fault.status {
            throw APIError(
                code: status, reason: status == 503 ? "ServiceUnavailable" : "InternalError",
                message: "injected fault: the simulated API answers \(status) for now")
        }
    }
}
