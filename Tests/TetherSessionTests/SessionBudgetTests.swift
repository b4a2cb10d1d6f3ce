import NIOConcurrencyHelpers
import NIOCore
import Testing
import TetherJSON
import TetherModel
import TetherSecurity
import TetherWire

@testable import TetherHub

/// A clock the test moves by hand.
final class VirtualClock: Sendable {
    private let nanoseconds = NIOLockedValueBox<Int64>(1_000_000_000)
    var now: NIODeadline { .uptimeNanoseconds(UInt64(nanoseconds.withLockedValue { $0 })) }
    func advance(by amount: TimeAmount) { nanoseconds.withLockedValue { $0 += amount.nanoseconds } }
}

@Suite("Hub session budgets and report bounds")
struct SessionBudgetTests {
    static func established(_ clock: VirtualClock, heartbeatMilliseconds: Int = 1_000) -> HubSessionStateMachine {
        var machine = HubSessionStateMachine(
            heartbeatIntervalMilliseconds: heartbeatMilliseconds, hubVersion: "test", makeSessionID: { "s-1" }, now: { clock.now }
        )
        _ = machine.handshakeCompleted(identity: eu1, negotiatedProtocol: "tether/1")
        _ = machine.received(hello())
        return machine
    }

    static let heartbeat = WireMessage.heartbeat(Heartbeat(sentAtMilliseconds: 1))

    @Test("heartbeats at the agreed interval never run out of budget, for an hour of virtual time")
    func steadyHeartbeats() {
        let clock = VirtualClock()
        var machine = Self.established(clock)
        for _ in 0..<3_600 {
            clock.advance(by: .milliseconds(750))  // the agent's jitter makes some come early
            #expect(machine.received(Self.heartbeat) == .answerHeartbeat(Heartbeat(sentAtMilliseconds: 1)))
        }
    }

    @Test("a flood of heartbeats is closed with rate-limited after the burst, as a security event")
    func heartbeatFlood() {
        let clock = VirtualClock()
        var machine = Self.established(clock)
        var answered = 0
        var closing: HubSessionStateMachine.Action?
        for _ in 0..<1_000 {
            let action = machine.received(Self.heartbeat)
            if case .answerHeartbeat = action {
                answered += 1
            } else {
                closing = action
                break
            }
        }
        #expect(answered == 10)
        guard case .sendAndClose(.error(let notice), .rateLimited, _)? = closing else {
            Issue.record("expected a rate-limited close, got \(String(describing: closing))")
            return
        }
        #expect(notice.code == .rateLimited)
        #expect(HubSessionStateMachine.SessionEnd.rateLimited.isSecurityEvent)
        #expect(machine.received(Self.heartbeat) == HubSessionStateMachine.Action.none, "nothing more is taken")
    }

    @Test("one renewal at a time: a second while the first is signed is answered, not signed; a flood is closed")
    func renewals() {
        let clock = VirtualClock()
        var machine = Self.established(clock)
        let renew = WireMessage.renew(RenewRequest(csr: "csr"))
        #expect(machine.received(renew) == .renew(RenewRequest(csr: "csr"), cluster: "eu-1"))
        guard case .send(.certificate(let refusal)) = machine.received(renew) else {
            Issue.record("a second renewal in flight must be answered with an error")
            return
        }
        #expect(refusal.error?.contains("already") == true && refusal.certificate == nil)
        machine.renewalFinished()
        #expect(machine.received(renew) == .renew(RenewRequest(csr: "csr"), cluster: "eu-1"), "the third of the burst")
        machine.renewalFinished()
        guard case .sendAndClose(.error(let notice), .rateLimited, _) = machine.received(renew) else {
            Issue.record("a fourth renewal at once is over budget")
            return
        }
        #expect(notice.code == .rateLimited)
    }

    @Test("renewals spaced as a certificate's lifetime allows are all signed")
    func spacedRenewals() {
        let clock = VirtualClock()
        var machine = Self.established(clock)
        for _ in 0..<20 {
            clock.advance(by: .seconds(8))
            #expect(machine.received(.renew(RenewRequest(csr: "csr"))) == .renew(RenewRequest(csr: "csr"), cluster: "eu-1"))
            machine.renewalFinished()
        }
    }

    @Test("reports outside the bounds close the session with invalid-report")
    func invalidReports() {
        let reference = ObjectReference(apiVersion: "v1", kind: "ConfigMap", namespace: "default", name: "c")
        let cases: [WireMessage] = [
            .status(
                StatusReport(objects: [.init(object: reference, state: .applied, health: .healthy, message: String(repeating: "m", count: 5_000))])),
            .status(StatusReport(objects: Array(repeating: .init(object: reference, state: .applied, health: .healthy), count: 1_001))),
            .ack(Ack(revision: 1, failures: [.init(object: reference, message: String(repeating: "m", count: 2_000))])),
            .heartbeat(Heartbeat(sentAtMilliseconds: 1, cluster: .init(apiReachable: true, kubernetesVersion: String(repeating: "v", count: 100)))),
        ]
        for message in cases {
            var machine = Self.established(VirtualClock())
            guard case .sendAndClose(.error(let notice), .invalidReport, _) = machine.received(message) else {
                Issue.record("\(message.kind) out of bounds was not refused")
                continue
            }
            #expect(notice.code == .invalidReport)
        }
    }

    @Test("a hello out of bounds is rejected with invalid-hello before any session exists")
    func invalidHello() {
        var machine = hubMachine()
        _ = machine.handshakeCompleted(identity: eu1, negotiatedProtocol: "tether/1")
        let huge = WireMessage.hello(
            Hello(protocolVersions: [1], agentVersion: "test", cluster: "eu-1", kinds: Array(repeating: "apps/v1/Deployment", count: 100_000)))
        guard case .sendAndClose(.reject(let reject), .invalidReport, _) = machine.received(huge) else {
            Issue.record("an oversized hello was not rejected")
            return
        }
        #expect(reject.code == .invalidHello)
        #expect(machine.cluster == nil)
    }
}
