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
        let table = wantsTable ? TableWriter(kind: kind, now: Date()) : nil
        let conversion = served.conversion
        let frame: @Sendable (String, JSONValue) -> ByteBuffer = { type, object in
            var shown = object
            if let table {
                shown = table.table([object], resourceVersion: object.resourceVersion.map(String.init))
            } else if let conversion, type != "ERROR" {
                shown = conversion.fromStorage(object)
            }
            var buffer = ByteBuffer()
            buffer.writeBytes(ResourceHandler.encode(["type": .string(type), "object": shown]))
            buffer.writeString("\n")
            return buffer
        }
        let labels = options.labelSelector
        let fields = options.fieldSelector
        let replay = initial
        let connectionClosed = self.connectionClosed
        handedOver = true
        let body = ResponseBody { writer in
            defer { limiter.leaveWatch(of: user) }
            for event in replay { try await writer.write(frame(event.kind.rawValue, event.object)) }
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
            try await withGracefulShutdownHandler {
                for await event in handoff {
                    guard labels.matches(event.object.labels), fields?.matches(event.object) ?? true else { continue }
                    try await writer.write(frame(event.kind.rawValue, event.object))
                }
            } onGracefulShutdown: {
                handoff.finish()
            }
            if fellBehind.isMarked {
                let gone = APIError(code: 410, reason: "Expired", message: "the watch fell too far behind; list again and resume")
                try await writer.write(frame("ERROR", gone.statusObject))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "application/json", .transferEncoding: "chunked"], body: body)
    }
}
