import AsyncHTTPClient
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import TetherJSON
import TetherModel

/// A failed call to a member's Kubernetes API, with what the API said.
public struct KubernetesError: Error, CustomStringConvertible, Sendable {
    /// The HTTP status, or nil when no answer came (connection refused, lost, timed out).
    public var status: Int?
    /// The `metav1.Status` reason (`NotFound`, `Conflict`, `Invalid`, ...), when the API gave one.
    public var reason: String?
    public var message: String

    public var description: String {
        switch (status, reason) {
        case (let status?, let reason?): "\(status) \(reason): \(message)"
        case (let status?, nil): "\(status): \(message)"
        default: message
        }
    }

    /// Worth asking again: the server was busy or away. A 4xx other than 409/429 never succeeds by repetition.
    public var isTransient: Bool {
        guard let status else { return true }
        return status == 409 || status == 429 || status >= 500
    }

    public var isNotFound: Bool { status == 404 }
}

/// How the driver treats the member's API.
public struct KubernetesClientSettings: Sendable {
    /// Requests in flight at once (watches not counted); more wait their turn.
    public var maxConcurrentRequests: Int = 8
    /// Tries of one request before its error goes back to the caller.
    public var attempts: Int = 5
    /// Waits between attempts of one request: 200 ms doubling to 5 s, with full jitter.
    public var retryBackoff = Backoff(initial: .milliseconds(200), maximum: .seconds(5))
    public var requestTimeout: TimeAmount = .seconds(30)
    /// Largest response body read (a list of many objects); larger ones fail instead of growing memory.
    public var maxResponseBytes: Int = 64 << 20
    /// Largest single watch event.
    public var maxWatchEventBytes: Int = 16 << 20
    /// How long the server keeps a watch open before the driver opens the next one.
    public var watchTimeoutSeconds: Int = 300

    public init() {}
}

/// A resource the member serves, from discovery.
public struct ServedResource: Sendable, Hashable {
    public var apiVersion: String
    public var kind: String
    public var plural: String
    public var namespaced: Bool

    public init(apiVersion: String, kind: String, plural: String, namespaced: Bool) {
        self.apiVersion = apiVersion
        self.kind = kind
        self.plural = plural
        self.namespaced = namespaced
    }

    /// `/api/v1` or `/apis/apps/v1`.
    var groupVersionPath: String { apiVersion.contains("/") ? "/apis/\(apiVersion)" : "/api/\(apiVersion)" }

    /// The collection URL path, in one namespace or (nil) across all.
    func collectionPath(namespace: String?) -> String {
        guard namespaced, let namespace else { return "\(groupVersionPath)/\(plural)" }
        return "\(groupVersionPath)/namespaces/\(Self.escape(namespace))/\(plural)"
    }

    func objectPath(namespace: String?, name: String) -> String {
        "\(collectionPath(namespace: namespaced ? namespace : nil))/\(Self.escape(name))"
    }

    private static func escape(_ segment: String) -> String {
        segment.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? segment
    }
}

/// One event of a watch.
public enum WatchEvent: Sendable {
    case added(JSONValue)
    case modified(JSONValue)
    case deleted(JSONValue)
    case bookmark(resourceVersion: String)
    /// The resourceVersion asked for is older than the server keeps: list again.
    case expired
}

/// The agent's Kubernetes driver: discovery, server-side apply, get, delete, list and watch
/// against one member API server over a pooled HTTPS client (AsyncHTTPClient).
///
/// Requests run at most `maxConcurrentRequests` at a time. Transient failures (no answer,
/// 409, 429, 5xx) are retried with exponential backoff and full jitter, honouring
/// `Retry-After`; other 4xx answers return at once.
public final class KubernetesClient: Sendable {
    public let endpoint: KubernetesEndpoint
    public let settings: KubernetesClientSettings
    private let http: HTTPClient
    private let permits: RequestPermits
    private let logger: Logger

    public init(
        endpoint: KubernetesEndpoint,
        settings: KubernetesClientSettings = KubernetesClientSettings(),
        proxy: ProxySettings? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger
    ) throws(KubernetesConfigError) {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        // Closing a connection waits this long for the server's close_notify: a member API server
        // that never sends one (the simulated members did not) held every agent's stop for the
        // default 5 s, while its hub already counted it gone.
        tls.shutdownTimeout = .milliseconds(500)
        do {
            if let pem = endpoint.certificateAuthorityPEM {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(pem.utf8)))
            }
            if case .clientCertificate(let certificatePEM, let keyPEM) = endpoint.credential {
                tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(certificatePEM.utf8)).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(keyPEM.utf8), format: .pem))
            }
        } catch {
            throw KubernetesConfigError("\(endpoint.origin): the certificate or key is not usable PEM: \(error)")
        }
        if endpoint.insecureSkipTLSVerify { tls.certificateVerification = .none }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        // Watches hold a connection each for minutes; requests have their own budget on top.
        configuration.connectionPool = .init(
            idleTimeout: .seconds(90),
            concurrentHTTP1ConnectionsPerHostSoftLimit: settings.maxConcurrentRequests + 32
        )
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(Int64(settings.watchTimeoutSeconds + 30)))
        configuration.redirectConfiguration = .disallow
        if let proxy, let host = endpoint.server.host, proxy.applies(to: host, port: endpoint.server.port ?? 443) {
            guard !proxy.usesTLS else {
                throw KubernetesConfigError(
                    "the member API \(endpoint.server) would go through the https:// proxy \(proxy.displayURL), which the member client cannot use; "
                        + "list the member API's host in --no-proxy (NO_PROXY), or give an http:// proxy")
            }
            configuration.proxy = .server(
                host: proxy.host, port: proxy.port,
                authorization: proxy.authorization.map { .basic(credentials: String($0.dropFirst("Basic ".count))) })
        }
        self.http = HTTPClient(eventLoopGroupProvider: .shared(group), configuration: configuration)
        self.endpoint = endpoint
        self.settings = settings
        self.permits = RequestPermits(settings.maxConcurrentRequests)
        self.logger = logger
    }

    /// Closes every pooled connection; call once, when the agent stops.
    public func shutdown() async {
        try? await http.shutdown()
    }

    // MARK: Calls

    /// `/version`: the member's `gitVersion`, such as `v1.32.0`.
    public func serverVersion() async throws(KubernetesError) -> String {
        let body = try await send(.GET, "/version")
        return body["gitVersion"]?.stringValue ?? "unknown"
    }

    /// Every resource the member serves, keyed by `apiVersion/Kind`, from legacy discovery
    /// (`/api/v1`, `/apis`, `/apis/GROUP/VERSION`) which every server version answers.
    public func discover() async throws(KubernetesError) -> [String: ServedResource] {
        var served: [String: ServedResource] = [:]
        func add(_ list: JSONValue) {
            let apiVersion = list["groupVersion"]?.stringValue ?? ""
            for resource in list["resources"]?.arrayElements ?? [] {
                guard let plural = resource["name"]?.stringValue, !plural.contains("/"),
                    let kind = resource["kind"]?.stringValue
                else { continue }
                served["\(apiVersion)/\(kind)"] = ServedResource(
                    apiVersion: apiVersion, kind: kind, plural: plural, namespaced: resource["namespaced"] == .bool(true)
                )
            }
        }
        add(try await send(.GET, "/api/v1"))
        for group in try await send(.GET, "/apis")["groups"]?.arrayElements ?? [] {
            for version in group["versions"]?.arrayElements ?? [] {
                guard let groupVersion = version["groupVersion"]?.stringValue else { continue }
                add(try await send(.GET, "/apis/\(groupVersion)"))
            }
        }
        return served
    }

    /// The live object, or nil when it does not exist.
    public func get(_ resource: ServedResource, namespace: String?, name: String) async throws(KubernetesError) -> JSONValue? {
        do {
            return try await send(.GET, resource.objectPath(namespace: namespace, name: name))
        } catch {
            guard error.isNotFound else { throw error }
            return nil
        }
    }

    /// Server-side apply as `fieldManager`, taking over fields other managers hold (`force`).
    public func apply(_ object: JSONValue, as resource: ServedResource, fieldManager: String) async throws(KubernetesError) -> JSONValue {
        let path = resource.objectPath(namespace: object.namespace, name: object.name ?? "")
        let query = "fieldManager=\(fieldManager)&force=true"
        return try await send(.PATCH, path, query: query, body: object, contentType: "application/apply-patch+yaml")
    }

    /// A JSON merge patch (RFC 7386): a member set to null is removed.
    public func mergePatch(
        _ resource: ServedResource,
        namespace: String?,
        name: String,
        patch: JSONValue
    ) async throws(KubernetesError) -> JSONValue {
        try await send(.PATCH, resource.objectPath(namespace: namespace, name: name), body: patch, contentType: "application/merge-patch+json")
    }

    /// Deletes with a propagation policy (`Background`, `Foreground`, `Orphan`); a missing object is not an error.
    public func delete(
        _ resource: ServedResource,
        namespace: String?,
        name: String,
        uid: String? = nil,
        propagation: String = "Background"
    ) async throws(KubernetesError) {
        var options: JSONValue = ["kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": .string(propagation)]
        // Deletes this object and no other made since under the same name (409 otherwise).
        if let uid { options[member: "preconditions"] = ["uid": .string(uid)] }
        do {
            _ = try await send(.DELETE, resource.objectPath(namespace: namespace, name: name), body: options, contentType: "application/json")
        } catch {
            guard error.isNotFound else { throw error }
        }
    }

    /// Every object of a resource across namespaces matching `labelSelector`, read page by page,
    /// with the list's resourceVersion to watch from.
    public func list(_ resource: ServedResource, labelSelector: String) async throws(KubernetesError) -> (items: [JSONValue], resourceVersion: String)
    {
        var items: [JSONValue] = []
        var continueToken: String?
        var resourceVersion = ""
        repeat {
            var query = "labelSelector=\(Self.escapeQuery(labelSelector))&limit=500"
            if let token = continueToken { query += "&continue=\(Self.escapeQuery(token))" }
            let page = try await send(.GET, resource.collectionPath(namespace: nil), query: query)
            items += page["items"]?.arrayElements ?? []
            resourceVersion = page.string(at: "metadata", "resourceVersion") ?? resourceVersion
            continueToken = page.string(at: "metadata", "continue").flatMap { $0.isEmpty ? nil : $0 }
        } while continueToken != nil
        // Lists leave apiVersion and kind off their items.
        let typed = items.map { item in
            var item = item
            item[member: "apiVersion"] = .string(resource.apiVersion)
            item[member: "kind"] = .string(resource.kind)
            return item
        }
        return (typed, resourceVersion)
    }

    /// Watches a resource across namespaces from `resourceVersion`, calling `onEvent` for each
    /// event in order, until the server ends the watch (after `watchTimeoutSeconds`) or the task
    /// is cancelled. Returns normally at the server's end; throws when the watch cannot start or breaks.
    public nonisolated(nonsending) func watch(
        _ resource: ServedResource,
        labelSelector: String,
        resourceVersion: String,
        onEvent: (WatchEvent) async -> Void
    ) async throws(KubernetesError) {
        let query =
            "watch=true&allowWatchBookmarks=true&labelSelector=\(Self.escapeQuery(labelSelector))"
            + "&resourceVersion=\(Self.escapeQuery(resourceVersion))&timeoutSeconds=\(settings.watchTimeoutSeconds)"
        let request = makeRequest(.GET, resource.collectionPath(namespace: nil), query: query, body: nil, contentType: nil)
        do {
            let response = try await http.execute(request, timeout: .seconds(Int64(settings.watchTimeoutSeconds + 60)), logger: logger)
            guard response.status == .ok else {
                let body = try await response.body.collect(upTo: 1 << 20)
                if response.status.code == 410 {
                    await onEvent(.expired)
                    return
                }
                throw Self.error(status: Int(response.status.code), body: body)
            }
            var lines = LineSplitter(maxLineBytes: settings.maxWatchEventBytes)
            for try await chunk in response.body {
                for line in try lines.append(chunk) {
                    guard let event = try Self.watchEvent(line, resource: resource) else { continue }
                    await onEvent(event)
                    if case .expired = event { return }
                }
            }
        } catch let error as KubernetesError {
            throw error
        } catch {
            if Task.isCancelled { return }
            throw KubernetesError(status: nil, reason: nil, message: "watch of \(resource.plural) at \(endpoint.server): \(error)")
        }
    }

    /// Sends a request as it came through the hub's tunnel, with the agent's own credentials, and
    /// returns the member's answer as it streams: no retry, no parsing. `pathAndQuery` starts with `/`.
    public func forward(
        method: String, pathAndQuery: String, headers: [(name: String, value: String)], body: ByteBuffer?, timeout: TimeAmount
    ) async throws -> HTTPClientResponse {
        var base = endpoint.server.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        var request = HTTPClientRequest(url: base + pathAndQuery)
        request.method = HTTPMethod(rawValue: method)
        for header in headers { request.headers.add(name: header.name, value: header.value) }
        request.headers.replaceOrAdd(name: "User-Agent", value: "tether-agent/\(TetherAgentVersion.current) (tunnel)")
        if let token = bearerToken() { request.headers.replaceOrAdd(name: "Authorization", value: "Bearer \(token)") }
        if let body { request.body = .bytes(body) }
        return try await http.execute(request, timeout: timeout, logger: logger)
    }

    // MARK: Requests

    private func send(
        _ method: HTTPMethod,
        _ path: String,
        query: String? = nil,
        body: JSONValue? = nil,
        contentType: String? = nil
    ) async throws(KubernetesError) -> JSONValue {
        var attempt = 0
        while true {
            let outcome = await permits.withPermit(onCancel: .failure(Self.cancelled(method, path))) {
                () async -> Result<JSONValue, KubernetesAttemptError> in
                await self.attempt(method, path, query: query, body: body, contentType: contentType)
            }
            switch outcome {
            case .success(let value):
                return value
            case .failure(let failure):
                attempt += 1
                guard failure.error.isTransient, attempt < settings.attempts, !Task.isCancelled else { throw failure.error }
                let delay = max(settings.retryBackoff.delay(attempt: attempt - 1), failure.retryAfter ?? .zero)
                logger.debug(
                    "member API call failed; retrying",
                    metadata: [
                        "tether.event": "kubernetes.retry", "tether.path": "\(path)", "tether.error": "\(failure.error)",
                        "tether.attempt": "\(attempt)",
                        "tether.retry_in_ms": "\(delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000)",
                    ]
                )
                do {
                    try await Task.sleep(for: delay)
                } catch {
                    throw failure.error
                }
            }
        }
    }

    private static func cancelled(_ method: HTTPMethod, _ path: String) -> KubernetesAttemptError {
        KubernetesAttemptError(
            error: KubernetesError(status: nil, reason: nil, message: "\(method) \(path): cancelled while waiting for a request slot"),
            retryAfter: nil)
    }

    private struct KubernetesAttemptError: Error {
        var error: KubernetesError
        var retryAfter: Duration?
    }

    private func attempt(
        _ method: HTTPMethod,
        _ path: String,
        query: String?,
        body: JSONValue?,
        contentType: String?
    ) async -> Result<JSONValue, KubernetesAttemptError> {
        let request = makeRequest(method, path, query: query, body: body, contentType: contentType)
        do {
            let response = try await http.execute(request, timeout: settings.requestTimeout, logger: logger)
            let bytes = try await response.body.collect(upTo: settings.maxResponseBytes)
            guard (200..<300).contains(Int(response.status.code)) else {
                let retryAfter = response.headers.first(name: "Retry-After").flatMap(Int.init).map { Duration.seconds(min($0, 60)) }
                return .failure(KubernetesAttemptError(error: Self.error(status: Int(response.status.code), body: bytes), retryAfter: retryAfter))
            }
            guard bytes.readableBytes > 0 else { return .success(.null) }
            do {
                return .success(try JSONValue(parsing: bytes.readableBytesView))
            } catch {
                return .failure(
                    KubernetesAttemptError(
                        error: KubernetesError(status: Int(response.status.code), reason: nil, message: "\(method) \(path): the answer is not JSON"),
                        retryAfter: nil
                    )
                )
            }
        } catch {
            return .failure(
                KubernetesAttemptError(
                    error: KubernetesError(status: nil, reason: nil, message: "\(method) \(endpoint.server)\(path): \(error)"),
                    retryAfter: nil
                )
            )
        }
    }

    private func makeRequest(_ method: HTTPMethod, _ path: String, query: String?, body: JSONValue?, contentType: String?) -> HTTPClientRequest {
        var base = endpoint.server.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        var request = HTTPClientRequest(url: base + path + (query.map { "?\($0)" } ?? ""))
        request.method = method
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "User-Agent", value: "tether-agent/\(TetherAgentVersion.current)")
        if let token = bearerToken() { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body, let data = try? body.serialized() {
            request.headers.add(name: "Content-Type", value: contentType ?? "application/json")
            request.body = .bytes(ByteBuffer(bytes: data))
        }
        return request
    }

    private func bearerToken() -> String? {
        switch endpoint.credential {
        case .bearerToken(let token):
            return token
        case .bearerTokenFile(let path):
            // Read each time: a projected service-account token is replaced before it expires.
            return (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        case .none, .clientCertificate:
            return nil
        }
    }

    static func error(status: Int, body: ByteBuffer) -> KubernetesError {
        let decoded = try? JSONValue(parsing: body.readableBytesView)
        let message = decoded?["message"]?.stringValue ?? String(buffer: body).prefix(300).description
        return KubernetesError(status: status, reason: decoded?["reason"]?.stringValue, message: message)
    }

    static func watchEvent(_ line: [UInt8], resource: ServedResource) throws(KubernetesError) -> WatchEvent? {
        guard !line.isEmpty else { return nil }
        let event: JSONValue
        do {
            event = try JSONValue(parsing: line)
        } catch {
            throw KubernetesError(status: nil, reason: nil, message: "watch of \(resource.plural) sent a line that is not JSON")
        }
        var object = event["object"] ?? .null
        if object["apiVersion"] == nil { object[member: "apiVersion"] = .string(resource.apiVersion) }
        if object["kind"] == nil || event["type"]?.stringValue != "ERROR" { object[member: "kind"] = .string(resource.kind) }
        switch event["type"]?.stringValue {
        case "ADDED": return .added(object)
        case "MODIFIED": return .modified(object)
        case "DELETED": return .deleted(object)
        case "BOOKMARK": return .bookmark(resourceVersion: object.resourceVersion.map(String.init) ?? "")
        case "ERROR":
            if object["code"]?.integerValue == 410 { return .expired }
            throw KubernetesError(
                status: object["code"]?.integerValue.map(Int.init),
                reason: object["reason"]?.stringValue,
                message: object["message"]?.stringValue ?? "watch error"
            )
        default: return nil
        }
    }

    private static func escapeQuery(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? value
    }
}

/// Splits a byte stream into newline-terminated lines, refusing any line longer than a bound.
struct LineSplitter {
    let maxLineBytes: Int
    private var partial: [UInt8] = []

    init(maxLineBytes: Int) { self.maxLineBytes = maxLineBytes }

    mutating func append(_ chunk: ByteBuffer) throws(KubernetesError) -> [[UInt8]] {
        var lines: [[UInt8]] = []
        for byte in chunk.readableBytesView {
            if byte == UInt8(ascii: "\n") {
                lines.append(partial)
                partial.removeAll(keepingCapacity: true)
            } else {
                guard partial.count < maxLineBytes else {
                    throw KubernetesError(status: nil, reason: nil, message: "a watch event exceeds \(maxLineBytes) bytes")
                }
                partial.append(byte)
            }
        }
        return lines
    }
}
