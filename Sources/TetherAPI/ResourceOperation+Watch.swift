import AsyncAlgorithms
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import ServiceLifecycle
import TetherJSON
import TetherModel
import TetherPlugin
import TetherStore

/// A watch: the one verb that streams, and holds its place until the client leaves.
extension ResourceOperation {
    /// Streams watch events, one JSON object per line, until the client leaves or the watch's
    /// timeout passes (`timeoutSeconds`, cut to the server's maximum; a random time when absent).
    ///
    /// The events come from the store one at a time as the client takes them (a history replayed
    /// from an old version included): a slow reader holds the store's bounded live buffer, and
    /// one that falls past it gets an `ERROR` event (410) and the end of the stream.
    func watch() async throws -> Response {
        let options = try listOptions()
        let limits = handler.limiter.limits
        let timeout = limits.watchTimeout(requested: try query.timeoutSeconds())
        let requested = query.resourceVersion
        let limiter = handler.limiter
        let user = caller.user
        guard limiter.enterWatch(of: user) else {
            throw APIError.tooManyRequests("user \"\(user)\" holds \(limits.maximumWatchesPerUser) watches already; close some and try again")
        }
        // From here the place is held until the stream ends (or this throws).
        var handedOver = false
        defer { if !handedOver { limiter.leaveWatch(of: user) } }
        var initial: [WatchEvent] = []
        let from: UInt64
        if let requested, requested > 0 {
            from = requested
        } else {
            // Kubernetes semantics for "" and "0": the current state as ADDED events, then changes.
            let page = try await store.list(
                type, options: ListOptions(namespace: options.namespace, labelSelector: options.labelSelector, fieldSelector: options.fieldSelector))
            initial = page.objects.map { WatchEvent(kind: .added, object: $0, resourceVersion: $0.resourceVersion ?? 0) }
            from = page.resourceVersion
        }
        let events = try await store.watch(type, namespace: options.namespace, from: from)
        let framing = WatchFraming(
            kind: served, table: wantsTable ? try tableWriter() : nil,
            protobuf: !wantsTable && Self.prefersProtobuf(request.headers[.accept] ?? "") && served.protobufNumbers != nil)
        let labels = options.labelSelector
        let fields = options.fieldSelector
        let replay = initial
        let connectionClosed = self.connectionClosed
        handedOver = true
        let body = ResponseBody { writer in
            defer { limiter.leaveWatch(of: user) }
            for event in replay {
                let frame: ByteBuffer?
                do throws(APIError) {
                    frame = try await framing.frame(event.kind.rawValue, event.object)
                } catch {
                    try await writer.write(framing.error(error))
                    return try await writer.finish(nil)
                }
                guard let frame else {
                    try await writer.write(framing.unencodable(event.object))
                    return try await writer.finish(nil)
                }
                try await writer.write(frame)
            }
            // A channel of one: the forwarder takes the next event from the store only when the
            // writer took the last, so nothing piles up here whatever the client's speed.
            let handoff = AsyncChannel<WatchEvent>()
            let fellBehind = OnceFlag()
            // The helpers end with this response: cancelled when the client leaves or the deadline passes.
            let forwarder = Task {
                do {
                    for try await event in events { await handoff.send(event) }
                } catch {
                    fellBehind.mark()
                }
                handoff.finish()
            }
            let deadline = Task {
                try? await Task.sleep(for: timeout)  // the watch's deadline
                handoff.finish()
            }
            let hangUp = Task {
                try? await connectionClosed.get()
                handoff.finish()
            }
            defer {
                forwarder.cancel()
                deadline.cancel()
                hangUp.cancel()
            }
            // A server shutting down ends its watches; clients resume them elsewhere or later.
            let ended = try await withGracefulShutdownHandler { () async throws -> ByteBuffer? in
                for await event in handoff {
                    guard labels.matches(event.object.labels), fields?.matches(event.object) ?? true else { continue }
                    let frame: ByteBuffer?
                    do throws(APIError) {
                        frame = try await framing.frame(event.kind.rawValue, event.object)
                    } catch {
                        // The webhook failed: the client sees why, and lists and watches again.
                        return framing.error(error)
                    }
                    guard let frame else { return framing.unencodable(event.object) }
                    try await writer.write(frame)
                }
                return nil
            } onGracefulShutdown: {
                handoff.finish()
            }
            if let ended {
                try await writer.write(ended)
            } else if fellBehind.isMarked {
                let gone = APIError(code: 410, reason: "Expired", message: "the watch fell too far behind; list again and resume")
                try await writer.write(framing.error(gone))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: framing.contentType, .transferEncoding: "chunked"], body: body)
    }
}

/// How a watch writes its events: JSON, one object per line, or Kubernetes' protobuf stream
/// when the client prefers protobuf and the kind has field numbers (client-go's typed
/// informers; `kubectl events --watch`).
struct WatchFraming: Sendable {
    let kind: KindDescriptor
    let table: TableWriter?
    let protobuf: Bool

    var contentType: String { protobuf ? KubernetesProtobuf.watchContentType : "application/json" }

    /// An event of a stored object, at the served version; nil when the stream is protobuf and
    /// some part of the object has no field number.
    func frame(_ type: String, _ stored: JSONValue) async throws(APIError) -> ByteBuffer? {
        // A table row without its object needs no conversion (nor a webhook call).
        let converts = table == nil || table?.rowObject == .object
        var shown = converts ? try await kind.shown([stored])[0] : stored
        if let table {
            shown = table.table([stored], resourceVersion: stored.resourceVersion.map(String.init), shownObjects: converts ? [shown] : nil)
        }
        guard protobuf else { return Self.jsonLine(type, shown) }
        guard let object = KubernetesProtobuf.encode(shown, kind: kind) else { return nil }
        return ByteBuffer(bytes: KubernetesProtobuf.watchFrame(type: type, enveloped: object))
    }

    /// An `ERROR` event carrying `error`'s Status.
    func error(_ error: APIError) -> ByteBuffer {
        guard protobuf, let status = KubernetesProtobuf.encodeStatus(error.statusObject) else { return Self.jsonLine("ERROR", error.statusObject) }
        return ByteBuffer(bytes: KubernetesProtobuf.watchFrame(type: "ERROR", enveloped: status))
    }

    /// The last event of a protobuf stream that met an object it cannot encode. A protobuf
    /// stream cannot carry JSON, so it ends with an error; the client lists again, and that
    /// list comes in JSON with the object whole. Nothing is dropped or shown in part.
    func unencodable(_ stored: JSONValue) -> ByteBuffer {
        let name = [stored.namespace, stored.name].compactMap { $0 }.joined(separator: "/")
        return error(
            APIError(
                code: 500, reason: "InternalError",
                message:
                    "\(kind.kind) \(name) has fields with no protobuf field number on this server; watch with Accept: application/json to receive it"
            ))
    }

    private static func jsonLine(_ type: String, _ object: JSONValue) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeBytes(ResourceHandler.encode(["type": .string(type), "object": object]))
        buffer.writeString("\n")
        return buffer
    }
}
