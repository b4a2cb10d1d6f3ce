/// `core/v1.PersistentVolume`'s parts, with the field numbers of k8s.io/api's `generated.proto`.
/// Its sources differ from a Pod volume's where a secret may live in another namespace
/// (`SecretReference`: a name and a namespace) and in their numbering.
extension FieldSchema {
    // The sources a Pod's volume and a PersistentVolume share, field for field.
    static let hostPathSource = FieldSchema.numbered(.field(1, "path", .string), .field(2, "type", .string, optional: true))
    static let nfsSource = FieldSchema.numbered(.field(1, "server", .string), .field(2, "path", .string), .field(3, "readOnly", .boolean))
    static let flockerSource = FieldSchema.numbered(.field(1, "datasetName", .string), .field(2, "datasetUUID", .string))
    static let photonDiskSource = FieldSchema.numbered(.field(1, "pdID", .string), .field(2, "fsType", .string))
    static let portworxSource = FieldSchema.numbered(.field(1, "volumeID", .string), .field(2, "fsType", .string), .field(3, "readOnly", .boolean))
    static let fibreChannelSource = FieldSchema.numbered(
        .field(1, "targetWWNs", stringList), .field(2, "lun", .integer, optional: true), .field(3, "fsType", .string),
        .field(4, "readOnly", .boolean), .field(5, "wwids", stringList)
    )
    static let vsphereDiskSource = FieldSchema.numbered(
        .field(1, "volumePath", .string), .field(2, "fsType", .string), .field(3, "storagePolicyName", .string),
        .field(4, "storagePolicyID", .string)
    )
    static let quobyteSource = FieldSchema.numbered(
        .field(1, "registry", .string), .field(2, "volume", .string), .field(3, "readOnly", .boolean), .field(4, "user", .string),
        .field(5, "group", .string), .field(6, "tenant", .string)
    )
    static let azureDiskSource = FieldSchema.numbered(
        .field(1, "diskName", .string), .field(2, "diskURI", .string), .field(3, "cachingMode", .string, optional: true),
        .field(4, "fsType", .string, optional: true), .field(5, "readOnly", .boolean, optional: true),
        .field(6, "kind", .string, optional: true)
    )

    /// `core/v1.SecretReference`.
    static let secretReference = FieldSchema.numbered(.field(1, "name", .string), .field(2, "namespace", .string))

    /// `core/v1.PersistentVolumeSource`: one source, whose field is the volume's own in JSON.
    static let persistentVolumeSource = FieldSchema.numbered(
        .field(1, "gcePersistentDisk", cloudDisk(id: "pdName"), optional: true),
        .field(2, "awsElasticBlockStore", cloudDisk(id: "volumeID"), optional: true),
        .field(3, "hostPath", hostPathSource, optional: true),
        .field(
            4, "glusterfs",
            .numbered(
                .field(1, "endpoints", .string), .field(2, "path", .string), .field(3, "readOnly", .boolean),
                .field(4, "endpointsNamespace", .string, optional: true)
            ), optional: true),
        .field(5, "nfs", nfsSource, optional: true),
        .field(
            6, "rbd",
            .numbered(
                .field(1, "monitors", stringList), .field(2, "image", .string), .field(3, "fsType", .string), .field(4, "pool", .string),
                .field(5, "user", .string), .field(6, "keyring", .string), .field(7, "secretRef", secretReference, optional: true),
                .field(8, "readOnly", .boolean)
            ), optional: true),
        .field(
            7, "iscsi",
            .numbered(
                .field(1, "targetPortal", .string), .field(2, "iqn", .string), .field(3, "lun", .integer), .field(4, "iscsiInterface", .string),
                .field(5, "fsType", .string), .field(6, "readOnly", .boolean), .field(7, "portals", stringList),
                .field(8, "chapAuthDiscovery", .boolean), .field(11, "chapAuthSession", .boolean),
                .field(10, "secretRef", secretReference, optional: true), .field(12, "initiatorName", .string, optional: true)
            ), optional: true),
        .field(
            8, "cinder",
            .numbered(
                .field(1, "volumeID", .string), .field(2, "fsType", .string), .field(3, "readOnly", .boolean),
                .field(4, "secretRef", secretReference, optional: true)
            ), optional: true),
        .field(
            9, "cephfs",
            .numbered(
                .field(1, "monitors", stringList), .field(2, "path", .string), .field(3, "user", .string), .field(4, "secretFile", .string),
                .field(5, "secretRef", secretReference, optional: true), .field(6, "readOnly", .boolean)
            ), optional: true),
        .field(10, "fc", fibreChannelSource, optional: true),
        .field(11, "flocker", flockerSource, optional: true),
        .field(
            12, "flexVolume",
            .numbered(
                .field(1, "driver", .string), .field(2, "fsType", .string), .field(3, "secretRef", secretReference, optional: true),
                .field(4, "readOnly", .boolean), .field(5, "options", stringMap)
            ), optional: true),
        .field(
            13, "azureFile",
            .numbered(
                .field(1, "secretName", .string), .field(2, "shareName", .string), .field(3, "readOnly", .boolean),
                .field(4, "secretNamespace", .string, optional: true)
            ), optional: true),
        .field(14, "vsphereVolume", vsphereDiskSource, optional: true),
        .field(15, "quobyte", quobyteSource, optional: true),
        .field(16, "azureDisk", azureDiskSource, optional: true),
        .field(17, "photonPersistentDisk", photonDiskSource, optional: true),
        .field(18, "portworxVolume", portworxSource, optional: true),
        .field(
            19, "scaleIO",
            .numbered(
                .field(1, "gateway", .string), .field(2, "system", .string), .field(3, "secretRef", secretReference, optional: true),
                .field(4, "sslEnabled", .boolean), .field(5, "protectionDomain", .string), .field(6, "storagePool", .string),
                .field(7, "storageMode", .string), .field(8, "volumeName", .string), .field(9, "fsType", .string),
                .field(10, "readOnly", .boolean)
            ), optional: true),
        .field(20, "local", .numbered(.field(1, "path", .string), .field(2, "fsType", .string, optional: true)), optional: true),
        .field(
            21, "storageos",
            .numbered(
                .field(1, "volumeName", .string), .field(2, "volumeNamespace", .string), .field(3, "fsType", .string),
                .field(4, "readOnly", .boolean), .field(5, "secretRef", objectReference, optional: true)
            ), optional: true),
        .field(
            22, "csi",
            .numbered(
                .field(1, "driver", .string), .field(2, "volumeHandle", .string), .field(3, "readOnly", .boolean),
                .field(4, "fsType", .string), .field(5, "volumeAttributes", stringMap),
                .field(6, "controllerPublishSecretRef", secretReference, optional: true),
                .field(7, "nodeStageSecretRef", secretReference, optional: true),
                .field(8, "nodePublishSecretRef", secretReference, optional: true),
                .field(9, "controllerExpandSecretRef", secretReference, optional: true),
                .field(10, "nodeExpandSecretRef", secretReference, optional: true)
            ), optional: true)
    )

    /// The names of the sources, of which a volume states exactly one.
    public static let persistentVolumeSourceNames = [
        "gcePersistentDisk", "awsElasticBlockStore", "hostPath", "glusterfs", "nfs", "rbd", "iscsi", "cinder", "cephfs", "fc", "flocker",
        "flexVolume", "azureFile", "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "portworxVolume", "scaleIO", "local",
        "storageos", "csi",
    ]

    /// `core/v1.PersistentVolumeSpec`.
    public static let persistentVolumeSpec = FieldSchema.numbered(
        .field(1, "capacity", .map(.quantity)), .embedded(2, persistentVolumeSource), .field(3, "accessModes", stringList),
        .field(4, "claimRef", objectReference, optional: true), .field(5, "persistentVolumeReclaimPolicy", .string),
        .field(6, "storageClassName", .string), .field(7, "mountOptions", stringList), .field(8, "volumeMode", .string, optional: true),
        .field(
            9, "nodeAffinity", .numbered(.field(1, "required", .numbered(.field(1, "nodeSelectorTerms", .array(nodeSelectorTerm))))), optional: true),
        .field(10, "volumeAttributesClassName", .string, optional: true)
    )

    /// `core/v1.PersistentVolumeStatus`.
    public static let persistentVolumeStatus = FieldSchema.numbered(
        .field(1, "phase", .string), .field(2, "message", .string), .field(3, "reason", .string),
        .field(4, "lastPhaseTransitionTime", .time, optional: true)
    )
}
