import Hummingbird
import NIOCore

/// Where each request goes, on Hummingbird's router: probes and the version unauthenticated and
/// unlimited; everything else behind the in-flight caps and authentication (middleware), each
/// HTTP method to its verb on ``ResourceHandler``, each within the request timeout.
///
/// ```
/// APIRequestMiddleware (query parsed once, errors -> Status)
/// ├─ GET /version, /healthz[/**], /readyz, /livez
/// └─ InFlightMiddleware -> AuthenticationMiddleware
///    ├─ GET /metrics, /openapi/v2, /openapi/v3[/**]
///    ├─ GET /api, /apis, and under /api/**, /apis/**: read (discovery, get, list, watch; ``APIPath`` says which)
///    ├─ POST create · PUT replace · PATCH patch · DELETE delete   (under /api/**, /apis/**)
///    ├─ any method /clusters/NAME/proxy[/**]   (the hub only: a member's API through its agent)
///    └─ GET/PUT/DELETE /debug/faults   (simulated members only)
/// ```
enum APIRoutes {
    static func router(_ handler: ResourceHandler) -> Router<APIRequestContext> {
        let router = Router(context: APIRequestContext.self)
        router.add(middleware: APIRequestMiddleware(logger: handler.logger))

        // Probes must answer under any load and without credentials.
        let version = ResourceHandler.json(Discovery(registry: handler.registry).version(server: handler.configuration.serverVersion))
        router.get("/version") { _, _ in version }
        let healthy = Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "ok")))
        for probe in ["healthz", "readyz", "livez"] {
            router.get(RouterPath("/\(probe)")) { _, _ in healthy }
            router.get(RouterPath("/\(probe)/**")) { _, _ in healthy }
        }

        let api = router.group()
            .add(middleware: InFlightMiddleware(limiter: handler.limiter))
            .add(middleware: AuthenticationMiddleware(access: handler.access, trustDomain: handler.trustDomain))
        api.get("/metrics") { _, _ in
            guard let metrics = handler.metrics else { throw APIError.notFound("this server exposes no metrics") }
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: metrics()))
            )
        }
        api.get("/openapi/v2") { request, _ in
            if (request.headers[.accept] ?? "").contains("protobuf") {
                return Response(
                    status: .ok, headers: [.contentType: "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"],
                    body: .init(byteBuffer: ByteBuffer(bytes: handler.openAPI.v2Protobuf))
                )
            }
            return ResourceHandler.json(bytes: handler.openAPI.v2JSON)
        }
        api.get("/openapi/v3") { _, _ in ResourceHandler.json(bytes: handler.openAPI.v3Index) }
        api.get("/openapi/v3/**") { _, context in
            let groupVersion = context.parameters.getCatchAll().joined(separator: "/")
            guard let document = handler.openAPI.v3[groupVersion] else {
                throw APIError.notFound("no OpenAPI v3 document for \(groupVersion); /openapi/v3 lists them")
            }
            return ResourceHandler.json(bytes: document.document)
        }

        for prefix in ["/api", "/apis"] {
            api.get(RouterPath(prefix)) { try await handler.timed($0, $1, handler.read) }
        }
        for tree in ["/api/**", "/apis/**"] {
            let path = RouterPath(tree)
            api.get(path) { try await handler.timed($0, $1, handler.read) }
            api.post(path) { try await handler.timed($0, $1, handler.create) }
            api.put(path) { try await handler.timed($0, $1, handler.replace) }
            api.patch(path) { try await handler.timed($0, $1, handler.patch) }
            api.delete(path) { try await handler.timed($0, $1, handler.delete) }
        }

        if let proxy = handler.memberProxy {
            for path in ["/clusters/:cluster/proxy", "/clusters/:cluster/proxy/**"] {
                for method in [HTTPRequest.Method.get, .head, .post, .put, .patch, .delete] {
                    api.on(RouterPath(path), method: method) { request, context in try await proxy.handle(request, context: context) }
                }
            }
        }

        if let faults = handler.faults {
            for method in [HTTPRequest.Method.get, .put, .delete, .post] {
                api.on("/debug/faults", method: method) { request, context in
                    try await handler.controlFaults(faults, request: request, context: context)
                }
            }
        }
        return router
    }
}
