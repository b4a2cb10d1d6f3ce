import PolicyPlugin
import Testing
import TetherJSON
import TetherModel
import TetherPlugin

/// A federated autoscaler's readings at the hub, on their own.
@Suite("Autoscaler status at the hub")
struct AutoscalerAggregationTests {
    @Test("each metric's reading is averaged over the members, weighted by their replicas: utilization, resource amounts, and Pods and Object values")
    func weightedReadings() {
        func member(_ name: String, replicas: Int64, _ readings: [JSONValue]) -> MemberObjectStatus {
            MemberObjectStatus(cluster: name, health: .healthy, summary: ["currentReplicas": .integer(replicas), "currentMetrics": .array(readings)])
        }
        func cpu(_ utilization: Int64, _ average: String) -> JSONValue {
            [
                "type": "Resource",
                "resource": ["name": "cpu", "current": ["averageUtilization": .integer(utilization), "averageValue": .string(average)]],
            ]
        }
        func pods(_ average: String) -> JSONValue {
            ["type": "Pods", "pods": ["metric": ["name": "rps"], "current": ["averageValue": .string(average)]]]
        }
        func object(_ value: String) -> JSONValue {
            [
                "type": "Object",
                "object": [
                    "describedObject": ["kind": "Service", "name": "web"], "metric": ["name": "queue"], "current": ["value": .string(value)],
                ],
            ]
        }
        let hpa: JSONValue = ["kind": "HorizontalPodAutoscaler", "spec": ["maxReplicas": 10]]
        let status = PolicyPlugin().aggregateStatus(
            of: hpa,
            members: [
                member("a", replicas: 3, [cpu(40, "80m"), pods("30"), object("50")]),
                member("b", replicas: 1, [cpu(80, "160m"), pods("10"), object("10")]),
            ])
        let readings = status?["currentMetrics"]?.arrayElements ?? []
        #expect(readings.count == 3)
        #expect(readings.first?.value(at: "resource", "current") == ["averageUtilization": 50, "averageValue": "100m"])
        #expect(readings.dropFirst().first?.value(at: "pods", "current") == ["averageValue": "25"])
        #expect(readings.last?.value(at: "object", "current") == ["value": "40"])
        #expect(readings.last?.value(at: "object", "describedObject", "name") == "web")
        #expect(status?["currentReplicas"] == 4)
    }
}
