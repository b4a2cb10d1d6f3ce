import Foundation
import TetherJSON

extension CustomResourceDefinition {
    /// A definition's `spec.conversion`: nil for `None`; for `Webhook`, where the API sends its
    /// `ConversionReview`s. Only a URL can be called: a `service` reference names a Service the
    /// hub does not run.
    static func conversionWebhook(in conversion: JSONValue, problems: inout [ValidationProblem]) -> ConversionWebhook? {
        func problem(_ field: String, _ message: String) { problems.append(ValidationProblem(field: "spec.conversion.\(field)", message)) }
        let strategy = conversion["strategy"]?.stringValue ?? "None"
        guard strategy == "Webhook" else {
            if strategy != "None" { problem("strategy", "Unsupported value: \"\(strategy)\": supported values: \"None\", \"Webhook\"") }
            return nil
        }
        guard let webhook = conversion["webhook"] else {
            problem("webhook", "Required value: required when strategy is set to Webhook")
            return nil
        }
        let reviewVersions = webhook["conversionReviewVersions"]?.arrayElements.compactMap(\.stringValue) ?? []
        if reviewVersions.isEmpty {
            problem("webhook.conversionReviewVersions", "Required value: must include at least one of v1, v1beta1")
        } else if !reviewVersions.contains("v1") {
            problem(
                "webhook.conversionReviewVersions",
                "Unsupported value: \(reviewVersions): this hub sends ConversionReview v1 only; include \"v1\"")
        }
        let client = webhook["clientConfig"] ?? .null
        if client["service"] != nil {
            problem(
                "webhook.clientConfig.service",
                "Forbidden: the hub runs no Services to call; give clientConfig.url, an https:// address the hub reaches")
            return nil
        }
        guard let url = client["url"]?.stringValue else {
            problem("webhook.clientConfig", "Required value: exactly one of url or service is required")
            return nil
        }
        guard let parts = URLComponents(string: url), parts.scheme == "https", !(parts.host ?? "").isEmpty else {
            problem("webhook.clientConfig.url", "Invalid value: \"\(url)\": 'https' is the only allowed URL scheme, with a host")
            return nil
        }
        if parts.user != nil || parts.password != nil {
            problem("webhook.clientConfig.url", "Invalid value: \"\(url)\": user information is not permitted in the URL")
        }
        if parts.fragment != nil { problem("webhook.clientConfig.url", "Invalid value: \"\(url)\": fragments are not permitted in the URL") }
        if parts.query != nil { problem("webhook.clientConfig.url", "Invalid value: \"\(url)\": query parameters are not permitted in the URL") }
        var caBundle: String?
        if let encoded = client["caBundle"]?.stringValue, !encoded.isEmpty {
            guard let decoded = Data(base64Encoded: encoded), let text = String(data: decoded, encoding: .utf8),
                text.contains("-----BEGIN CERTIFICATE-----")
            else {
                problem("webhook.clientConfig.caBundle", "Invalid value: not base64-encoded PEM certificates")
                return nil
            }
            caBundle = text
        }
        return ConversionWebhook(url: url, caBundle: caBundle)
    }
}
