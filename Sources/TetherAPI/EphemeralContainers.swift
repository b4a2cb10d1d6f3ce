import TetherJSON
import TetherModel
import TetherStore

/// A Pod's `ephemeralcontainers` subresource (`kubectl debug POD --image=...`): the one way to
/// change `spec.ephemeralContainers`, and nothing else of the Pod. As in kube-apiserver,
/// containers are only added: one already there can be neither removed nor changed, and an
/// ephemeral container takes no ports, probes, lifecycle hooks or resources.
///
/// Served where a kubelet runs the Pods (``APIServerConfiguration/podsEndedByKubelet``: the
/// simulated member, whose kubelet shows the container running); the hub runs no Pod.
extension ResourceOperation {
    static func addsEphemeralContainers(_ path: APIPath.ResourcePath) -> Bool {
        path.group.isEmpty && path.plural == "pods" && path.name != nil && path.subresource == "ephemeralcontainers"
    }

    /// The stored Pod with `written`'s ephemeral containers, or 422 naming every problem.
    func withEphemeralContainers(of written: JSONValue) async throws -> JSONValue {
        let current = try await store.get(type, namespace: path.namespace, name: path.name ?? "")
        let added = written.value(at: "spec", "ephemeralContainers")?.arrayElements ?? []
        let problems = Self.ephemeralContainerProblems(added, in: current)
        guard problems.isEmpty else {
            throw APIError.invalid(kind: "Pod", group: "", name: current.name ?? "", problems: problems)
        }
        var updated = current
        var spec = current["spec"]?.objectMembers ?? [:]
        spec["ephemeralContainers"] = added.isEmpty ? nil : .array(added)
        updated[member: "spec"] = .object(spec)
        // The version the client read is the precondition, as for any update.
        updated.resourceVersion = written.resourceVersion ?? current.resourceVersion
        return try ownership(of: updated, current: current, applied: nil, subresource: "ephemeralcontainers")
    }

    /// kube-apiserver's words for what an ephemeral containers update may not do.
    static func ephemeralContainerProblems(_ proposed: [JSONValue], in pod: JSONValue) -> [String] {
        var problems: [String] = []
        let existing = pod.value(at: "spec", "ephemeralContainers")?.arrayElements ?? []
        let proposedByName = Dictionary(proposed.map { ($0["name"]?.stringValue ?? "", $0) }, uniquingKeysWith: { first, _ in first })
        for container in existing {
            let name = container["name"]?.stringValue ?? ""
            guard let kept = proposedByName[name] else {
                problems.append("spec.ephemeralContainers: Forbidden: existing ephemeral containers \"\(name)\" may not be removed")
                continue
            }
            if kept != container {
                problems.append("spec.ephemeralContainers[\"\(name)\"]: Forbidden: may not be changed once added")
            }
        }
        let regular = ["containers", "initContainers"].flatMap { pod.value(at: "spec", $0)?.arrayElements ?? [] }
        let regularNames = Set(regular.compactMap { $0["name"]?.stringValue })
        var seen = regularNames
        let existingNames = Set(existing.compactMap { $0["name"]?.stringValue })
        for (index, container) in proposed.enumerated() {
            let field = "spec.ephemeralContainers[\(index)]"
            let name = container["name"]?.stringValue ?? ""
            if name.isEmpty {
                problems.append("\(field).name: Required value")
            } else if let problem = KubernetesNames.dns1123LabelProblem(name) {
                problems.append("\(field).name: Invalid value: \"\(name)\": \(problem)")
            } else if !seen.insert(name).inserted {
                problems.append("\(field).name: Duplicate value: \"\(name)\"")
            }
            guard !existingNames.contains(name) else { continue }
            if (container["image"]?.stringValue ?? "").isEmpty { problems.append("\(field).image: Required value") }
            for forbidden in ["ports", "livenessProbe", "readinessProbe", "startupProbe", "lifecycle", "resizePolicy", "restartPolicy"]
            where container[forbidden].map({ $0 != .null && $0 != [:] && $0 != [] }) == true {
                problems.append("\(field).\(forbidden): Forbidden: cannot be set for an Ephemeral Container")
            }
            if let resources = container["resources"]?.objectMembers, resources.values.contains(where: { $0 != [:] && $0 != .null }) {
                problems.append("\(field).resources: Forbidden: cannot be set for an Ephemeral Container")
            }
            if let target = container["targetContainerName"]?.stringValue, !target.isEmpty, !regularNames.contains(target) {
                problems.append("\(field).targetContainerName: Not found: \"\(target)\"")
            }
        }
        return problems
    }
}
