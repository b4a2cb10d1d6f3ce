import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOSSL
import Synchronization
import TetherJSON
import TetherModel
import TetherPlugin
import TetherSecurity
import TetherStore

/// The Kubernetes verbs over the store, one entry per HTTP method (``APIRoutes`` maps the
/// routes to them; the middleware has parsed the query and authenticated the caller).
struct ResourceHandler: Sendable {
    let store: any ResourceStore
    /// The kinds served now: the plugins' and those CustomResourceDefinitions define.
    let catalog: KindCatalog
    var registry: KindRegistry { catalog.registry }
    let access: AccessControl
    let limiter: InFlightLimiter
    let trustDomain: String
    let configuration: APIServerConfiguration
    let faults: FaultInjector?
    /// The Prometheus text exposition of the process's metrics; nil serves no `/metrics`.
    let metrics: (@Sendable () -> [UInt8])?
    let logger: Logger
    let openAPIDocuments: OpenAPICache
    /// The OpenAPI documents of the kinds served now, rebuilt after a definition changes them.
    var openAPI: OpenAPIDocuments { openAPIDocuments.documents(for: catalog, serverVersion: configuration.serverVersion) }
    /// `/clusters/NAME/proxy/`: only at the hub, whose agents carry the tunnel.
    var memberProxy: MemberProxy? = nil

    static let namespaces = ResourceType(group: "", resource: "namespaces", namespaced: false)
    static let priorityClasses = ResourceType(group: "scheduling.k8s.io", resource: "priorityclasses", namespaced: false)
    static let resourceQuotas = ResourceType(group: "", resource: "resourcequotas", namespaced: true)
    static let limitRanges = ResourceType(group: "", resource: "limitranges", namespaced: true)

    func ensureDefaultNamespace() async throws {
        do {
            _ = try await store.get(Self.namespaces, namespace: nil, name: "default")
        } catch {
            guard error.code == .notFound else { throw error }
            let namespace: JSONValue = ["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": "default"], "status": ["phase": "Active"]]
            do {
                _ = try await store.create(namespace, as: Self.namespaces, dryRun: false)
            } catch  where error.code == .alreadyExists {
                // Another hub on the same store made it first.
            }
        }
    }

    /// Runs `verb` within the request timeout (504 after it); a watch runs until its own timeout.
    func timed(
        _ request: Request, _ context: APIRequestContext, _ verb: @escaping @Sendable (Request, APIRequestContext) async throws -> Response
    ) async throws -> Response {
        if request.method == .get, context.query.watch { return try await verb(request, context) }
        let timeout = limiter.limits.requestTimeout
        guard let outcome = await Self.race(timeout, { try await verb(request, context) }) else {
            throw APIError.timeout("Timeout: request did not complete within the allotted timeout of \(timeout.components.seconds) s")
        }
        return try outcome.get()
    }

    /// `work`'s result, or nil if `timeout` passes first (the work is then cancelled and its
    /// result dropped when it comes). Whichever ends first ends the other at once: a timer left
    /// sleeping would keep the finished work, and its response, alive for the whole timeout.
    private static func race(
        _ timeout: Duration, _ work: @escaping @Sendable () async throws -> Response
    ) async -> Result<Response, any Error>? {
        let race = Race()
        return await withCheckedContinuation { (continuation: CheckedContinuation<Result<Response, any Error>?, Never>) in
            let working = Task {
                let result: Result<Response, any Error>
                do {
                    result = .success(try await work())
                } catch {
                    result = .failure(error)
                }
                race.timer.withLock { $0?.cancel() }
                if race.settled.markFirst() { continuation.resume(returning: result) }
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

    // MARK: Verbs

    /// GET: discovery and resource lists under `/api` and `/apis`, then a resource's get, list or watch.
    func read(_ request: Request, context: APIRequestContext) async throws -> Response {
        let path = try Self.path(of: request)
        let discovery = Discovery(
            registry: registry, servesEviction: configuration.servesEviction, servesEphemeralContainers: configuration.podsEndedByKubelet,
            servesMetrics: configuration.metrics != nil)
        switch path {
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
        case .resource(let resource):
            if ResourceMetricsAPI.serves(resource), let source = configuration.metrics {
                return try await metrics(resource, from: source, context: context)
            }
            if let name = resource.name {
                let operation = try await operation(resource, .get, request, context)
                let object = try await store.get(operation.type, namespace: resource.namespace, name: name)
                return resource.subresource == "scale" ? Self.json(Scale(of: object).object) : try await operation.render(object)
            }
            let watching = context.query.watch
            let operation = try await operation(resource, watching ? .watch : .list, request, context)
            return watching ? try await operation.watch() : try await operation.list()
        default:
            throw APIError.notFound("the server could not find the requested resource")
        }
    }

    /// POST: create in a collection (or `exec`, `attach` or `portforward` a Pod, refused in `operation`).
    func create(_ request: Request, context: APIRequestContext) async throws -> Response {
        let resource = try Self.resource(of: request, named: nil)
        if resource.group.isEmpty, resource.plural == "serviceaccounts", resource.subresource == "token" {
            // `kubectl create token`: as a kube-apiserver without the TokenRequest API answers, with what to do instead.
            throw APIError.notFound(
                "this server issues no ServiceAccount tokens (the TokenRequest API is not served); for a bearer token to the hub's API, "
                    + "run `tetherctl token create --dir DIR --user USER --role viewer|admin` on the hub's machine")
        }
        guard resource.name == nil || Self.reachesContainers(resource) || Self.evicts(resource) else {
            throw APIError.methodNotAllowed("\(request.method) is not supported on \(request.uri.path)")
        }
        if let review = AccessReviews.review(group: resource.group, version: resource.version, plural: resource.plural) {
            guard let caller = context.caller else { throw APIError.unauthorized("Unauthorized") }
            let buffer = try await request.body.collect(upTo: 64 * 1024)
            let protobuf = (request.headers[.contentType] ?? "").hasPrefix(KubernetesProtobuf.contentType)
            // kubectl sends these as protobuf; the answer is JSON, which it accepts as well.
            guard
                let body = protobuf
                    ? try? KubernetesProtobuf.decodeReview(Array(buffer.readableBytesView))
                    : try? JSONValue(parsing: buffer.readableBytesView, maximumDepth: 16)
            else {
                throw APIError.badRequest("the body of a \(review.kind) must be a JSON or Kubernetes protobuf object")
            }
            return Self.json(try AccessReviews.answer(review, body: body, caller: caller), status: .created)
        }
        let operation = try await operation(resource, .create, request, context)
        if Self.evicts(resource) { return try await operation.evict(dryRun: context.query.dryRun) }
        return operation.warnings.attached(to: try await operation.create(dryRun: context.query.dryRun))
    }

    /// PUT: replace an object (or its status, or its scale).
    func replace(_ request: Request, context: APIRequestContext) async throws -> Response {
        let resource = try Self.resource(of: request, named: true)
        let operation = try await operation(resource, .update, request, context)
        return operation.warnings.attached(to: try await operation.replace(dryRun: context.query.dryRun))
    }

    /// PATCH: merge, strategic merge, JSON patch, or server-side apply (which may create).
    func patch(_ request: Request, context: APIRequestContext) async throws -> Response {
        let resource = try Self.resource(of: request, named: true)
        let operation = try await operation(resource, .patch, request, context)
        return operation.warnings.attached(to: try await operation.patch(dryRun: context.query.dryRun))
    }

    /// DELETE: an object, or every object a list would return.
    func delete(_ request: Request, context: APIRequestContext) async throws -> Response {
        let resource = try Self.resource(of: request, named: nil)
        let operation = try await operation(resource, resource.name == nil ? .deletecollection : .delete, request, context)
        return resource.name == nil
            ? try await operation.deleteCollection(dryRun: context.query.dryRun) : try await operation.delete(dryRun: context.query.dryRun)
    }

    private static func path(of request: Request) throws(APIError) -> APIPath {
        guard let path = APIPath(request.uri.path) else { throw APIError.notFound("the server could not find the requested resource") }
        return path
    }

    /// The resource a write names; `named`: whether the URL must name an object (nil: either).
    private static func resource(of request: Request, named: Bool?) throws(APIError) -> APIPath.ResourcePath {
        guard case .resource(let resource) = try path(of: request) else {
            throw APIError.methodNotAllowed("\(request.method) is not supported on \(request.uri.path)")
        }
        if let named, named != (resource.name != nil) {
            throw APIError.methodNotAllowed("\(request.method) is not supported on \(request.uri.path)")
        }
        return resource
    }

    func controlFaults(_ faults: FaultInjector, request: Request, context: APIRequestContext) async throws -> Response {
        guard let caller = context.caller, caller.role == .admin else { throw APIError.forbidden("only an admin may inject faults") }
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

    // MARK: Authorization

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

    /// The operation on `path`'s kind, once the caller may perform `verb` there.
    private func operation(
        _ path: APIPath.ResourcePath, _ verb: APIVerb, _ request: Request, _ context: APIRequestContext
    ) async throws -> ResourceOperation {
        let registry = self.registry
        guard let served = registry.kind(group: path.group, version: path.version, plural: path.plural), let kind = registry.storageKind(of: served)
        else {
            throw APIError.notFound("the server could not find the requested resource")
        }
        if !kind.namespaced, path.namespace != nil {
            throw APIError.notFound("\(kind.resourceName) is not namespaced")
        }
        let reachesContainers = Self.reachesContainers(path)
        if let subresource = path.subresource, !reachesContainers,
            !(subresource == "status" && kind.hasStatus) && !(subresource == "scale" && kind.hasScale)
                && !(Self.evicts(path) && configuration.servesEviction)
                && !(ResourceOperation.addsEphemeralContainers(path) && configuration.podsEndedByKubelet)
        {
            // kubectl debug tells this 404 (empty details) from a missing Pod, and says ephemeral containers are off.
            let why = ResourceOperation.addsEphemeralContainers(path) ? ": \(configuration.containerlessReason)" : ""
            throw APIError.notFound("\(kind.resourceName) has no subresource \"\(subresource)\"\(why)")
        }
        guard let caller = context.caller else { throw APIError.unauthorized("Unauthorized") }
        try authorize(caller, verb, kind: kind, namespace: path.namespace)
        if reachesContainers {
            // kubectl prints a 400's message as it is; a 404 would read as "no such Pod".
            throw APIError.badRequest(configuration.containerlessReason)
        }
        try await faults?.apply()
        let type = ResourceType(group: kind.group, resource: kind.plural, namespaced: kind.namespaced)
        return ResourceOperation(
            kind: kind, served: served, type: type, path: path, handler: self, request: request, context: context, caller: caller,
            connectionClosed: context.channel.closeFuture
        )
    }

    /// A Pod's subresources that reach its containers (`kubectl logs`, `exec`, `attach`, `cp`,
    /// `port-forward`).
    static func reachesContainers(_ path: APIPath.ResourcePath) -> Bool {
        path.group.isEmpty && path.plural == "pods" && ["log", "exec", "attach", "portforward"].contains(path.subresource ?? "")
    }

    /// A Pod's `eviction` subresource (`kubectl drain`).
    static func evicts(_ path: APIPath.ResourcePath) -> Bool {
        path.group.isEmpty && path.plural == "pods" && path.name != nil && path.subresource == "eviction"
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

    /// Compact JSON with sorted keys; a value JSON cannot hold (a non-finite double) comes out as `{}`.
    static func encode(_ value: JSONValue) -> [UInt8] {
        (try? value.serialized()) ?? Array("{}".utf8)
    }
}
