import AsyncHTTPClient
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import TetherJSON
import TetherWire

/// The agent's end of the member tunnel: answers the hub's `streamOpen` requests from the
/// member's API, within the tunnel policy, sending response bytes only as the hub grants them.
///
/// One task per open stream, none while idle. Each `streamData` write waits until the channel
/// took it, so the agent's own desired-state traffic (acks, status) waits behind at most one
/// chunk per stream.
public final class AgentTunnel: Sendable {
    private struct StreamKey: Hashable {
        var channel: ObjectIdentifier
        var stream: UInt32
    }

    private struct OpenStream {
        var task: Task<Void, Never>?
        /// Response bytes the hub has granted and the agent has not sent.
        var credit: Int
        var waiter: CheckedContinuation<Bool, Never>?
    }

    private let cluster: String
    private let client: KubernetesClient
    private let policy: TunnelPolicy
    private let limits: TunnelLimits
    private let requestTimeout: TimeAmount
    private let streams = NIOLockedValueBox<[StreamKey: OpenStream]>([:])
    private let index: ServedResourceIndex
    private let logger: Logger

    public init(
        cluster: String, client: KubernetesClient, policy: TunnelPolicy, limits: TunnelLimits = .default, requestTimeout: TimeAmount = .seconds(60),
        logger: Logger
    ) {
        self.cluster = cluster
        self.client = client
        self.policy = policy
        self.limits = limits
        self.requestTimeout = requestTimeout
        self.index = ServedResourceIndex(client: client)
        self.logger = logger
    }

    /// A tunnel message from the hub, on the session's event loop.
    func received(_ message: WireMessage, on channel: any Channel) {
        switch message {
        case .streamOpen(let open):
            let key = StreamKey(channel: ObjectIdentifier(channel), stream: open.stream)
            let admitted = streams.withLockedValue { streams -> String? in
                guard streams[key] == nil else { return "stream \(open.stream) is already open" }
                let onSession = streams.keys.lazy.filter { $0.channel == key.channel }.count
                guard onSession < limits.maximumStreamsPerSession else {
                    return "the agent already serves \(limits.maximumStreamsPerSession) tunnel requests on this session, its limit"
                }
                streams[key] = OpenStream(credit: max(0, open.window))
                return nil
            }
            if let refusal = admitted {
                channel.writeAndFlush(WireMessage.streamReset(StreamReset(stream: open.stream, reason: refusal)), promise: nil)
                return
            }
            let task = Task {
                await self.serve(open, key: key, channel: channel)
                _ = self.streams.withLockedValue { $0.removeValue(forKey: key) }
            }
            streams.withLockedValue { $0[key]?.task = task }
        case .streamWindow(let window):
            let key = StreamKey(channel: ObjectIdentifier(channel), stream: window.stream)
            let waiter = streams.withLockedValue { streams -> CheckedContinuation<Bool, Never>? in
                guard var open = streams[key], window.bytes > 0 else { return nil }
                open.credit += window.bytes
                defer {
                    open.waiter = nil
                    streams[key] = open
                }
                return open.waiter
            }
            waiter?.resume(returning: true)
        case .streamReset(let reset):
            let key = StreamKey(channel: ObjectIdentifier(channel), stream: reset.stream)
            let removed = streams.withLockedValue { $0.removeValue(forKey: key) }
            removed?.task?.cancel()
            removed?.waiter?.resume(returning: false)
        default:
            break
        }
    }

    /// The session on `channel` ended: every request it carried stops.
    func sessionEnded(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        let ended = streams.withLockedValue { streams -> [OpenStream] in
            let keys = streams.keys.filter { $0.channel == id }
            return keys.compactMap { streams.removeValue(forKey: $0) }
        }
        for open in ended {
            open.task?.cancel()
            open.waiter?.resume(returning: false)
        }
    }

    var openStreams: Int { streams.withLockedValue { $0.count } }

    private func serve(_ open: StreamOpen, key: StreamKey, channel: any Channel) async {
        let started = ContinuousClock.now
        var status = 0
        var bytes = 0
        var failure: String?
        defer {
            let elapsed = ContinuousClock.now - started
            var metadata: Logger.Metadata = [
                "tether.event": "tunnel.request", "tether.user": "\(open.user)", "tether.method": "\(open.method)", "tether.path": "\(open.path)",
                "tether.status": "\(status)", "tether.bytes": "\(bytes)",
                "tether.duration_ms": "\(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)",
            ]
            if let failure { metadata["tether.error"] = "\(failure)" }
            logger.info("served a tunnel request from the hub", metadata: metadata)
        }
        let refusal = await authorize(open)
        if let refusal {
            status = 403
            failure = refusal
            await answer(
                status: 403, reason: "Forbidden", message: "refused by cluster \(cluster)'s agent: \(refusal)", stream: open.stream, channel: channel)
            return
        }
        var headSent = false
        do {
            var body: ByteBuffer?
            if let encoded = open.body {
                guard let data = Data(base64Encoded: encoded) else {
                    status = 400
                    await answer(
                        status: 400, reason: "BadRequest", message: "the tunnel request body is not base64", stream: open.stream, channel: channel)
                    return
                }
                body = ByteBuffer(bytes: data)
            }
            let isWatch = Self.isWatch(open.path)
            let response = try await client.forward(
                method: open.method, pathAndQuery: open.path, headers: open.headers.map { ($0.name, $0.value) }, body: body,
                timeout: isWatch ? .hours(24) : requestTimeout)
            status = Int(response.status.code)
            var headers: [StreamHeader] = []
            for name in ["Content-Type", "Warning", "Retry-After"] {
                for value in response.headers[name] { headers.append(StreamHeader(name: name, value: value)) }
            }
            try await channel.writeAndFlush(WireMessage.streamHead(StreamHead(stream: open.stream, status: status, headers: headers)))
            headSent = true
            for try await chunk in response.body {
                var remaining = chunk
                while remaining.readableBytes > 0 {
                    let allowed = await takeCredit(key, upTo: min(remaining.readableBytes, limits.maximumChunkBytes))
                    guard allowed > 0, let piece = remaining.readSlice(length: allowed) else {
                        failure = "reset by the hub"
                        return
                    }
                    try await channel.writeAndFlush(WireMessage.streamData(StreamData(stream: open.stream, bytes: piece)))
                    bytes += allowed
                }
            }
            try await channel.writeAndFlush(WireMessage.streamData(StreamData(stream: open.stream, bytes: ByteBuffer(), end: true)))
        } catch {
            if Task.isCancelled {
                failure = "reset by the hub"
                return
            }
            failure = "\(error)"
            if headSent {
                channel.writeAndFlush(
                    WireMessage.streamReset(StreamReset(stream: open.stream, reason: "the member's answer broke off: \(error)")), promise: nil)
            } else {
                status = 502
                await answer(
                    status: 502, reason: "BadGateway", message: "cluster \(cluster)'s agent could not reach its member's API: \(error)",
                    stream: open.stream,
                    channel: channel)
            }
        }
    }

    private func authorize(_ open: StreamOpen) async -> String? {
        var resolved: [String: TunnelPolicy.Resource] = [:]
        if case .resource(let group, _, let plural, _, _, _) = TunnelPolicy.target(of: open.path),
            let resource = await index.resource(group: group, plural: plural)
        {
            resolved["\(group)/\(plural)"] = resource
        }
        return policy.refusal(method: open.method, pathAndQuery: open.path) { group, plural in resolved["\(group)/\(plural)"] }
    }

    /// Waits until the hub granted some bytes and takes up to `wanted` of them; 0 when the stream ended.
    private func takeCredit(_ key: StreamKey, upTo wanted: Int) async -> Int {
        while true {
            let taken = streams.withLockedValue { streams -> Int? in
                guard var open = streams[key] else { return 0 }
                guard open.credit > 0 else { return nil }
                let take = min(wanted, open.credit)
                open.credit -= take
                streams[key] = open
                return take
            }
            if let taken { return taken }
            let granted = await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                    let now = streams.withLockedValue { streams -> Bool? in
                        guard var open = streams[key], !Task.isCancelled else { return false }
                        if open.credit > 0 { return true }
                        open.waiter = continuation
                        streams[key] = open
                        return nil
                    }
                    if let now { continuation.resume(returning: now) }
                }
            } onCancel: {
                let waiter = streams.withLockedValue { streams -> CheckedContinuation<Bool, Never>? in
                    defer { streams[key]?.waiter = nil }
                    return streams[key]?.waiter
                }
                waiter?.resume(returning: false)
            }
            if !granted { return 0 }
        }
    }

    /// A whole answer from the agent itself: a Kubernetes `Status`.
    private func answer(status: Int, reason: String, message: String, stream: UInt32, channel: any Channel) async {
        let body: JSONValue = [
            "kind": "Status", "apiVersion": "v1", "metadata": [:], "status": "Failure", "message": .string(message), "reason": .string(reason),
            "code": .integer(Int64(status)),
        ]
        let bytes = (try? body.serialized()) ?? []
        try? await channel.writeAndFlush(
            WireMessage.streamHead(
                StreamHead(stream: stream, status: status, headers: [StreamHeader(name: "Content-Type", value: "application/json")])))
        try? await channel.writeAndFlush(WireMessage.streamData(StreamData(stream: stream, bytes: ByteBuffer(bytes: bytes), end: true)))
    }

    static func isWatch(_ pathAndQuery: String) -> Bool {
        guard let query = pathAndQuery.split(separator: "?", maxSplits: 1).dropFirst().first else { return false }
        return query.split(separator: "&").contains { $0 == "watch=true" || $0 == "watch=1" }
            || pathAndQuery.contains("/watch/")
    }
}

/// The member's resources by group and plural, from discovery, looked up again on a miss (a CRD
/// installed since) at most every ten seconds.
actor ServedResourceIndex {
    private let client: KubernetesClient
    private var resources: [String: TunnelPolicy.Resource] = [:]
    private var loadedAt: ContinuousClock.Instant?

    init(client: KubernetesClient) {
        self.client = client
    }

    func resource(group: String, plural: String) async -> TunnelPolicy.Resource? {
        let key = "\(group)/\(plural)"
        if let found = resources[key] { return found }
        if let loadedAt, ContinuousClock.now - loadedAt < .seconds(10) { return nil }
        loadedAt = ContinuousClock.now
        guard let served = try? await client.discover() else { return nil }
        var index: [String: TunnelPolicy.Resource] = [:]
        for resource in served.values {
            let group = resource.apiVersion.contains("/") ? String(resource.apiVersion.split(separator: "/")[0]) : ""
            index["\(group)/\(resource.plural)"] = TunnelPolicy.Resource(kind: resource.kind, namespaced: resource.namespaced)
        }
        resources = index
        return resources[key]
    }
}
