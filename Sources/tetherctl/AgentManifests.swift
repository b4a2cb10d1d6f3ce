import BuiltinPlugins
import Foundation
import TetherPlugin
import TetherSecurity

/// What installs the agent in a member cluster: namespace, identity, permissions, bundle, agent.
///
/// The RBAC grants what the agent's allow-list (agent.json) lets it write, and no more: each
/// allowed kind's resource with the verbs applying and pruning need, in the allowed namespaces
/// only when they are listed; reading Nodes for the cluster's health. A namespace the allow-list
/// denies cannot be expressed in RBAC, which has no deny: the agent refuses those itself.
struct AgentManifests {
    var cluster: String
    var bundle: AgentBundle
    var image: String
    /// The agent's HTTP proxy to the hub, when it needs one.
    var proxy: Proxy?

    struct Proxy {
        /// `http://` or `https://` host and port, without credentials.
        var url: String
        var noProxy: String?
        /// `user:password`, put in a Secret of its own and given as a file.
        var credentials: String?
        /// PEM roots of an `https://` proxy.
        var caPEM: String?
    }

    /// Where the probes and metrics are served in the pod.
    static let probePort = 9464

    static let writeVerbs = ["get", "list", "watch", "create", "update", "patch", "delete"]

    /// Each allowed kind's API group and plural resource, split into namespaced and cluster-scoped.
    static func resources(allowKinds: [String]?, registry: KindRegistry = BuiltinPlugins.agent) -> (
        namespaced: [String: [String]], clusterScoped: [String: [String]]
    ) {
        let allowed = Set(allowKinds ?? registry.kindsAllowedByDefault.map { "\($0.group)/\($0.kind)" })
        var namespaced: [String: [String]] = [:]
        var clusterScoped: [String: [String]] = [:]
        for key in allowed.sorted() {
            let parts = key.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            let (group, kind) = (parts[0], parts.count > 1 ? parts[1] : "")
            // The plural from the kind's descriptor; a kind no plugin declares is assumed namespaced,
            // with Kubernetes' usual plural.
            let descriptor = registry.kinds.first { $0.group == group && $0.kind == kind }
            let plural = descriptor?.plural ?? kind.lowercased() + "s"
            if descriptor?.namespaced == false {
                clusterScoped[group, default: []].append(plural)
            } else {
                namespaced[group, default: []].append(plural)
            }
        }
        return (namespaced, clusterScoped)
    }

    static func rules(_ byGroup: [String: [String]], verbs: [String]) -> String {
        byGroup.sorted { $0.key < $1.key }.map { group, plurals in
            // Kubernetes lets a subject write a Role or binding that grants more than it holds
            // only with `escalate` and `bind`: an agent applies what the hub sends, not what it holds.
            let granted = group == "rbac.authorization.k8s.io" ? verbs + ["bind", "escalate"] : verbs
            return
                "- apiGroups: [\"\(group)\"]\n  resources: [\(plurals.sorted().map { "\"\($0)\"" }.joined(separator: ", "))]\n  verbs: [\(granted.map { "\"\($0)\"" }.joined(separator: ", "))]"
        }.joined(separator: "\n")
    }

    func yaml() throws -> String {
        func encoded(_ path: String) throws -> String { Data(try PEMFiles.readText(at: path).utf8).base64EncodedString() }
        let manifest = try bundle.loadManifest()
        let manifestJSON = Data(try String(contentsOfFile: bundle.manifestPath, encoding: .utf8).utf8).base64EncodedString()
        let (namespaced, clusterScoped) = Self.resources(allowKinds: manifest.allowKinds)
        let nodeRule = "- apiGroups: [\"\"]\n  resources: [\"nodes\"]\n  verbs: [\"get\", \"list\", \"watch\"]"
        let clusterRules = [Self.rules(clusterScoped, verbs: Self.writeVerbs), nodeRule].filter { !$0.isEmpty }.joined(separator: "\n")
        let namespacedRules = Self.rules(namespaced, verbs: Self.writeVerbs)
        var rbac = """
            # What the agent's allow-list lets it write, and reading Nodes for the cluster's health.
            apiVersion: rbac.authorization.k8s.io/v1
            kind: ClusterRole
            metadata: {name: tether-agent-cluster}
            rules:
            \(clusterRules.replacingOccurrences(of: "\n", with: "\n"))
            ---
            apiVersion: rbac.authorization.k8s.io/v1
            kind: ClusterRoleBinding
            metadata: {name: tether-agent-cluster}
            roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: tether-agent-cluster}
            subjects: [{kind: ServiceAccount, name: tether-agent, namespace: tether-system}]
            ---
            apiVersion: rbac.authorization.k8s.io/v1
            kind: ClusterRole
            metadata: {name: tether-agent}
            rules:\(namespacedRules.isEmpty ? " []" : "\n" + namespacedRules)

            """
        if let namespaces = manifest.allowNamespaces {
            for namespace in namespaces.sorted() {
                rbac += """
                    ---
                    apiVersion: rbac.authorization.k8s.io/v1
                    kind: RoleBinding
                    metadata: {name: tether-agent, namespace: \(namespace)}
                    roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: tether-agent}
                    subjects: [{kind: ServiceAccount, name: tether-agent, namespace: tether-system}]

                    """
            }
        } else {
            rbac += """
                ---
                apiVersion: rbac.authorization.k8s.io/v1
                kind: ClusterRoleBinding
                metadata: {name: tether-agent}
                roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: tether-agent}
                subjects: [{kind: ServiceAccount, name: tether-agent, namespace: tether-system}]

                """
        }
        var proxySecret = ""
        var proxyEnvironment = ""
        var proxyArguments = ""
        var proxyMount = ""
        var proxyVolume = ""
        if let proxy {
            proxyEnvironment = "\n        env:\n        - {name: HTTPS_PROXY, value: \"\(proxy.url)\"}"
            if let noProxy = proxy.noProxy {
                // The member's API (the service and its cluster IP) is never reached through the proxy.
                proxyEnvironment += "\n        - {name: NO_PROXY, value: \"\(noProxy)\"}"
            }
            var data: [String] = []
            if let credentials = proxy.credentials {
                data.append("  credentials: \(Data(credentials.utf8).base64EncodedString())")
                proxyArguments += ", \"--proxy-credentials-file\", \"/etc/tether/proxy/credentials\""
            }
            if let caPEM = proxy.caPEM {
                data.append("  ca.crt: \(Data(caPEM.utf8).base64EncodedString())")
                proxyArguments += ", \"--proxy-ca\", \"/etc/tether/proxy/ca.crt\""
            }
            if !data.isEmpty {
                proxySecret = """
                    ---
                    apiVersion: v1
                    kind: Secret
                    metadata: {name: tether-agent-proxy, namespace: tether-system}
                    type: Opaque
                    data:
                    \(data.joined(separator: "\n"))

                    """
                proxyMount = "\n        - {name: proxy, mountPath: /etc/tether/proxy, readOnly: true}"
                proxyVolume = "\n      - {name: proxy, secret: {secretName: tether-agent-proxy}}"
            }
        }
        return """
            # Installs the Tether agent for cluster \(cluster). The Secret holds its private key: keep this file safe.
            apiVersion: v1
            kind: Namespace
            metadata: {name: tether-system}
            ---
            apiVersion: v1
            kind: ServiceAccount
            metadata: {name: tether-agent, namespace: tether-system}
            ---
            \(rbac)---
            apiVersion: v1
            kind: Secret
            metadata: {name: tether-agent-bundle, namespace: tether-system}
            type: Opaque
            data:
              tls.crt: \(try encoded(bundle.certificatePath))
              tls.key: \(try encoded(bundle.keyPath))
              ca.crt: \(try encoded(bundle.caBundlePath))
              agent.json: \(manifestJSON)
            \(proxySecret)---
            # The agent's state (desired set, fencing baseline, inventory of what it made) must outlive
            # the pod: an agent that lost it prunes nothing it made before.
            apiVersion: v1
            kind: PersistentVolumeClaim
            metadata: {name: tether-agent-state, namespace: tether-system}
            spec:
              accessModes: [ReadWriteOnce]
              resources: {requests: {storage: 64Mi}}
            ---
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: tether-agent, namespace: tether-system, labels: {app: tether-agent}}
            spec:
              replicas: 1
              strategy: {type: Recreate}
              selector: {matchLabels: {app: tether-agent}}
              template:
                metadata: {labels: {app: tether-agent}}
                spec:
                  serviceAccountName: tether-agent
                  securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532, seccompProfile: {type: RuntimeDefault}}
                  containers:
                  - name: agent
                    image: \(image)
                    args: ["--bundle", "/etc/tether/bundle", "--in-cluster", "--state-dir", "/var/lib/tether", "--log-format", "json", "--metrics-listen", "0.0.0.0:\(Self.probePort)"\(proxyArguments)]\(proxyEnvironment)
                    ports: [{name: probes, containerPort: \(Self.probePort)}]
                    # Alive while the process answers; ready while its session to the hub is up.
                    livenessProbe: {httpGet: {path: /healthz, port: probes}, periodSeconds: 20, failureThreshold: 3}
                    readinessProbe: {httpGet: {path: /readyz, port: probes}, periodSeconds: 5}
                    securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
                    volumeMounts:
                    - {name: bundle, mountPath: /etc/tether/bundle, readOnly: true}
                    - {name: state, mountPath: /var/lib/tether}\(proxyMount)
                    resources: {requests: {cpu: 50m, memory: 32Mi}, limits: {memory: 128Mi}}
                  volumes:
                  - {name: bundle, secret: {secretName: tether-agent-bundle}}
                  - {name: state, persistentVolumeClaim: {claimName: tether-agent-state}}\(proxyVolume)

            """
    }
}
