import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import TetherSecurity
import TetherWire

/// `/clusters/NAME/proxy/...`: a member cluster's API, reached through its agent's session.
///
/// Authorized here first (the caller's role on that cluster: a grant in `access.json`, else
/// the federation role; viewers read only) and again by the agent (its allow-list, read-only
/// unless it allows writes). Each request is one audit line, `tunnel.request`.
struct MemberProxy: Sendable {
    let tunnel: any MemberTunnel
    let access: AccessControl
    let maximumBodyBytes: Int
    let logger: Logger

    /// Headers a member needs to answer as it would answer the client; never credentials.
    private static let forwardedRequestHeaders: [HTTPField.Name] = [.accept, .contentType]
    private static let returnedResponseHeaders: Set<String> = ["content-type", "warning", "retry-after"]

    func handle(_ request: Request, context: APIRequestContext) async throws -> Response {
        let started = ContinuousClock.now
        guard let caller = context.caller, let cluster = context.parameters.get("cluster") else {
            throw APIError.unauthorized("Unauthorized")
        }
        let prefix = "/clusters/\(cluster)/proxy"
        var path = String(request.uri.path.dropFirst(prefix.count))
        if path.isEmpty { path = "/" }
        if let query = request.uri.query, !query.isEmpty { path += "?\(query)" }
        let method = request.method.rawValue
        let audit = Audit(logger: logger, user: caller.user, cluster: cluster, method: method, path: path, started: started)

        let role = access.current.role(ofUser: caller.user, onCluster: cluster, federationRole: caller.role)
        let isRead = request.method == .get || request.method == .head
        guard let role, isRead || role == .admin else {
            let error = APIError.forbidden(
                role == nil
                    ? "user \"\(caller.user)\" may not reach cluster \(cluster)'s API; an admin grants it in access.json (\"clusters\": {\"\(cluster)\": {\"\(caller.user)\": \"viewer\"}})"
                    : "user \"\(caller.user)\" may only read cluster \(cluster)'s API (role viewer); \(method) needs role admin on it")
            audit.finish(status: 403, bytes: 0, refusal: "hub")
            throw error
        }
        if request.headers[.upgrade] != nil || request.headers[.connection]?.lowercased().contains("upgrade") == true {
            audit.finish(status: 400, bytes: 0, refusal: "hub")
            throw APIError.badRequest(
                "the tunnel to cluster \(cluster) carries requests and streamed answers, not upgraded connections (exec, attach, port-forward)")
        }

        var headers: [StreamHeader] = []
        for name in Self.forwardedRequestHeaders {
            for value in request.headers[values: name] { headers.append(StreamHeader(name: name.canonicalName, value: value)) }
        }
        var body: ByteBuffer?
        if !isRead {
            do {
                body = try await request.body.collect(upTo: maximumBodyBytes)
            } catch {
                audit.finish(status: 413, bytes: 0, refusal: "hub")
                throw APIError.tooLarge("the request body exceeds \(maximumBodyBytes) bytes")
            }
        }

        let response: TunnelResponse
        do {
            let sent = TunnelRequest(
                method: method, path: path, headers: headers, body: body, user: caller.user, role: caller.role?.rawValue,
                forwarded: caller.method == "forwarded")
            response = try await tunnel.send(sent, to: cluster)
        } catch {
            let apiError: APIError =
                switch error.code {
                case .notConnected: APIError(code: 503, reason: "ServiceUnavailable", message: error.message)
                case .tooManyStreams: APIError.tooManyRequests(error.message)
                case .timedOut: APIError.timeout(error.message)
                case .reset: APIError(code: 502, reason: "BadGateway", message: error.message)
                }
            audit.finish(status: apiError.code, bytes: 0, refusal: error.code == .notConnected ? "no session" : nil)
            throw apiError
        }

        var fields = HTTPFields()
        for header in response.headers where Self.returnedResponseHeaders.contains(header.name.lowercased()) {
            if let name = HTTPField.Name(header.name) { fields.append(HTTPField(name: name, value: header.value)) }
        }
        let status = HTTPResponse.Status(code: response.status)
        let finalAudit = audit
        // A watch (or a followed log) may stay silent for minutes: only the connection's end says
        // its client left, and then the member's side must stop too. Other answers keep the
        // connection for the next request.
        let endsWithClient = context.query.watch || path.contains("follow=true")
        let requestBody = request.body
        return Response(
            status: status, headers: fields,
            body: ResponseBody { writer in
                let audit = finalAudit
                let bytes = NIOLockedValueBox(0)
                do {
                    let relay = { (writer: inout any ResponseBodyWriter) async throws in
                        for try await chunk in response.body {
                            bytes.withLockedValue { $0 += chunk.readableBytes }
                            try await writer.write(chunk)
                            response.consumed(chunk.readableBytes)
                        }
                    }
                    if endsWithClient {
                        var borrowed = writer
                        try await requestBody.consumeWithInboundCloseHandler { _ in
                            try await relay(&borrowed)
                        } onInboundClosed: {
                            response.cancel(reason: "the client went away")
                        }
                        writer = borrowed
                    } else {
                        try await relay(&writer)
                    }
                    try await writer.finish(nil)
                    audit.finish(status: response.status, bytes: bytes.withLockedValue { $0 })
                } catch {
                    response.cancel(reason: "the hub could not pass the answer on: \(error)")
                    audit.finish(status: response.status, bytes: bytes.withLockedValue { $0 }, broken: "\(error)")
                    throw error
                }
            })
    }

    /// One log line per proxied request, when it ends.
    struct Audit {
        let logger: Logger
        let user: String
        let cluster: String
        let method: String
        let path: String
        let started: ContinuousClock.Instant

        func finish(status: Int, bytes: Int, refusal: String? = nil, broken: String? = nil) {
            let elapsed = ContinuousClock.now - started
            var metadata: Logger.Metadata = [
                "tether.event": "tunnel.request", "tether.user": "\(user)", "tether.cluster": "\(cluster)", "tether.method": "\(method)",
                "tether.path": "\(path)", "tether.status": "\(status)", "tether.bytes": "\(bytes)",
                "tether.duration_ms": "\(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)",
            ]
            if let refusal { metadata["tether.refused_by"] = "\(refusal)" }
            if let broken { metadata["tether.error"] = "\(broken)" }
            logger.info("proxied request to a member", metadata: metadata)
        }
    }
}
