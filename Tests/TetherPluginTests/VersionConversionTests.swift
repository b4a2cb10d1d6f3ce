import BuiltinPlugins
import Testing
import TetherJSON
import TetherModel
import TetherPlugin

/// Versions served besides the storage version: found by URL and body, converted both ways,
/// and invisible to everything that works with stored objects.
@Suite("versions served besides the storage version")
struct VersionConversionTests {
    static let registry = BuiltinPlugins.hub

    @Test("batch/v1beta1, policy/v1beta1 and autoscaling/v1 are served, stored at v1, v1 and v2; the stored kinds are unchanged")
    func servedVersions() throws {
        let cronJob = try #require(Self.registry.kind(group: "batch", version: "v1beta1", plural: "cronjobs"))
        #expect(Self.registry.storageKind(of: cronJob)?.apiVersion == "batch/v1")
        let autoscaler = try #require(Self.registry.kind(apiVersion: "autoscaling/v1", kind: "HorizontalPodAutoscaler"))
        #expect(Self.registry.storageKind(of: autoscaler)?.apiVersion == "autoscaling/v2")
        #expect(Self.registry.kind(group: "policy", version: "v1beta1", plural: "poddisruptionbudgets") != nil)
        // Only storage versions are kinds: followed, propagated and announced once.
        #expect(!Self.registry.kinds.contains { $0.conversion != nil })
        #expect(Self.registry.kinds.filter { $0.kind == "CronJob" }.count == 1)
        #expect(Self.registry.groups.first { $0.name == "batch" }?.versions == ["v1", "v1beta1"])
        #expect(Self.registry.groups.first { $0.name == "autoscaling" }?.versions == ["v2", "v1"])
        // A renaming conversion changes apiVersion alone.
        let object: JSONValue = ["apiVersion": "batch/v1beta1", "kind": "CronJob", "metadata": ["name": "n"], "spec": ["schedule": "* * * * *"]]
        let stored = try #require(cronJob.conversion).toStorage(object)
        #expect(stored["apiVersion"] == "batch/v1" && stored["spec"] == object["spec"])
        #expect(try #require(cronJob.conversion).fromStorage(stored) == object)
    }

    static let autoscalerV2: JSONValue = try! JSONValue(
        parsing: """
            {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web", "annotations": {"team": "a"}},
             "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 2, "maxReplicas": 9,
                      "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 55}}},
                                  {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1Gi"}}}],
                      "behavior": {"scaleDown": {"stabilizationWindowSeconds": 120}}},
             "status": {"currentReplicas": 3, "desiredReplicas": 4,
                        "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 41}}}],
                        "conditions": [{"type": "AbleToScale", "status": "True"}]}}
            """)

    @Test("an autoscaler read at v1 and written back is the same v2 autoscaler: the metrics and behaviour v1 cannot hold ride in annotations")
    func autoscalerRoundTrip() throws {
        let v1 = try #require(Self.registry.kind(apiVersion: "autoscaling/v1", kind: "HorizontalPodAutoscaler"))
        let conversion = try #require(v1.conversion)
        let shown = conversion.fromStorage(Self.autoscalerV2)
        #expect(shown["apiVersion"] == "autoscaling/v1")
        #expect(shown["spec"]?["targetCPUUtilizationPercentage"] == 55)
        #expect(shown["spec"]?["metrics"] == nil)
        #expect(shown["status"]?["currentCPUUtilizationPercentage"] == 41)
        #expect(shown.metadata["annotations"]?["autoscaling.alpha.kubernetes.io/metrics"]?.stringValue?.contains("memory") == true)
        #expect(v1.schema.check(shown).isEmpty, "the v1 view fits the v1 schema")
        #expect(try conversion.toStorage(shown) == Self.autoscalerV2)

        // A v1 autoscaler as `kubectl autoscale` sends it becomes one CPU metric.
        let sent: JSONValue = [
            "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": ["name": "web"],
            "spec": ["scaleTargetRef": ["kind": "Deployment", "name": "web"], "maxReplicas": 5, "targetCPUUtilizationPercentage": 80],
        ]
        let stored = try conversion.toStorage(sent)
        #expect(
            stored["spec"]?["metrics"] == [
                ["type": "Resource", "resource": ["name": "cpu", "target": ["type": "Utilization", "averageUtilization": 80]]]
            ])
        #expect(conversion.fromStorage(stored) == sent)

        var broken = shown
        broken.metadata["annotations"] = ["autoscaling.alpha.kubernetes.io/metrics": "{not json"]
        #expect(throws: VersionConversionError.self) { try conversion.toStorage(broken) }
    }
}
