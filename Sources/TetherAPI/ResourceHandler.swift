import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOSSL
import TetherJSON
import TetherModel
import TetherPlugin
import TetherSecurity
import Synchronization
import TetherStore

/// Serves every request: authentication, routing by path, and the Kubernetes verbs over the store.
struct ResourceHandler: Sendable {
    let store: any ResourceStore
    let registry: KindRegistry
    let access: AccessControl
    let limiter: InFlightLimiter
    let trustDomain: String
    let configuration: APIServerConfiguration
    let faults: FaultInjector?
    /// The Prometheus text exposition of the process's metrics; nil serves no `/metrics`.
    let metrics: (@Sendable () -> [UInt8])?
    let logger: Logger
    let openAPI: OpenAPIDocuments

    static let namespaces = ResourceType(group: "", resource: "namespaces", namespaced: false)

    func ensureDefaultNamespace() async throws {
        do {
            _ = try await store.get(Self.namespaces, namespace: nil, name: "default")
        } catch {
            guard error.code == .notFound else { throw error }
            let namespace: JSONValue = ["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": "default"], "status": ["phase": "Active"]]
            _ = try await store.create(namespace, as: Self.namespaces, dryRun: false)
        }
    }

    /// Answers one request within the API's limits: health checks always; watches within each
    /// user's watch budget (checked where the watch starts); everything else within the
    /// in-flight caps (429 beyond) and the request timeout (504 after it).
    func respond(to request: Request, context: APIRequestContext) async -> Response {
        let path = request.uri.path
        let isHealth = ["/healthz", "/readyz", "/livez"].contains(path) || path.hasPrefix("/healthz/") || path == "/version"
        let isWatch = request.method == .get && ["true", "1"].contains(QueryString.parse(request.uri.query)["watch"] ?? "")
        if isHealth || isWatch { return await answer(request, context: context) }
        let kind: InFlightLimiter.Kind = [.get, .head].contains(request.method) ? .read : .write
        guard limiter.enter(kind) else {
            return Self.status(
                .tooManyRequests("too many requests are being served; try again later (the server answers at most "
                    + "\(kind == .read ? limiter.limits.maximumReadsInFlight : limiter.limits.maximumWritesInFlight) \(kind == .read ? "reads" : "writes") at once)")
            )
        }
        defer { limiter.leave(kind) }
        let timeout = limiter.limits.requestTimeout
        let outcome = await Self.race(timeout) { await self.answer(request, context: context) }
        return outcome ?? Self.status(
            .timeout("Timeout: request did not complete within the allotted timeout of \(timeout.components.seconds) s")
        )
    }

    /// `work`'s result, or nil if `timeout` passes first (the work is then cancelled and its
    /// result dropped when it comes). Whichever ends first ends the other at once: a timer left
    /// sleeping would keep the finished work, and its response, alive for the whole timeout.
    private static func race(_ timeout: Duration, _ work: @escaping @Sendable () async -> Response) async -> Response? {
        let race = Race()
        return await withCheckedContinuation { (continuation: CheckedContinuation<Response?, Never>) in
            let working = Task {
                let response = await work()
                race.timer.withLock { $0?.cancel() }
                if race.settled.markFirst() { continuation.resume(returning: response) }
            }
            race.worker.withLock { $0 = working }
            let timing = Task {
                do {
                    try await Task.sleep(for: timeout)
                } catch {
                    return
                }
                if race.settled.markFirst() {
                    race.worker.withLock { $0?.cancel() }
                    continuation.resume(returning: nil)
                }
            }
            race.timer.withLock { $0 = timing }
            // The work may have finished before the timer was stored.
            if race.settled.isMarked { timing.cancel() }
        }
    }

    /// The two sides of ``race(_:_:)``, each able to end the other.
    private final class Race: Sendable {
        let settled = OnceFlag()
        let timer = Mutex<Task<Void, Never>?>(nil)
        let worker = Mutex<Task<Void, Never>?>(nil)
    }

    private func answer(_ request: Request, context: APIRequestContext) async -> Response {
        do {
            return try await route(request, context: context)
        } catch let error as APIError {
            return Self.status(error)
        } catch let error as StoreError {
            return Self.status(APIError(error))
        } catch {
            logger.error("API request failed", metadata: ["tether.error": "\(error)", "tether.path": "\(request.uri.path)"])
            return Self.status(APIError(code: 500, reason: "InternalError", message: "\(error)"))
        }
    }

    private func route(_ request: Request, context: APIRequestContext) async throws -> Response {
        if let faults, request.uri.path == "/debug/faults" {
            return try await controlFaults(faults, request: request, context: context)
        }
        guard let path = APIPath(request.uri.path) else {
            throw APIError.notFound("the server could not find the requested resource")
        }
        let discovery = Discovery(registry: registry)
        switch path {
        case .version:
            return Self.json(discovery.version(server: configuration.serverVersion))
        case .health:
            return Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "ok")))
        default:
            break
        }
        let caller = try await authenticate(request, context: context)
        switch path {
        case .version, .health:
            throw APIError.notFound("unreachable")
        case .coreVersions, .groupList:
            if let version = Discovery.aggregatedVersion(accepting: request.headers[.accept] ?? "") {
                var response = Self.json(discovery.aggregated(core: path == .coreVersions, version: version))
                response.headers[.contentType] = Discovery.aggregatedContentType(version)
                return response
            }
            return Self.json(path == .coreVersions ? discovery.coreVersions : discovery.groupList)
        case .group(let name):
            guard let group = discovery.group(named: name) else { throw APIError.notFound("the server could not find the requested resource") }
            return Self.json(group)
        case .resourceList(let group, let version):
            guard let list = discovery.resourceList(group: group, version: version) else {
                throw APIError.notFound("the server could not find the requested resource")
            }
            return Self.json(list)
        case .metrics:
            guard let metrics else { throw APIError.notFound("this server exposes no metrics") }
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: metrics()))
            )
        case .openAPIv2:
            if (request.headers[.accept] ?? "").contains("protobuf") {
                return Response(
                    status: .ok,
                    headers: [.contentType: "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"],
                    body: .init(byteBuffer: ByteBuffer(bytes: openAPI.v2Protobuf))
                )
            }
            return Self.json(bytes: openAPI.v2JSON)
        case .openAPIv3(let groupVersion):
            if groupVersion.isEmpty { return Self.json(bytes: openAPI.v3Index) }
            guard let document = openAPI.v3[groupVersion] else {
                throw APIError.notFound("no OpenAPI v3 document for \(groupVersion); /openapi/v3 lists them")
            }
            return Self.json(bytes: document.document)
        case .resource(let resource):
            try await faults?.apply()
            return try await serve(resource, request: request, caller: caller, connectionClosed: context.channel.closeFuture)
        }
    }

    private func controlFaults(_ faults: FaultInjector, request: Request, context: APIRequestContext) async throws -> Response {
        let caller = try await authenticate(request, context: context)
        guard caller.role == .admin else { throw APIError.forbidden("only an admin may inject faults") }
        switch request.method {
        case .put:
            let body = try await request.body.collect(upTo: 4096)
            let fault: FaultInjector.Fault
            do {
                fault = try JSONDecoder().decode(FaultInjector.Fault.self, from: Data(body.readableBytesView))
            } catch {
                throw APIError.badRequest("expected {\"status\": 503, \"delayMilliseconds\": 0, \"seconds\": 30}: \(error)")
            }
            try faults.start(fault)
            logger.warning("injecting API faults", metadata: ["tether.event": "api.faults", "tether.fault": "\(fault)"])
        case .delete:
            faults.stop()
            logger.info("API faults cleared", metadata: ["tether.event": "api.faults_cleared"])
        case .get:
            break
        default:
            throw APIError.methodNotAllowed("use GET, PUT or DELETE on /debug/faults")
        }
        let active = faults.active
        return Self.json([
            "active": .bool(active != nil),
            "status": active?.status.map { .integer(Int64($0)) } ?? .null,
            "delayMilliseconds": active?.delayMilliseconds.map { .integer(Int64($0)) } ?? .null,
        ])
    }

    // MARK: Authentication and authorization

    private func authenticate(_ request: Request, context: APIRequestContext) async throws -> Caller {
        let access = self.access.current
        if let header = request.headers[.authorization] {
            guard header.hasPrefix("Bearer "), let token = access.user(forToken: String(header.dropFirst("Bearer ".count))) else {
                throw APIError.unauthorized("Unauthorized: the bearer token is not valid")
            }
            return Caller(user: token.user, role: token.role, method: "token")
        }
        if let certificate = try? await context.channel.nioSSL_peerCertificate().get(),
            let parsed = try? TetherTLS.certificate(from: certificate),
            let identity = try? TetherIdentity(certificate: parsed)
        {
            guard case .user(let name) = identity.role, identity.trustDomain == trustDomain else {
                throw APIError.forbidden("\(identity) is not a user identity; use a certificate for spiffe://\(trustDomain)/user/NAME")
            }
            return Caller(user: name, role: access.role(ofUser: name), method: "certificate")
        }
        throw APIError.unauthorized("Unauthorized: present a client certificate from the federation CA or a bearer token")
    }

    private func authorize(_ caller: Caller, _ verb: APIVerb, kind: KindDescriptor, namespace: String?) throws {
        guard let role = caller.role, role.allows(verb) else {
            let scope = namespace.map { " in the namespace \"\($0)\"" } ?? (kind.namespaced ? "" : " at the cluster scope")
            throw APIError.forbidden(
                "\(kind.resourceName) is forbidden: User \"\(caller.user)\" cannot \(verb.rawValue) resource \"\(kind.plural)\" "
                    + "in API group \"\(kind.group)\"\(scope)"
            )
        }
    }

    // MARK: Resources

    private func serve(
        _ path: APIPath.ResourcePath,
        request: Request,
        caller: Caller,
        connectionClosed: EventLoopFuture<Void>
    ) async throws -> Response {
        guard let kind = registry.kind(group: path.group, version: path.version, plural: path.plural) else {
            throw APIError.notFound("the server could not find the requested resource")
        }
        if !kind.namespaced, path.namespace != nil {
            throw APIError.notFound("\(kind.resourceName) is not namespaced")
        }
        if let subresource = path.subresource,
            !(subresource == "status" && kind.hasStatus) && !(subresource == "scale" && kind.hasScale)
        {
            throw APIError.notFound("\(kind.resourceName) has no subresource \"\(subresource)\"")
        }
        let type = ResourceType(group: kind.group, resource: kind.plural, namespaced: kind.namespaced)
        let query = QueryString.parse(request.uri.query)
        let dryRun = query["dryRun"] == "All"
        let operation = ResourceOperation(
            kind: kind, type: type, path: path, handler: self, request: request, caller: caller, connectionClosed: connectionClosed
        )

        switch (request.method, path.name) {
        case (.get, nil):
            let watching = query["watch"].map { ["true", "1"].contains($0) } ?? false
            try authorize(caller, watching ? .watch : .list, kind: kind, namespace: path.namespace)
            return watching ? try await operation.watch() : try await operation.list()
        case (.get, .some(let name)):
            try authorize(caller, .get, kind: kind, namespace: path.namespace)
            let object = try await store.get(type, namespace: path.namespace, name: name)
            return path.subresource == "scale" ? ResourceHandler.json(Scale(of: object).object) : operation.render(object)
        case (.post, nil):
            try authorize(caller, .create, kind: kind, namespace: path.namespace)
            var response = try await operation.create(dryRun: dryRun)
            operation.warnings.attach(to: &response)
            return response
        case (.put, .some):
            try authorize(caller, .update, kind: kind, namespace: path.namespace)
            var response = try await operation.replace(dryRun: dryRun)
            operation.warnings.attach(to: &response)
            return response
        case (.patch, .some):
            try authorize(caller, .patch, kind: kind, namespace: path.namespace)
            var response = try await operation.patch(dryRun: dryRun)
            operation.warnings.attach(to: &response)
            return response
        case (.delete, .some):
            try authorize(caller, .delete, kind: kind, namespace: path.namespace)
            return try await operation.delete(dryRun: dryRun)
        case (.delete, nil):
            try authorize(caller, .deletecollection, kind: kind, namespace: path.namespace)
            return try await operation.deleteCollection(dryRun: dryRun)
        default:
            throw APIError.methodNotAllowed("\(request.method) is not supported on \(request.uri.path)")
        }
    }

    // MARK: Responses

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        var buffer = ByteBuffer()
        buffer.writeBytes(encode(value))
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: buffer))
    }

    static func json(bytes: Data, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func status(_ error: APIError) -> Response {
        var response = json(error.status, status: HTTPResponse.Status(code: error.code))
        if let seconds = error.retryAfterSeconds { response.headers[.retryAfter] = String(seconds) }
        return response
    }

    /// Compact JSON with sorted keys; a value JSON cannot hold (a non-finite double) comes out as `{}`.
    static func encode(_ value: JSONValue) -> [UInt8] {
        (try? value.serialized()) ?? Array("{}".utf8)
    }
}
