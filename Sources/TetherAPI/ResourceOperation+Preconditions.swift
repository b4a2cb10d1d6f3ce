import AsyncAlgorithms
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import ServiceLifecycle
import Synchronization
import TetherJSON
import TetherModel
import TetherPlugin
import TetherStore

/// What a write needs before it is stored: a live namespace for namespaced objects, and the
/// preconditions and propagation policy of a delete.
extension ResourceOperation {
    /// The namespace must exist and not be terminating, as kube-apiserver's admission requires.
    func requireNamespace(_ namespace: String, for object: JSONValue) async throws {
        let stored: JSONValue
        do {
            stored = try await store.get(ResourceHandler.namespaces, namespace: nil, name: namespace)
        } catch {
            guard error.code == .notFound else { throw error }
            throw APIError.notFound("namespaces \"\(namespace)\" not found")
        }
        guard stored.deletionTimestamp == nil else {
            throw APIError.forbidden(
                "\(kind.plural) \"\(object.name ?? object.metadata["generateName"]?.stringValue ?? "")\" is forbidden: unable to create new content in namespace \(namespace) because it is being terminated"
            )
        }
    }

    /// `DeleteOptions` from the body or the query: preconditions and the propagation policy.
    ///
    /// `Orphan` (or the older `orphanDependents=true`) adds Kubernetes' `orphan` finalizer and
    /// `Foreground` its `foregroundDeletion`, which the ``GarbageCollector`` carries out (at the
    /// hub the federation engine also keeps members' copies on `orphan`, and removes it).
    func deleteOptions() async throws -> DeletePreconditions {
        // Typed clients (`kubectl drain`, client-go's Delete) send their options as protobuf.
        let options = try await smallBody("DeleteOptions", protobuf: KubernetesProtobuf.decodeDeleteOptions) ?? [:]
        return try await deletePreconditions(from: options)
    }

    /// A body that is not the kind's object (`DeleteOptions`, an Eviction), at most 64 KiB:
    /// JSON, or protobuf read by `protobuf`; nil when there is none. Refused, never ignored,
    /// when it is too large or unreadable: it may carry preconditions the caller relies on.
    func smallBody(_ what: String, protobuf: ([UInt8]) throws -> JSONValue) async throws -> JSONValue? {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: 64 * 1024)
        } catch {
            throw APIError.tooLarge("the \(what) body exceeds 65536 bytes")
        }
        guard buffer.readableBytes > 0 else { return nil }
        let contentType = (request.headers[.contentType] ?? "").split(separator: ";").first.map(String.init) ?? ""
        if contentType == KubernetesProtobuf.contentType {
            do {
                return try protobuf(Array(buffer.readableBytesView))
            } catch {
                throw APIError.badRequest("the body is not a protobuf \(what): \(error)")
            }
        }
        guard let decoded = try? JSONValue(parsing: buffer.readableBytesView, maximumDepth: 16), case .object = decoded else {
            throw APIError.badRequest("the body is not a JSON \(what) object")
        }
        return decoded
    }

    /// What `options` (a `DeleteOptions`, from a DELETE or an Eviction) and the query ask of a delete.
    func deletePreconditions(from options: JSONValue) async throws -> DeletePreconditions {
        let policy = query.propagationPolicy ?? options["propagationPolicy"]?.stringValue
        let orphanDependents = query.orphanDependents != nil ? query.flag("orphanDependents") : options["orphanDependents"] == .bool(true)
        if let policy, !["Orphan", "Background", "Foreground"].contains(policy) {
            throw APIError.badRequest("propagationPolicy \"\(policy)\" is not one of Orphan, Background, Foreground")
        }
        let orphan = policy == "Orphan" || (policy == nil && orphanDependents)
        var grace: Int64?
        if let text = query["gracePeriodSeconds"] {
            guard let seconds = Int64(text) else { throw APIError.badRequest("gracePeriodSeconds \"\(text)\" is not an integer") }
            grace = seconds
        } else if let given = options["gracePeriodSeconds"] {
            guard let seconds = given.integerValue else { throw APIError.badRequest("DeleteOptions.gracePeriodSeconds is not an integer") }
            grace = seconds
        }
        return DeletePreconditions(
            uid: options["preconditions"]?["uid"]?.stringValue,
            resourceVersion: options["preconditions"]?["resourceVersion"]?.stringValue.flatMap(UInt64.init),
            addingFinalizers: orphan
                ? [GarbageCollector.orphanFinalizer] : policy == "Foreground" ? [GarbageCollector.foregroundFinalizer] : [],
            gracePeriodSeconds: try await podGracePeriod(asked: grace)
        )
    }

    /// The grace period a Pod's deletion gets, as kube-apiserver gives it (``PodDeletion``);
    /// a negative one is refused, and none is given where no kubelet ends Pods.
    private func podGracePeriod(asked: Int64?) async throws -> Int64? {
        if let asked, asked < 0 { throw APIError.invalid("DeleteOptions.gracePeriodSeconds: Invalid value: \(asked): must be >= 0") }
        guard handler.configuration.podsEndedByKubelet, kind.group.isEmpty, kind.kind == "Pod", let name = path.name,
            let pod = try? await store.get(type, namespace: path.namespace, name: name)
        else { return nil }
        return PodDeletion.gracePeriod(of: pod, asked: asked)
    }
}
