import TetherJSON
import TetherModel

/// kube-apiserver's admission of a PersistentVolumeClaim created in a cluster that binds claims
/// (a simulated member): DefaultStorageClass (a claim naming no class, `storageClassName` absent
/// rather than `""`, gets the default class, the newest when several are marked) and
/// StorageObjectInUseProtection (the `kubernetes.io/pvc-protection` finalizer, which the
/// cluster's controller removes once no Pod uses the claim). The hub binds no claim, so its
/// claims name what their author wrote and each member picks its own default.
public enum ClaimAdmission {
    public static let defaultClassAnnotation = "storageclass.kubernetes.io/is-default-class"
    /// The annotation's older name, which kube-apiserver still honours.
    static let betaDefaultClassAnnotation = "storageclass.beta.kubernetes.io/is-default-class"
    public static let protectionFinalizer = "kubernetes.io/pvc-protection"

    public static func isDefault(_ storageClass: JSONValue) -> Bool {
        let annotations = storageClass.annotations
        return annotations[defaultClassAnnotation] == "true" || annotations[betaDefaultClassAnnotation] == "true"
    }

    /// The class a claim naming none gets: of the classes marked default, the newest (then the
    /// first by name), as kube-apiserver picks since 1.26.
    public static func defaultClass(among classes: [JSONValue]) -> JSONValue? {
        classes.filter(isDefault).max { left, right in
            let (leftTime, rightTime) = (
                left.metadata["creationTimestamp"]?.stringValue ?? "", right.metadata["creationTimestamp"]?.stringValue ?? ""
            )
            return leftTime != rightTime ? leftTime < rightTime : (left.name ?? "") > (right.name ?? "")
        }
    }

    /// `claim` as admission leaves it: its class, its volume mode, and the protection finalizer.
    public static func admit(_ claim: JSONValue, classes: [JSONValue]) -> JSONValue {
        var admitted = claim
        if claim.value(at: "spec", "storageClassName") == nil, let name = defaultClass(among: classes)?.name {
            admitted.set(.string(name), at: ["spec", "storageClassName"])
        }
        KubernetesDefaults.fill(&admitted, ["spec", "volumeMode"], "Filesystem")
        var finalizers = admitted.metadata["finalizers"]?.arrayElements ?? []
        if !finalizers.contains(.string(protectionFinalizer)) {
            finalizers.append(.string(protectionFinalizer))
            admitted.metadata["finalizers"] = .array(finalizers)
        }
        return admitted
    }
}
