import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import TetherJSON
import TetherModel
import TetherPlugin

/// One call of a CustomResourceDefinition's conversion webhook, as kube-apiserver makes it: a
/// `ConversionReview` (`apiextensions.k8s.io/v1`) with the objects and the version wanted,
/// answered with the converted objects. The answer is held to kube-apiserver's rules: the same
/// uid, `Success`, one object per object sent, each of the version asked and the same kind,
/// and nothing of its metadata changed but labels and annotations (the rest is kept from the
/// object sent). Any failure is a 500 naming the webhook, and nothing is stored or answered
/// from a half conversion.
enum ConversionWebhookCall {
    /// kube-apiserver's limit for a conversion call.
    static let timeout: TimeAmount = .seconds(30)
    static let maximumResponseBytes = 64 << 20

    /// One client for every webhook, for the life of the process. A connection that cannot be
    /// made (refused, a certificate not trusted) fails the call at once rather than being tried
    /// again until the deadline; redirects are not followed, as kube-apiserver follows none.
    static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout = .init(connect: .seconds(10))
        configuration.redirectConfiguration = .disallow
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    /// What went wrong with the connection, in words an operator acts on.
    static func explained(_ error: any Error, caBundle: Bool) -> String {
        let text = "\(error)"
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            let trusted = caBundle ? "the definition's clientConfig.caBundle" : "the system's trust store (the definition gives no caBundle)"
            return "the webhook's certificate is not signed by a CA in \(trusted), or does not name its host"
        }
        if let error = error as? NIOSSLError, case .handshakeFailed = error { return "the TLS handshake failed" }
        return text
    }

    static func convert(_ objects: [JSONValue], to apiVersion: String, kind: String, using webhook: ConversionWebhook) async throws(APIError)
        -> [JSONValue]
    {
        let pending = objects.indices.filter { objects[$0].apiVersion != apiVersion }
        guard !pending.isEmpty else { return objects }
        func failure(_ reason: String) -> APIError {
            APIError(code: 500, reason: "InternalError", message: "conversion webhook for \(apiVersion), Kind=\(kind) failed: \(reason)")
        }
        let uid = UUID().uuidString.lowercased()
        let review: JSONValue = [
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "request": ["uid": .string(uid), "desiredAPIVersion": .string(apiVersion), "objects": .array(pending.map { objects[$0] })],
        ]
        var request = HTTPClientRequest(url: webhook.url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Accept", value: "application/json")
        do {
            request.body = .bytes(try review.serialized())
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.minimumTLSVersion = .tlsv12
            if let bundle = webhook.caBundle { tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(bundle.utf8))) }
            request.tlsConfiguration = tls
        } catch {
            throw failure("the request could not be made: \(error)")
        }
        let answer: JSONValue
        do {
            let response = try await client.execute(request, timeout: timeout)
            let body = try await response.body.collect(upTo: maximumResponseBytes)
            guard response.status == .ok else {
                throw failure("POST \(webhook.url): HTTP \(response.status.code): \(String(buffer: body).prefix(300))")
            }
            do {
                answer = try JSONValue(parsing: body.readableBytesView)
            } catch {
                throw failure("POST \(webhook.url): the answer is not a ConversionReview in JSON: \(error)")
            }
        } catch let error as APIError {
            throw error
        } catch {
            throw failure("POST \(webhook.url): \(Self.explained(error, caBundle: webhook.caBundle != nil))")
        }
        guard let response = answer["response"], response["uid"]?.stringValue == uid else {
            throw failure("the ConversionReview answered has no response with uid \(uid)")
        }
        guard response.string(at: "result", "status") == "Success" else {
            throw failure(
                response.string(at: "result", "message") ?? "the webhook answered \(response.string(at: "result", "status") ?? "no result")")
        }
        let converted = response["convertedObjects"]?.arrayElements ?? []
        guard converted.count == pending.count else {
            throw failure("expected \(pending.count) converted objects, got \(converted.count)")
        }
        var result = objects
        for (index, object) in zip(pending, converted) {
            let original = objects[index]
            guard object.apiVersion == apiVersion else {
                throw failure("the object \(original.name ?? "") came back at \(object.apiVersion ?? "no version"), not \(apiVersion)")
            }
            guard object.kind == kind else {
                throw failure("the object \(original.name ?? "") came back as \(object.kind ?? "no kind"), not \(kind)")
            }
            // As kube-apiserver: a webhook may change labels and annotations, never the rest of the metadata.
            var kept = object
            var metadata = original.metadata
            metadata["labels"] = object.metadata["labels"]
            metadata["annotations"] = object.metadata["annotations"]
            kept.metadata = metadata
            result[index] = kept
        }
        return result
    }
}
