/// A failure in Tether's PKI: reading, issuing or verifying certificates and keys.
///
/// `message` says what went wrong and, where there is one, what to do next.
public struct SecurityError: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    public enum Code: String, Sendable, Hashable {
        /// A name (cluster, user, trust domain) does not have the allowed form.
        case invalidName = "invalid-name"
        /// A certificate carries no usable Tether identity.
        case noIdentity = "no-identity"
        /// A file is missing, unreadable or not the PEM it should be.
        case unreadableFile = "unreadable-file"
        /// A file could not be written.
        case unwritableFile = "unwritable-file"
        /// A certificate could not be built or signed.
        case issuingFailed = "issuing-failed"
        /// A private key does not belong to the certificate it is paired with.
        case keyMismatch = "key-mismatch"
        /// The federation directory already holds a CA, and replacing it was not asked for.
        case alreadyInitialized = "already-initialized"
        /// The TLS library refused the material.
        case tlsConfiguration = "tls-configuration"
    }
}
