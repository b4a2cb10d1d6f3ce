import CTetherOpenSSL
import Crypto
import Foundation
import SwiftASN1
import X509

/// A configured OpenSSL `SSL_CTX` for one side of the agent port: TLS 1.3 only, a certificate
/// both sides must present, chain verification against the federation's CA bundle (every CA in
/// it), ALPN `tether/1`, and buffers released while a connection is idle.
///
/// Built once per certificate set; a reload builds a new one and new handshakes use it, while
/// connections made with the old one keep it (each SSL object holds a reference).
public final class OpenSSLContext: @unchecked Sendable {
    // @unchecked: OpenSSL's SSL_CTX may be shared by connections on any thread once configured,
    // and nothing here changes it after init.
    public enum Role: Sendable {
        case server
        case client
    }

    let pointer: OpaquePointer
    public let role: Role
    /// The server's ticket keys, read by OpenSSL's ticket callback.
    private let ticketKeys: UnsafeMutablePointer<tether_ticket_keys>?
    /// The client's latest ticket, written by OpenSSL's new-session callback.
    private let sessionSlot: UnsafeMutablePointer<tether_session_slot>?

    /// - Parameter tickets: for a server, the keys its tickets are sealed with (nil issues none).
    public init(material: TLSMaterial, role: Role, tickets: TLSTicketKeys? = nil) throws(SecurityError) {
        guard let context = SSL_CTX_new(role == .server ? TLS_server_method() : TLS_client_method()) else {
            throw SecurityError(.tlsConfiguration, "OpenSSL could not make a TLS context: \(OpenSSLErrors.drain())")
        }
        pointer = context
        self.role = role
        switch role {
        case .server:
            ticketKeys = tickets.map { keys in
                let ring = UnsafeMutablePointer<tether_ticket_keys>.allocate(capacity: 1)
                ring.initialize(to: keys.ring)
                return ring
            }
            sessionSlot = nil
        case .client:
            ticketKeys = nil
            sessionSlot = UnsafeMutablePointer<tether_session_slot>.allocate(capacity: 1)
        }
        guard tether_ssl_ctx_set_tls13_only(context) == 1 else {
            throw SecurityError(.tlsConfiguration, "OpenSSL refused TLS 1.3 only: \(OpenSSLErrors.drain())")
        }
        // Idle sessions give their read and write buffers back (about 34 KB each, measured in #23).
        _ = tether_ssl_ctx_set_mode(context, Int(SSL_MODE_RELEASE_BUFFERS))
        let leaf = try Self.x509(material.leaf)
        defer { X509_free(leaf) }
        guard SSL_CTX_use_certificate(context, leaf) == 1 else {
            throw SecurityError(.tlsConfiguration, "OpenSSL refused the certificate: \(OpenSSLErrors.drain())")
        }
        for intermediate in material.chain.dropFirst() {
            let certificate = try Self.x509(intermediate)
            defer { X509_free(certificate) }
            guard tether_ssl_ctx_add_chain_certificate(context, certificate) == 1 else {
                throw SecurityError(.tlsConfiguration, "OpenSSL refused an intermediate certificate: \(OpenSSLErrors.drain())")
            }
        }
        let key = try Self.privateKey(material.privateKey)
        defer { EVP_PKEY_free(key) }
        guard SSL_CTX_use_PrivateKey(context, key) == 1, SSL_CTX_check_private_key(context) == 1 else {
            throw SecurityError(.tlsConfiguration, "OpenSSL refused the private key: \(OpenSSLErrors.drain())")
        }
        let store = SSL_CTX_get_cert_store(context)
        for root in material.trustRoots {
            let certificate = try Self.x509(root)
            defer { X509_free(certificate) }
            guard X509_STORE_add_cert(store, certificate) == 1 else {
                throw SecurityError(.tlsConfiguration, "OpenSSL refused a CA of the bundle: \(OpenSSLErrors.drain())")
            }
        }
        tether_ssl_ctx_require_peer_certificate(context)
        switch role {
        case .server:
            tether_ssl_ctx_select_tether_alpn(context)
            // Resumption needs a context name for sessions with client certificates.
            let name = Array("tether-agent-port".utf8)
            _ = SSL_CTX_set_session_id_context(context, name, UInt32(name.count))
            // The server's own session cache is of no use with tickets, and would hold memory.
            tether_ssl_ctx_disable_session_cache(context)
            if let ticketKeys {
                // One ticket per handshake: a reconnecting agent needs one (two cost 255 µs more, #23).
                _ = tether_ssl_ctx_set_num_tickets(context, 1)
                guard tether_ssl_ctx_use_ticket_keys(context, ticketKeys) == 1 else {
                    throw SecurityError(.tlsConfiguration, "OpenSSL refused the ticket keys: \(OpenSSLErrors.drain())")
                }
            } else {
                _ = tether_ssl_ctx_set_num_tickets(context, 0)
            }
        case .client:
            if let sessionSlot, tether_ssl_ctx_keep_sessions(context, sessionSlot) != 1 {
                throw SecurityError(.tlsConfiguration, "OpenSSL refused the session cache: \(OpenSSLErrors.drain())")
            }
            let protocols: [UInt8] = [UInt8(TetherTLS.applicationProtocol.utf8.count)] + Array(TetherTLS.applicationProtocol.utf8)
            guard SSL_CTX_set_alpn_protos(context, protocols, UInt32(protocols.count)) == 0 else {
                throw SecurityError(.tlsConfiguration, "OpenSSL refused ALPN: \(OpenSSLErrors.drain())")
            }
        }
    }

    deinit {
        // Every connection made with this context held it (their handlers do), so none is left.
        SSL_CTX_free(pointer)
        if let ticketKeys {
            ticketKeys.deinitialize(count: 1)
            ticketKeys.deallocate()
        }
        if let sessionSlot {
            tether_session_slot_release(sessionSlot)
            sessionSlot.deallocate()
        }
    }

    /// The agent port's server side, for `material` (the hub's certificate and the CA bundle),
    /// sealing tickets with `tickets`.
    public static func agentListener(_ material: TLSMaterial, tickets: TLSTicketKeys? = nil) throws(SecurityError) -> OpenSSLContext {
        try OpenSSLContext(material: material, role: .server, tickets: tickets)
    }

    /// The agent's side, for `material` (its certificate and the CA bundle).
    public static func agentDialer(_ material: TLSMaterial) throws(SecurityError) -> OpenSSLContext {
        try OpenSSLContext(material: material, role: .client)
    }

    static func x509(_ certificate: Certificate) throws(SecurityError) -> OpaquePointer {
        var serializer = DER.Serializer()
        do {
            try serializer.serialize(certificate)
        } catch {
            throw SecurityError(.tlsConfiguration, "cannot serialize a certificate for OpenSSL: \(error)")
        }
        let der = serializer.serializedBytes
        let parsed = der.withUnsafeBufferPointer { bytes -> OpaquePointer? in
            var cursor: UnsafePointer<UInt8>? = bytes.baseAddress
            return d2i_X509(nil, &cursor, bytes.count)
        }
        guard let parsed else { throw SecurityError(.tlsConfiguration, "OpenSSL cannot read a certificate: \(OpenSSLErrors.drain())") }
        return parsed
    }

    static func privateKey(_ key: P256.Signing.PrivateKey) throws(SecurityError) -> OpaquePointer {
        let pem = Array(key.pemRepresentation.utf8)
        let parsed = pem.withUnsafeBufferPointer { bytes -> OpaquePointer? in
            guard let bio = BIO_new_mem_buf(bytes.baseAddress, Int32(bytes.count)) else { return nil }
            defer { BIO_free(bio) }
            return PEM_read_bio_PrivateKey(bio, nil, nil, nil)
        }
        guard let parsed else { throw SecurityError(.tlsConfiguration, "OpenSSL cannot read the private key: \(OpenSSLErrors.drain())") }
        return parsed
    }

    /// The DER bytes of an OpenSSL certificate, parsed.
    static func certificate(_ x509: OpaquePointer) -> Certificate? {
        let length = i2d_X509(x509, nil)
        guard length > 0 else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(length))
        let written = bytes.withUnsafeMutableBufferPointer { buffer -> Int32 in
            var cursor: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
            return i2d_X509(x509, &cursor)
        }
        guard written == length else { return nil }
        return try? Certificate(derEncoded: bytes)
    }
}

/// The keys a hub seals TLS session tickets with: held in memory only (a restarted hub makes
/// new ones, and its agents make one full handshake), rotated by the listener. A rotation keeps
/// the previous key for opening tickets, so a ticket lives at most two rotation periods.
public struct TLSTicketKeys: Sendable {
    var ring: tether_ticket_keys

    /// A new current key, no previous one.
    public static func fresh() -> TLSTicketKeys {
        var ring = tether_ticket_keys()
        ring.keys.0 = randomKey()
        ring.count = 1
        return TLSTicketKeys(ring: ring)
    }

    /// A new current key; the current one becomes the previous.
    public func rotated() -> TLSTicketKeys {
        var ring = tether_ticket_keys()
        ring.keys.0 = Self.randomKey()
        ring.keys.1 = self.ring.keys.0
        ring.count = 2
        return TLSTicketKeys(ring: ring)
    }

    private static func randomKey() -> tether_ticket_key {
        var key = tether_ticket_key()
        var generator = SystemRandomNumberGenerator()  // getrandom(2)
        withUnsafeMutableBytes(of: &key) { bytes in
            for index in bytes.indices { bytes[index] = generator.next() }
        }
        return key
    }
}

/// OpenSSL's error queue, read into one line.
enum OpenSSLErrors {
    static func drain() -> String {
        var messages: [String] = []
        while true {
            let code = ERR_get_error()
            guard code != 0 else { break }
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            messages.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return messages.isEmpty ? "no detail from OpenSSL" : messages.joined(separator: "; ")
    }
}

/// Which TLS library runs the agent port, on the hub and in the agent (decision 61).
public enum AgentPortTLS: String, Sendable, CaseIterable, CustomStringConvertible {
    /// swift-nio-ssl's BoringSSL: the default, cheaper per handshake with Debian 12's OpenSSL 3.0.
    case boringSSL = "boringssl"
    /// The system's OpenSSL 3 (libssl): released buffers when idle, session resumption, the
    /// OpenSSL operators patch and certify.
    case openSSL = "openssl"

    public var description: String { rawValue }
}
