import NIOCore

/// A request for a member cluster's API, as the hub's API hands it to the tunnel.
public struct TunnelRequest: Sendable {
    public var method: String
    /// The member API path with its query.
    public var path: String
    public var headers: [StreamHeader]
    public var body: ByteBuffer?
    /// The authenticated caller, named in both sides' audit logs.
    public var user: String
    /// The caller's federation role (`admin`, `viewer`), for a hub that sends the request on.
    public var role: String?
    /// Sent on by another hub already: never sent on again.
    public var forwarded: Bool

    public init(
        method: String, path: String, headers: [StreamHeader] = [], body: ByteBuffer? = nil, user: String, role: String? = nil,
        forwarded: Bool = false
    ) {
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.user = user
        self.role = role
        self.forwarded = forwarded
    }
}

/// The member's answer, as it arrives through the agent. Read `body` to its end (or cancel), and
/// report each chunk passed on with ``consumed(_:)``: that is what lets the agent send more.
public struct TunnelResponse: Sendable {
    public var status: Int
    public var headers: [StreamHeader]
    public var body: AsyncThrowingStream<ByteBuffer, any Error>
    private let onConsumed: @Sendable (Int) -> Void
    private let onCancel: @Sendable (String) -> Void

    public init(
        status: Int, headers: [StreamHeader], body: AsyncThrowingStream<ByteBuffer, any Error>,
        onConsumed: @escaping @Sendable (Int) -> Void, onCancel: @escaping @Sendable (String) -> Void
    ) {
        self.status = status
        self.headers = headers
        self.body = body
        self.onConsumed = onConsumed
        self.onCancel = onCancel
    }

    /// `bytes` of the body were passed on to the client.
    public func consumed(_ bytes: Int) { onConsumed(bytes) }

    /// The client went away: the agent stops the member request.
    public func cancel(reason: String) { onCancel(reason) }
}

/// Why a request could not be sent through, or lost its answer.
public struct TunnelError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// No agent of that cluster holds a session.
        case notConnected
        /// The session has as many streams open as it may.
        case tooManyStreams
        /// The agent did not answer in time.
        case timedOut
        /// The stream was reset, or its session ended.
        case reset
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// What the hub's API uses to reach members: implemented over the agents' sessions.
public protocol MemberTunnel: Sendable {
    func send(_ request: TunnelRequest, to cluster: String) async throws(TunnelError) -> TunnelResponse
}
