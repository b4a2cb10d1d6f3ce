import Foundation

/// Writes kubeconfig files: the credentials `kubectl` uses to reach a Tether API.
public enum Kubeconfig {
    /// A kubeconfig with one cluster, user and context, all named `federation`, with the CA and
    /// the client certificate embedded so the file is self-contained.
    public static func federation(
        server: String,
        caPEM: String,
        clientCertificatePEM: String,
        clientKeyPEM: String,
        contextName: String = "federation"
    ) throws(SecurityError) -> String {
        combined([
            Context(
                name: contextName,
                server: server,
                caPEM: caPEM,
                clientCertificatePEM: clientCertificatePEM,
                clientKeyPEM: clientKeyPEM
            )
        ])
    }

    /// A kubeconfig whose user authenticates with a bearer token instead of a certificate.
    public static func bearerToken(server: String, caPEM: String, token: String, contextName: String) -> String {
        """
        apiVersion: v1
        kind: Config
        clusters:
        - name: \(contextName)
          cluster:
            server: \(server)
            certificate-authority-data: \(base64(caPEM))
        users:
        - name: \(contextName)-token
          user:
            token: \(token)
        contexts:
        - name: \(contextName)
          context:
            cluster: \(contextName)
            user: \(contextName)-token
        current-context: \(contextName)

        """
    }

    static let viaHubSuffix = "-via-hub"

    /// The context that reaches member `cluster`'s API through the hub's tunnel.
    public static func viaHubContextName(of cluster: String) -> String { cluster + viaHubSuffix }

    /// The hub's proxy URL for `cluster`: kubectl appends the API paths to it.
    public static func viaHubServer(hub: String, cluster: String) -> String { "\(hub)/clusters/\(cluster)/proxy" }

    /// One context of a kubeconfig with several.
    public struct Context: Sendable {
        public var name: String
        public var server: String
        public var caPEM: String
        public var clientCertificatePEM: String
        public var clientKeyPEM: String

        public init(name: String, server: String, caPEM: String, clientCertificatePEM: String, clientKeyPEM: String) {
            self.name = name
            self.server = server
            self.caPEM = caPEM
            self.clientCertificatePEM = clientCertificatePEM
            self.clientKeyPEM = clientKeyPEM
        }
    }

    /// A kubeconfig with a cluster, user and context per entry; the first is current.
    public static func combined(_ contexts: [Context]) -> String {
        var text = "apiVersion: v1\nkind: Config\nclusters:\n"
        for context in contexts {
            text += "- name: \(context.name)\n  cluster:\n    server: \(context.server)\n    certificate-authority-data: \(base64(context.caPEM))\n"
        }
        text += "users:\n"
        for context in contexts {
            text +=
                "- name: \(context.name)-admin\n  user:\n    client-certificate-data: \(base64(context.clientCertificatePEM))\n"
                + "    client-key-data: \(base64(context.clientKeyPEM))\n"
        }
        text += "contexts:\n"
        for context in contexts {
            text += "- name: \(context.name)\n  context:\n    cluster: \(context.name)\n    user: \(context.name)-admin\n"
        }
        text += "current-context: \(contexts.first?.name ?? "")\n"
        return text
    }

    private static func base64(_ text: String) -> String {
        Data(text.utf8).base64EncodedString()
    }
}
