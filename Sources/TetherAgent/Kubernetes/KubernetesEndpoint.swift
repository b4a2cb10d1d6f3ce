import Foundation
import TetherJSON
import TetherModel

/// Why the agent cannot tell how to reach its member cluster.
public struct KubernetesConfigError: Error, CustomStringConvertible, Sendable {
    public let description: String

    init(_ description: String) { self.description = description }
}

/// How to reach and authenticate to one Kubernetes API server: from a kubeconfig or from the
/// service account a pod runs as.
public struct KubernetesEndpoint: Sendable {
    public enum Credential: Sendable {
        case none
        /// PEM certificate chain and key.
        case clientCertificate(certificatePEM: String, keyPEM: String)
        case bearerToken(String)
        /// Read again as it changes: projected service-account tokens rotate.
        case bearerTokenFile(String)
    }

    /// `https://host:port`, with any path prefix the server is served under.
    public var server: URL
    /// PEM of the CAs that sign the server's certificate; nil trusts the system's store.
    public var certificateAuthorityPEM: String?
    public var credential: Credential
    public var insecureSkipTLSVerify: Bool
    /// The name to verify the server's certificate against, when it differs from the URL's host.
    public var tlsServerName: String?
    /// Where this came from, for messages: `kubeconfig /path (context eu-1)` or `in-cluster`.
    public var origin: String

    public init(
        server: URL,
        certificateAuthorityPEM: String?,
        credential: Credential,
        insecureSkipTLSVerify: Bool = false,
        tlsServerName: String? = nil,
        origin: String
    ) {
        self.server = server
        self.certificateAuthorityPEM = certificateAuthorityPEM
        self.credential = credential
        self.insecureSkipTLSVerify = insecureSkipTLSVerify
        self.tlsServerName = tlsServerName
        self.origin = origin
    }

    // MARK: kubeconfig

    /// Reads a kubeconfig as `kubectl` does for one context: the named one, else `current-context`.
    /// Relative file paths in it are resolved against the kubeconfig's own folder.
    public static func kubeconfig(at path: String, context requested: String? = nil) throws(KubernetesConfigError) -> KubernetesEndpoint {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw KubernetesConfigError("cannot read kubeconfig \(path): \(error.localizedDescription)")
        }
        let document: JSONValue
        do {
            document = try YAMLDocument.decode(text)
        } catch {
            throw KubernetesConfigError("kubeconfig \(path) is \(error)")
        }
        let base = (path as NSString).deletingLastPathComponent
        guard let contextName = requested ?? document["current-context"]?.stringValue, !contextName.isEmpty else {
            throw KubernetesConfigError("kubeconfig \(path) has no current-context; pass --context NAME")
        }
        func named(_ list: String, _ name: String) throws(KubernetesConfigError) -> JSONValue {
            let entries = document[list]?.arrayElements ?? []
            guard let entry = entries.first(where: { $0["name"]?.stringValue == name }) else {
                let known = entries.compactMap { $0["name"]?.stringValue }
                throw KubernetesConfigError(
                    "kubeconfig \(path) has no \(list.dropLast()) named \(name) (it has: \(known.isEmpty ? "none" : known.joined(separator: ", ")))"
                )
            }
            return entry
        }
        let context = try named("contexts", contextName)["context"] ?? [:]
        guard let clusterName = context["cluster"]?.stringValue else {
            throw KubernetesConfigError("context \(contextName) in \(path) names no cluster")
        }
        let cluster = try named("clusters", clusterName)["cluster"] ?? [:]
        let user = try context["user"]?.stringValue.map { name throws(KubernetesConfigError) in try named("users", name)["user"] ?? [:] } ?? [:]
        guard let serverText = cluster["server"]?.stringValue, let server = URL(string: serverText), server.host != nil else {
            throw KubernetesConfigError("cluster \(clusterName) in \(path) has no valid server URL")
        }
        let origin = "kubeconfig \(path) (context \(contextName))"
        let ca = try material(
            inline: cluster["certificate-authority-data"], file: cluster["certificate-authority"], base: base, what: "certificate-authority",
            origin: origin)
        let credential: Credential
        if let token = user["token"]?.stringValue, !token.isEmpty {
            credential = .bearerToken(token)
        } else if let tokenFile = user["tokenFile"]?.stringValue {
            credential = .bearerTokenFile(resolve(tokenFile, base: base))
        } else if let certificate = try material(
            inline: user["client-certificate-data"], file: user["client-certificate"], base: base, what: "client-certificate", origin: origin
        ) {
            guard let key = try material(inline: user["client-key-data"], file: user["client-key"], base: base, what: "client-key", origin: origin)
            else {
                throw KubernetesConfigError("\(origin): the user has a client certificate but no client-key(-data)")
            }
            credential = .clientCertificate(certificatePEM: certificate, keyPEM: key)
        } else if user["exec"] != nil || user["auth-provider"] != nil {
            throw KubernetesConfigError(
                "\(origin): exec and auth-provider credentials are not supported; use a client certificate or a token"
            )
        } else {
            credential = .none
        }
        return KubernetesEndpoint(
            server: server,
            certificateAuthorityPEM: ca,
            credential: credential,
            insecureSkipTLSVerify: cluster["insecure-skip-tls-verify"] == .bool(true),
            tlsServerName: cluster["tls-server-name"]?.stringValue,
            origin: origin
        )
    }

    // MARK: in-cluster

    /// The standard place a pod finds its service account.
    public static let serviceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// The configuration of a pod: `KUBERNETES_SERVICE_HOST`/`_PORT` and the service account's
    /// token and CA under `directory`.
    public static func inCluster(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        directory: String = serviceAccountDirectory
    ) throws(KubernetesConfigError) -> KubernetesEndpoint {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty,
            let port = environment["KUBERNETES_SERVICE_PORT"], !port.isEmpty
        else {
            throw KubernetesConfigError(
                "not running in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set; pass --kubeconfig"
            )
        }
        let hostPart = host.contains(":") ? "[\(host)]" : host
        guard let server = URL(string: "https://\(hostPart):\(port)") else {
            throw KubernetesConfigError("KUBERNETES_SERVICE_HOST/PORT (\(host), \(port)) do not form a URL")
        }
        let tokenPath = (directory as NSString).appendingPathComponent("token")
        let caPath = (directory as NSString).appendingPathComponent("ca.crt")
        guard FileManager.default.isReadableFile(atPath: tokenPath) else {
            throw KubernetesConfigError("no service-account token at \(tokenPath); is the pod's service account mounted?")
        }
        let ca: String
        do {
            ca = try String(contentsOfFile: caPath, encoding: .utf8)
        } catch {
            throw KubernetesConfigError("cannot read the service-account CA at \(caPath): \(error.localizedDescription)")
        }
        return KubernetesEndpoint(server: server, certificateAuthorityPEM: ca, credential: .bearerTokenFile(tokenPath), origin: "in-cluster")
    }

    private static func material(
        inline: JSONValue?,
        file: JSONValue?,
        base: String,
        what: String,
        origin: String
    ) throws(KubernetesConfigError) -> String? {
        if let encoded = inline?.stringValue {
            guard let data = Data(base64Encoded: encoded.filter { !$0.isWhitespace }), let text = String(data: data, encoding: .utf8) else {
                throw KubernetesConfigError("\(origin): \(what)-data is not base64-encoded PEM")
            }
            return text
        }
        guard let path = file?.stringValue else { return nil }
        let resolved = resolve(path, base: base)
        do {
            return try String(contentsOfFile: resolved, encoding: .utf8)
        } catch {
            throw KubernetesConfigError("\(origin): cannot read \(what) \(resolved): \(error.localizedDescription)")
        }
    }

    private static func resolve(_ path: String, base: String) -> String {
        path.hasPrefix("/") ? path : (base as NSString).appendingPathComponent(path)
    }
}
