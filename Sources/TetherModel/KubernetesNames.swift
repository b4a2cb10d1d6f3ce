import TetherJSON

/// Kubernetes' rules for names, labels and annotations (apimachinery's `validation` package), as
/// plain checks that return a problem in Kubernetes' words, or nil.
///
/// A name that breaks them cannot be addressed in a URL (`a/b`), would be refused by every member
/// the object is sent to, or is an attempt to escape a path (`..`): the API refuses it on create.
public enum KubernetesNames {
    /// Which rule a kind's object names follow.
    public enum Rule: Sendable, Hashable {
        /// Lower-case alphanumerics and `-`, at most 63 characters (Namespace, Service).
        case dns1123Label
        /// Labels joined by `.`, at most 253 characters (most kinds).
        case dns1123Subdomain
        /// Anything a URL path segment can hold: not `.` or `..`, no `/` or `%` (RBAC kinds, Events).
        case pathSegment

        var maximumLength: Int {
            switch self {
            case .dns1123Label: 63
            case .dns1123Subdomain, .pathSegment: 253
            }
        }
    }

    /// Why `name` breaks `rule`, or nil.
    /// `full` as an object name the hub makes from other names (`<kind>.<namespace>.<name>`):
    /// unchanged up to 253 characters, else cut and ended with a hash of the whole, so two long
    /// names stay apart. The cut never ends in a character a name may not end with.
    public static func derived(_ full: String) -> String {
        guard full.utf8.count > 253 else { return full }
        var hash = StableHash()
        hash.combine(full)
        let suffix = "-" + String(hash.value, radix: 16)
        var cut = String(full.prefix(253 - suffix.count))
        while let last = cut.last, !(last.isLetter || last.isNumber) { cut.removeLast() }
        return cut + suffix
    }

    public static func problem(name: String, rule: Rule) -> String? {
        guard !name.isEmpty else { return "a name is required" }
        switch rule {
        case .dns1123Label:
            return dns1123LabelProblem(name)
        case .dns1123Subdomain:
            return dns1123SubdomainProblem(name)
        case .pathSegment:
            if name == "." || name == ".." { return "may not be '\(name)'" }
            if name.contains("/") || name.contains("%") { return "may not contain '/' or '%'" }
            if name.utf8.count > rule.maximumLength { return "must be no more than \(rule.maximumLength) characters" }
            return nil
        }
    }

    /// Why `prefix` cannot start generated names under `rule` (five random characters follow it), or nil.
    public static func problem(generateName prefix: String, rule: Rule) -> String? {
        // A trailing dash is allowed, as the random suffix follows it.
        let candidate = prefix + "x"
        guard prefix.utf8.count + 5 <= rule.maximumLength else {
            return "must be no more than \(rule.maximumLength - 5) characters, to leave room for the generated suffix"
        }
        return problem(name: candidate, rule: rule)
    }

    public static func dns1123LabelProblem(_ text: String) -> String? {
        guard text.utf8.count <= 63 else { return "must be no more than 63 characters" }
        guard isLabel(text.utf8) else {
            return "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
                + "end with an alphanumeric character (e.g. 'my-name', or '123-abc')"
        }
        return nil
    }

    public static func dns1123SubdomainProblem(_ text: String) -> String? {
        guard text.utf8.count <= 253 else { return "must be no more than 253 characters" }
        let parts = text.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.allSatisfy({ isLabel($0) }) else {
            return "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
                + "start and end with an alphanumeric character (e.g. 'example.com')"
        }
        return nil
    }

    private static func isLabel(_ bytes: some Collection<UInt8>) -> Bool {
        guard let first = bytes.first, let last = bytes.reversed().first, bytes.count <= 63 else { return false }
        func alphanumeric(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
        }
        return alphanumeric(first) && alphanumeric(last) && bytes.allSatisfy { alphanumeric($0) || $0 == UInt8(ascii: "-") }
    }

    // MARK: Labels and annotations

    /// Largest total of annotation keys and values on one object, in bytes (Kubernetes' 256 KiB).
    public static let maximumAnnotationBytes = 256 * 1024

    /// Why `key` is not a qualified name (`[prefix/]name`), or nil.
    public static func qualifiedNameProblem(_ key: String) -> String? {
        let parts = key.split(separator: "/", maxSplits: 2, omittingEmptySubsequences: false)
        let name: Substring
        switch parts.count {
        case 1:
            name = parts[0]
        case 2:
            guard !parts[0].isEmpty else { return "prefix part must be non-empty" }
            if let problem = dns1123SubdomainProblem(String(parts[0])) { return "prefix part \(problem)" }
            name = parts[1]
        default:
            return "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
                + "an alphanumeric character, with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        }
        guard !name.isEmpty else { return "name part must be non-empty" }
        guard name.utf8.count <= 63 else { return "name part must be no more than 63 characters" }
        guard isLabelValue(name.utf8) else {
            return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                + "alphanumeric character (e.g. 'MyName', or 'my.name', or '123-abc')"
        }
        return nil
    }

    /// Why `value` is not a valid label value, or nil. Empty is valid.
    public static func labelValueProblem(_ value: String) -> String? {
        guard !value.isEmpty else { return nil }
        guard value.utf8.count <= 63 else { return "must be no more than 63 characters" }
        guard isLabelValue(value.utf8) else {
            return "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
                + "start and end with an alphanumeric character (e.g. 'MyValue', or 'my_value', or '12345')"
        }
        return nil
    }

    private static func isLabelValue(_ bytes: some Collection<UInt8>) -> Bool {
        guard let first = bytes.first, let last = bytes.reversed().first else { return false }
        func alphanumeric(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
        }
        return alphanumeric(first) && alphanumeric(last)
            && bytes.allSatisfy { alphanumeric($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") }
    }

    /// Every problem of an object's `metadata` by Kubernetes' rules: its name (or `generateName`)
    /// and namespace, labels, annotations and finalizers, each as `field: problem`.
    public static func metadataProblems(of object: JSONValue, nameRule: Rule) -> [String] {
        var problems: [String] = []
        let metadata = object.metadata
        if let name = metadata["name"]?.stringValue, !name.isEmpty {
            if let problem = problem(name: name, rule: nameRule) { problems.append("metadata.name: Invalid value: \"\(clip(name))\": \(problem)") }
        } else if let prefix = metadata["generateName"]?.stringValue, !prefix.isEmpty {
            if let problem = problem(generateName: prefix, rule: nameRule) {
                problems.append("metadata.generateName: Invalid value: \"\(clip(prefix))\": \(problem)")
            }
        }
        if let namespace = metadata["namespace"]?.stringValue, !namespace.isEmpty, let problem = dns1123LabelProblem(namespace) {
            problems.append("metadata.namespace: Invalid value: \"\(clip(namespace))\": \(problem)")
        }
        if case .object(let labels)? = metadata["labels"] {
            for (key, value) in labels.sorted(by: { $0.key < $1.key }) {
                if let problem = qualifiedNameProblem(key) { problems.append("metadata.labels: Invalid value: \"\(clip(key))\": \(problem)") }
                guard let text = value.stringValue else {
                    problems.append("metadata.labels[\(clip(key))]: must be a string")
                    continue
                }
                if let problem = labelValueProblem(text) { problems.append("metadata.labels: Invalid value: \"\(clip(text))\": \(problem)") }
            }
        }
        if case .object(let annotations)? = metadata["annotations"] {
            var total = 0
            for (key, value) in annotations.sorted(by: { $0.key < $1.key }) {
                if let problem = qualifiedNameProblem(key) {
                    problems.append("metadata.annotations: Invalid value: \"\(clip(key))\": \(problem)")
                }
                guard let text = value.stringValue else {
                    problems.append("metadata.annotations[\(clip(key))]: must be a string")
                    continue
                }
                total += key.utf8.count + text.utf8.count
            }
            if total > maximumAnnotationBytes {
                problems.append("metadata.annotations: Too long: must have at most \(maximumAnnotationBytes) bytes")
            }
        }
        for finalizer in object.finalizers where qualifiedNameProblem(finalizer) != nil {
            problems.append("metadata.finalizers: Invalid value: \"\(clip(finalizer))\": \(qualifiedNameProblem(finalizer) ?? "")")
        }
        problems += ownerReferenceProblems(metadata["ownerReferences"]?.arrayElements ?? [])
        return problems
    }

    /// apimachinery's checks of `ownerReferences`: each names its owner fully (the garbage
    /// collector finds owners by them), and at most one is the controller.
    private static func ownerReferenceProblems(_ references: [JSONValue]) -> [String] {
        var problems: [String] = []
        for reference in references {
            let apiVersion = reference["apiVersion"]?.stringValue ?? ""
            let version = apiVersion.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init) ?? ""
            if version.isEmpty {
                problems.append("metadata.ownerReferences.apiVersion: Invalid value: \"\(clip(apiVersion))\": version must not be empty")
            }
            for field in ["kind", "name", "uid"] where (reference[field]?.stringValue ?? "").isEmpty {
                problems.append("metadata.ownerReferences.\(field): Invalid value: \"\": \(field) must not be empty")
            }
            if apiVersion == "v1", reference["kind"]?.stringValue == "Event" {
                problems.append("metadata.ownerReferences: Invalid value: \"Event\": v1, Kind=Event is disallowed from being an owner")
            }
        }
        let controllers = references.filter { $0["controller"] == .bool(true) }.map {
            "\($0["kind"]?.stringValue ?? "")/\($0["name"]?.stringValue ?? "")"
        }
        if controllers.count > 1 {
            problems.append(
                "metadata.ownerReferences: Invalid value: \(controllers.count) references: Only one reference can have Controller set to true. Found \"true\" in references for \(controllers.joined(separator: " and "))"
            )
        }
        return problems
    }

    /// A value as an error message shows it: long ones cut, so a 5,000-character name does not become a 5,000-character error.
    private static func clip(_ text: String) -> String {
        text.count <= 80 ? text : String(text.prefix(77)) + "..."
    }
}
