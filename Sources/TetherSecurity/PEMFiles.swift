import Crypto
import Foundation
import SwiftASN1
import TetherFiles
import X509

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reading and writing the PEM files scripts rely on; private keys are never world-readable.
public enum PEMFiles {
    public static func pem(of certificate: Certificate) throws(SecurityError) -> String {
        do {
            return try certificate.serializeAsPEM().pemString
        } catch {
            throw SecurityError(.issuingFailed, "cannot encode certificate '\(certificate.subject)': \(error)")
        }
    }

    /// Every certificate in a PEM file, in order (a bundle may hold several CAs).
    public static func readCertificates(at path: String) throws(SecurityError) -> [Certificate] {
        try certificates(inPEM: try readText(at: path), source: path)
    }

    /// Every certificate in PEM text, in order; `source` names it in errors.
    public static func certificates(inPEM text: String, source: String = "the PEM text") throws(SecurityError) -> [Certificate] {
        do {
            let documents = try PEMDocument.parseMultiple(pemString: text)
            let certificates = try documents.filter { $0.discriminator == "CERTIFICATE" }.map {
                try Certificate(pemDocument: $0)
            }
            guard !certificates.isEmpty else {
                throw SecurityError(.unreadableFile, "\(source) holds no PEM CERTIFICATE block")
            }
            return certificates
        } catch let error as SecurityError {
            throw error
        } catch {
            throw SecurityError(.unreadableFile, "\(source) is not a valid PEM certificate file: \(error)")
        }
    }

    /// An ECDSA P-256 private key in PKCS#8 or SEC 1 PEM.
    public static func readPrivateKey(at path: String) throws(SecurityError) -> P256.Signing.PrivateKey {
        let text = try readText(at: path)
        do {
            return try P256.Signing.PrivateKey(pemRepresentation: text)
        } catch {
            throw SecurityError(.unreadableFile, "\(path) is not an ECDSA P-256 private key in PEM: \(error)")
        }
    }

    /// A certificate file and its key file, checked to belong together.
    public static func readKeyedCertificate(
        certificate certificatePath: String,
        key keyPath: String
    ) throws(SecurityError) -> (chain: [Certificate], keyed: KeyedCertificate) {
        let chain = try readCertificates(at: certificatePath)
        let key = try readPrivateKey(at: keyPath)
        do {
            return (chain, try KeyedCertificate(certificate: chain[0], privateKey: key))
        } catch {
            throw SecurityError(.keyMismatch, "\(keyPath) is not the private key of the certificate in \(certificatePath)")
        }
    }

    public static func readText(at path: String) throws(SecurityError) -> String {
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw SecurityError(.unreadableFile, "cannot read \(path): \(error.localizedDescription)")
        }
    }

    /// Writes `contents` to `path` the one way Tether replaces files (``AtomicFile``): a
    /// temporary file made exclusively beside it with `mode`, synced, renamed, the directory
    /// synced. A reader (or a watcher reloading certificates) sees the old file or the new one.
    public static func writeAtomically(_ contents: String, to path: String, mode: mode_t) throws(SecurityError) {
        do {
            try AtomicFile.write(contents, to: path, mode: mode)
        } catch {
            throw SecurityError(.unwritableFile, error.description)
        }
    }

    public static let certificateMode: mode_t = 0o644
    public static let privateKeyMode: mode_t = 0o600

    /// Creates `path` and its parents if missing.
    public static func makeDirectory(_ path: String) throws(SecurityError) {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw SecurityError(.unwritableFile, "cannot create directory \(path): \(error.localizedDescription)")
        }
    }

    public static func writeJSON<T: Encodable>(_ value: T, to path: String, mode: mode_t = certificateMode) throws(SecurityError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        do {
            let data = try encoder.encode(value)
            try writeAtomically(String(decoding: data, as: UTF8.self) + "\n", to: path, mode: mode)
        } catch let error as SecurityError {
            throw error
        } catch {
            throw SecurityError(.unwritableFile, "cannot encode \(path): \(error)")
        }
    }

    public static func readJSON<T: Decodable>(_ type: T.Type, from path: String) throws(SecurityError) -> T {
        let text = try readText(at: path)
        do {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            return try decoder.decode(type, from: Data(text.utf8))
        } catch {
            throw SecurityError(.unreadableFile, "\(path) is not a valid \(type): \(error)")
        }
    }
}
