import TetherJSON
import TetherModel

/// The `autoscaling/v1` Scale view of an object with `spec.replicas`.
struct Scale {
    let object: JSONValue

    init(of target: JSONValue) {
        var metadata: [String: JSONValue] = [:]
        for field in ["name", "namespace", "uid", "resourceVersion", "creationTimestamp"] { metadata[field] = target.metadata[field] }
        let labels = target["spec"]?["selector"]?["matchLabels"]
        var selector = ""
        if case .object(let pairs)? = labels {
            selector = pairs.compactMap { key, value in value.stringValue.map { "\(key)=\($0)" } }.sorted().joined(separator: ",")
        }
        object = [
            "apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": .object(metadata),
            "spec": ["replicas": .integer(target["spec"]?["replicas"]?.integerValue ?? 1)],
            "status": ["replicas": .integer(target["status"]?["replicas"]?.integerValue ?? 0), "selector": .string(selector)],
        ]
    }
}
