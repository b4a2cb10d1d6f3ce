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
        """
        apiVersion: v1
        kind: Config
        clusters:
        - name: \(contextName)
          cluster:
            server: \(server)
            certificate-authority-data: \(base64(caPEM))
        users:
        - name: \(contextName)-admin
          user:
            client-certificate-data: \(base64(clientCertificatePEM))
            client-key-data: \(base64(clientKeyPEM))
        contexts:
        - name: \(contextName)
          context:
            cluster: \(contextName)
            user: \(contextName)-admin
        current-context: \(contextName)

        """
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

    private static func base64(_ text: String) -> String {
        Data(text.utf8).base64EncodedString()
    }
}
