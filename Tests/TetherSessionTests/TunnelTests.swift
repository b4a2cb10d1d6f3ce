import Logging
import NIOCore
import NIOEmbedded
import Testing
import TetherWire

@testable import TetherAgent
@testable import TetherHub

/// The hub's end of the member tunnel over a test channel: what it writes, what it accepts
/// from the agent, and what it refuses.
@Suite("Member tunnel, hub side")
struct HubTunnelTests {
    let logger = Logger(label: "test")

    private func request() -> TunnelRequest {
        TunnelRequest(method: "GET", path: "/api/v1/namespaces/default/configmaps", user: "admin")
    }

    private func nextWrite(_ channel: NIOAsyncTestingChannel) async throws -> WireMessage {
        try await channel.waitForOutboundWrite(as: WireMessage.self)
    }

    @Test("a stream opens within the session's cap, its data stays within the window, consumed bytes are granted back")
    func windowAndGrants() async throws {
        let channel = NIOAsyncTestingChannel()
        let tunnel = HubTunnel(
            cluster: "m1", channel: channel, limits: TunnelLimits(maximumStreamsPerSession: 1, streamWindowBytes: 1024), logger: logger)
        async let answered = tunnel.send(request())
        guard case .streamOpen(let open) = try await nextWrite(channel) else {
            Issue.record("the first write must open the stream")
            return
        }
        #expect(open.window == 1024 && open.user == "admin" && open.path == "/api/v1/namespaces/default/configmaps")

        // The session's one stream is taken: the next request is refused at once.
        await #expect(throws: TunnelError.self) { _ = try await tunnel.send(request()) }

        tunnel.received(
            .streamHead(StreamHead(stream: open.stream, status: 200, headers: [StreamHeader(name: "Content-Type", value: "application/json")])))
        let response = try await answered
        #expect(response.status == 200)
        tunnel.received(.streamData(StreamData(stream: open.stream, bytes: ByteBuffer(repeating: 1, count: 600))))
        tunnel.received(.streamData(StreamData(stream: open.stream, bytes: ByteBuffer(repeating: 2, count: 424))))
        var iterator = response.body.makeAsyncIterator()
        let first = try await iterator.next()
        #expect(first?.readableBytes == 600)
        response.consumed(600)
        guard case .streamWindow(let grant) = try await nextWrite(channel) else {
            Issue.record("consuming half the window must grant it back")
            return
        }
        #expect(grant.stream == open.stream && grant.bytes == 600)
        #expect(try await iterator.next()?.readableBytes == 424)

        tunnel.received(.streamData(StreamData(stream: open.stream, bytes: ByteBuffer(), end: true)))
        #expect(try await iterator.next() == nil)
        #expect(tunnel.openStreams == 0)
    }

    @Test("an agent that sends past the window has its stream reset, and the reader learns why")
    func overrunResets() async throws {
        let channel = NIOAsyncTestingChannel()
        let tunnel = HubTunnel(cluster: "m1", channel: channel, limits: TunnelLimits(streamWindowBytes: 1024), logger: logger)
        async let answered = tunnel.send(request())
        guard case .streamOpen(let open) = try await nextWrite(channel) else { return }
        tunnel.received(.streamHead(StreamHead(stream: open.stream, status: 200, headers: [])))
        let response = try await answered
        tunnel.received(.streamData(StreamData(stream: open.stream, bytes: ByteBuffer(repeating: 0, count: 1025))))
        guard case .streamReset(let reset) = try await nextWrite(channel) else {
            Issue.record("an overrun must reset the stream at the agent")
            return
        }
        #expect(reset.stream == open.stream && reset.reason.contains("1025 bytes with 1024 granted"))
        await #expect(throws: TunnelError.self) {
            for try await _ in response.body {}
        }
        // Frames still under way for the reset stream are dropped, not an error.
        tunnel.received(.streamData(StreamData(stream: open.stream, bytes: ByteBuffer(repeating: 0, count: 10))))
        #expect(tunnel.openStreams == 0)
    }

    @Test("an agent that never answers: the request times out and the stream is reset")
    func headTimeout() async throws {
        let channel = NIOAsyncTestingChannel()
        let tunnel = HubTunnel(cluster: "m1", channel: channel, limits: .default, headTimeout: .seconds(30), logger: logger)
        let sent = Task { try await tunnel.send(request()) }
        _ = try await nextWrite(channel)
        // The test loop's clock moves only when told to.
        await channel.testingEventLoop.advanceTime(by: .seconds(31))
        await #expect {
            _ = try await sent.value
        } throws: { error in
            (error as? TunnelError)?.code == .timedOut
        }
        guard case .streamReset = try await nextWrite(channel) else {
            Issue.record("a timed-out stream must be reset at the agent")
            return
        }
    }

    @Test("the session's end fails its streams and refuses new ones; a client that leaves resets its stream")
    func sessionEnd() async throws {
        let channel = NIOAsyncTestingChannel()
        let tunnel = HubTunnel(cluster: "m1", channel: channel, limits: .default, logger: logger)
        async let answered = tunnel.send(request())
        guard case .streamOpen(let open) = try await nextWrite(channel) else { return }
        tunnel.received(.streamHead(StreamHead(stream: open.stream, status: 200, headers: [])))
        let response = try await answered
        response.cancel(reason: "the client went away")
        guard case .streamReset(let reset) = try await nextWrite(channel) else {
            Issue.record("a cancelled stream must be reset at the agent")
            return
        }
        #expect(reset.reason == "the client went away")

        let second = Task { try await tunnel.send(request()) }
        _ = try await nextWrite(channel)
        tunnel.sessionEnded("the connection closed")
        await #expect {
            _ = try await second.value
        } throws: { error in
            (error as? TunnelError)?.code == .reset
        }
        await #expect {
            _ = try await tunnel.send(request())
        } throws: { error in
            (error as? TunnelError)?.code == .notConnected
        }
    }
}

@Suite("Member tunnel, agent policy")
struct TunnelPolicyTests {
    let resources: [String: TunnelPolicy.Resource] = [
        "/configmaps": .init(kind: "ConfigMap", namespaced: true), "/pods": .init(kind: "Pod", namespaced: true),
        "/namespaces": .init(kind: "Namespace", namespaced: false), "rbac.authorization.k8s.io/roles": .init(kind: "Role", namespaced: true),
    ]

    private func refusal(_ policy: TunnelPolicy, _ method: String, _ path: String) -> String? {
        policy.refusal(method: method, pathAndQuery: path) { resources["\($0)/\($1)"] }
    }

    @Test("paths name their group, namespace, resource, name and subresource")
    func targets() {
        #expect(
            TunnelPolicy.target(of: "/api/v1/namespaces/demo/pods/web-0/log?follow=true")
                == .resource(group: "", version: "v1", plural: "pods", namespace: "demo", name: "web-0", subresource: "log"))
        #expect(
            TunnelPolicy.target(of: "/apis/apps/v1/deployments")
                == .resource(group: "apps", version: "v1", plural: "deployments", namespace: nil, name: nil, subresource: nil))
        #expect(
            TunnelPolicy.target(of: "/api/v1/namespaces/demo")
                == .resource(group: "", version: "v1", plural: "namespaces", namespace: "demo", name: "demo", subresource: nil))
        #expect(TunnelPolicy.target(of: "/apis/apps/v1") == .serverInformation)
        #expect(TunnelPolicy.target(of: "/version?timeout=5s") == .serverInformation)
        #expect(TunnelPolicy.target(of: "/debug/pprof") == .outside)
    }

    @Test("reads reach allowed kinds and the read kinds; writes need --tunnel write and the allow-list; namespaces are fenced")
    func refusals() {
        let allow = AllowList(kinds: ["/ConfigMap", "/Namespace"], namespaces: nil, deniedNamespaces: ["kube-system"])
        let read = TunnelPolicy(mode: .read, allowList: allow)
        #expect(refusal(read, "GET", "/api/v1/namespaces/demo/configmaps") == nil)
        #expect(refusal(read, "GET", "/api/v1/namespaces/demo/pods/web-0/log") == nil)
        #expect(refusal(read, "GET", "/api/v1/namespaces") == nil)
        #expect(refusal(read, "GET", "/apis/rbac.authorization.k8s.io/v1/namespaces/demo/roles")?.contains("not in this agent's allow-list") == true)
        #expect(refusal(read, "GET", "/api/v1/namespaces/kube-system/configmaps")?.contains("denied") == true)
        #expect(refusal(read, "GET", "/api/v1/configmaps")?.contains("name one") == true)
        #expect(refusal(read, "POST", "/api/v1/namespaces/demo/configmaps")?.contains("--tunnel write") == true)
        #expect(refusal(read, "GET", "/apis/example.com/v1/widgets")?.contains("serves no resource widgets") == true)

        let write = TunnelPolicy(mode: .write, allowList: allow)
        #expect(refusal(write, "POST", "/api/v1/namespaces/demo/configmaps") == nil)
        #expect(
            refusal(write, "DELETE", "/api/v1/namespaces/demo/pods/web-0")?.contains("not in this agent's allow-list") == true,
            "pods are readable, not writable")
        #expect(refusal(write, "POST", "/api/v1/namespaces/kube-system/configmaps")?.contains("denied") == true)
        #expect(refusal(write, "PUT", "/version") != nil)

        let limited = TunnelPolicy(mode: .read, allowList: AllowList(kinds: ["/ConfigMap"], namespaces: ["demo"], deniedNamespaces: []))
        #expect(
            refusal(limited, "GET", "/api/v1/namespaces/other/configmaps")?.contains("not in this agent's allow-list (--allow-namespace)") == true)
        #expect(refusal(TunnelPolicy(mode: .off, allowList: allow), "GET", "/version")?.contains("--tunnel off") == true)
    }
}
