import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import TetherJSON
import TetherModel
import TetherSecurity

/// Talks to the running hub's Kubernetes API as the federation's admin (`D/admin.crt`).
struct HubAPI {
    let base: String
    let client: HTTPClient

    init(directory: FederationDirectory, hub: String?) throws {
        if let hub {
            base = hub.hasSuffix("/") ? String(hub.dropLast()) : hub
        } else {
            guard let port = try directory.readPorts()?.api else {
                throw ValidationError(
                    "no running hub found (\(directory.portsPath) names no API port); start `tether-hub --dir \(directory.path)` or pass --hub https://HOST:PORT"
                )
            }
            let host = (try? directory.loadConfig().hubHosts.first) ?? "127.0.0.1"
            base = "https://\(host.contains(":") ? "[\(host)]" : host):\(port)"
        }
        client = HTTPClient(
            eventLoopGroupProvider: .singleton, configuration: HTTPClient.Configuration(tlsConfiguration: try directory.adminClientTLS()))
    }

    func shutdown() async { try? await client.shutdown() }

    /// One request; the status code and the decoded body (null when empty or not JSON).
    func send(
        _ method: HTTPMethod, _ path: String, body: JSONValue? = nil, contentType: String = "application/json", accept: String = "application/json"
    ) async throws -> (Int, JSONValue) {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        request.headers.add(name: "Accept", value: accept)
        if let body {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(bytes: try body.serialized()))
        }
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: .seconds(30))
        } catch {
            throw ValidationError("cannot reach the hub at \(base): \(error); is tether-hub running?")
        }
        let bytes = try await response.body.collect(upTo: 16 << 20)
        let decoded = (try? JSONValue(parsing: bytes.readableBytesView)) ?? .null
        return (Int(response.status.code), decoded)
    }

    /// A GET asking for `accept` (a Table, aggregated discovery).
    func read(_ path: String, accept: String) async throws -> (Int, JSONValue) {
        try await send(.GET, path, accept: accept)
    }

    /// Waits on a watch of one Cluster until it is deleted.
    func waitForDeletion(ofCluster name: String, from resourceVersion: String, within timeout: TimeAmount) async throws -> Bool {
        var request = HTTPClientRequest(
            url: base + "/apis/core.tether.io/v1alpha1/clusters?watch=true&fieldSelector=metadata.name%3D\(name)&resourceVersion=\(resourceVersion)"
        )
        request.headers.add(name: "Accept", value: "application/json")
        let response = try await client.execute(request, timeout: timeout)
        var line: [UInt8] = []
        for try await chunk in response.body {
            for byte in chunk.readableBytesView {
                guard byte == UInt8(ascii: "\n") else {
                    line.append(byte)
                    continue
                }
                if let event = try? JSONValue(parsing: line), event["type"] == "DELETED" { return true }
                line.removeAll(keepingCapacity: true)
            }
        }
        return false
    }
}

struct JoinCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "join",
        abstract: "Register a member cluster at the running hub and write its agent bundle.",
        discussion: """
            Creates the Cluster object NAME (with --label labels, used by placement policies) at the \
            hub, then writes the agent bundle to --out: tls.key, tls.crt for \
            spiffe://<trust-domain>/cluster/NAME, ca.crt and agent.json (hub addresses). With \
            --emit-manifests, also writes OUT/manifests.yaml: the Namespace, ServiceAccount, RBAC, \
            bundle Secret and Deployment that run the agent inside the member cluster.
            """
    )

    @Argument(help: "The member cluster's name (a DNS label).")
    var name: String

    @Option(name: .long, help: "The federation directory (from `tetherctl init`).")
    var dir: String

    @Option(name: .long, help: "The bundle directory to write.")
    var out: String

    @Option(name: .long, help: "A label for the Cluster object, key=value (repeatable).")
    var label: [String] = []

    @Flag(name: .long, help: "Also write OUT/manifests.yaml to install the agent in the member cluster.")
    var emitManifests = false

    @Option(name: .long, help: "With --emit-manifests: the HTTP proxy the agent reaches the hub through (http:// or https://, no credentials).")
    var proxy: String?

    @Option(name: .long, help: "With --emit-manifests and --proxy: hosts the agent reaches directly (NO_PROXY).")
    var noProxy: String?

    @Option(name: .long, help: "With --emit-manifests and --proxy: a file holding the proxy's user:password, put in a Secret.")
    var proxyCredentialsFile: String?

    @Option(name: .long, help: "With --emit-manifests and an https:// --proxy: the PEM CA(s) of the proxy's certificate.")
    var proxyCa: String?

    @Option(name: .long, help: "The agent image for --emit-manifests: `make images` builds tether-agent:0.1.0; push it where the member pulls from.")
    var image = "tether-agent:0.1.0"

    @Option(
        name: .long,
        help:
            "A kind the agent may write, group/Kind (core group empty: /ConfigMap); repeatable. Written to agent.json; the emitted RBAC grants these and no more. Default: the kinds of the agent's plugins."
    )
    var allowKind: [String] = []

    @Option(name: .long, help: "A namespace the agent may write in; repeatable (default: every one not denied). The emitted RBAC binds only these.")
    var allowNamespace: [String] = []

    @Option(name: .long, help: "A namespace the agent never writes in; repeatable (default: kube-system, kube-public, kube-node-lease).")
    var denyNamespace: [String] = []

    @Option(
        name: .customLong("hub-address"),
        help:
            "A hub agent-listener address host:port for agent.json (repeatable: every hub sharing the store, in order; default: each hub host at the port in DIR/hub.ports.json)."
    )
    var hubAddresses: [String] = []

    @Option(name: .long, help: "The hub's API URL; default: from DIR/hub.ports.json.")
    var hub: String?

    @Option(name: .long, help: "Output format: text or json.")
    var output: OutputFormat = .text

    func validate() throws {
        do {
            try TetherIdentity.validateClusterName(name)
        } catch {
            throw ValidationError(error.message)
        }
        for item in label where item.split(separator: "=", maxSplits: 1).count != 2 {
            throw ValidationError("--label '\(item)' is not key=value")
        }
        if proxy != nil || noProxy != nil || proxyCredentialsFile != nil || proxyCa != nil {
            guard emitManifests else {
                throw ValidationError("--proxy, --no-proxy, --proxy-credentials-file and --proxy-ca go with --emit-manifests")
            }
            guard let proxy, let url = URLComponents(string: proxy), ["http", "https"].contains(url.scheme ?? ""), url.host?.isEmpty == false
            else {
                throw ValidationError("--proxy must be an http:// or https:// URL such as http://proxy.example.com:3128")
            }
            guard url.user == nil else { throw ValidationError("--proxy must not carry credentials; put user:password in --proxy-credentials-file") }
            if proxyCa != nil, url.scheme != "https" { throw ValidationError("--proxy-ca is for an https:// proxy") }
        }
        for kind in allowKind where !kind.contains("/") {
            throw ValidationError("--allow-kind \(kind): write group/Kind, with an empty group for the core kinds (/ConfigMap)")
        }
    }

    func run() async throws {
        let directory = FederationDirectory(path: dir)
        var labels: [String: JSONValue] = [:]
        for item in label {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            labels[parts[0]] = .string(parts[1])
        }
        let api = try HubAPI(directory: directory, hub: hub)
        let cluster: JSONValue = [
            "apiVersion": "core.tether.io/v1alpha1", "kind": "Cluster",
            "metadata": ["name": .string(name), "labels": .object(labels)], "spec": [:],
        ]
        let (status, answer) = try await api.send(.POST, "/apis/core.tether.io/v1alpha1/clusters", body: cluster)
        await api.shutdown()
        switch status {
        case 201: break
        case 409: throw ValidationError("cluster \(name) has already joined; `tetherctl unjoin \(name) --dir \(dir)` first")
        default: throw ValidationError("the hub refused to register \(name): \(status) \(answer["message"]?.stringValue ?? "")")
        }
        let ports = try directory.readPorts()
        let hosts = (try? directory.loadConfig().hubHosts) ?? ["127.0.0.1"]
        let addresses =
            hubAddresses.isEmpty ? ports?.agent.map { port in hosts.map { "\($0.contains(":") ? "[\($0)]" : $0):\(port)" } } : hubAddresses
        let bundle = try directory.issueAgentBundle(cluster: name, to: out, hubAddresses: addresses)
        if !allowKind.isEmpty || !allowNamespace.isEmpty || !denyNamespace.isEmpty {
            var manifest = try bundle.loadManifest()
            manifest.allowKinds = allowKind.isEmpty ? nil : allowKind
            manifest.allowNamespaces = allowNamespace.isEmpty ? nil : allowNamespace
            manifest.denyNamespaces = denyNamespace.isEmpty ? nil : denyNamespace
            try PEMFiles.writeJSON(manifest, to: bundle.manifestPath)
        }
        let context = try directory.updateMemberContext(name)
        var manifests: String?
        if emitManifests {
            let path = (out as NSString).appendingPathComponent("manifests.yaml")
            try PEMFiles.writeAtomically(
                try AgentManifests(cluster: name, bundle: bundle, image: image, proxy: try manifestProxy()).yaml(), to: path,
                mode: PEMFiles.privateKeyMode)
            manifests = path
        }
        switch output {
        case .json:
            try printJSON(["cluster": name, "bundle": bundle.path, "manifests": manifests ?? "", "context": context])
        case .text:
            print("cluster \(name) joined; agent bundle written to \(bundle.path)")
            if let manifests { print("install in the member: kubectl apply -f \(manifests)") }
            print("or run: tether-agent --bundle \(bundle.path) --kubeconfig MEMBER_KUBECONFIG")
            print("reach its API through the hub: kubectl --kubeconfig \(directory.kubeconfigPath) --context \(context) get pods")
        }
    }
}

extension JoinCommand {
    /// The proxy settings the manifests carry, with the credentials and CA read from their files.
    func manifestProxy() throws -> AgentManifests.Proxy? {
        guard let proxy else { return nil }
        func read(_ path: String?, _ what: String) throws -> String? {
            guard let path else { return nil }
            do {
                return try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw ValidationError("cannot read the \(what) \(path): \(error.localizedDescription)")
            }
        }
        let credentials = try read(proxyCredentialsFile, "proxy credentials file")?.split(whereSeparator: \.isNewline).first.map(String.init)
        if let credentials, !credentials.contains(":") {
            throw ValidationError("the proxy credentials file must hold one line user:password")
        }
        return AgentManifests.Proxy(url: proxy, noProxy: noProxy, credentials: credentials, caPEM: try read(proxyCa, "proxy CA file"))
    }
}

struct UnjoinCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unjoin",
        abstract: "Remove a member cluster: its agent prunes what Tether put there, then is refused.",
        discussion: """
            Deletes the Cluster object NAME at the hub. The hub refuses the cluster's identity from \
            that moment, sends its agent an empty desired set so it deletes every object it manages \
            (or, with --orphan, leaves them in place, no longer managed), then ends the session. \
            Waits until the hub has let the cluster go.
            """
    )

    @Argument(help: "The member cluster's name.")
    var name: String

    @Option(name: .long, help: "The federation directory (from `tetherctl init`).")
    var dir: String

    @Flag(name: .long, help: "Leave the cluster's objects in place instead of deleting them.")
    var orphan = false

    @Option(name: .long, help: "Seconds to wait for the hub to finish.")
    var timeout: Int = 90

    @Option(name: .long, help: "The hub's API URL; default: from DIR/hub.ports.json.")
    var hub: String?

    func run() async throws {
        let api = try HubAPI(directory: FederationDirectory(path: dir), hub: hub)
        do {
            try await unjoin(api)
        } catch {
            await api.shutdown()
            throw error
        }
        await api.shutdown()
    }

    private func unjoin(_ api: HubAPI) async throws {
        let path = "/apis/core.tether.io/v1alpha1/clusters/\(name)"
        let mark: JSONValue = ["metadata": ["annotations": ["tether.io/unjoin": .string(orphan ? "orphan" : "prune")]]]
        let (patched, answer) = try await api.send(.PATCH, path, body: mark, contentType: "application/merge-patch+json")
        guard patched == 200 else {
            throw ValidationError(
                patched == 404 ? "cluster \(name) is not joined" : "the hub refused: \(patched) \(answer["message"]?.stringValue ?? "")"
            )
        }
        let (deleted, object) = try await api.send(.DELETE, path)
        guard deleted == 200 || deleted == 202 else {
            throw ValidationError("the hub refused to delete cluster \(name): \(deleted) \(object["message"]?.stringValue ?? "")")
        }
        if object.deletionTimestamp != nil, let version = object.resourceVersion {
            guard try await api.waitForDeletion(ofCluster: name, from: String(version), within: .seconds(Int64(timeout))) else {
                throw ValidationError("cluster \(name) is still being unjoined after \(timeout) s; see the hub's log")
            }
        }
        // Its certificates go on the revocation list too, so they stay refused if the name is joined again.
        let directory = FederationDirectory(path: dir)
        let identity = try TetherIdentity.cluster(name, trustDomain: try directory.loadConfig().trustDomain)
        try directory.revoke(RevocationList.Entry(identity: identity.uri, reason: "cluster \(name) unjoined"))
        try directory.updateMemberContext(name, removing: true)
        print("cluster \(name) unjoined; its objects were \(orphan ? "left in place" : "pruned"), its certificates are revoked")
    }
}
