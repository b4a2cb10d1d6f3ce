import Testing
import TetherJSON

@testable import TetherSim

/// Which volume the simulated binder gives a claim, on its own.
@Suite("Volume binding")
struct VolumeBindingTests {
    static func volume(_ name: String, size: String, modes: [String] = ["ReadWriteOnce"], className: String? = nil, labels: [String: String] = [:])
        -> JSONValue
    {
        var volume: JSONValue = [
            "kind": "PersistentVolume", "metadata": ["name": .string(name), "labels": .object(labels.mapValues(JSONValue.string))],
            "spec": ["capacity": ["storage": .string(size)], "accessModes": .array(modes.map(JSONValue.string)), "hostPath": ["path": "/srv"]],
        ]
        if let className { volume.set(.string(className), at: ["spec", "storageClassName"]) }
        return volume
    }

    static let claim: JSONValue = [
        "kind": "PersistentVolumeClaim", "metadata": ["name": "data", "namespace": "default", "uid": "u1"],
        "spec": ["accessModes": ["ReadWriteOnce"], "resources": ["requests": ["storage": "2Gi"]]],
    ]

    @Test(
        "a volume fits a claim of its class with its access modes, its volume mode, enough room and a matching selector; bound to another claim it does not"
    )
    func fits() {
        #expect(VolumeController.fits(Self.volume("a", size: "2Gi"), Self.claim, className: ""))
        #expect(!VolumeController.fits(Self.volume("small", size: "1Gi"), Self.claim, className: ""))
        #expect(!VolumeController.fits(Self.volume("classed", size: "5Gi", className: "fast"), Self.claim, className: ""))
        #expect(VolumeController.fits(Self.volume("classed", size: "5Gi", className: "fast"), Self.claim, className: "fast"))
        #expect(!VolumeController.fits(Self.volume("shared", size: "5Gi", modes: ["ReadWriteMany"]), Self.claim, className: ""))
        var block = Self.volume("block", size: "5Gi")
        block.set("Block", at: ["spec", "volumeMode"])
        #expect(!VolumeController.fits(block, Self.claim, className: ""))

        var selective = Self.claim
        selective.set(["matchLabels": ["disk": "ssd"]], at: ["spec", "selector"])
        #expect(VolumeController.fits(Self.volume("ssd", size: "5Gi", labels: ["disk": "ssd"]), selective, className: ""))
        #expect(!VolumeController.fits(Self.volume("hdd", size: "5Gi", labels: ["disk": "hdd"]), selective, className: ""))

        var taken = Self.volume("taken", size: "5Gi")
        taken.set(["namespace": "default", "name": "other", "uid": "u2"], at: ["spec", "claimRef"])
        #expect(!VolumeController.fits(taken, Self.claim, className: ""))
        var reserved = Self.volume("reserved", size: "5Gi")
        reserved.set(["namespace": "default", "name": "data"], at: ["spec", "claimRef"])
        #expect(VolumeController.fits(reserved, Self.claim, className: ""))
        var released = Self.volume("released", size: "5Gi")
        released.set("Released", at: ["status", "phase"])
        #expect(!VolumeController.fits(released, Self.claim, className: ""))
    }
}
