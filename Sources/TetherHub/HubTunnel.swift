import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import TetherWire

/// The hub's end of the member tunnel on one agent session: opens streams, hands their answers
/// to the API's callers, and grants the agent more response bytes as callers pass them on.
///
/// Nothing here waits on the session's event loop: answers arrive on it and are handed to each
/// stream's buffer, which holds at most the window the hub granted (the agent may not send more,
/// and a stream whose agent does is reset).
final class HubTunnel: Sendable {
    private struct Stream {
        var head: EventLoopPromise<StreamHead>
        var body: AsyncThrowingStream<ByteBuffer, any Error>.Continuation
        /// Response bytes the agent may still send.
        var granted: Int
        /// Bytes passed on to the client and not yet granted back.
        var returned = 0
        var headTimeout: Scheduled<Void>?
    }

    private struct State {
        var nextStream: UInt32 = 1
        var streams: [UInt32: Stream] = [:]
        /// Set when the session ended: no stream opens after it.
        var ended: String?
    }

    let cluster: String
    private let channel: any Channel
    private let limits: TunnelLimits
    private let headTimeout: TimeAmount
    private let state = NIOLockedValueBox(State())
    private let logger: Logger

    init(cluster: String, channel: any Channel, limits: TunnelLimits, headTimeout: TimeAmount = .seconds(30), logger: Logger) {
        self.cluster = cluster
        self.channel = channel
        self.limits = limits
        self.headTimeout = headTimeout
        self.logger = logger
    }

    var openStreams: Int { state.withLockedValue { $0.streams.count } }

    /// Sends `request` and waits for the member's answer to begin.
    func send(_ request: TunnelRequest) async throws(TunnelError) -> TunnelResponse {
        let (body, continuation) = AsyncThrowingStream<ByteBuffer, any Error>.makeStream()
        let loop = channel.eventLoop
        let opened: Result<(UInt32, EventLoopPromise<StreamHead>), TunnelError> = state.withLockedValue { state in
            if let ended = state.ended { return .failure(TunnelError(.notConnected, "cluster \(cluster)'s agent session ended: \(ended)")) }
            guard state.streams.count < limits.maximumStreamsPerSession else {
                return .failure(
                    TunnelError(
                        .tooManyStreams,
                        "cluster \(cluster)'s session already carries \(limits.maximumStreamsPerSession) requests, its limit; try again when one ends"
                    ))
            }
            let id = state.nextStream
            state.nextStream &+= 1
            let head = loop.makePromise(of: StreamHead.self)
            state.streams[id] = Stream(head: head, body: continuation, granted: limits.streamWindowBytes)
            return .success((id, head))
        }
        let (stream, head) = try opened.get()
        continuation.onTermination = { [weak self] termination in
            if case .cancelled = termination { self?.cancel(stream, reason: "the client went away") }
        }
        let timeout = headTimeout
        let timer = channel.eventLoop.scheduleTask(in: timeout) { [weak self] () -> Void in
            guard let self else { return }
            self.fail(
                stream, TunnelError(.timedOut, "cluster \(self.cluster)'s agent did not answer within \(timeout.nanoseconds / 1_000_000_000) s"),
                tellAgent: "the hub stopped waiting for the answer")
        }
        state.withLockedValue { $0.streams[stream]?.headTimeout = timer }
        let open = StreamOpen(
            stream: stream, method: request.method, path: request.path, headers: request.headers,
            body: request.body.map { Self.base64($0) }, window: limits.streamWindowBytes, user: request.user)
        do {
            try await channel.writeAndFlush(WireMessage.streamOpen(open))
        } catch {
            fail(stream, TunnelError(.notConnected, "cluster \(cluster)'s agent session could not take the request: \(error)"), tellAgent: nil)
        }
        let answer: StreamHead
        do {
            answer = try await head.futureResult.get()
        } catch let error as TunnelError {
            throw error
        } catch {
            throw TunnelError(.reset, "\(error)")
        }
        return TunnelResponse(
            status: answer.status, headers: answer.headers, body: body,
            onConsumed: { [weak self] bytes in self?.consumed(stream, bytes: bytes) },
            onCancel: { [weak self] reason in self?.cancel(stream, reason: reason) }
        )
    }

    /// A `streamHead`, `streamData` or `streamReset` from the agent, on the session's event loop.
    func received(_ message: WireMessage) {
        switch message {
        case .streamHead(let answer):
            let found = state.withLockedValue { state -> Stream? in
                state.streams[answer.stream]?.headTimeout?.cancel()
                state.streams[answer.stream]?.headTimeout = nil
                return state.streams[answer.stream]
            }
            found?.head.succeed(answer)
        case .streamData(let data):
            enum Outcome {
                case unknown
                case deliver(Stream)
                case overrun(Int)
            }
            let outcome = state.withLockedValue { state -> Outcome in
                guard var stream = state.streams[data.stream] else { return .unknown }
                stream.granted -= data.bytes.readableBytes
                guard stream.granted >= 0 else { return .overrun(stream.granted + data.bytes.readableBytes) }
                if data.end {
                    state.streams[data.stream] = nil
                } else {
                    state.streams[data.stream] = stream
                }
                return .deliver(stream)
            }
            switch outcome {
            case .unknown:
                // A stream the hub reset a moment ago: its last frames may still be under way.
                break
            case .deliver(let stream):
                if data.bytes.readableBytes > 0 { stream.body.yield(data.bytes) }
                if data.end { stream.body.finish() }
            case .overrun(let left):
                fail(
                    data.stream, TunnelError(.reset, "cluster \(cluster)'s agent sent more than the hub granted"),
                    tellAgent: "sent \(data.bytes.readableBytes) bytes with \(left) granted")
            }
        case .streamReset(let reset):
            fail(reset.stream, TunnelError(.reset, "cluster \(cluster)'s agent ended the request: \(reset.reason)"), tellAgent: nil)
        default:
            break
        }
    }

    /// The session ended: every stream on it fails, and none opens any more.
    func sessionEnded(_ reason: String) {
        let streams = state.withLockedValue { state in
            state.ended = reason
            defer { state.streams = [:] }
            return Array(state.streams.values)
        }
        for stream in streams {
            stream.headTimeout?.cancel()
            let error = TunnelError(.reset, "cluster \(cluster)'s agent session ended: \(reason)")
            stream.head.fail(error)
            stream.body.finish(throwing: error)
        }
    }

    private func consumed(_ stream: UInt32, bytes: Int) {
        let grant = state.withLockedValue { state -> Int? in
            guard var open = state.streams[stream] else { return nil }
            open.returned += bytes
            // Grant in halves of the window: one frame per half a window, not one per chunk.
            guard open.returned >= limits.streamWindowBytes / 2 else {
                state.streams[stream] = open
                return nil
            }
            let grant = open.returned
            open.granted += grant
            open.returned = 0
            state.streams[stream] = open
            return grant
        }
        if let grant { channel.writeAndFlush(WireMessage.streamWindow(StreamWindow(stream: stream, bytes: grant)), promise: nil) }
    }

    private func cancel(_ stream: UInt32, reason: String) {
        fail(stream, TunnelError(.reset, reason), tellAgent: reason)
    }

    /// Ends `stream` with `error`; with `tellAgent`, resets it at the agent too.
    private func fail(_ stream: UInt32, _ error: TunnelError, tellAgent reason: String?) {
        guard let removed = state.withLockedValue({ $0.streams.removeValue(forKey: stream) }) else { return }
        removed.headTimeout?.cancel()
        removed.head.fail(error)
        removed.body.finish(throwing: error)
        if let reason {
            channel.writeAndFlush(WireMessage.streamReset(StreamReset(stream: stream, reason: reason)), promise: nil)
        }
    }

    private static func base64(_ buffer: ByteBuffer) -> String {
        Data(buffer.readableBytesView).base64EncodedString()
    }
}

/// The tunnels of every live session, as the API reaches them.
public struct SessionTunnels: MemberTunnel {
    let registry: SessionRegistry

    public init(registry: SessionRegistry) {
        self.registry = registry
    }

    public func send(_ request: TunnelRequest, to cluster: String) async throws(TunnelError) -> TunnelResponse {
        guard let tunnel = registry.tunnel(of: cluster) else {
            throw TunnelError(
                .notConnected,
                "cluster \(cluster) has no agent session at this hub; `kubectl get cluster \(cluster)` shows when it last reported")
        }
        return try await tunnel.send(request)
    }
}
