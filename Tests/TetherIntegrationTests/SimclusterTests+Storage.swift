import Foundation
import Testing
import TetherTestSupport

extension SimclusterTests {
    @Test(
        "a simulated member binds claims as a cluster does: the default class waits for the first Pod and provisions on its node, an Immediate class binds at once and grows a claim when it allows expansion, a hand-made volume binds a claim of no class and is kept when it goes, a claim in use stays until its Pod goes, and a Pod whose claim is missing waits until it exists"
    )
    func persistentVolumes() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 2)
            let classes = try await kubectl.succeed(["get", "storageclasses"])
            #expect(classes.contains("NAME"), "\(classes)")
            #expect(
                classes.split(separator: "\n").contains {
                    $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ").hasPrefix(
                        "standard (default) sim.tether.io/local-path Delete WaitForFirstConsumer false")
                }, "\(classes)")
            let explained = try await kubectl.succeed(["explain", "storageclass.volumeBindingMode"])
            #expect(explained.contains("When a claim is bound: Immediate (the default) or WaitForFirstConsumer"), "\(explained)")
            let nodesHeader = try await kubectl.succeed(["get", "nodes"]).split(separator: "\n").first ?? ""
            #expect(nodesHeader.split(separator: " ", omittingEmptySubsequences: true) == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"])

            func claim(_ name: String, size: String = "1Gi", storageClass: String? = nil) -> String {
                """
                apiVersion: v1
                kind: PersistentVolumeClaim
                metadata:
                  name: \(name)
                spec:
                  accessModes: [ReadWriteOnce]
                  resources: {requests: {storage: \(size)}}
                \(storageClass.map { "  storageClassName: \"\($0)\"" } ?? "")
                """
            }
            func pod(_ name: String, claim: String) -> String {
                """
                apiVersion: v1
                kind: Pod
                metadata:
                  name: \(name)
                spec:
                  containers:
                  - name: main
                    image: nginx:1.27
                    volumeMounts: [{name: data, mountPath: /data}]
                  volumes:
                  - name: data
                    persistentVolumeClaim: {claimName: \(claim)}
                """
            }

            // The default class: admission names it and protects the claim; it waits for a Pod.
            try await kubectl.succeed(["apply", "-f", "-"], stdin: claim("data"))
            let admitted = try await kubectl.succeed([
                "get", "pvc", "data", "-o", "jsonpath={.spec.storageClassName}/{.spec.volumeMode}/{.metadata.finalizers[*]}",
            ])
            #expect(admitted == "standard/Filesystem/kubernetes.io/pvc-protection")
            _ = try await kubectl.waitForOutput([
                "get", "events", "--field-selector", "involvedObject.name=data,reason=WaitForFirstConsumer", "-o", "jsonpath={.items[*].message}",
            ]) { $0.contains("waiting for first consumer to be created before binding") }
            #expect(try await kubectl.succeed(["get", "pvc", "data", "-o", "jsonpath={.status.phase}"]) == "Pending")

            try await kubectl.succeed(["apply", "-f", "-"], stdin: pod("app", claim: "data"))
            try await kubectl.succeed(["wait", "--for=condition=Ready", "pod/app", "--timeout=30s"], within: .seconds(40))
            let bound = try await kubectl.succeed([
                "get", "pvc", "data", "-o", "jsonpath={.status.phase}/{.spec.volumeName}/{.status.capacity.storage}/{.metadata.uid}",
            ]).split(separator: "/").map(String.init)
            #expect(bound.count == 4 && bound[0] == "Bound" && bound[1] == "pvc-\(bound[3])" && bound[2] == "1Gi", "\(bound)")
            let volumeName = bound.count == 4 ? bound[1] : ""
            let node = try await kubectl.succeed(["get", "pod", "app", "-o", "jsonpath={.spec.nodeName}"])
            let pinned = try await kubectl.succeed([
                "get", "pv", volumeName, "-o",
                "jsonpath={.status.phase}/{.spec.claimRef.name}/{.spec.persistentVolumeReclaimPolicy}/{.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]}",
            ])
            #expect(pinned == "Bound/data/Delete/\(node)")

            // In use, its deletion waits for the Pod; then the claim and its volume go.
            try await kubectl.succeed(["delete", "pvc", "data", "--wait=false"])
            let held = try await kubectl.run(["wait", "--for=delete", "pvc/data", "--timeout=2s"])
            #expect(held.status != 0, "a claim in use went: \(held)")
            try await kubectl.succeed(["delete", "pod", "app", "--wait=true"], within: .seconds(40))
            try await kubectl.succeed(["wait", "--for=delete", "pvc/data", "--timeout=30s"], within: .seconds(40))
            try await kubectl.succeed(["wait", "--for=delete", "pv/\(volumeName)", "--timeout=30s"], within: .seconds(40))

            // An Immediate class binds at once, on no node in particular.
            try await kubectl.succeed(
                ["apply", "-f", "-"],
                stdin: """
                    apiVersion: storage.k8s.io/v1
                    kind: StorageClass
                    metadata: {name: fast}
                    provisioner: example.com/fast
                    allowVolumeExpansion: true
                    """)
            let fast = try await kubectl.succeed(["get", "sc", "fast", "-o", "jsonpath={.reclaimPolicy}/{.volumeBindingMode}"])
            #expect(fast == "Delete/Immediate")
            try await kubectl.succeed(["apply", "-f", "-"], stdin: claim("quick", size: "3Gi", storageClass: "fast"))
            try await kubectl.succeed(["wait", "--for=jsonpath={.status.phase}=Bound", "pvc/quick", "--timeout=30s"], within: .seconds(40))
            let quickVolume = try await kubectl.succeed(["get", "pvc", "quick", "-o", "jsonpath={.spec.volumeName}"])
            let unpinned = try await kubectl.succeed([
                "get", "pv", quickVolume, "-o", "jsonpath={.spec.storageClassName}/{.spec.capacity.storage}/{.spec.nodeAffinity}",
            ])
            #expect(unpinned == "fast/3Gi/")
            let changed = try await kubectl.run(["patch", "sc", "fast", "--type=merge", "-p", #"{"reclaimPolicy":"Retain"}"#])
            #expect(changed.status != 0 && changed.stderr.contains("updates to reclaimPolicy are forbidden"), "\(changed)")
            let moved = try await kubectl.run(["patch", "pvc", "quick", "--type=merge", "-p", #"{"spec":{"accessModes":["ReadWriteMany"]}}"#])
            #expect(moved.status != 0 && moved.stderr.contains("spec is immutable after creation"), "\(moved)")
            // Its class allows expansion: a larger request grows the volume.
            try await kubectl.succeed(["patch", "pvc", "quick", "--type=merge", "-p", #"{"spec":{"resources":{"requests":{"storage":"5Gi"}}}}"#])
            try await kubectl.succeed(["wait", "--for=jsonpath={.status.capacity.storage}=5Gi", "pvc/quick", "--timeout=30s"], within: .seconds(40))
            #expect(try await kubectl.succeed(["get", "pv", quickVolume, "-o", "jsonpath={.spec.capacity.storage}"]) == "5Gi")

            // A volume made by hand binds the smallest fitting claim of no class, and is kept.
            try await kubectl.succeed(
                ["apply", "-f", "-"],
                stdin: """
                    apiVersion: v1
                    kind: PersistentVolume
                    metadata: {name: manual, labels: {disk: ssd}}
                    spec:
                      capacity: {storage: 5Gi}
                      accessModes: [ReadWriteOnce]
                      hostPath: {path: /srv/manual}
                    """)
            try await kubectl.succeed(["apply", "-f", "-"], stdin: claim("static", size: "2Gi", storageClass: ""))
            try await kubectl.succeed(["wait", "--for=jsonpath={.status.phase}=Bound", "pvc/static", "--timeout=30s"], within: .seconds(40))
            #expect(
                try await kubectl.succeed(["get", "pvc", "static", "-o", "jsonpath={.spec.volumeName}/{.status.capacity.storage}"]) == "manual/5Gi")
            let resized = try await kubectl.run([
                "patch", "pvc", "static", "--type=merge", "-p", #"{"spec":{"resources":{"requests":{"storage":"8Gi"}}}}"#,
            ])
            #expect(
                resized.status != 0
                    && resized.stderr.contains(
                        "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize"),
                "\(resized)")
            try await kubectl.succeed(["delete", "pvc", "static", "--wait=true"], within: .seconds(40))
            try await kubectl.succeed(["wait", "--for=jsonpath={.status.phase}=Released", "pv/manual", "--timeout=30s"], within: .seconds(40))

            // A Pod whose claim does not exist waits, and says why, until it does.
            try await kubectl.succeed(["apply", "-f", "-"], stdin: pod("patient", claim: "later"))
            let waiting = try await kubectl.waitForOutput([
                "get", "pod", "patient", "-o", #"jsonpath={.status.conditions[?(@.type=="PodScheduled")].message}"#,
            ]) { !$0.isEmpty }
            #expect(
                waiting
                    == "0/2 nodes are available: persistentvolumeclaim \"later\" not found. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
            )
            try await kubectl.succeed(["apply", "-f", "-"], stdin: claim("later"))
            try await kubectl.succeed(["wait", "--for=condition=Ready", "pod/patient", "--timeout=30s"], within: .seconds(40))
            #expect(try await kubectl.succeed(["get", "pvc", "later", "-o", "jsonpath={.status.phase}"]) == "Bound")
        }
    }

    @Test(
        "a StatefulSet's volumeClaimTemplates give each Pod its own claim, bound on the Pod's node; a scale-down deletes the removed Pods' claims when whenScaled is Delete, and the rest stay"
    )
    func statefulSetClaims() async throws {
        try await withFederation { federation in
            let (_, kubectl) = try await startSimcluster("s1", in: federation, nodes: 2)
            try await kubectl.succeed(
                ["apply", "-f", "-"],
                stdin: """
                    apiVersion: apps/v1
                    kind: StatefulSet
                    metadata: {name: db}
                    spec:
                      replicas: 2
                      serviceName: db
                      selector: {matchLabels: {app: db}}
                      persistentVolumeClaimRetentionPolicy: {whenScaled: Delete, whenDeleted: Retain}
                      template:
                        metadata: {labels: {app: db}}
                        spec:
                          containers:
                          - name: main
                            image: postgres:16
                            volumeMounts: [{name: data, mountPath: /var/lib/postgresql}]
                      volumeClaimTemplates:
                      - metadata: {name: data}
                        spec:
                          accessModes: [ReadWriteOnce]
                          resources: {requests: {storage: 2Gi}}
                    """)
            try await kubectl.succeed(["rollout", "status", "statefulset/db", "--timeout=60s"], within: .seconds(70))
            for ordinal in 0..<2 {
                let claim = try await kubectl.succeed([
                    "get", "pvc", "data-db-\(ordinal)", "-o", "jsonpath={.status.phase}/{.spec.volumeName}/{.metadata.labels.app}",
                ])
                let parts = claim.split(separator: "/").map(String.init)
                #expect(parts.count == 3 && parts[0] == "Bound" && parts[2] == "db", "\(claim)")
                let node = try await kubectl.succeed(["get", "pod", "db-\(ordinal)", "-o", "jsonpath={.spec.nodeName}"])
                let pinned = try await kubectl.succeed([
                    "get", "pv", parts.count == 3 ? parts[1] : "", "-o",
                    "jsonpath={.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]}",
                ])
                #expect(pinned == node, "db-\(ordinal) runs on \(node), its volume is on \(pinned)")
                let claimName = try await kubectl.succeed([
                    "get", "pod", "db-\(ordinal)", "-o", #"jsonpath={.spec.volumes[?(@.name=="data")].persistentVolumeClaim.claimName}"#,
                ])
                #expect(claimName == "data-db-\(ordinal)")
            }
            let created = try await kubectl.succeed([
                "get", "events", "--field-selector", "involvedObject.name=db,reason=SuccessfulCreate", "-o", "jsonpath={.items[*].message}",
            ])
            #expect(created.contains("create Claim data-db-0 Pod db-0 in StatefulSet db success"), "\(created)")

            try await kubectl.succeed(["scale", "statefulset/db", "--replicas=1"])
            try await kubectl.succeed(["wait", "--for=delete", "pvc/data-db-1", "--timeout=40s"], within: .seconds(50))
            #expect(try await kubectl.succeed(["get", "pvc", "data-db-0", "-o", "jsonpath={.status.phase}"]) == "Bound")
        }
    }
}
