import TetherJSON

/// The defaults kube-apiserver writes into the built-in kinds, which clients read back and rely
/// on (a Deployment's `strategy`, a container's `imagePullPolicy`): the hub and the simulated
/// members fill them in on every write, so an object looks as a Kubernetes client expects and
/// `kubectl diff` after `apply` is empty. A field already set is never changed.
public enum KubernetesDefaults {
    /// A Pod template's spec at `path`; `restartPolicy` is what its kind defaults it to.
    public static func podTemplate(at path: [String], in object: inout JSONValue) {
        podSpec(at: path + ["spec"], in: &object)
    }

    /// A Pod spec at `path` (a Pod's own, or a template's).
    public static func podSpec(at path: [String], in object: inout JSONValue) {
        guard var spec = object.value(at: path), case .object = spec else { return }
        fill(&spec, ["restartPolicy"], "Always")
        fill(&spec, ["terminationGracePeriodSeconds"], .integer(30))
        fill(&spec, ["dnsPolicy"], "ClusterFirst")
        fill(&spec, ["securityContext"], [:])
        fill(&spec, ["schedulerName"], "default-scheduler")
        for list in ["containers", "initContainers"] {
            guard case .array(let containers)? = spec[list] else { continue }
            spec.set(.array(containers.map(container)), at: [list])
        }
        object.set(spec, at: path)
    }

    /// A container: how its image is pulled, where its termination message goes, its ports'
    /// protocol, its probes' timing and HTTP scheme and path.
    public static func container(_ value: JSONValue) -> JSONValue {
        guard case .object = value else { return value }
        var container = value
        fill(&container, ["terminationMessagePath"], "/dev/termination-log")
        fill(&container, ["terminationMessagePolicy"], "File")
        fill(&container, ["resources"], [:])
        if let image = container["image"]?.stringValue {
            fill(&container, ["imagePullPolicy"], .string(pullsAlways(image) ? "Always" : "IfNotPresent"))
        }
        for name in ["livenessProbe", "readinessProbe", "startupProbe"] {
            guard case .object = container[name] else { continue }
            var probe = container[name] ?? [:]
            fill(&probe, ["timeoutSeconds"], 1)
            fill(&probe, ["periodSeconds"], 10)
            fill(&probe, ["successThreshold"], 1)
            fill(&probe, ["failureThreshold"], 3)
            if case .object = probe["httpGet"] {
                fill(&probe, ["httpGet", "path"], "/")
                fill(&probe, ["httpGet", "scheme"], "HTTP")
            }
            container.set(probe, at: [name])
        }
        for hook in ["postStart", "preStop"] {
            guard case .object = container.value(at: "lifecycle", hook, "httpGet") else { continue }
            fill(&container, ["lifecycle", hook, "httpGet", "path"], "/")
            fill(&container, ["lifecycle", hook, "httpGet", "scheme"], "HTTP")
        }
        if case .array(let ports)? = container["ports"] {
            container.set(
                .array(
                    ports.map { port in
                        var port = port
                        if case .object = port { fill(&port, ["protocol"], "TCP") }
                        return port
                    }), at: ["ports"])
        }
        return container
    }

    /// Kubernetes pulls `:latest` and untagged images every time, tagged or pinned ones if absent.
    static func pullsAlways(_ image: String) -> Bool {
        if image.contains("@") { return false }
        let name = image.split(separator: "/").last.map(String.init) ?? image
        guard let colon = name.lastIndex(of: ":") else { return true }
        return name[name.index(after: colon)...] == "latest"
    }

    /// kube-apiserver's `DefaultTolerationSeconds` admission, for a Pod (not a template): a Pod
    /// that does not already tolerate a node being not ready or unreachable (`NoExecute`, or a
    /// toleration with an empty key or effect) tolerates it for 300 s, so its Pods leave a failed
    /// node five minutes after the node controller taints it.
    public static func defaultTolerationSeconds(in pod: inout JSONValue) {
        var tolerations = pod.value(at: "spec", "tolerations")?.arrayElements ?? []
        for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
            let tolerated = tolerations.contains { toleration in
                let tolerationKey = toleration["key"]?.stringValue ?? ""
                let effect = toleration["effect"]?.stringValue ?? ""
                return (tolerationKey == key || tolerationKey.isEmpty) && (effect == "NoExecute" || effect.isEmpty)
            }
            if !tolerated { tolerations.append(["key": .string(key), "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300]) }
        }
        pod.set(.array(tolerations), at: ["spec", "tolerations"])
    }

    /// Sets `value` at `path` unless something is there.
    public static func fill(_ object: inout JSONValue, _ path: [String], _ value: JSONValue) {
        if object.value(at: path) == nil || object.value(at: path) == .null { object.set(value, at: path) }
    }
}
