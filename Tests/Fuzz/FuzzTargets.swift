import BuiltinPlugins
import Foundation
import NIOCore
import NIOEmbedded
import TetherAPI
import TetherJSON
import TetherModel
import TetherPlugin
import TetherSecurity
import TetherWire

/// The decoders and parsers that read what strangers send, each as a libFuzzer harness: bytes
/// in, no crash, no hang, no unbounded growth out. A harness also checks what it can of the
/// result (a parsed document writes back to the same value; a patch's result stays within the
/// object limits), so the fuzzer finds wrong answers as well as crashes.
enum FuzzTarget: String, CaseIterable {
    /// Frames over a byte stream, then each frame's message (the agent port).
    case frame
    /// The JSON parser and writer.
    case json
    /// Kubernetes' protobuf request bodies.
    case protobuf
    /// Merge, strategic-merge and JSON patches, bounded by the object limits.
    case patch
    /// Label and field selectors.
    case selectors
    /// YAML (kubeconfigs, manifests).
    case yaml
    /// PEM certificates, identities and revocation lists.
    case pem
    /// The agent port's TLS on OpenSSL: handshakes and records (`TLSRecordFuzz`).
    case tls
    /// CEL validation rules of CustomResourceDefinitions: parsed, then evaluated over an object.
    case cel

    static let limits = ObjectLimits(maximumBytes: 64 * 1024, maximumDepth: 48)

    func run(_ bytes: UnsafeRawBufferPointer) {
        switch self {
        case .frame: Self.frames(bytes)
        case .json: Self.json(bytes)
        case .protobuf: Self.protobuf(bytes)
        case .patch: Self.patch(bytes)
        case .selectors: Self.selectors(bytes)
        case .yaml: _ = try? YAMLDocument.decode(String(decoding: bytes, as: UTF8.self), maximumValues: 20_000)
        case .pem: Self.pem(bytes)
        case .tls: TLSRecordFuzz.run(bytes)
        case .cel: Self.cel(bytes)
        }
    }

    /// What decodes, encoded again (as an answer would be), decodes to the same object.
    private static func protobuf(_ bytes: UnsafeRawBufferPointer) {
        _ = try? KubernetesProtobuf.decodeReview(Array(bytes))
        _ = try? KubernetesProtobuf.decodeDeleteOptions(Array(bytes))
        _ = try? KubernetesProtobuf.decodeEviction(Array(bytes))
        let registry = BuiltinPlugins.hub
        guard let object = try? KubernetesProtobuf.decode(Array(bytes), registry: registry),
            let kind = registry.kind(apiVersion: object["apiVersion"]?.stringValue ?? "", kind: object["kind"]?.stringValue ?? ""),
            let again = KubernetesProtobuf.encode(object, kind: kind)
        else { return }
        precondition((try? KubernetesProtobuf.decode(again, registry: registry)) == object, "an object did not survive a protobuf round trip")
    }

    private static func frames(_ bytes: UnsafeRawBufferPointer) {
        let limits = WireLimits(maximumFrameLength: 64 * 1024, maximumInflatedPayload: 256 * 1024, maximumJSONDepth: 64)
        let channel = EmbeddedChannel(
            handler: ByteToMessageHandler(FrameDecoder(maximumFrameLength: limits.maximumFrameLength), maximumBufferSize: 128 * 1024)
        )
        defer { _ = try? channel.finish() }
        // Split where the input says, so the decoder sees every way a stream can be cut.
        let cut = bytes.isEmpty ? 0 : Int(bytes[0]) % max(1, bytes.count)
        for part in [bytes[..<cut], bytes[cut...]] where !part.isEmpty {
            guard (try? channel.writeInbound(ByteBuffer(bytes: part))) != nil else { return }
        }
        let codec = WireCodec(limits: limits)
        while let frame = try? channel.readInbound(as: Frame.self) {
            guard let message = try? codec.decode(frame, allocator: channel.allocator) else { continue }
            // What decodes encodes again, and decodes to the same message.
            guard let again = try? codec.encode(message, allocator: channel.allocator) else { continue }
            precondition((try? codec.decode(again, allocator: channel.allocator)) == message, "a message did not survive a round trip")
        }
    }

    private static func json(_ bytes: UnsafeRawBufferPointer) {
        guard let value = try? JSONValue(parsing: bytes, maximumDepth: 64) else { return }
        guard let written = try? value.serialized() else { return }
        precondition(written.count == value.encodedSize(), "the size estimate differs from the writer")
        precondition((try? JSONValue(parsing: written, maximumDepth: 64)) == value, "a document did not survive a round trip")
    }

    /// The input is `[object, patch]` in JSON, its first byte choosing the patch type.
    private static func patch(_ bytes: UnsafeRawBufferPointer) {
        guard let kind = bytes.first, let pair = try? JSONValue(parsing: UnsafeRawBufferPointer(rebasing: bytes[1...]), maximumDepth: 50),
            case .array(let parts) = pair, parts.count == 2
        else { return }
        let (object, patch) = (parts[0], parts[1])
        switch kind % 3 {
        case 0:
            _ = object.mergePatched(with: patch)
        case 1:
            _ = object.strategicMergePatched(with: patch)
        default:
            guard let result = try? object.applyingJSONPatch(patch, limits: limits) else { return }
            // Bounded while it applies: never past the object and every copy allowed, never past the depth.
            let ceiling = object.encodedSize() + patch.encodedSize() + limits.maximumBytes
            precondition(result.encodedSize(stoppingAfter: ceiling) <= ceiling, "a patch grew an object past its bound")
            precondition(result.nestingDepth(stoppingAfter: 60) <= max(limits.maximumDepth, object.nestingDepth()), "a patch nested too deep")
        }
    }

    private static func selectors(_ bytes: UnsafeRawBufferPointer) {
        let text = String(decoding: bytes, as: UTF8.self)
        if let selector = try? LabelSelector(parsing: text) {
            _ = selector.matches(["app": "web", "tier": "front", "env": "prod"])
            precondition(
                (try? LabelSelector(parsing: selector.description))?.requirements == selector.requirements,
                "a selector did not survive its description")
        }
        if let selector = try? FieldSelector(parsing: text, allowing: ["involvedObject.name", "spec.nodeName"]) {
            _ = selector.matches(["metadata": ["name": "web", "namespace": "default"], "involvedObject": ["name": "x"]])
        }
    }

    /// A rule is data anyone who may write a definition sends: parsing is bounded in depth and
    /// length, and evaluation in steps, whatever the rule.
    private static func cel(_ bytes: UnsafeRawBufferPointer) {
        guard let expression = try? CELExpression(parsing: String(decoding: bytes, as: UTF8.self)) else { return }
        var evaluator = CELEvaluator()
        let value: JSONValue = [
            "replicas": 3, "name": "web-1", "ports": [["port": 80], ["port": 443]], "labels": ["app": "web"], "ratio": .double(0.5),
            "list": .array((0..<50).map { .integer(Int64($0)) }),
        ]
        _ = try? evaluator.evaluate(expression, bindings: ["self": value, "oldSelf": value])
    }

    private static func pem(_ bytes: UnsafeRawBufferPointer) {
        let text = String(decoding: bytes, as: UTF8.self)
        if let certificates = try? PEMFiles.certificates(inPEM: text) {
            for certificate in certificates {
                _ = try? TetherIdentity(certificate: certificate)
                _ = CertificateSummary(certificate)
            }
        }
        _ = try? JSONDecoder().decode(RevocationList.self, from: Data(bytes))
    }
}
