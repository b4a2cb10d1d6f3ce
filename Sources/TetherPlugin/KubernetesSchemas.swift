/// Kubernetes' own types the built-in kinds share, with every field of the 1.33 types and the
/// field numbers of their protobuf encoding (the public `generated.proto` of k8s.io/api and
/// k8s.io/apimachinery). Parts not modelled yet are `free`: any JSON is kept, and protobuf
/// carrying a value there is refused with a clear error.
extension FieldSchema {
    /// `core/v1.PodSpec`.
    public static let podSpec = FieldSchema.numbered(
        .field(1, "volumes", .keyedList(.free, mergeKey: "name")), .field(20, "initContainers", .keyedList(container, mergeKey: "name")),
        .field(2, "containers", .keyedList(container, mergeKey: "name")),
        .field(34, "ephemeralContainers", freeList), .field(3, "restartPolicy", .string),
        .field(4, "terminationGracePeriodSeconds", .integer, optional: true), .field(5, "activeDeadlineSeconds", .integer, optional: true),
        .field(6, "dnsPolicy", .string), .field(7, "nodeSelector", stringMap), .field(8, "serviceAccountName", .string),
        .field(9, "serviceAccount", .string), .field(21, "automountServiceAccountToken", .boolean, optional: true),
        .field(10, "nodeName", .string), .field(11, "hostNetwork", .boolean), .field(12, "hostPID", .boolean),
        .field(13, "hostIPC", .boolean), .field(27, "shareProcessNamespace", .boolean, optional: true),
        .field(14, "securityContext", .free), .field(15, "imagePullSecrets", .keyedList(localObjectReference, mergeKey: "name")),
        .field(16, "hostname", .string), .field(17, "subdomain", .string), .field(18, "affinity", .free),
        .field(19, "schedulerName", .string), .field(22, "tolerations", .array(toleration)), .field(23, "hostAliases", freeList),
        .field(24, "priorityClassName", .string), .field(25, "priority", .integer, optional: true), .field(26, "dnsConfig", .free),
        .field(28, "readinessGates", freeList), .field(29, "runtimeClassName", .string, optional: true),
        .field(30, "enableServiceLinks", .boolean, optional: true), .field(31, "preemptionPolicy", .string, optional: true),
        .field(32, "overhead", .map(.quantity)), .field(33, "topologySpreadConstraints", freeList),
        .field(35, "setHostnameAsFQDN", .boolean, optional: true), .field(36, "os", .free), .field(37, "hostUsers", .boolean, optional: true),
        .field(38, "schedulingGates", freeList), .field(39, "resourceClaims", freeList), .field(40, "resources", resourceRequirements),
        .field(41, "hostnameOverride", .string, optional: true)
    )

    /// `core/v1.Container`.
    public static let container = FieldSchema.numbered(
        .field(1, "name", .string), .field(2, "image", .string), .field(3, "command", stringList), .field(4, "args", stringList),
        .field(5, "workingDir", .string),
        .field(
            6, "ports",
            .keyedList(
                .numbered(
                    .field(1, "name", .string), .field(2, "hostPort", .integer), .field(3, "containerPort", .integer),
                    .field(4, "protocol", .string), .field(5, "hostIP", .string)
                ), mergeKey: "containerPort")),
        .field(19, "envFrom", freeList),
        .field(
            7, "env",
            .keyedList(.numbered(.field(1, "name", .string), .field(2, "value", .string), .field(3, "valueFrom", .free)), mergeKey: "name")),
        .field(8, "resources", resourceRequirements), .field(23, "resizePolicy", freeList),
        .field(24, "restartPolicy", .string, optional: true), .field(25, "restartPolicyRules", freeList),
        .field(
            9, "volumeMounts",
            .keyedList(
                .numbered(
                    .field(1, "name", .string), .field(2, "readOnly", .boolean), .field(7, "recursiveReadOnly", .string, optional: true),
                    .field(3, "mountPath", .string), .field(4, "subPath", .string), .field(5, "mountPropagation", .string, optional: true),
                    .field(6, "subPathExpr", .string)
                ), mergeKey: "mountPath")),
        .field(21, "volumeDevices", freeList), .field(10, "livenessProbe", .free), .field(11, "readinessProbe", .free),
        .field(22, "startupProbe", .free), .field(12, "lifecycle", .free), .field(13, "terminationMessagePath", .string),
        .field(20, "terminationMessagePolicy", .string), .field(14, "imagePullPolicy", .string), .field(15, "securityContext", .free),
        .field(16, "stdin", .boolean), .field(17, "stdinOnce", .boolean), .field(18, "tty", .boolean)
    )

    /// `core/v1.ResourceRequirements`.
    public static let resourceRequirements = FieldSchema.numbered(
        .field(1, "limits", .map(.quantity)), .field(2, "requests", .map(.quantity)), .field(3, "claims", freeList)
    )

    /// `core/v1.LocalObjectReference`.
    public static let localObjectReference = FieldSchema.numbered(.field(1, "name", .string))

    /// `core/v1.Toleration`.
    public static let toleration = FieldSchema.numbered(
        .field(1, "key", .string), .field(2, "operator", .string), .field(3, "value", .string), .field(4, "effect", .string),
        .field(5, "tolerationSeconds", .integer, optional: true)
    )

    /// `batch/v1.JobSpec`.
    public static let jobSpec = FieldSchema.numbered(
        .field(1, "parallelism", .integer, optional: true), .field(2, "completions", .integer, optional: true),
        .field(3, "activeDeadlineSeconds", .integer, optional: true), .field(11, "podFailurePolicy", .free),
        .field(16, "successPolicy", .free), .field(7, "backoffLimit", .integer, optional: true),
        .field(12, "backoffLimitPerIndex", .integer, optional: true), .field(13, "maxFailedIndexes", .integer, optional: true),
        .field(4, "selector", labelSelector), .field(5, "manualSelector", .boolean, optional: true), .field(6, "template", podTemplate),
        .field(8, "ttlSecondsAfterFinished", .integer, optional: true), .field(9, "completionMode", .string, optional: true),
        .field(10, "suspend", .boolean, optional: true), .field(14, "podReplacementPolicy", .string, optional: true),
        .field(15, "managedBy", .string, optional: true)
    )
}
