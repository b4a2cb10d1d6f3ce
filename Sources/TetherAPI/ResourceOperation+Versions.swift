import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TetherJSON
import TetherModel
import TetherPlugin

/// How an operation speaks to its client: the version the URL names (bodies converted to and
/// from the storage version) and the encoding the client prefers (protobuf or JSON).
extension ResourceOperation {
    // MARK: Versions

    /// A stored object as the URL's version shows it.
    func shown(_ object: JSONValue) async throws(APIError) -> JSONValue {
        try await shownAll([object])[0]
    }

    /// Stored objects as the URL's version shows them.
    func shownAll(_ objects: [JSONValue]) async throws(APIError) -> [JSONValue] {
        try await served.shown(objects)
    }

    /// The objects a table's rows carry, as the URL's version shows them; nil when the rows carry none.
    func tableObjects(_ objects: [JSONValue], for table: TableWriter) async throws(APIError) -> [JSONValue]? {
        table.rowObject == .object ? try await shownAll(objects) : nil
    }

    /// A body sent at the URL's version, as stored. Its `apiVersion` and `kind` must be the
    /// URL's (filled in when absent).
    func stored(_ body: JSONValue) async throws -> JSONValue {
        guard let conversion = served.conversion else { return body }
        var object = body
        try checkKind(of: &object, as: served)
        do {
            let checked = try conversion.toStorage(object)
            guard let webhook = conversion.webhook else { return checked }
            return try await ConversionWebhookCall.convert([checked], to: kind.apiVersion, kind: kind.kind, using: webhook)[0]
        } catch let error as APIError {
            throw error
        } catch let error as VersionConversionError where error.invalid {
            throw APIError.invalid(error.description)
        } catch {
            throw APIError.badRequest("\(served.kind) in version \"\(served.version)\" cannot be converted to \"\(kind.version)\": \(error)")
        }
    }

    // MARK: Encoding

    /// One object of the kind, in protobuf when the client prefers it (client-go's typed
    /// clients send `Accept: application/vnd.kubernetes.protobuf, application/json`) and every
    /// part of the object has a field number; in JSON otherwise, which such clients take as well.
    func respond(_ stored: JSONValue, status: HTTPResponse.Status = .ok) async throws(APIError) -> Response {
        let object = try await shown(stored)
        if Self.prefersProtobuf(request.headers[.accept] ?? ""), let bytes = KubernetesProtobuf.encode(object, kind: served) {
            return Response(
                status: status, headers: [.contentType: KubernetesProtobuf.contentType], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
        return ResourceHandler.json(object, status: status)
    }

    /// Whether the media range with the highest quality in `accept` (the first of equals) is protobuf.
    static func prefersProtobuf(_ accept: String) -> Bool {
        var best: (quality: Double, protobuf: Bool)?
        for range in accept.split(separator: ",") {
            let parts = range.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let type = parts.first, !type.isEmpty else { continue }
            let quality =
                parts.dropFirst().compactMap { parameter -> Double? in
                    guard parameter.hasPrefix("q=") else { return nil }
                    return Double(parameter.dropFirst(2))
                }.first ?? 1
            if quality > 0, quality > (best?.quality ?? -1) { best = (quality, type == KubernetesProtobuf.contentType) }
        }
        return best?.protobuf ?? false
    }
}

extension KindDescriptor {
    /// Stored objects as this served version shows them: converted here, or by the definition's
    /// webhook in one call for all of them. Every read, list, table and watch goes through it.
    func shown(_ objects: [JSONValue]) async throws(APIError) -> [JSONValue] {
        guard let conversion else { return objects }
        guard let webhook = conversion.webhook else { return objects.map(conversion.fromStorage) }
        return try await ConversionWebhookCall.convert(objects, to: apiVersion, kind: kind, using: webhook)
    }
}
