import Testing
import TetherJSON

@testable import TetherPlugin

/// kube-apiserver's LimitRanger admission, on its own.
@Suite("LimitRange admission")
struct LimitRangeAdmissionTests {
    static func pod(_ containers: [(String, requests: [String: String], limits: [String: String])]) -> JSONValue {
        [
            "metadata": ["name": "p"],
            "spec": [
                "containers": .array(
                    containers.map { name, requests, limits in
                        var container: JSONValue = ["name": .string(name)]
                        if !requests.isEmpty { container.set(.object(requests.mapValues(JSONValue.string)), at: ["resources", "requests"]) }
                        if !limits.isEmpty { container.set(.object(limits.mapValues(JSONValue.string)), at: ["resources", "limits"]) }
                        return container
                    })
            ],
        ]
    }

    static func range(_ items: JSONValue) -> JSONValue { ["metadata": ["name": "r"], "spec": ["limits": items]] }

    @Test("defaults fill only what a container leaves out, and the Pod says which")
    func defaults() throws {
        let range = Self.range([["type": "Container", "default": ["cpu": "500m"], "defaultRequest": ["cpu": "100m", "memory": "64Mi"]]])
        let admitted = try LimitRangeAdmission.admit(Self.pod([("a", [:], [:]), ("b", ["cpu": "200m"], ["cpu": "1"])]), limitRanges: [range])
        #expect(
            admitted.value(at: "spec", "containers")?.arrayElements[0]["resources"] == [
                "requests": ["cpu": "100m", "memory": "64Mi"], "limits": ["cpu": "500m"],
            ])
        #expect(
            admitted.value(at: "spec", "containers")?.arrayElements[1]["resources"] == [
                "requests": ["cpu": "200m", "memory": "64Mi"], "limits": ["cpu": "1"],
            ])
        #expect(
            admitted.value(at: "metadata", "annotations", "kubernetes.io/limit-ranger")
                == "LimitRanger plugin set: cpu, memory request for container a; cpu limit for container a; memory request for container b")
    }

    @Test("min, max and the limit-to-request ratio, per container and per Pod, in kube-apiserver's words; several at once in brackets")
    func bounds() {
        func reason(_ pod: JSONValue, _ items: JSONValue) -> String? {
            do throws(LimitRangeAdmission.Refusal) {
                _ = try LimitRangeAdmission.admit(pod, limitRanges: [Self.range(items)])
                return nil
            } catch {
                return error.reason
            }
        }
        let container: JSONValue = [["type": "Container", "min": ["cpu": "100m"], "max": ["memory": "1Gi"], "maxLimitRequestRatio": ["cpu": "2"]]]
        #expect(reason(Self.pod([("a", ["cpu": "200m"], ["cpu": "400m", "memory": "1Gi"])]), container) == nil)
        #expect(
            reason(Self.pod([("a", ["cpu": "50m"], ["cpu": "400m", "memory": "2Gi"])]), container)
                == "[minimum cpu usage per Container is 100m, but request is 50m, maximum memory usage per Container is 1Gi, but limit is 2Gi, cpu max limit to request ratio per Container is 2, but provided ratio is 8.000000]"
        )
        #expect(
            reason(Self.pod([("a", [:], [:])]), [["type": "Container", "max": ["cpu": "1"]]])
                == "maximum cpu usage per Container is 1.  No limit is specified")
        let perPod: JSONValue = [["type": "Pod", "max": ["cpu": "1"]]]
        #expect(
            reason(Self.pod([("a", ["cpu": "500m"], ["cpu": "600m"]), ("b", ["cpu": "500m"], ["cpu": "600m"])]), perPod)
                == "maximum cpu usage per Pod is 1, but limit is 1200m")
    }

    @Test("a claim's storage request is held to PersistentVolumeClaim items' min and max, in kube-apiserver's words")
    func claims() {
        let range: JSONValue = [
            "metadata": ["name": "storage"],
            "spec": [
                "limits": [
                    ["type": "PersistentVolumeClaim", "min": ["storage": "1Gi"], "max": ["storage": "10Gi"]],
                    ["type": "Container", "max": ["cpu": "1"]],
                ]
            ],
        ]
        func claim(_ storage: String?) -> JSONValue {
            var claim: JSONValue = ["metadata": ["name": "data"], "spec": ["accessModes": ["ReadWriteOnce"]]]
            if let storage { claim.set(.string(storage), at: ["spec", "resources", "requests", "storage"]) }
            return claim
        }
        #expect(LimitRangeAdmission.claimRefusal(claim("5Gi"), limitRanges: [range]) == nil)
        #expect(
            LimitRangeAdmission.claimRefusal(claim("500Mi"), limitRanges: [range])?.reason
                == "minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi")
        #expect(
            LimitRangeAdmission.claimRefusal(claim("20Gi"), limitRanges: [range])?.reason
                == "maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi")
        #expect(
            LimitRangeAdmission.claimRefusal(claim(nil), limitRanges: [range])?.reason
                == "[minimum storage usage per PersistentVolumeClaim is 1Gi.  No request is specified, maximum storage usage per PersistentVolumeClaim is 10Gi.  No request is specified]"
        )
        #expect(LimitRangeAdmission.claimRefusal(claim("20Gi"), limitRanges: []) == nil)
    }
}
