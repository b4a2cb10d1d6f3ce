import BuiltinPlugins
import Testing
import TetherJSON
import TetherModel
import TetherPlugin

@testable import TetherAPI

/// Objects answered in protobuf, from the same schemas that decode protobuf bodies: what is
/// encoded decodes back to the same object, and an object with a part the schemas do not
/// number is left to JSON rather than encoded with that part missing.
@Suite("protobuf answers encoded from the kinds' schemas")
struct ProtobufSchemaEncoderTests {
    static let registry = BuiltinPlugins.hub

    static func kind(_ apiVersion: String, _ kind: String) throws -> KindDescriptor {
        // A member's kinds (Node) beside the hub's.
        try #require(registry.kind(apiVersion: apiVersion, kind: kind) ?? BuiltinPlugins.memberCluster.kind(apiVersion: apiVersion, kind: kind))
    }

    /// A Deployment as the hub stores it: server fields, managed fields, an owner, quantities,
    /// both forms of int-or-string, a pointer set to zero, and the aggregated status.
    static let deployment: JSONValue = try! JSONValue(
        parsing: """
            {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "web", "namespace": "default", "uid": "3f0c2d6e-1b7a-4c55-9f43-0d1e2a3b4c5d",
                          "resourceVersion": "42", "generation": 3, "creationTimestamp": "2026-12-01T10:20:30Z",
                          "labels": {"app": "web"}, "annotations": {"note": "ü ∑"},
                          "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                                               "uid": "00000000-0000-0000-0000-000000000001", "controller": false}],
                          "finalizers": ["tether.io/test"],
                          "managedFields": [{"manager": "kubectl-create", "operation": "Update", "apiVersion": "apps/v1",
                                             "time": "2026-12-01T10:20:30Z", "fieldsType": "FieldsV1",
                                             "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {"k:{\\"name\\":\\"nginx\\"}": {".": {}}}}}}}}]},
             "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                      "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}},
                      "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
                      "template": {"metadata": {"labels": {"app": "web"}},
                                   "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27",
                                                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                                                            "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}, "requests": {"cpu": 1}},
                                                            "imagePullPolicy": "IfNotPresent"}],
                                            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30}}},
             "status": {"observedGeneration": 3, "replicas": 6, "updatedReplicas": 6, "readyReplicas": 5, "availableReplicas": 5,
                        "unavailableReplicas": 1,
                        "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                                        "message": "Deployment has minimum availability.",
                                        "lastUpdateTime": "2026-12-01T10:21:00Z", "lastTransitionTime": "2026-12-01T10:21:00Z"}]}}
            """)

    @Test("a Deployment decodes back to what was encoded, status and managed fields included")
    func deploymentRoundTrip() throws {
        let kind = try Self.kind("apps/v1", "Deployment")
        let numbers = try #require(kind.protobufNumbers)
        let raw = try ProtobufSchemaEncoder.encode(Self.deployment, kind: kind, numbers: numbers)
        let decoded = try ProtobufSchemaDecoder.decode(raw[...], kind: kind, numbers: numbers, keepingStatus: true)
        // Go reads quantities back as strings: `cpu: 1` becomes "1".
        var expected = Self.deployment
        expected[member: "spec"]?[member: "template"]?[member: "spec"]?[member: "containers"] = try JSONValue(
            parsing: """
                [{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                  "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}, "requests": {"cpu": "1"}}, "imagePullPolicy": "IfNotPresent"}]
                """)
        let text = try decoded.serializedText()
        #expect(decoded == expected, "\(text)")
        // The pointer's zero survives; it is written, not left out.
        #expect(decoded["spec"]?["replicas"] == .integer(0))
    }

    @Test("a pod template using most of the Pod spec decodes back to what was encoded")
    func podTemplateRoundTrip() throws {
        let kind = try Self.kind("apps/v1", "Deployment")
        let numbers = try #require(kind.protobufNumbers)
        let object = try JSONValue(
            parsing: """
                {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "full"},
                 "spec": {"selector": {"matchLabels": {"app": "full"}},
                  "template": {"metadata": {"labels": {"app": "full"}},
                   "spec": {"securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "fsGroup": 2000,
                                                "seccompProfile": {"type": "RuntimeDefault"}, "sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]},
                            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                                            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}]}},
                                         "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                                            {"weight": 50, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                                                               "labelSelector": {"matchLabels": {"app": "full"}}}}]}},
                            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "minDomains": 2}],
                            "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["db"]}],
                            "dnsConfig": {"nameservers": ["1.1.1.1"], "options": [{"name": "ndots", "value": "2"}]},
                            "volumes": [{"name": "cfg", "configMap": {"name": "c1", "items": [{"key": "a", "path": "a.txt", "mode": 420}], "defaultMode": 292}},
                                        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                                        {"name": "data", "persistentVolumeClaim": {"claimName": "data", "readOnly": true}},
                                        {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                                                                                      {"secret": {"name": "s1", "optional": false}}]}}],
                            "containers": [{"name": "c", "image": "nginx",
                                            "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 7, "failureThreshold": 3},
                                            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http", "httpHeaders": [{"name": "X", "value": "1"}]}},
                                            "startupProbe": {"exec": {"command": ["true"]}, "terminationGracePeriodSeconds": 0},
                                            "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
                                            "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": true},
                                            "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                                    {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "s1", "key": "p", "optional": true}}},
                                                    {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}}],
                                            "envFrom": [{"prefix": "CFG_", "configMapRef": {"name": "c1"}}],
                                            "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg", "readOnly": true}]}]}}}}
                """)
        let raw = try ProtobufSchemaEncoder.encode(object, kind: kind, numbers: numbers)
        let decoded = try ProtobufSchemaDecoder.decode(raw[...], kind: kind, numbers: numbers)
        let text = try decoded.serializedText()
        #expect(decoded == object, "\(text)")
    }

    @Test("the envelope names the kind; a ConfigMap's binary data and a Secret's data are bytes in protobuf, base64 in JSON")
    func configurationKinds() throws {
        let configMap: JSONValue = [
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": "c1", "namespace": "default"],
            "data": ["a": "b"], "binaryData": ["blob": "AAEC/w=="], "immutable": false,
        ]
        let secret: JSONValue = [
            "apiVersion": "v1", "kind": "Secret", "metadata": ["name": "s1", "namespace": "default"],
            "type": "Opaque", "data": ["password": "aHVudGVyMg=="],
        ]
        let namespace: JSONValue = [
            "apiVersion": "v1", "kind": "Namespace", "metadata": ["name": "team-a"],
            "spec": ["finalizers": ["kubernetes"]], "status": ["phase": "Active"],
        ]
        for object in [configMap, secret, namespace] {
            let kind = try Self.kind("v1", object.kind ?? "")
            let bytes = try #require(KubernetesProtobuf.encode(object, kind: kind), "\(object.kind ?? "")")
            #expect(Array(bytes.prefix(4)) == KubernetesProtobuf.magic)
            var expected = object
            expected[member: "status"] = nil  // a status in a request body is ignored
            #expect(try KubernetesProtobuf.decode(bytes, registry: Self.registry) == expected)
        }
        // The bytes are the secret's own, not its base64 text.
        let kind = try Self.kind("v1", "Secret")
        let raw = try ProtobufSchemaEncoder.encode(secret, kind: kind, numbers: try #require(kind.protobufNumbers))
        #expect(raw.contains(subsequence: Array("hunter2".utf8)))
        #expect(!raw.contains(subsequence: Array("aHVudGVyMg==".utf8)))
    }

    @Test("an Event keeps its microsecond times exactly: eventTime and series.lastObservedTime are MicroTime, seconds and nanos")
    func event() throws {
        let event: JSONValue = try JSONValue(
            parsing: """
                {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.1", "namespace": "default"},
                 "involvedObject": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": "default", "uid": "u-1"},
                 "reason": "ScalingReplicaSet", "message": "Scaled up to 3", "type": "Normal", "count": 2,
                 "source": {"component": "deployment-controller", "host": "node-1"},
                 "firstTimestamp": "2026-12-03T02:40:00Z", "lastTimestamp": "2026-12-03T02:41:00Z",
                 "eventTime": "2026-12-03T02:40:00.123456Z", "series": {"count": 2, "lastObservedTime": "2026-12-03T02:41:00.000001Z"},
                 "action": "Scale", "related": {"kind": "ReplicaSet", "name": "web-1"},
                 "reportingComponent": "deployment-controller", "reportingInstance": "node-1"}
                """)
        let kind = try Self.kind("v1", "Event")
        let bytes = try #require(KubernetesProtobuf.encode(event, kind: kind))
        #expect(try KubernetesProtobuf.decode(bytes, registry: Self.registry) == event)
        // eventTime (10): {seconds = 1: 1_796_265_600, nanos = 2: 123_456_000}, as Go's MicroTime writes it.
        let raw = try ProtobufSchemaEncoder.encode(event, kind: kind, numbers: try #require(kind.protobufNumbers))
        let eventTime: [UInt8] = [0x52, 0x0B, 0x08, 0x80, 0xAD, 0xC3, 0xD8, 0x06, 0x10, 0x80, 0x94, 0xEF, 0x3A]
        #expect(raw.contains(subsequence: eventTime), "\(raw)")
    }

    /// One object of each kind whose nested parts were left to JSON before (rules, metrics,
    /// claim templates, policies), every such part set. Quantities are written as strings, as Go
    /// reads them back.
    static let numberedObjects: [String] = [
        // The rare volume sources, an ephemeral container, resource claims and restart rules.
        """
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "rare", "namespace": "default"},
         "spec": {"containers": [{"name": "app", "image": "app:1",
                                  "restartPolicyRules": [{"action": "Restart", "exitCodes": {"operator": "In", "values": [42, 43]}}]}],
                  "ephemeralContainers": [{"name": "debug", "image": "busybox", "command": ["sh"], "stdin": true,
                                           "targetContainerName": "app"}],
                  "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "gpu-template"}],
                  "volumes": [{"name": "git", "gitRepo": {"repository": "https://example.com/r.git", "revision": "main"}},
                              {"name": "pd", "gcePersistentDisk": {"pdName": "disk-1", "fsType": "ext4", "partition": 1}},
                              {"name": "ebs", "awsElasticBlockStore": {"volumeID": "vol-1", "readOnly": true}},
                              {"name": "iscsi", "iscsi": {"targetPortal": "10.0.0.1:3260", "iqn": "iqn.2001-04.com.example:storage", "lun": 1,
                                                          "portals": ["10.0.0.2:3260"], "secretRef": {"name": "chap"},
                                                          "initiatorName": "iqn.1994-05.com.example:node"}},
                              {"name": "ceph", "cephfs": {"monitors": ["10.0.0.3:6789"], "path": "/", "secretRef": {"name": "ceph"}}},
                              {"name": "rbd", "rbd": {"monitors": ["10.0.0.3:6789"], "image": "img", "pool": "rbd"}},
                              {"name": "flex", "flexVolume": {"driver": "example/flex", "options": {"a": "b"}}},
                              {"name": "fc", "fc": {"targetWWNs": ["500a0982991b8dc5"], "lun": 0}},
                              {"name": "azure", "azureDisk": {"diskName": "d", "diskURI": "uri", "readOnly": false}},
                              {"name": "sio", "scaleIO": {"gateway": "gw", "system": "s", "secretRef": {"name": "sio"}, "sslEnabled": true}},
                              {"name": "trust", "projected": {"sources": [{"clusterTrustBundle": {"signerName": "example.com/signer",
                                  "labelSelector": {"matchLabels": {"a": "b"}}, "path": "ca.pem", "optional": false}}]}}]}}
        """,
        """
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
         "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"], "unschedulable": true,
                  "taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule", "timeAdded": "2026-12-03T02:00:00Z"}]},
         "status": {"capacity": {"cpu": "4", "memory": "16Gi"}, "allocatable": {"cpu": "3900m"},
                    "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-12-03T02:00:00Z", "reason": "KubeletReady"}],
                    "addresses": [{"type": "InternalIP", "address": "172.18.0.11"}],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                    "nodeInfo": {"kubeletVersion": "v1.32.0", "operatingSystem": "linux", "architecture": "amd64", "swap": {"capacity": 0}},
                    "images": [{"names": ["nginx:1.27"], "sizeBytes": 67000000}],
                    "runtimeHandlers": [{"name": "runc", "features": {"recursiveReadOnlyMounts": true, "userNamespaces": false}}],
                    "features": {"supplementalGroupsPolicy": true}}}
        """,
        """
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "default"},
         "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                  "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "pg", "image": "postgres:15"}]}},
                  "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast",
                                                     "resources": {"requests": {"storage": "10Gi"}},
                                                     "dataSource": {"kind": "VolumeSnapshot", "name": "snap", "apiGroup": "snapshot.storage.k8s.io"}},
                                            "status": {"phase": "Pending"}}]}}
        """,
        """
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "np", "namespace": "default"},
         "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress", "Egress"],
                  "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                                        {"namespaceSelector": {"matchLabels": {"team": "a"}}, "podSelector": {}}],
                               "ports": [{"protocol": "TCP", "port": 80}, {"port": "https", "endPort": 8443}]}],
                  "egress": [{"to": [{"podSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["db"]}]}}]}]}}
        """,
        """
        {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "lr", "namespace": "default"},
         "spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"cpu": "100m"}, "default": {"memory": "512Mi"},
                              "defaultRequest": {"memory": "256Mi"}, "maxLimitRequestRatio": {"cpu": "4"}}]}}
        """,
        """
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web", "namespace": "default"},
         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 5,
                  "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}},
                              {"type": "Pods", "pods": {"metric": {"name": "rps"}, "target": {"type": "AverageValue", "averageValue": "100"}}},
                              {"type": "External", "external": {"metric": {"name": "queue", "selector": {"matchLabels": {"q": "jobs"}}},
                                                                "target": {"type": "Value", "value": "30"}}}],
                  "behavior": {"scaleDown": {"stabilizationWindowSeconds": 120, "selectPolicy": "Max",
                                             "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]}}},
         "status": {"currentReplicas": 2, "desiredReplicas": 3, "lastScaleTime": "2026-12-03T02:00:00Z",
                    "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 75, "averageValue": "150m"}}}],
                    "conditions": [{"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale", "lastTransitionTime": "2026-12-03T02:00:00Z"}]}}
        """,
        """
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "default"},
         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, "volumeName": "pv-1",
                  "dataSourceRef": {"kind": "PersistentVolumeClaim", "name": "old", "namespace": "other"}},
         "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"},
                    "conditions": [{"type": "Resizing", "status": "True", "lastTransitionTime": "2026-12-03T02:00:00Z"}]}}
        """,
        """
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q", "namespace": "default"},
         "spec": {"hard": {"pods": "10"},
                  "scopeSelector": {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}}
        """,
        """
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "monitoring"},
         "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"rbac.example.com/aggregate-to-monitoring": "true"}}]}}
        """,
        """
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "builder", "namespace": "default"},
         "secrets": [{"name": "builder-token"}], "automountServiceAccountToken": false}
        """,
        """
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "default"},
         "spec": {"completionMode": "Indexed", "completions": 3,
                  "podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42, -1]}},
                                                 {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]},
                  "successPolicy": {"rules": [{"succeededIndexes": "0-1", "succeededCount": 1}]},
                  "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}],
                                        "volumes": [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"metadata": {"labels": {"a": "b"}},
                                                     "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}}}]}}}}
        """,
        """
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
         "spec": {"nodeName": "m1-node-1", "containers": [{"name": "nginx", "image": "nginx:1.27"}], "enableServiceLinks": true},
         "status": {"phase": "Running", "hostIP": "172.18.0.11", "hostIPs": [{"ip": "172.18.0.11"}], "podIP": "10.244.0.2",
                    "podIPs": [{"ip": "10.244.0.2"}], "startTime": "2026-12-03T02:00:00Z", "qosClass": "BestEffort",
                    "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-03T02:00:03Z"}],
                    "containerStatuses": [{"name": "nginx", "image": "nginx:1.27", "imageID": "sim://nginx:1.27", "containerID": "sim://x",
                                           "ready": true, "started": true, "restartCount": 2,
                                           "state": {"running": {"startedAt": "2026-12-03T02:00:03Z"}},
                                           "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": "2026-12-03T02:00:02Z"}}}]}}
        """,
    ]

    @Test("kinds whose rules, metrics, claim templates and policies are numbered decode back to what was encoded", arguments: numberedObjects)
    func numberedParts(_ text: String) throws {
        let object = try JSONValue(parsing: text)
        let kind = try Self.kind(object.apiVersion ?? "", object.kind ?? "")
        let numbers = try #require(kind.protobufNumbers)
        let raw = try ProtobufSchemaEncoder.encode(object, kind: kind, numbers: numbers)
        let decoded = try ProtobufSchemaDecoder.decode(raw[...], kind: kind, numbers: numbers, keepingStatus: true)
        #expect(decoded == object, "\((try? decoded.serializedText()) ?? "")")
        // And the kind's own schema takes it: nothing here is an unknown field.
        let findings = kind.schema.check(object)
        #expect(findings.isEmpty, "\(findings)")
    }

    @Test("an object with a part the schema does not number is left to JSON")
    func notEncodable() throws {
        let kind = try Self.kind("apps/v1", "Deployment")
        #expect(KubernetesProtobuf.encode(Self.deployment, kind: kind) != nil)
        func with(_ change: (inout JSONValue) -> Void) -> JSONValue {
            var object = Self.deployment
            change(&object)
            return object
        }
        let unknown = with { $0[member: "spec"]?[member: "replica"] = 3 }
        let wrongType = with { $0[member: "spec"]?[member: "replicas"] = "three" }
        let badTime = with { $0[member: "metadata"]?[member: "creationTimestamp"] = "yesterday" }
        for object in [unknown, wrongType, badTime] {
            let text = try object.serializedText()
            #expect(KubernetesProtobuf.encode(object, kind: kind) == nil, "\(text)")
        }
        // An empty free part is an empty message: what defaulting leaves in every pod template.
        let empty = with { $0[member: "spec"]?[member: "template"]?[member: "spec"]?[member: "securityContext"] = [:] }
        #expect(KubernetesProtobuf.encode(empty, kind: kind) != nil)
        // A kind without field numbers (a custom resource) is always JSON.
        var custom = kind
        custom.protobufNumbers = nil
        #expect(KubernetesProtobuf.encode(Self.deployment, kind: custom) == nil)
    }

    @Test("a list is DeploymentList with its ListMeta and every item; one item that cannot be encoded makes it JSON")
    func lists() throws {
        let kind = try Self.kind("apps/v1", "Deployment")
        var second = Self.deployment
        second[member: "metadata"]?[member: "name"] = "api"
        let bytes = try #require(
            KubernetesProtobuf.encodeList([Self.deployment, second], kind: kind, resourceVersion: "77", continueToken: "next"))
        var unknown = ProtobufReader(bytes.dropFirst(4)[...])
        var typeKind = ""
        var raw: ArraySlice<UInt8> = []
        while let field = try unknown.next() {
            if field.number == 1 {
                var typeMeta = ProtobufReader(try field.bytes())
                while let meta = try typeMeta.next() {
                    if meta.number == 2 { typeKind = try meta.string() }
                }
            }
            if field.number == 2 { raw = try field.bytes() }
        }
        #expect(typeKind == "DeploymentList")
        var list = ProtobufReader(raw)
        var names: [String] = []
        var listMeta: [Int: String] = [:]
        while let field = try list.next() {
            if field.number == 1 {
                var meta = ProtobufReader(try field.bytes())
                while let part = try meta.next() { listMeta[part.number] = try part.string() }
            }
            if field.number == 2 {
                let item = try ProtobufSchemaDecoder.decode(try field.bytes(), kind: kind, numbers: try #require(kind.protobufNumbers))
                names.append(item.name ?? "")
            }
        }
        #expect(names == ["web", "api"])
        #expect(listMeta == [2: "77", 3: "next"])
        second[member: "spec"]?[member: "surprise"] = true
        #expect(KubernetesProtobuf.encodeList([Self.deployment, second], kind: kind, resourceVersion: "77", continueToken: nil) == nil)
    }

    @Test(
        "protobuf is answered only when the client ranks it first",
        arguments: [
            ("application/vnd.kubernetes.protobuf, */*", true),
            ("application/vnd.kubernetes.protobuf,application/json", true),
            ("application/json, application/vnd.kubernetes.protobuf", false),
            ("application/json;q=0.5, application/vnd.kubernetes.protobuf", true),
            ("application/vnd.kubernetes.protobuf;q=0, application/json", false),
            ("application/json", false),
            ("", false),
        ])
    func negotiation(accept: String, protobuf: Bool) {
        #expect(ResourceOperation.prefersProtobuf(accept) == protobuf)
    }
}

extension Array where Element == UInt8 {
    fileprivate func contains(subsequence: [UInt8]) -> Bool {
        guard subsequence.count <= count else { return false }
        return (0...(count - subsequence.count)).contains { Array(self[$0..<($0 + subsequence.count)]) == subsequence }
    }
}
