import BuiltinPlugins
import Testing
import TetherJSON

@testable import TetherAPI

/// Protobuf bodies decoded from the kinds' schemas: what Kubernetes' encoder writes for unset
/// fields is left out, a pointer's zero is kept, and nothing the server cannot read is dropped.
@Suite("protobuf bodies decoded from the kinds' schemas")
struct ProtobufSchemaDecoderTests {
    /// `k8s\0`, then `runtime.Unknown { typeMeta = 1 { apiVersion = 1, kind = 2 }, raw = 2 }`.
    static func envelope(apiVersion: String, kind: String, _ object: ProtobufWriter) -> [UInt8] {
        var typeMeta = ProtobufWriter()
        typeMeta.string(1, apiVersion)
        typeMeta.string(2, kind)
        var unknown = ProtobufWriter()
        unknown.message(1, typeMeta)
        unknown.message(2, object)
        unknown.string(4, "application/vnd.kubernetes.protobuf")
        return [0x6B, 0x38, 0x73, 0x00] + unknown.bytes
    }

    /// A Deployment as Kubernetes' encoder writes it: every non-pointer field, set or not.
    static func deployment(
        replicas: UInt64?, extraContainerField: (Int, String)? = nil, probe: Bool = false, gitRepoVolume: Bool = false,
        unknownVolumeSource: Bool = false
    )
        -> [UInt8]
    {
        var metadata = ProtobufWriter()
        metadata.string(1, "web")
        metadata.string(2, "")
        metadata.string(3, "")
        metadata.message(8, ProtobufWriter())  // creationTimestamp: null
        var label = ProtobufWriter()
        label.string(1, "app")
        label.string(2, "web")
        metadata.message(11, label)
        var container = ProtobufWriter()
        container.string(1, "nginx")
        container.string(2, "nginx:1.27")
        container.string(5, "")
        container.message(8, ProtobufWriter())  // resources: {}
        container.string(13, "")
        container.string(14, "")
        container.varint(16, 0)
        if let (number, value) = extraContainerField { container.string(number, value) }
        if probe {
            var probe = ProtobufWriter()
            probe.varint(2, 5)
            container.message(11, probe)
        }
        var podSpec = ProtobufWriter()
        if gitRepoVolume || unknownVolumeSource {
            // Volume { name = 1, volumeSource = 2 { gitRepo = 5 { repository = 1 } } }, or a source numbered 99, which no Kubernetes has.
            var gitRepo = ProtobufWriter()
            gitRepo.string(1, "https://example.com/r.git")
            var source = ProtobufWriter()
            source.message(unknownVolumeSource ? 99 : 5, gitRepo)
            var volume = ProtobufWriter()
            volume.string(1, "src")
            volume.message(2, source)
            podSpec.message(1, volume)
        }
        podSpec.message(2, container)
        podSpec.string(3, "")
        podSpec.varint(11, 0)
        var templateMetadata = ProtobufWriter()
        templateMetadata.message(11, label)
        var template = ProtobufWriter()
        template.message(1, templateMetadata)
        template.message(2, podSpec)
        var selector = ProtobufWriter()
        selector.message(1, label)
        var surge = ProtobufWriter()
        surge.varint(1, 1)
        surge.string(3, "25%")
        var rolling = ProtobufWriter()
        rolling.message(2, surge)
        var strategy = ProtobufWriter()
        strategy.string(1, "RollingUpdate")
        strategy.message(2, rolling)
        var spec = ProtobufWriter()
        if let replicas { spec.varint(1, replicas) }
        spec.message(2, selector)
        spec.message(3, template)
        spec.message(4, strategy)
        spec.varint(5, 0)
        spec.varint(7, 0)
        var status = ProtobufWriter()
        status.varint(2, 9)
        var deployment = ProtobufWriter()
        deployment.message(1, metadata)
        deployment.message(2, spec)
        deployment.message(3, status)
        return envelope(apiVersion: "apps/v1", kind: "Deployment", deployment)
    }

    @Test("unset fields are left out, set ones kept; the status is the server's and is ignored")
    func deployment() throws {
        let object = try KubernetesProtobuf.decode(Self.deployment(replicas: 6), registry: BuiltinPlugins.hub)
        let expected = try JSONValue(
            parsing: """
                {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
                 "spec": {"replicas": 6, "selector": {"matchLabels": {"app": "web"}},
                          "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
                          "template": {"metadata": {"labels": {"app": "web"}},
                                       "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}}}
                """)
        let text = try object.serializedText()
        #expect(object == expected, "\(text)")
    }

    @Test("a pointer field's zero is a value: replicas 0 stays 0; absent, it is absent")
    func pointerZero() throws {
        let zero = try KubernetesProtobuf.decode(Self.deployment(replicas: 0), registry: BuiltinPlugins.hub)
        #expect(zero["spec"]?["replicas"] == .integer(0))
        let unset = try KubernetesProtobuf.decode(Self.deployment(replicas: nil), registry: BuiltinPlugins.hub)
        #expect(unset["spec"]?["replicas"] == nil)
        // A negative int32 travels as a ten-byte varint.
        let negative = try KubernetesProtobuf.decode(Self.deployment(replicas: UInt64(bitPattern: -1)), registry: BuiltinPlugins.hub)
        #expect(negative["spec"]?["replicas"] == .integer(-1))
    }

    @Test("a field number the server does not know, or a part it does not model, is refused when it carries a value")
    func refusals() throws {
        #expect(throws: (any Error).self) {
            try KubernetesProtobuf.decode(Self.deployment(replicas: 1, extraContainerField: (99, "surprise")), registry: BuiltinPlugins.hub)
        }
        // Unknown but empty: what a newer encoder writes for a field nobody set.
        _ = try KubernetesProtobuf.decode(Self.deployment(replicas: 1, extraContainerField: (99, "")), registry: BuiltinPlugins.hub)
        // A probe is numbered: it decodes.
        let probed = try KubernetesProtobuf.decode(Self.deployment(replicas: 1, probe: true), registry: BuiltinPlugins.hub)
        let containers = probed["spec"]?["template"]?["spec"]?["containers"]?.arrayElements ?? []
        #expect(containers.first?["readinessProbe"] == ["initialDelaySeconds": 5])
        // A rare volume source is numbered: it decodes.
        let gitRepo = try KubernetesProtobuf.decode(Self.deployment(replicas: 1, gitRepoVolume: true), registry: BuiltinPlugins.hub)
        let volumes = gitRepo["spec"]?["template"]?["spec"]?["volumes"]?.arrayElements ?? []
        #expect(volumes.first?["gitRepo"] == ["repository": "https://example.com/r.git"], "\(volumes)")
        do {
            _ = try KubernetesProtobuf.decode(Self.deployment(replicas: 1, unknownVolumeSource: true), registry: BuiltinPlugins.hub)
            Issue.record("a volume source numbered 99 was accepted")
        } catch {
            #expect("\(error)".contains("spec.template.spec.volumes[0] has field number 99"), "\(error)")
        }
    }

    @Test("DeleteOptions and an Eviction, as kubectl drain sends them: a zero grace period is kept, preconditions read, an unknown field refused")
    func deleteOptionsAndEviction() throws {
        var preconditions = ProtobufWriter()
        preconditions.string(1, "uid-1")
        var options = ProtobufWriter()
        options.varint(1, 0)  // gracePeriodSeconds: 0, a pointer: kept
        options.message(2, preconditions)
        options.string(4, "Foreground")
        let decoded = try KubernetesProtobuf.decodeDeleteOptions(Self.envelope(apiVersion: "v1", kind: "DeleteOptions", options))
        #expect(decoded == ["gracePeriodSeconds": 0, "preconditions": ["uid": "uid-1"], "propagationPolicy": "Foreground"])

        var metadata = ProtobufWriter()
        metadata.string(1, "web-1")
        metadata.string(2, "")
        metadata.string(3, "default")
        var eviction = ProtobufWriter()
        eviction.message(1, metadata)
        eviction.message(2, options)
        let evicted = try KubernetesProtobuf.decodeEviction(Self.envelope(apiVersion: "policy/v1", kind: "Eviction", eviction))
        #expect(evicted["metadata"] == ["name": "web-1", "namespace": "default"])
        #expect(evicted["deleteOptions"]?["gracePeriodSeconds"] == 0)

        #expect(throws: (any Error).self) { try KubernetesProtobuf.decodeEviction(Self.envelope(apiVersion: "v1", kind: "DeleteOptions", options)) }
        var unknown = options
        unknown.string(42, "surprise")
        #expect(throws: (any Error).self) {
            try KubernetesProtobuf.decodeDeleteOptions(Self.envelope(apiVersion: "v1", kind: "DeleteOptions", unknown))
        }
    }

    @Test("every truncation of a valid body is refused or decodes to less, never more")
    func truncated() throws {
        let whole = Self.deployment(replicas: 6)
        var refused = 0
        for length in 0..<whole.count {
            guard let object = try? KubernetesProtobuf.decode(Array(whole.prefix(length)), registry: BuiltinPlugins.hub) else {
                refused += 1
                continue
            }
            #expect(object["spec"]?["replicas"] == nil || object["spec"]?["replicas"] == .integer(6))
        }
        #expect(refused > whole.count / 2, "\(refused) of \(whole.count) prefixes refused")
    }
}
