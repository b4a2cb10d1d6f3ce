import Testing
import TetherJSON

@testable import TetherPlugin

/// The quota controller's counting and kube-apiserver's quota admission, on their own.
@Suite("ResourceQuota admission")
struct ResourceQuotaAdmissionTests {
    static func pod(_ name: String, cpu: [String?], initCPU: String? = nil, phase: String = "Running") -> JSONValue {
        var pod: JSONValue = [
            "metadata": ["name": .string(name), "namespace": "team"], "status": ["phase": .string(phase)],
            "spec": [
                "containers": .array(
                    cpu.enumerated().map { index, cpu in
                        var container: JSONValue = ["name": .string("c\(index)")]
                        if let cpu { container.set(.string(cpu), at: ["resources", "requests", "cpu"]) }
                        return container
                    })
            ],
        ]
        if let initCPU { pod.set([["name": "init", "resources": ["requests": ["cpu": .string(initCPU)]]]], at: ["spec", "initContainers"]) }
        return pod
    }

    static let quota: JSONValue = [
        "metadata": ["name": "q", "namespace": "team"], "spec": ["hard": ["pods": "2", "requests.cpu": "1500m", "requests.memory": "1Gi"]],
    ]

    @Test(
        "a Pod counts its containers' requests, at least its largest init container's; a finished Pod counts nothing; amounts print as kube prints them"
    )
    func counting() {
        let names = ["pods", "requests.cpu", "count/pods", "count/deployments.apps"]
        #expect(
            ResourceQuotaAdmission.usage(of: Self.pod("a", cpu: ["250m", "250m"]), resource: "pods", group: "", for: names)
                == ["pods": 1, "requests.cpu": 500, "count/pods": 1, "count/deployments.apps": 0])
        #expect(
            ResourceQuotaAdmission.usage(of: Self.pod("b", cpu: ["100m"], initCPU: "2"), resource: "pods", group: "", for: ["requests.cpu"]) == [
                "requests.cpu": 2_000
            ])
        #expect(
            ResourceQuotaAdmission.usage(of: Self.pod("c", cpu: ["1"], phase: "Succeeded"), resource: "pods", group: "", for: names).values.allSatisfy
            { $0 == 0 })
        #expect(ResourceQuotaAdmission.usage(of: [:], resource: "deployments", group: "apps", for: names)["count/deployments.apps"] == 1)
        #expect(ResourceQuotaAdmission.hard(of: Self.quota) == ["pods": 2, "requests.cpu": 1_500, "requests.memory": 1 << 30])
        #expect(ResourceQuotaAdmission.quantity(1_500, of: "requests.cpu") == "1500m" && ResourceQuotaAdmission.quantity(2_000, of: "cpu") == "2")
        #expect(
            ResourceQuotaAdmission.quantity(1 << 30, of: "requests.memory") == "1Gi" && ResourceQuotaAdmission.quantity(1_000, of: "pods") == "1000")
    }

    @Test("over a quota, or a tracked request left out, is refused in kube-apiserver's words; within it, admitted")
    func admission() async {
        let running = [Self.pod("a", cpu: ["1"])]
        func refusal(_ pod: JSONValue) async -> String? {
            await ResourceQuotaAdmission.refusal(of: pod, resource: "pods", group: "", quotas: [Self.quota]) { kind in
                kind.resource == "pods" ? running : []
            }?.reason
        }
        #expect(await refusal(Self.pod("bare", cpu: [nil, "1"])) == "failed quota: q: must specify requests.cpu for: c0; requests.memory for: c0,c1")
        var over = Self.pod("big", cpu: ["600m"])
        var sized = over.value(at: "spec", "containers")!.arrayElements[0]
        sized.set("1Mi", at: ["resources", "requests", "memory"])
        over.set([sized], at: ["spec", "containers"])
        #expect(await refusal(over) == "exceeded quota: q, requested: requests.cpu=600m, used: requests.cpu=1, limited: requests.cpu=1500m")
        sized.set("500m", at: ["resources", "requests", "cpu"])
        over.set([sized], at: ["spec", "containers"])
        #expect(await refusal(over) == nil)
    }

    @Test(
        "a scoped quota counts and limits only the Pods its scopes match (BestEffort, Terminating, PriorityClass by selector) and no other object; bad scopes are refused as kube refuses them"
    )
    func scopes() async {
        func quota(hard: JSONValue, scopes: [String] = [], selector: JSONValue? = nil) -> JSONValue {
            var quota: JSONValue = ["metadata": ["name": "scoped", "namespace": "team"], "spec": ["hard": hard]]
            if !scopes.isEmpty { quota.set(.array(scopes.map { .string($0) }), at: ["spec", "scopes"]) }
            if let selector { quota.set(["matchExpressions": selector], at: ["spec", "scopeSelector"]) }
            return quota
        }
        let bestEffort = quota(hard: ["pods": "1"], scopes: ["BestEffort"])
        let bare = Self.pod("bare", cpu: [nil])
        let sized = Self.pod("sized", cpu: ["100m"])
        #expect(ResourceQuotaAdmission.scopesMatch(bestEffort, bare, resource: "pods", group: ""))
        #expect(!ResourceQuotaAdmission.scopesMatch(bestEffort, sized, resource: "pods", group: ""))
        #expect(!ResourceQuotaAdmission.scopesMatch(bestEffort, ["metadata": ["name": "cm"]], resource: "configmaps", group: ""))
        var deadline = bare
        deadline.set(600, at: ["spec", "activeDeadlineSeconds"])
        let terminating = quota(hard: ["pods": "5"], scopes: ["Terminating", "NotBestEffort"])
        #expect(!ResourceQuotaAdmission.scopesMatch(terminating, deadline, resource: "pods", group: ""), "best effort")
        #expect(!ResourceQuotaAdmission.scopesMatch(terminating, sized, resource: "pods", group: ""), "no deadline")
        var high = sized
        high.set("high", at: ["spec", "priorityClassName"])
        let priority = quota(hard: ["pods": "1"], selector: [["scopeName": "PriorityClass", "operator": "In", "values": ["high", "critical"]]])
        #expect(ResourceQuotaAdmission.scopesMatch(priority, high, resource: "pods", group: ""))
        #expect(!ResourceQuotaAdmission.scopesMatch(priority, sized, resource: "pods", group: ""))
        let unprioritized = quota(hard: ["pods": "1"], selector: [["scopeName": "PriorityClass", "operator": "DoesNotExist"]])
        #expect(ResourceQuotaAdmission.scopesMatch(unprioritized, sized, resource: "pods", group: ""))

        // Counting and admission follow the scopes: the sized Pod running does not use the best-effort quota.
        let running = [bare, sized]
        let used = await ResourceQuotaAdmission.used(of: ["pods"], in: bestEffort) { _ in running }
        #expect(used == ["pods": 1])
        func refusal(_ pod: JSONValue) async -> String? {
            await ResourceQuotaAdmission.refusal(of: pod, resource: "pods", group: "", quotas: [bestEffort]) { _ in running }?.reason
        }
        #expect(await refusal(Self.pod("another", cpu: [nil])) == "exceeded quota: scoped, requested: pods=1, used: pods=1, limited: pods=1")
        #expect(await refusal(Self.pod("another", cpu: ["1"])) == nil)

        #expect(ResourceQuotaAdmission.scopeProblems(of: terminating).isEmpty && ResourceQuotaAdmission.scopeProblems(of: priority).isEmpty)
        let problems = ResourceQuotaAdmission.scopeProblems(
            of: quota(
                hard: ["pods": "1", "requests.cpu": "1", "services": "2"], scopes: ["BestEffort", "NotBestEffort", "Someday"],
                selector: [["scopeName": "Terminating", "operator": "In", "values": ["x"]], ["scopeName": "PriorityClass", "operator": "In"]]))
        #expect(
            problems.map { "\($0.field): \($0.message)" } == [
                "spec.scopes[2]: Unsupported value: \"Someday\": supported values: \"BestEffort\", \"CrossNamespacePodAffinity\", \"NotBestEffort\", \"NotTerminating\", \"PriorityClass\", \"Terminating\"",
                "spec.scopeSelector.matchExpressions[0].operator: Invalid value: \"In\": must be 'Exist' when scope is any of ResourceQuotaScopeTerminating, ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort, ResourceQuotaScopeNotBestEffort or ResourceQuotaScopeCrossNamespacePodAffinity",
                "spec.scopeSelector.matchExpressions[1].values: Required value: must be at least one value when `operator` is 'In' or 'NotIn' for scope selector",
                "spec.scopes: Invalid value: [\"BestEffort\",\"NotBestEffort\"]: conflicting scopes",
                "spec.hard[requests.cpu]: Invalid value: \"requests.cpu\": unsupported scope applied to resource",
                "spec.hard[services]: Invalid value: \"services\": unsupported scope applied to resource",
            ])
    }
}
