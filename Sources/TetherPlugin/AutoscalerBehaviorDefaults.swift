import TetherJSON

/// kube-apiserver's defaults of an `autoscaling/v2` autoscaler's `behavior`, applied only when
/// the autoscaler states a behavior (one without keeps the controller's older rule): scale up
/// by at most 4 Pods or 100 % per 15 s, at once; scale down by at most 100 % per 15 s, after
/// a 300 s stabilization window; `selectPolicy: Max`.
public enum AutoscalerBehaviorDefaults {
    public static func rules(up: Bool) -> JSONValue {
        [
            "stabilizationWindowSeconds": up ? 0 : 300, "selectPolicy": "Max",
            "policies": up
                ? [["type": "Pods", "value": 4, "periodSeconds": 15], ["type": "Percent", "value": 100, "periodSeconds": 15]]
                : [["type": "Percent", "value": 100, "periodSeconds": 15]],
        ]
    }

    /// `behavior` with each direction's missing rules, window, policy selection and policies filled.
    public static func filled(_ behavior: JSONValue) -> JSONValue {
        var filled = behavior
        for (direction, up) in [("scaleUp", true), ("scaleDown", false)] {
            let defaults = rules(up: up)
            var stated = behavior[direction] ?? [:]
            for field in ["stabilizationWindowSeconds", "selectPolicy"] where stated[field] == nil { stated[member: field] = defaults[field] }
            if (stated["policies"]?.arrayElements ?? []).isEmpty { stated[member: "policies"] = defaults["policies"] }
            filled[member: direction] = stated
        }
        return filled
    }
}
