import NIOCore
import NIOEmbedded
import Testing
import TetherModel
import TetherSecurity
import TetherWire

@testable import TetherAgent
@testable import TetherHub

let eu1 = try! TetherIdentity.cluster("eu-1", trustDomain: "tether.test")
let hubIdentity = try! TetherIdentity.hub(trustDomain: "tether.test")

func hubMachine() -> HubSessionStateMachine {
    HubSessionStateMachine(heartbeatIntervalMilliseconds: 10_000, hubVersion: "test", makeSessionID: { "s-1" })
}

func hello(_ cluster: String = "eu-1", versions: [Int] = [1]) -> WireMessage {
    .hello(Hello(protocolVersions: versions, agentVersion: "test", cluster: cluster))
}

@Suite("Hub session state machine")
struct HubSessionStateMachineTests {
    @Test("handshake, hello and heartbeats establish and keep a session")
    func happyPath() {
        var machine = hubMachine()
        #expect(machine.handshakeCompleted(identity: eu1, negotiatedProtocol: "tether/1") == .awaitHello)
        let action = machine.received(hello())
        let welcome = Welcome(protocolVersion: 1, sessionID: "s-1", heartbeatIntervalMilliseconds: 10_000, hubVersion: "test")
        #expect(action == .establish(.init(cluster: "eu-1", sessionID: "s-1", protocolVersion: 1, agentVersion: "test"), welcome))
        #expect(machine.received(.heartbeat(Heartbeat(sentAtMilliseconds: 1))) == .answerHeartbeat(Heartbeat(sentAtMilliseconds: 1)))
        let status = WireMessage.status(StatusReport(objects: []))
        #expect(machine.received(status) == .deliver(status))
        #expect(machine.cluster == "eu-1")
    }

    @Test("the session keeps what hello says the engine needs: revision, digest, proxy")
    func helloReachesTheEngine() {
        var machine = hubMachine()
        _ = machine.handshakeCompleted(identity: eu1, negotiatedProtocol: "tether/1")
        let action = machine.received(
            .hello(
                Hello(
                    protocolVersions: [1], agentVersion: "test", cluster: "eu-1", lastAppliedRevision: 42, lastAppliedDigest: "beef",
                    proxy: "http://proxy:3128")))
        guard case .establish(let session, _) = action else {
            Issue.record("not established: \(action)")
            return
        }
        #expect(session.lastAppliedRevision == 42 && session.lastAppliedDigest == "beef" && session.proxy == "http://proxy:3128")
        var long = hubMachine()
        _ = long.handshakeCompleted(identity: eu1, negotiatedProtocol: "tether/1")
        let refused = long.received(
            .hello(Hello(protocolVersions: [1], agentVersion: "test", cluster: "eu-1", proxy: String(repeating: "p", count: 301))))
        guard case .sendAndClose = refused else {
            Issue.record("a 301-byte proxy is out of bounds: \(refused)")
            return
        }
    }

    @Test("a hello naming another cluster than the certificate is rejected with identity-mismatch")
    func identityMismatch() {
        var machine = hubMachine()
        _ = machine.handshakeCompleted(identity: eu1, negotiatedProtocol: "tether/1")
        guard case .sendAndClose(.reject(let reject), .rejected, _) = machine.received(hello("us-1")) else {
            Issue.record("expected a reject")
            return
        }
        #expect(reject.code == .identityMismatch)
        #expect(reject.reason.contains("us-1") && reject.reason.contains("eu-1"))
        #expect(machine.received(.heartbeat(Heartbeat(sentAtMilliseconds: 1))) == .none)
    }

    @Test("no common protocol version is rejected with unsupported-version")
    func unsupportedVersion() {
        var machine = hubMachine()
        _ = machine.handshakeCompleted(identity: eu1, negotiatedProtocol: "tether/1")
        guard case .sendAndClose(.reject(let reject), _, _) = machine.received(hello(versions: [7, 9])) else {
            Issue.record("expected a reject")
            return
        }
        #expect(reject.code == .unsupportedVersion)
    }

    @Test("the highest common version is chosen")
    func versionNegotiation() {
        var machine = hubMachine()
        _ = machine.handshakeCompleted(identity: eu1, negotiatedProtocol: "tether/1")
        guard case .establish(let session, _) = machine.received(hello(versions: [3, 1, 2])) else {
            Issue.record("expected a session")
            return
        }
        #expect(session.protocolVersion == 1)
    }

    @Test("a user or hub identity is not an agent")
    func notAnAgent() throws {
        for identity in [try TetherIdentity.user("admin", trustDomain: "tether.test"), hubIdentity] {
            var machine = hubMachine()
            guard case .sendAndClose(.reject(let reject), _, _) = machine.handshakeCompleted(identity: identity, negotiatedProtocol: "tether/1")
            else {
                Issue.record("expected a reject for \(identity)")
                continue
            }
            #expect(reject.code == .notAnAgent)
        }
    }

    @Test("a peer that did not negotiate ALPN tether/1 is closed")
    func alpn() {
        var machine = hubMachine()
        guard case .close(.refused, _) = machine.handshakeCompleted(identity: eu1, negotiatedProtocol: nil) else {
            Issue.record("expected a close")
            return
        }
    }

    @Test("anything but hello first is a protocol violation answered with an error notice")
    func helloFirst() {
        var machine = hubMachine()
        _ = machine.handshakeCompleted(identity: eu1, negotiatedProtocol: "tether/1")
        guard case .sendAndClose(.error(let notice), .protocolViolation, _) = machine.received(.heartbeat(Heartbeat(sentAtMilliseconds: 1)))
        else {
            Issue.record("expected a violation")
            return
        }
        #expect(notice.code == .unexpectedMessage)
    }

    @Test("messages only the hub sends are violations on an established session")
    func hubOnlyMessages() {
        for message in [WireMessage.welcome(.init(protocolVersion: 1, sessionID: "x", heartbeatIntervalMilliseconds: 1, hubVersion: "x")), hello()] {
            var machine = hubMachine()
            _ = machine.handshakeCompleted(identity: eu1, negotiatedProtocol: "tether/1")
            _ = machine.received(hello())
            guard case .sendAndClose(.error, .protocolViolation, _) = machine.received(message) else {
                Issue.record("\(message.kind) accepted")
                continue
            }
        }
    }

    @Test("replacement and draining send goaway; silence closes")
    func endings() {
        var replaced = hubMachine()
        _ = replaced.handshakeCompleted(identity: eu1, negotiatedProtocol: "tether/1")
        _ = replaced.received(hello())
        guard case .sendAndClose(.goaway(let goaway), .replaced, _) = replaced.replaced(by: "s-2") else {
            Issue.record("expected goaway")
            return
        }
        #expect(goaway.code == .replaced)
        #expect(replaced.replaced(by: "s-3") == .none)

        var draining = hubMachine()
        _ = draining.handshakeCompleted(identity: eu1, negotiatedProtocol: "tether/1")
        _ = draining.received(hello())
        guard case .sendAndClose(.goaway(let drain), .drained, _) = draining.drain(reconnectAfterMilliseconds: 1000) else {
            Issue.record("expected goaway")
            return
        }
        #expect(drain.code == .draining && drain.reconnectAfterMilliseconds == 1000)

        var silent = hubMachine()
        _ = silent.handshakeCompleted(identity: eu1, negotiatedProtocol: "tether/1")
        #expect(silent.readTimedOut() == .close(event: .helloTimeout, reason: "no hello within the hello timeout"))
    }
}

@Suite("Agent session state machine")
struct AgentSessionStateMachineTests {
    func machine() -> AgentSessionStateMachine {
        AgentSessionStateMachine(hello: Hello(protocolVersions: [1], agentVersion: "t", cluster: "eu-1"), hubIdentity: hubIdentity)
    }

    @Test("hello goes out only to a peer whose certificate is the hub's")
    func hubIdentityChecked() {
        var good = machine()
        guard case .sendHello = good.handshakeCompleted(peerIdentity: hubIdentity) else {
            Issue.record("no hello")
            return
        }
        var impostor = machine()
        guard case .close(.notTheHub) = impostor.handshakeCompleted(peerIdentity: eu1) else {
            Issue.record("an agent certificate was accepted as the hub")
            return
        }
    }

    @Test("welcome establishes; heartbeats are due only then; goaway ends with the hub's hint")
    func lifecycle() {
        var machine = machine()
        #expect(machine.heartbeatDue() == .none)
        _ = machine.handshakeCompleted(peerIdentity: hubIdentity)
        let welcome = Welcome(protocolVersion: 1, sessionID: "s", heartbeatIntervalMilliseconds: 500, hubVersion: "t")
        #expect(machine.received(.welcome(welcome)) == .established(sessionID: "s", heartbeatIntervalMilliseconds: 500))
        #expect(machine.heartbeatDue() == .sendHeartbeat)
        let goaway = GoAway(code: .replaced, reason: "newer", reconnectAfterMilliseconds: 30_000)
        #expect(machine.received(.goaway(goaway)) == .close(.goaway(goaway)))
        #expect(machine.end?.retryHintMilliseconds == 30_000)
        #expect(machine.wasEstablished)
    }

    @Test("a reject ends the session with its reason; silence is an unresponsive hub")
    func rejectAndSilence() {
        var rejected = machine()
        _ = rejected.handshakeCompleted(peerIdentity: hubIdentity)
        let reject = Reject(code: .identityMismatch, reason: "nope")
        #expect(rejected.received(.reject(reject)) == .close(.rejected(reject)))
        #expect(!rejected.wasEstablished)

        var silent = machine()
        _ = silent.handshakeCompleted(peerIdentity: hubIdentity)
        #expect(silent.readTimedOut() == .close(.hubUnresponsive))
    }

    @Test("snapshot and delta are delivered only on an established session; a resync request ends it")
    func desiredStateDelivery() {
        var machine = machine()
        let snapshot = WireMessage.snapshot(Snapshot(revision: 3, objects: []))
        _ = machine.handshakeCompleted(peerIdentity: hubIdentity)
        guard case .sendAndClose(.error, .protocolViolation) = machine.received(snapshot) else {
            Issue.record("a snapshot before welcome was accepted")
            return
        }
        var established = self.machine()
        _ = established.handshakeCompleted(peerIdentity: hubIdentity)
        _ = established.received(.welcome(Welcome(protocolVersion: 1, sessionID: "s", heartbeatIntervalMilliseconds: 500, hubVersion: "t")))
        #expect(established.received(snapshot) == .deliver(snapshot))
        let delta = WireMessage.delta(Delta(fromRevision: 3, toRevision: 4, upserts: [], deletes: []))
        #expect(established.received(delta) == .deliver(delta))
        #expect(established.resync("gap") == .close(.resyncRequested("gap")))
        #expect(established.resync("again") == .none)
    }

    @Test("a closed connection records why: the handshake error if there was one")
    func connectionClosed() {
        var machine = machine()
        machine.connectionClosed(handshakeError: "certificate unknown")
        #expect(machine.end == .handshakeFailed("certificate unknown"))
    }
}

@Suite("Reconnect backoff")
struct BackoffTests {
    @Test("ceilings double from the initial delay up to the cap")
    func ceilings() {
        let backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(2))
        let ceilings = (0..<8).map { backoff.ceiling(attempt: $0) }
        #expect(
            ceilings == [
                .milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .milliseconds(1600),
                .seconds(2), .seconds(2), .seconds(2),
            ]
        )
        #expect(backoff.ceiling(attempt: Int.max) == .seconds(2))
    }

    @Test("every delay lies in 0...ceiling, and full jitter spreads them over the whole window")
    func jitter() {
        let backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(5))
        for attempt in 0..<12 {
            let delays = (0..<400).map { _ in backoff.delay(attempt: attempt) }
            let ceiling = backoff.ceiling(attempt: attempt)
            #expect(delays.allSatisfy { $0 >= .zero && $0 <= ceiling })
            #expect(delays.contains { $0 < ceiling / 4 } && delays.contains { $0 > ceiling * 3 / 4 })
        }
    }

    @Test("a zero or inverted range is clamped, never a busy loop")
    func clamped() {
        let backoff = Backoff(initial: .zero, maximum: .zero)
        #expect(backoff.initial == .milliseconds(1) && backoff.maximum == .milliseconds(1))
    }
}

@Suite("Read deadline")
struct ReadDeadlineTests {
    @Test("fires once after the timeout without reads, and reads push it back")
    func fires() {
        let loop = EmbeddedEventLoop()
        let deadline = ReadDeadline(loop: loop)
        var fired = 0
        deadline.arm(.seconds(3)) { fired += 1 }
        loop.advanceTime(by: .seconds(2))
        deadline.noteRead()
        loop.advanceTime(by: .seconds(2))
        #expect(fired == 0, "a read 2 s in moves the deadline to 5 s")
        loop.advanceTime(by: .seconds(1))
        #expect(fired == 1)
        loop.advanceTime(by: .seconds(10))
        #expect(fired == 1)
        deadline.arm(.seconds(1)) { fired += 1 }
        deadline.cancel()
        loop.advanceTime(by: .seconds(5))
        #expect(fired == 1)
    }
}
