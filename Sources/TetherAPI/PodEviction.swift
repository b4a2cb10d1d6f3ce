import Foundation
import Hummingbird
import NIOCore
import TetherJSON
import TetherModel
import TetherPlugin
import TetherStore

/// A Pod's `eviction` subresource (`policy/v1` Eviction), as kube-apiserver answers it: the
/// Pod is deleted only if the PodDisruptionBudget selecting it allows one more disruption, and
/// that disruption is taken from the budget's status in the same step, so two evictions racing
/// for the last allowed disruption cannot both win. `kubectl drain` evicts this way and retries
/// what is refused with 429.
///
/// Served only where a disruption controller keeps the budgets' status
/// (``APIServerConfiguration/servesEviction``: the simulated member); elsewhere `kubectl drain`
/// finds no eviction in discovery and deletes.
extension ResourceOperation {
    static let disruptionBudgets = ResourceType(group: "policy", resource: "poddisruptionbudgets", namespaced: true)
    /// As kube-apiserver: a budget whose controller has not caught up with this many evictions refuses more.
    static let maximumDisruptedPods = 2_000

    func evict(dryRun: Bool) async throws -> Response {
        let eviction = try await evictionBody()
        let name = path.name ?? ""
        let namespace = path.namespace ?? "default"
        if let named = eviction.name, named != name {
            throw APIError.badRequest("name in URL does not match name in Eviction object")
        }
        let pod = try await store.get(type, namespace: namespace, name: name)
        var preconditions = try await deletePreconditions(from: eviction["deleteOptions"] ?? [:])
        // The Pod the budget was checked against is the one deleted, not one made since under its name.
        if preconditions.uid == nil { preconditions.uid = pod.uid }
        // A Pod that is not running (or is already going) disrupts nothing, as in Kubernetes.
        let phase = pod.string(at: "status", "phase") ?? "Pending"
        if pod.deletionTimestamp == nil, !["Pending", "Succeeded", "Failed"].contains(phase) {
            try await takeDisruption(for: pod, namespace: namespace, dryRun: dryRun)
        }
        _ = try await store.delete(type, namespace: namespace, name: name, preconditions: preconditions, dryRun: dryRun)
        return ResourceHandler.json(["kind": "Status", "apiVersion": "v1", "metadata": [:], "status": "Success", "code": 201], status: .created)
    }

    /// The Eviction in the body, JSON or protobuf.
    private func evictionBody() async throws -> JSONValue {
        guard let body = try await smallBody("Eviction", protobuf: KubernetesProtobuf.decodeEviction) else {
            throw APIError.badRequest("an eviction needs a policy/v1 Eviction body")
        }
        let apiVersion = body.apiVersion ?? "policy/v1"
        guard body.kind ?? "Eviction" == "Eviction", ["policy/v1", "policy/v1beta1"].contains(apiVersion) else {
            throw APIError.badRequest("the body is \(apiVersion) \(body.kind ?? ""), not a policy/v1 Eviction")
        }
        return body
    }

    /// Takes one disruption from the budget selecting `pod`, or refuses the eviction as
    /// kube-apiserver does: 429 while the budget allows none (the client retries), 500 when
    /// several budgets select the Pod.
    private func takeDisruption(for pod: JSONValue, namespace: String, dryRun: Bool) async throws {
        let labels = pod.labels
        for _ in 0..<5 {
            let listed = try await store.list(Self.disruptionBudgets, options: ListOptions(namespace: namespace)).objects
            let budgets = listed.filter { Self.selects($0, labels: labels) }
            guard let first = budgets.first else { return }
            var budget = first
            guard budgets.count == 1 else {
                throw APIError(
                    code: 500, reason: "InternalError",
                    message: "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.")
            }
            let budgetName = budget.name ?? ""
            let current = budget.integer(at: "status", "currentHealthy") ?? 0
            let desired = budget.integer(at: "status", "desiredHealthy") ?? 0
            if !Conditions(pod).has("Ready", "True") {
                // An unready Pod adds nothing to the budget: it may go while the budget is met anyway.
                if budget.string(at: "spec", "unhealthyPodEvictionPolicy") == "AlwaysAllow" { return }
                if current >= desired, desired > 0 { return }
            }
            guard (budget.integer(at: "status", "observedGeneration") ?? 0) >= (budget.generation ?? 1) else {
                throw Self.budgetRefusal("The disruption budget \(budgetName) is still being processed by the server.")
            }
            let allowed = budget.integer(at: "status", "disruptionsAllowed") ?? 0
            var disrupted = budget.value(at: "status", "disruptedPods")?.objectMembers ?? [:]
            guard allowed >= 0 else { throw APIError.forbidden("pdb disruptions allowed is negative") }
            guard disrupted.count <= Self.maximumDisruptedPods else {
                throw APIError.forbidden("DisruptedPods map too big - too many evictions not confirmed by PDB controller")
            }
            guard allowed > 0 else {
                throw Self.budgetRefusal("The disruption budget \(budgetName) needs \(desired) healthy pods and has \(current) currently")
            }
            if dryRun { return }
            disrupted[pod.name ?? ""] = .string(kubernetesTimestamp())
            budget.set(.integer(allowed - 1), at: ["status", "disruptionsAllowed"])
            budget.set(.object(disrupted), at: ["status", "disruptedPods"])
            // On a conflict another eviction or the disruption controller wrote first: judge again from the newer budget.
            if try await recordDisruption(budget) { return }
        }
        throw APIError(
            code: 409, reason: "Conflict",
            message: "the PodDisruptionBudget selecting this pod kept changing; retry the eviction")
    }

    /// Writes the budget with one disruption taken; false when someone wrote it meanwhile.
    private func recordDisruption(_ budget: JSONValue) async throws -> Bool {
        do throws(StoreError) {
            _ = try await store.updateStatus(budget, as: Self.disruptionBudgets, dryRun: false)
            return true
        } catch {
            guard error.code == .conflict else { throw error }
            return false
        }
    }

    /// Whether `budget`'s selector matches a Pod's labels; a budget with no selector selects nothing.
    private static func selects(_ budget: JSONValue, labels: [String: String]) -> Bool {
        guard let selector = budget.value(at: "spec", "selector"), let parsed = LabelSelector(object: selector) else { return false }
        return parsed.matches(labels)
    }

    /// kube-apiserver's refusal, which `kubectl drain` reports and retries after 5 s. No
    /// `Retry-After`: client-go would otherwise retry it itself, silently.
    private static func budgetRefusal(_ cause: String) -> APIError {
        APIError(
            code: 429, reason: "TooManyRequests", message: "Cannot evict pod as it would violate the pod's disruption budget.",
            details: ["causes": [["reason": "DisruptionBudget", "message": .string(cause)]]])
    }
}
