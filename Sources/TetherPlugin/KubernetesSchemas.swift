/// Kubernetes' own types the built-in kinds share, with every field of the 1.33 types and the
/// field numbers of their protobuf encoding (the public `generated.proto` of k8s.io/api and
/// k8s.io/apimachinery). Parts not modelled yet are `free`: any JSON is kept, and protobuf
/// carrying a value there is refused with a clear error. Every part of a Pod's spec is modelled.
extension FieldSchema {
    /// `core/v1.PodSpec`.
    public static let podSpec = FieldSchema.numbered(
        .field(1, "volumes", .keyedList(volume, mergeKey: "name")), .field(20, "initContainers", .keyedList(container, mergeKey: "name")),
        .field(2, "containers", .keyedList(container, mergeKey: "name")),
        .field(34, "ephemeralContainers", .keyedList(ephemeralContainer, mergeKey: "name")), .field(3, "restartPolicy", .string),
        .field(4, "terminationGracePeriodSeconds", .integer, optional: true), .field(5, "activeDeadlineSeconds", .integer, optional: true),
        .field(6, "dnsPolicy", .string), .field(7, "nodeSelector", stringMap), .field(8, "serviceAccountName", .string),
        .field(9, "serviceAccount", .string), .field(21, "automountServiceAccountToken", .boolean, optional: true),
        .field(10, "nodeName", .string), .field(11, "hostNetwork", .boolean), .field(12, "hostPID", .boolean),
        .field(13, "hostIPC", .boolean), .field(27, "shareProcessNamespace", .boolean, optional: true),
        .field(14, "securityContext", podSecurityContext, optional: true),
        .field(15, "imagePullSecrets", .keyedList(localObjectReference, mergeKey: "name")),
        .field(16, "hostname", .string), .field(17, "subdomain", .string), .field(18, "affinity", affinity, optional: true),
        .field(19, "schedulerName", .string), .field(22, "tolerations", .array(toleration)),
        .field(23, "hostAliases", .keyedList(.numbered(.field(1, "ip", .string), .field(2, "hostnames", stringList)), mergeKey: "ip")),
        .field(24, "priorityClassName", .string), .field(25, "priority", .integer, optional: true),
        .field(
            26, "dnsConfig",
            .numbered(
                .field(1, "nameservers", stringList), .field(2, "searches", stringList),
                .field(3, "options", .array(.numbered(.field(1, "name", .string), .field(2, "value", .string, optional: true))))
            ), optional: true),
        .field(28, "readinessGates", .array(.numbered(.field(1, "conditionType", .string)))), .field(29, "runtimeClassName", .string, optional: true),
        .field(30, "enableServiceLinks", .boolean, optional: true), .field(31, "preemptionPolicy", .string, optional: true),
        .field(32, "overhead", .map(.quantity)),
        .field(
            33, "topologySpreadConstraints",
            .array(
                .numbered(
                    .field(1, "maxSkew", .integer), .field(2, "topologyKey", .string), .field(3, "whenUnsatisfiable", .string),
                    .field(4, "labelSelector", labelSelector, optional: true), .field(5, "minDomains", .integer, optional: true),
                    .field(6, "nodeAffinityPolicy", .string, optional: true), .field(7, "nodeTaintsPolicy", .string, optional: true),
                    .field(8, "matchLabelKeys", stringList)
                ))),
        .field(35, "setHostnameAsFQDN", .boolean, optional: true), .field(36, "os", .numbered(.field(1, "name", .string)), optional: true),
        .field(37, "hostUsers", .boolean, optional: true),
        .field(38, "schedulingGates", .array(.numbered(.field(1, "name", .string)))),
        .field(
            39, "resourceClaims",
            .keyedList(
                .numbered(
                    .field(1, "name", .string), .field(3, "resourceClaimName", .string, optional: true),
                    .field(4, "resourceClaimTemplateName", .string, optional: true)), mergeKey: "name")),
        .field(40, "resources", resourceRequirements),
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
        .field(
            19, "envFrom",
            .array(
                .numbered(
                    .field(1, "prefix", .string), .field(2, "configMapRef", optionalReference, optional: true),
                    .field(3, "secretRef", optionalReference, optional: true)
                ))),
        .field(
            7, "env",
            .keyedList(
                .numbered(.field(1, "name", .string), .field(2, "value", .string), .field(3, "valueFrom", envVarSource, optional: true)),
                mergeKey: "name")),
        .field(8, "resources", resourceRequirements),
        .field(23, "resizePolicy", .array(.numbered(.field(1, "resourceName", .string), .field(2, "restartPolicy", .string)))),
        .field(24, "restartPolicy", .string, optional: true),
        .field(
            25, "restartPolicyRules",
            .array(
                .numbered(
                    .field(1, "action", .string),
                    .field(2, "exitCodes", .numbered(.field(1, "operator", .string), .field(2, "values", .array(.integer))), optional: true)))),
        .field(
            9, "volumeMounts",
            .keyedList(
                .numbered(
                    .field(1, "name", .string), .field(2, "readOnly", .boolean), .field(7, "recursiveReadOnly", .string, optional: true),
                    .field(3, "mountPath", .string), .field(4, "subPath", .string), .field(5, "mountPropagation", .string, optional: true),
                    .field(6, "subPathExpr", .string)
                ), mergeKey: "mountPath")),
        .field(21, "volumeDevices", .keyedList(.numbered(.field(1, "name", .string), .field(2, "devicePath", .string)), mergeKey: "devicePath")),
        .field(10, "livenessProbe", probe, optional: true), .field(11, "readinessProbe", probe, optional: true),
        .field(22, "startupProbe", probe, optional: true),
        .field(
            12, "lifecycle",
            .numbered(
                .field(1, "postStart", lifecycleHandler, optional: true), .field(2, "preStop", lifecycleHandler, optional: true),
                .field(3, "stopSignal", .string, optional: true)
            ), optional: true),
        .field(13, "terminationMessagePath", .string),
        .field(20, "terminationMessagePolicy", .string), .field(14, "imagePullPolicy", .string),
        .field(15, "securityContext", securityContext, optional: true),
        .field(16, "stdin", .boolean), .field(17, "stdinOnce", .boolean), .field(18, "tty", .boolean)
    )

    /// `core/v1.EphemeralContainer`: a container's fields, numbered as a container's, in a
    /// message of their own in protobuf, and the container it targets.
    public static let ephemeralContainer = FieldSchema.numbered(.embedded(1, container), .field(2, "targetContainerName", .string))

    /// `core/v1.ResourceRequirements`.
    public static let resourceRequirements = FieldSchema.numbered(
        .field(1, "limits", .map(.quantity)), .field(2, "requests", .map(.quantity)),
        .field(3, "claims", .keyedList(.numbered(.field(1, "name", .string), .field(2, "request", .string)), mergeKey: "name"))
    )

    // MARK: Probes and lifecycle hooks

    static let execAction = FieldSchema.numbered(.field(1, "command", stringList))
    static let httpGetAction = FieldSchema.numbered(
        .field(1, "path", .string), .field(2, "port", .intOrString), .field(3, "host", .string), .field(4, "scheme", .string),
        .field(5, "httpHeaders", .array(.numbered(.field(1, "name", .string), .field(2, "value", .string))))
    )
    static let tcpSocketAction = FieldSchema.numbered(.field(1, "port", .intOrString), .field(2, "host", .string))

    /// `core/v1.Probe`: its handler's fields are the probe's own in JSON.
    public static let probe = FieldSchema.numbered(
        .embedded(
            1,
            .numbered(
                .field(1, "exec", execAction, optional: true), .field(2, "httpGet", httpGetAction, optional: true),
                .field(3, "tcpSocket", tcpSocketAction, optional: true),
                .field(4, "grpc", .numbered(.field(1, "port", .integer), .field(2, "service", .string, optional: true)), optional: true)
            )),
        .field(2, "initialDelaySeconds", .integer), .field(3, "timeoutSeconds", .integer), .field(4, "periodSeconds", .integer),
        .field(5, "successThreshold", .integer), .field(6, "failureThreshold", .integer),
        .field(7, "terminationGracePeriodSeconds", .integer, optional: true)
    )

    static let lifecycleHandler = FieldSchema.numbered(
        .field(1, "exec", execAction, optional: true), .field(2, "httpGet", httpGetAction, optional: true),
        .field(3, "tcpSocket", tcpSocketAction, optional: true), .field(4, "sleep", .numbered(.field(1, "seconds", .integer)), optional: true)
    )

    // MARK: Security contexts

    static let seLinuxOptions = FieldSchema.numbered(
        .field(1, "user", .string), .field(2, "role", .string), .field(3, "type", .string), .field(4, "level", .string))
    static let windowsOptions = FieldSchema.numbered(
        .field(1, "gmsaCredentialSpecName", .string, optional: true), .field(2, "gmsaCredentialSpec", .string, optional: true),
        .field(3, "runAsUserName", .string, optional: true), .field(4, "hostProcess", .boolean, optional: true)
    )
    /// `SeccompProfile` and `AppArmorProfile` alike.
    static let securityProfile = FieldSchema.numbered(.field(1, "type", .string), .field(2, "localhostProfile", .string, optional: true))

    /// `core/v1.SecurityContext` (a container's).
    public static let securityContext = FieldSchema.numbered(
        .field(1, "capabilities", .numbered(.field(1, "add", stringList), .field(2, "drop", stringList)), optional: true),
        .field(2, "privileged", .boolean, optional: true), .field(3, "seLinuxOptions", seLinuxOptions, optional: true),
        .field(10, "windowsOptions", windowsOptions, optional: true), .field(4, "runAsUser", .integer, optional: true),
        .field(8, "runAsGroup", .integer, optional: true), .field(5, "runAsNonRoot", .boolean, optional: true),
        .field(6, "readOnlyRootFilesystem", .boolean, optional: true), .field(7, "allowPrivilegeEscalation", .boolean, optional: true),
        .field(9, "procMount", .string, optional: true), .field(11, "seccompProfile", securityProfile, optional: true),
        .field(12, "appArmorProfile", securityProfile, optional: true)
    )

    /// `core/v1.PodSecurityContext`.
    public static let podSecurityContext = FieldSchema.numbered(
        .field(1, "seLinuxOptions", seLinuxOptions, optional: true), .field(8, "windowsOptions", windowsOptions, optional: true),
        .field(2, "runAsUser", .integer, optional: true), .field(6, "runAsGroup", .integer, optional: true),
        .field(3, "runAsNonRoot", .boolean, optional: true), .field(4, "supplementalGroups", .array(.integer)),
        .field(12, "supplementalGroupsPolicy", .string, optional: true), .field(5, "fsGroup", .integer, optional: true),
        .field(7, "sysctls", .array(.numbered(.field(1, "name", .string), .field(2, "value", .string)))),
        .field(9, "fsGroupChangePolicy", .string, optional: true), .field(10, "seccompProfile", securityProfile, optional: true),
        .field(11, "appArmorProfile", securityProfile, optional: true), .field(13, "seLinuxChangePolicy", .string, optional: true)
    )

    // MARK: Environment

    /// `ConfigMapEnvSource`, `SecretEnvSource`: a name, and whether it may be missing.
    static let optionalReference = FieldSchema.numbered(.embedded(1, localObjectReference), .field(2, "optional", .boolean, optional: true))
    /// `ConfigMapKeySelector`, `SecretKeySelector`.
    static let keySelector = FieldSchema.numbered(
        .embedded(1, localObjectReference), .field(2, "key", .string), .field(3, "optional", .boolean, optional: true))
    static let objectFieldSelector = FieldSchema.numbered(.field(1, "apiVersion", .string), .field(2, "fieldPath", .string))
    static let resourceFieldSelector = FieldSchema.numbered(
        .field(1, "containerName", .string), .field(2, "resource", .string), .field(3, "divisor", .quantity))

    /// `core/v1.EnvVarSource`.
    static let envVarSource = FieldSchema.numbered(
        .field(1, "fieldRef", objectFieldSelector, optional: true), .field(2, "resourceFieldRef", resourceFieldSelector, optional: true),
        .field(3, "configMapKeyRef", keySelector, optional: true), .field(4, "secretKeyRef", keySelector, optional: true),
        .field(
            5, "fileKeyRef",
            .numbered(
                .field(1, "volumeName", .string), .field(2, "path", .string), .field(3, "key", .string),
                .field(4, "optional", .boolean, optional: true)
            ), optional: true)
    )

    // MARK: Volumes

    static let keyToPath = FieldSchema.numbered(.field(1, "key", .string), .field(2, "path", .string), .field(3, "mode", .integer, optional: true))
    static let downwardAPIFile = FieldSchema.numbered(
        .field(1, "path", .string), .field(2, "fieldRef", objectFieldSelector, optional: true),
        .field(3, "resourceFieldRef", resourceFieldSelector, optional: true), .field(4, "mode", .integer, optional: true)
    )
    /// `ConfigMapProjection`, `SecretProjection`.
    static let keyProjection = FieldSchema.numbered(
        .embedded(1, localObjectReference), .field(2, "items", .array(keyToPath)), .field(4, "optional", .boolean, optional: true))

    /// A GCE persistent disk or an AWS EBS volume: the disk's identifier, then the same fields.
    static func cloudDisk(id: String) -> FieldSchema {
        .numbered(.field(1, id, .string), .field(2, "fsType", .string), .field(3, "partition", .integer), .field(4, "readOnly", .boolean))
    }

    /// `core/v1.Volume`: a name and one source, whose field is the volume's own in JSON. Every
    /// source of the 1.33 types is modelled, the deprecated in-tree ones included.
    public static let volume = FieldSchema.numbered(
        .field(1, "name", .string),
        .embedded(
            2,
            .numbered(
                .field(1, "hostPath", hostPathSource, optional: true),
                .field(
                    2, "emptyDir", .numbered(.field(1, "medium", .string), .field(2, "sizeLimit", .quantity, optional: true)), optional: true),
                .field(3, "gcePersistentDisk", cloudDisk(id: "pdName"), optional: true),
                .field(4, "awsElasticBlockStore", cloudDisk(id: "volumeID"), optional: true),
                .field(
                    5, "gitRepo", .numbered(.field(1, "repository", .string), .field(2, "revision", .string), .field(3, "directory", .string)),
                    optional: true),
                .field(
                    6, "secret",
                    .numbered(
                        .field(1, "secretName", .string), .field(2, "items", .array(keyToPath)), .field(3, "defaultMode", .integer, optional: true),
                        .field(4, "optional", .boolean, optional: true)
                    ), optional: true),
                .field(7, "nfs", nfsSource, optional: true),
                .field(
                    8, "iscsi",
                    .numbered(
                        .field(1, "targetPortal", .string), .field(2, "iqn", .string), .field(3, "lun", .integer),
                        .field(4, "iscsiInterface", .string), .field(5, "fsType", .string), .field(6, "readOnly", .boolean),
                        .field(7, "portals", stringList), .field(8, "chapAuthDiscovery", .boolean), .field(11, "chapAuthSession", .boolean),
                        .field(10, "secretRef", localObjectReference, optional: true), .field(12, "initiatorName", .string, optional: true)
                    ), optional: true),
                .field(
                    9, "glusterfs", .numbered(.field(1, "endpoints", .string), .field(2, "path", .string), .field(3, "readOnly", .boolean)),
                    optional: true),
                .field(
                    10, "persistentVolumeClaim", .numbered(.field(1, "claimName", .string), .field(2, "readOnly", .boolean)), optional: true),
                .field(
                    11, "rbd",
                    .numbered(
                        .field(1, "monitors", stringList), .field(2, "image", .string), .field(3, "fsType", .string), .field(4, "pool", .string),
                        .field(5, "user", .string), .field(6, "keyring", .string), .field(7, "secretRef", localObjectReference, optional: true),
                        .field(8, "readOnly", .boolean)
                    ), optional: true),
                .field(
                    12, "flexVolume",
                    .numbered(
                        .field(1, "driver", .string), .field(2, "fsType", .string), .field(3, "secretRef", localObjectReference, optional: true),
                        .field(4, "readOnly", .boolean), .field(5, "options", stringMap)
                    ), optional: true),
                .field(
                    13, "cinder",
                    .numbered(
                        .field(1, "volumeID", .string), .field(2, "fsType", .string), .field(3, "readOnly", .boolean),
                        .field(4, "secretRef", localObjectReference, optional: true)
                    ), optional: true),
                .field(
                    14, "cephfs",
                    .numbered(
                        .field(1, "monitors", stringList), .field(2, "path", .string), .field(3, "user", .string), .field(4, "secretFile", .string),
                        .field(5, "secretRef", localObjectReference, optional: true), .field(6, "readOnly", .boolean)
                    ), optional: true),
                .field(15, "flocker", flockerSource, optional: true),
                .field(
                    16, "downwardAPI", .numbered(.field(1, "items", .array(downwardAPIFile)), .field(2, "defaultMode", .integer, optional: true)),
                    optional: true),
                .field(17, "fc", fibreChannelSource, optional: true),
                .field(
                    18, "azureFile", .numbered(.field(1, "secretName", .string), .field(2, "shareName", .string), .field(3, "readOnly", .boolean)),
                    optional: true),
                .field(
                    19, "configMap",
                    .numbered(
                        .embedded(1, localObjectReference), .field(2, "items", .array(keyToPath)), .field(3, "defaultMode", .integer, optional: true),
                        .field(4, "optional", .boolean, optional: true)
                    ), optional: true),
                .field(20, "vsphereVolume", vsphereDiskSource, optional: true),
                .field(21, "quobyte", quobyteSource, optional: true),
                .field(22, "azureDisk", azureDiskSource, optional: true),
                .field(23, "photonPersistentDisk", photonDiskSource, optional: true),
                .field(24, "portworxVolume", portworxSource, optional: true),
                .field(
                    25, "scaleIO",
                    .numbered(
                        .field(1, "gateway", .string), .field(2, "system", .string), .field(3, "secretRef", localObjectReference, optional: true),
                        .field(4, "sslEnabled", .boolean), .field(5, "protectionDomain", .string), .field(6, "storagePool", .string),
                        .field(7, "storageMode", .string), .field(8, "volumeName", .string), .field(9, "fsType", .string),
                        .field(10, "readOnly", .boolean)
                    ), optional: true),
                .field(
                    26, "projected",
                    .numbered(
                        .field(
                            1, "sources",
                            .array(
                                .numbered(
                                    .field(1, "secret", keyProjection, optional: true),
                                    .field(2, "downwardAPI", .numbered(.field(1, "items", .array(downwardAPIFile))), optional: true),
                                    .field(3, "configMap", keyProjection, optional: true),
                                    .field(
                                        4, "serviceAccountToken",
                                        .numbered(
                                            .field(1, "audience", .string), .field(2, "expirationSeconds", .integer, optional: true),
                                            .field(3, "path", .string)
                                        ), optional: true),
                                    .field(
                                        5, "clusterTrustBundle",
                                        .numbered(
                                            .field(1, "name", .string, optional: true), .field(2, "signerName", .string, optional: true),
                                            .field(3, "labelSelector", labelSelector, optional: true),
                                            .field(5, "optional", .boolean, optional: true), .field(4, "path", .string)
                                        ), optional: true)
                                ))), .field(2, "defaultMode", .integer, optional: true)
                    ), optional: true),
                .field(
                    27, "storageos",
                    .numbered(
                        .field(1, "volumeName", .string), .field(2, "volumeNamespace", .string), .field(3, "fsType", .string),
                        .field(4, "readOnly", .boolean), .field(5, "secretRef", localObjectReference, optional: true)
                    ), optional: true),
                .field(
                    28, "csi",
                    .numbered(
                        .field(1, "driver", .string), .field(2, "readOnly", .boolean, optional: true), .field(3, "fsType", .string, optional: true),
                        .field(4, "volumeAttributes", stringMap), .field(5, "nodePublishSecretRef", localObjectReference, optional: true)
                    ), optional: true),
                .field(29, "ephemeral", .numbered(.field(1, "volumeClaimTemplate", persistentVolumeClaimTemplate, optional: true)), optional: true),
                .field(30, "image", .numbered(.field(1, "reference", .string), .field(2, "pullPolicy", .string)), optional: true)
            ))
    )

    // MARK: Storage

    /// `core/v1.PersistentVolumeClaimSpec`.
    public static let persistentVolumeClaimSpec = FieldSchema.numbered(
        .field(1, "accessModes", stringList), .field(4, "selector", labelSelector),
        .field(2, "resources", .numbered(.field(1, "limits", .map(.quantity)), .field(2, "requests", .map(.quantity)))),
        .field(3, "volumeName", .string), .field(5, "storageClassName", .string, optional: true),
        .field(6, "volumeMode", .string, optional: true),
        .field(7, "dataSource", .numbered(.field(1, "apiGroup", .string, optional: true), .field(2, "kind", .string), .field(3, "name", .string))),
        .field(
            8, "dataSourceRef",
            .numbered(
                .field(1, "apiGroup", .string, optional: true), .field(2, "kind", .string), .field(3, "name", .string),
                .field(4, "namespace", .string, optional: true))),
        .field(9, "volumeAttributesClassName", .string, optional: true)
    )

    /// `core/v1.PersistentVolumeClaimStatus`.
    public static let persistentVolumeClaimStatus = FieldSchema.numbered(
        .field(1, "phase", .string), .field(2, "accessModes", stringList), .field(3, "capacity", .map(.quantity)),
        .field(4, "conditions", .array(.probedCondition())),
        .field(5, "allocatedResources", .map(.quantity)), .field(7, "allocatedResourceStatuses", stringMap),
        .field(8, "currentVolumeAttributesClassName", .string, optional: true),
        .field(9, "modifyVolumeStatus", .numbered(.field(1, "targetVolumeAttributesClassName", .string), .field(2, "status", .string)))
    )

    /// A StatefulSet's `volumeClaimTemplates` entry: `core/v1.PersistentVolumeClaim` without its type.
    public static let persistentVolumeClaim = FieldSchema.numbered(
        .field(1, "metadata", objectMeta), .field(2, "spec", persistentVolumeClaimSpec), .field(3, "status", persistentVolumeClaimStatus))

    /// An ephemeral volume's claim: `core/v1.PersistentVolumeClaimTemplate`.
    static let persistentVolumeClaimTemplate = FieldSchema.numbered(.field(1, "metadata", objectMeta), .field(2, "spec", persistentVolumeClaimSpec))

    // MARK: Scheduling

    static let nodeSelectorRequirement = FieldSchema.numbered(
        .field(1, "key", .string), .field(2, "operator", .string), .field(3, "values", stringList))
    static let nodeSelectorTerm = FieldSchema.numbered(
        .field(1, "matchExpressions", .array(nodeSelectorRequirement)), .field(2, "matchFields", .array(nodeSelectorRequirement)))
    static let podAffinityTerm = FieldSchema.numbered(
        .field(1, "labelSelector", labelSelector, optional: true), .field(2, "namespaces", stringList), .field(3, "topologyKey", .string),
        .field(4, "namespaceSelector", labelSelector, optional: true), .field(5, "matchLabelKeys", stringList),
        .field(6, "mismatchLabelKeys", stringList)
    )
    /// `PodAffinity` and `PodAntiAffinity` alike.
    static let podAffinity = FieldSchema.numbered(
        .field(1, "requiredDuringSchedulingIgnoredDuringExecution", .array(podAffinityTerm)),
        .field(
            2, "preferredDuringSchedulingIgnoredDuringExecution",
            .array(.numbered(.field(1, "weight", .integer), .field(2, "podAffinityTerm", podAffinityTerm))))
    )

    /// `core/v1.Affinity`.
    public static let affinity = FieldSchema.numbered(
        .field(
            1, "nodeAffinity",
            .numbered(
                .field(
                    1, "requiredDuringSchedulingIgnoredDuringExecution", .numbered(.field(1, "nodeSelectorTerms", .array(nodeSelectorTerm))),
                    optional: true),
                .field(
                    2, "preferredDuringSchedulingIgnoredDuringExecution",
                    .array(.numbered(.field(1, "weight", .integer), .field(2, "preference", nodeSelectorTerm))))
            ), optional: true),
        .field(2, "podAffinity", podAffinity, optional: true), .field(3, "podAntiAffinity", podAffinity, optional: true)
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
        .field(3, "activeDeadlineSeconds", .integer, optional: true), .field(11, "podFailurePolicy", podFailurePolicy, optional: true),
        .field(16, "successPolicy", successPolicy, optional: true), .field(7, "backoffLimit", .integer, optional: true),
        .field(12, "backoffLimitPerIndex", .integer, optional: true), .field(13, "maxFailedIndexes", .integer, optional: true),
        .field(4, "selector", labelSelector), .field(5, "manualSelector", .boolean, optional: true), .field(6, "template", podTemplate),
        .field(8, "ttlSecondsAfterFinished", .integer, optional: true), .field(9, "completionMode", .string, optional: true),
        .field(10, "suspend", .boolean, optional: true), .field(14, "podReplacementPolicy", .string, optional: true),
        .field(15, "managedBy", .string, optional: true)
    )

    /// `batch/v1.PodFailurePolicy`.
    static let podFailurePolicy = FieldSchema.numbered(
        .field(
            1, "rules",
            .array(
                .numbered(
                    .field(1, "action", .string),
                    .field(
                        2, "onExitCodes",
                        .numbered(
                            .field(1, "containerName", .string, optional: true), .field(2, "operator", .string),
                            .field(3, "values", .array(.integer))), optional: true),
                    .field(3, "onPodConditions", .array(.numbered(.field(1, "type", .string), .field(2, "status", .string))))
                )))
    )

    /// `batch/v1.SuccessPolicy`.
    static let successPolicy = FieldSchema.numbered(
        .field(
            1, "rules",
            .array(.numbered(.field(1, "succeededIndexes", .string, optional: true), .field(2, "succeededCount", .integer, optional: true)))))
}
