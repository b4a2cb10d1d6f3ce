import TetherPlugin

/// The nested messages of the policy kinds that take the most lines: a NetworkPolicy's rules and
/// an `autoscaling/v2` autoscaler's metrics, behaviour and status, numbered as
/// k8s.io/api's `networking/v1` and `autoscaling/v2` number them.
extension PolicyPlugin {
    /// `networking/v1.NetworkPolicyIngressRule` (`from`) or `NetworkPolicyEgressRule` (`to`).
    static func networkPolicyRule(peers: String) -> FieldSchema {
        .numbered(
            .field(
                1, "ports",
                .array(
                    .numbered(
                        .field(1, "protocol", .string, optional: true), .field(2, "port", .intOrString, optional: true),
                        .field(3, "endPort", .integer, optional: true)))),
            .field(
                2, peers,
                .array(
                    .numbered(
                        .field(1, "podSelector", .labelSelector, optional: true), .field(2, "namespaceSelector", .labelSelector, optional: true),
                        .field(3, "ipBlock", .numbered(.field(1, "cidr", .string), .field(2, "except", .stringList)), optional: true)
                    )))
        )
    }

    /// `autoscaling/v2.CrossVersionObjectReference`.
    static let crossVersionReference = FieldSchema.numbered(.field(1, "kind", .string), .field(2, "name", .string), .field(3, "apiVersion", .string))
    static let metricIdentifier = FieldSchema.numbered(.field(1, "name", .string), .field(2, "selector", .labelSelector, optional: true))
    static let metricTarget = FieldSchema.numbered(
        .field(1, "type", .string), .field(2, "value", .quantity, optional: true), .field(3, "averageValue", .quantity, optional: true),
        .field(4, "averageUtilization", .integer, optional: true))
    static let metricValue = FieldSchema.numbered(
        .field(1, "value", .quantity, optional: true), .field(2, "averageValue", .quantity, optional: true),
        .field(3, "averageUtilization", .integer, optional: true))

    /// `autoscaling/v2.MetricSpec`: a type and its source.
    static let metricSpec = FieldSchema.numbered(
        .field(1, "type", .string),
        .field(
            2, "object",
            .numbered(.field(1, "describedObject", crossVersionReference), .field(2, "target", metricTarget), .field(3, "metric", metricIdentifier)),
            optional: true),
        .field(3, "pods", .numbered(.field(1, "metric", metricIdentifier), .field(2, "target", metricTarget)), optional: true),
        .field(4, "resource", .numbered(.field(1, "name", .string), .field(2, "target", metricTarget)), optional: true),
        .field(
            7, "containerResource", .numbered(.field(1, "name", .string), .field(2, "target", metricTarget), .field(3, "container", .string)),
            optional: true),
        .field(5, "external", .numbered(.field(1, "metric", metricIdentifier), .field(2, "target", metricTarget)), optional: true)
    )

    /// `autoscaling/v2.MetricStatus`: what each metric reads now.
    static let metricStatus = FieldSchema.numbered(
        .field(1, "type", .string),
        .field(
            2, "object",
            .numbered(.field(1, "metric", metricIdentifier), .field(2, "current", metricValue), .field(3, "describedObject", crossVersionReference)),
            optional: true),
        .field(3, "pods", .numbered(.field(1, "metric", metricIdentifier), .field(2, "current", metricValue)), optional: true),
        .field(4, "resource", .numbered(.field(1, "name", .string), .field(2, "current", metricValue)), optional: true),
        .field(
            7, "containerResource", .numbered(.field(1, "name", .string), .field(2, "current", metricValue), .field(3, "container", .string)),
            optional: true),
        .field(5, "external", .numbered(.field(1, "metric", metricIdentifier), .field(2, "current", metricValue)), optional: true)
    )

    /// `autoscaling/v2.HorizontalPodAutoscalerBehavior`.
    static let autoscalerBehavior: FieldSchema = {
        let rules = FieldSchema.numbered(
            .field(3, "stabilizationWindowSeconds", .integer, optional: true), .field(1, "selectPolicy", .string, optional: true),
            .field(2, "policies", .array(.numbered(.field(1, "type", .string), .field(2, "value", .integer), .field(3, "periodSeconds", .integer)))),
            .field(4, "tolerance", .quantity, optional: true))
        return .numbered(.field(1, "scaleUp", rules, optional: true), .field(2, "scaleDown", rules, optional: true))
    }()

    /// `autoscaling/v2.HorizontalPodAutoscalerStatus`.
    static let autoscalerStatus = FieldSchema.numbered(
        .field(1, "observedGeneration", .integer, optional: true), .field(2, "lastScaleTime", .time),
        .field(3, "currentReplicas", .integer), .field(4, "desiredReplicas", .integer), .field(5, "currentMetrics", .array(metricStatus)),
        .field(
            6, "conditions",
            .array(
                .numbered(
                    .field(1, "type", .string), .field(2, "status", .string), .field(3, "lastTransitionTime", .time),
                    .field(4, "reason", .string), .field(5, "message", .string), .field(6, "observedGeneration", .integer, optional: true))))
    )
}
