import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization
import TetherJSON
import TetherSecurity
import TetherStore
import TetherWire

/// `/clusters/NAME/proxy/` on a hub that holds no session of the cluster: on PostgreSQL the
/// agents are on the hub that drives the federation, so a standby (or any hub a load balancer
/// picked) sends the request on to that hub's API, acting for the same user, and streams the
/// answer back. The active hub names its API address in the store (``activeHubDocument``) once
/// its listeners are bound; it checks the forwarded user's role again itself.
///
/// The hub authenticates to the active hub with its own certificate; only a hub certificate may
/// carry a forwarded user (``forwardedUserHeader``), and only on the member proxy. A request
/// already forwarded is never forwarded again.
public final class ActiveHubForwarding: MemberTunnel {
    public static let activeHubDocument = "active-hub-api"
    public static let forwardedUserHeader = "Tether-Forwarded-User"
    public static let forwardedRoleHeader = "Tether-Forwarded-Role"

    private let local: SessionTunnels
    private let store: any ResourceStore
    private let tls: Mutex<TLSConfiguration?>
    /// This hub's own API address once it drives the federation: never a forwarding target.
    private let ownAddress = Mutex<String?>(nil)
    private let logger: Logger

    /// Agents on every hub: the hub holding a cluster's session is the one its status names.
    private let sessionsOnEveryHub: Bool

    public init(local: SessionTunnels, store: any ResourceStore, material: TLSMaterial, sessionsOnEveryHub: Bool = false, logger: Logger) {
        self.sessionsOnEveryHub = sessionsOnEveryHub
        self.local = local
        self.store = store
        self.tls = Mutex(try? TetherTLS.hubToHubConfiguration(material))
        self.logger = logger
    }

    /// The hub's certificate changed (a renewal, a CA rollover): forwarded requests use the new one.
    public func update(_ material: TLSMaterial) {
        if let configuration = try? TetherTLS.hubToHubConfiguration(material) { tls.withLock { $0 = configuration } }
    }

    /// Records this hub as the one agents reach: its API address goes into the store.
    public func announce(apiAddress: String) async {
        ownAddress.withLock { $0 = apiAddress }
        do {
            try await store.setDocument(Self.activeHubDocument, to: apiAddress)
        } catch {
            logger.warning(
                "cannot record this hub's API address; other hubs answer member-proxy requests with 503 until it is recorded",
                metadata: ["tether.event": "hub.announce_failed", "tether.error": "\(error)"])
        }
    }

    /// Agents on every hub: this hub's API address, never a forwarding target; the others find it
    /// in the status of each Cluster whose session this hub holds.
    public func own(apiAddress: String) {
        ownAddress.withLock { $0 = apiAddress }
    }

    /// The API of the hub holding the cluster's session: the one its Cluster's status names
    /// (agents on every hub), else the hub driving the federation.
    private func holder(of cluster: String) async -> String? {
        let type = ResourceType(group: "core.tether.io", resource: "clusters", namespaced: false)
        if sessionsOnEveryHub, let object = try? await store.get(type, namespace: nil, name: cluster),
            let api = object["status"]?["session"]?["api"]?.stringValue, !api.isEmpty
        {
            return api
        }
        return try? await store.document(Self.activeHubDocument)
    }

    public func send(_ request: TunnelRequest, to cluster: String) async throws(TunnelError) -> TunnelResponse {
        do {
            return try await local.send(request, to: cluster)
        } catch {
            guard error.code == .notConnected, !request.forwarded else { throw error }
            return try await forward(request, to: cluster, otherwise: error)
        }
    }

    private func forward(_ request: TunnelRequest, to cluster: String, otherwise notHere: TunnelError) async throws(TunnelError) -> TunnelResponse {
        guard let base = await holder(of: cluster), !base.isEmpty, base != ownAddress.withLock({ $0 }),
            let tls = tls.withLock({ $0 })
        else { throw notHere }
        var outgoing = HTTPClientRequest(url: base + "/clusters/\(cluster)/proxy" + request.path)
        outgoing.method = HTTPMethod(rawValue: request.method)
        for header in request.headers { outgoing.headers.add(name: header.name, value: header.value) }
        outgoing.headers.add(name: Self.forwardedUserHeader, value: request.user)
        if let role = request.role { outgoing.headers.add(name: Self.forwardedRoleHeader, value: role) }
        if let body = request.body { outgoing.body = .bytes(body) }
        outgoing.tlsConfiguration = tls
        let response: HTTPClientResponse
        do {
            // A watch through the proxy lasts as long as the member's own limit allows.
            // The process-wide client: it needs no shutdown, and each request carries its TLS.
            response = try await HTTPClient.shared.execute(outgoing, timeout: .hours(2))
        } catch {
            throw TunnelError(
                .notConnected,
                "cluster \(cluster) has no agent session at this hub, and the hub driving the federation (\(base)) cannot be reached: \(error)")
        }
        let chunks = BodyChunks(response.body)
        let headers = response.headers.map { StreamHeader(name: $0.name, value: $0.value) }
        // Pulled as the client takes them: the active hub's connection is the backpressure.
        let body = AsyncThrowingStream<ByteBuffer, any Error> { try await chunks.next() }
        return TunnelResponse(
            status: Int(response.status.code), headers: headers, body: body, onConsumed: { _ in }, onCancel: { _ in chunks.cancel() })
    }

    /// The active hub's answer body, read one chunk at a time by a single consumer.
    private final class BodyChunks: @unchecked Sendable {
        private var iterator: HTTPClientResponse.Body.AsyncIterator
        private let cancelled = Atomic<Bool>(false)

        init(_ body: HTTPClientResponse.Body) { iterator = body.makeAsyncIterator() }

        func next() async throws -> ByteBuffer? {
            guard !cancelled.load(ordering: .relaxed) else { return nil }
            return try await iterator.next()
        }

        func cancel() { cancelled.store(true, ordering: .relaxed) }
    }
}
