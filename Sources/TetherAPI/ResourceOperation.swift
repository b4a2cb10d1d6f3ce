import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization
import TetherJSON
import TetherModel
import TetherPlugin
import TetherStore

/// One request on one kind: the Kubernetes verbs, with the checks the API adds to the store's.
struct ResourceOperation {
    /// The kind at its storage version: what every check, default and store call works with.
    let kind: KindDescriptor
    /// The kind at the version the URL names: `kind` itself, or another version served
    /// (`batch/v1beta1` CronJobs) whose bodies are converted on the way in and out.
    let served: KindDescriptor
    let type: ResourceType
    let path: APIPath.ResourcePath
    let handler: ResourceHandler
    let request: Request
    let context: APIRequestContext
    let caller: Caller
    /// Completes when the client's connection closes: a watch ends then, not at its next event.
    let connectionClosed: EventLoopFuture<Void>

    /// Warnings for the response's `Warning` headers.
    let warnings = ResponseWarnings()

    var store: any ResourceStore { handler.store }

    var query: RequestQuery { context.query }
    var wantsTable: Bool {
        (request.headers[.accept] ?? "").contains("as=Table")
    }

    /// The table writer for this request, rows carrying what `includeObject` asks for.
    func tableWriter() throws(APIError) -> TableWriter {
        guard let rowObject = TableWriter.RowObject(parameter: query["includeObject"]) else {
            throw APIError.badRequest(
                "includeObject=\(query["includeObject"] ?? ""): not a valid value; use None, Metadata or Object")
        }
        return TableWriter(kind: kind, now: Date(), rowObject: rowObject)
    }

    // MARK: Reads

    func render(_ object: JSONValue) async throws -> Response {
        if wantsTable {
            let table = try tableWriter()
            return ResourceHandler.json(table.table([object], resourceVersion: nil, shownObjects: try await tableObjects([object], for: table)))
        }
        return try await respond(object)
    }

    func list() async throws -> Response {
        let options = try listOptions()
        let table = wantsTable ? try tableWriter() : nil
        let page = try await store.list(type, options: options)
        let token = try page.next.map(ContinueToken.init).map { try $0.encoded() }
        if let table {
            let shownObjects = try await tableObjects(page.objects, for: table)
            return ResourceHandler.json(
                table.table(page.objects, resourceVersion: String(page.resourceVersion), continueToken: token, shownObjects: shownObjects))
        }
        let items = try await shownAll(page.objects)
        if Self.prefersProtobuf(request.headers[.accept] ?? ""),
            let bytes = KubernetesProtobuf.encodeList(items, kind: served, resourceVersion: String(page.resourceVersion), continueToken: token)
        {
            return Response(status: .ok, headers: [.contentType: KubernetesProtobuf.contentType], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
        var metadata: [String: JSONValue] = ["resourceVersion": .string(String(page.resourceVersion))]
        if let token { metadata["continue"] = .string(token) }
        return ResourceHandler.json([
            "kind": .string("\(kind.kind)List"), "apiVersion": .string(served.apiVersion), "metadata": .object(metadata),
            "items": .array(items),
        ])
    }

    func listOptions() throws -> ListOptions {
        var options = ListOptions(namespace: path.namespace)
        do {
            if let selector = query.labelSelector { options.labelSelector = try LabelSelector(parsing: selector) }
            if let selector = query.fieldSelector { options.fieldSelector = try FieldSelector(parsing: selector, allowing: kind.selectableFields) }
        } catch {
            throw APIError.badRequest(error.description)
        }
        options.limit = try query.limit()
        if let token = query.continueToken {
            options.after = try ContinueToken(decoding: token).position
        }
        return options
    }

    // MARK: Writes

    func create(dryRun: Bool) async throws -> Response {
        try await insert(try await stored(try await decodedBody()), dryRun: dryRun)
    }

    /// Every create comes here, with one set of checks: POST (JSON or protobuf) and server-side
    /// apply of an object that does not exist yet (whose URL names it).
    private func insert(_ body: JSONValue, dryRun: Bool, applying: Bool = false) async throws -> Response {
        var object = body
        try checkKind(of: &object)
        if let name = path.name {
            guard object.name == nil || object.name == name else {
                throw APIError.badRequest("the name of the object (\(object.name ?? "")) does not match the name on the URL (\(name))")
            }
            object.metadata["name"] = .string(name)
        }
        // An empty generateName is no prefix (some clients send it); it is not kept.
        if object.metadata["generateName"]?.stringValue == "" { object.metadata["generateName"] = nil }
        if kind.namespaced {
            if object.namespace == nil || object.namespace == "" { object.namespace = path.namespace }
            guard let namespace = object.namespace, !namespace.isEmpty else {
                throw APIError.badRequest("a namespace is required to create \(kind.resourceName)")
            }
            guard object.namespace == path.namespace || path.namespace == nil else {
                throw APIError.badRequest(
                    "the namespace of the provided object (\(namespace)) does not match the namespace sent on the request (\(path.namespace ?? ""))"
                )
            }
            try await requireNamespace(namespace, for: object)
        }
        if let definition = kind.definition, handler.catalog.definition(named: definition)?.terminating == true {
            throw APIError.methodNotAllowed("create not allowed while custom resource definition \(definition) is terminating")
        }
        var candidate = Self.withoutServerFields(object)
        // The uid is known before admission, as in kube-apiserver: a Job's selector is made from it.
        candidate.uid = UUID().uuidString.lowercased()
        object = try admitted(candidate)
        if kind.group.isEmpty, kind.kind == "Pod" {
            if handler.configuration.enforcesNamespaceLimits { object = try await limited(object) }
            object = try await prioritized(object)
        }
        if handler.configuration.enforcesNamespaceLimits, kind.group.isEmpty, kind.kind == "PersistentVolumeClaim" {
            object = try await admittedClaim(object)
        }
        if handler.configuration.enforcesNamespaceLimits, kind.namespaced { try await admitUnderQuota(object) }
        // `Optional(body)`: with a bare JSONValue branch the nil would be JSON null, read as an apply.
        object = try ownership(of: object, current: nil, applied: applying ? Optional(body) : nil)
        if type == ResourceHandler.namespaces { _ = NamespaceController.addingFinalizer(to: &object) }
        let created = try await store.create(object, as: type, dryRun: dryRun)
        if !dryRun {
            await definitionServed(created)
            await recordRevision(of: created)
        }
        return try await respond(created, status: .created)
    }

    /// A Pod being created, with the priority its PriorityClass gives (``PodPriority``), or 403.
    private func prioritized(_ pod: JSONValue) async throws -> JSONValue {
        let classes = try await store.list(ResourceHandler.priorityClasses, options: ListOptions()).objects
        do throws(PodPriority.Refusal) {
            return try PodPriority.admit(pod, classes: classes)
        } catch {
            throw APIError.forbidden("pods \"\(pod.name ?? pod.metadata["generateName"]?.stringValue ?? "")\" is forbidden: \(error.reason)")
        }
    }

    /// kube-apiserver's LimitRanger admission (``LimitRangeAdmission``): a Pod with its
    /// namespace's default requests and limits, or 403.
    private func limited(_ pod: JSONValue) async throws -> JSONValue {
        let ranges = try await store.list(ResourceHandler.limitRanges, options: ListOptions(namespace: pod.namespace ?? path.namespace)).objects
        do throws(LimitRangeAdmission.Refusal) {
            return try LimitRangeAdmission.admit(pod, limitRanges: ranges)
        } catch {
            throw APIError.forbidden("pods \"\(pod.name ?? pod.metadata["generateName"]?.stringValue ?? "")\" is forbidden: \(error.reason)")
        }
    }

    /// kube-apiserver's ResourceQuota admission (``ResourceQuotaAdmission``): 403 when the
    /// object would take its namespace over a quota.
    private func admitUnderQuota(_ object: JSONValue) async throws {
        let namespace = object.namespace ?? path.namespace
        let quotas = try await store.list(ResourceHandler.resourceQuotas, options: ListOptions(namespace: namespace)).objects
        guard !quotas.isEmpty else { return }
        let refusal = try await ResourceQuotaAdmission.refusal(of: object, resource: type.resource, group: type.group, quotas: quotas) { kind in
            try await store.list(
                ResourceType(group: kind.group, resource: kind.resource, namespaced: true), options: ListOptions(namespace: namespace)
            )
            .objects
        }
        if let refusal {
            throw APIError.forbidden(
                "\(type.group.isEmpty ? type.resource : "\(type.resource).\(type.group)") \"\(object.name ?? object.metadata["generateName"]?.stringValue ?? "")\" is forbidden: \(refusal.reason)"
            )
        }
    }

    func replace(dryRun: Bool) async throws -> Response {
        if path.subresource == "scale" { return try await rescale(with: try await decodedBody(), dryRun: dryRun) }
        var object = try await stored(try await decodedBody())
        try checkKind(of: &object)
        try checkIdentity(of: &object)
        guard path.subresource == nil else { return try await respond(try await write(object, dryRun: dryRun)) }
        let current = try await store.get(type, namespace: path.namespace, name: path.name ?? "")
        return try await respond(try await write(object, dryRun: dryRun, replacing: current))
    }

    func patch(dryRun: Bool) async throws -> Response {
        let contentType = (request.headers[.contentType] ?? "").split(separator: ";").first.map(String.init) ?? ""
        let patch = try await decodedBody(patch: true)
        if path.subresource == "scale" {
            let scale = Scale(of: try await store.get(type, namespace: path.namespace, name: path.name ?? "")).object
            var patchedScale = try Self.apply(patch, contentType: contentType, to: scale, schema: .free, limits: handler.configuration.limits)
            try checkLimits(of: patchedScale, after: "the patch")
            // The version read to patch is no precondition unless the patch names one.
            if patch["metadata"]?["resourceVersion"] == nil { patchedScale.metadata["resourceVersion"] = nil }
            return try await rescale(with: patchedScale, dryRun: dryRun)
        }
        // Without a resourceVersion in it, a patch applies to whatever is current: a write that
        // lands between the read and the write (a controller's status update) makes it read and
        // apply again, as kube-apiserver does, rather than answer 409.
        let preconditioned = patch["metadata"]?["resourceVersion"] != nil
        var attempt = 1
        while true {
            do {
                return try await patchOnce(patch, contentType: contentType, dryRun: dryRun)
            } catch let error as StoreError where error.code == .conflict && !preconditioned && attempt < Self.patchAttempts {
                attempt += 1
            }
        }
    }

    /// How often a patch with no resourceVersion is applied to a newer object before its conflict
    /// is answered. kube-apiserver's storage retries such a write until it lands; each retry here
    /// means another write landed, so the bound only stops a patch that loses every race for long.
    static let patchAttempts = 50

    private func patchOnce(_ patch: JSONValue, contentType: String, dryRun: Bool) async throws -> Response {
        let name = path.name ?? ""
        var existing: JSONValue?
        do {
            existing = try await store.get(type, namespace: path.namespace, name: name)
        } catch {
            guard error.code == .notFound, contentType == "application/apply-patch+yaml" else { throw error }
        }
        let applying = contentType == "application/apply-patch+yaml"
        if applying, path.subresource == nil, query["fieldManager"]?.isEmpty ?? true {
            throw APIError.badRequest("PATCH requests with application/apply-patch+yaml must name a fieldManager")
        }
        // Server-side apply of an object that does not exist creates it.
        guard let current = existing else { return try await insert(try await stored(patch), dryRun: dryRun, applying: applying) }
        // A patch applies to the object as the URL's version shows it.
        let view = try await shown(current)
        var patched =
            applying && path.subresource == nil
            ? ManagedFields.applied(patch, to: view, schema: served.schema)
            : try Self.apply(patch, contentType: contentType, to: view, schema: served.schema, limits: handler.configuration.limits)
        try checkLimits(of: patched, after: "the patch")
        patched = try await stored(patched)
        // A patch names no resourceVersion unless it asks for one; then it is a precondition.
        if patch["metadata"]?["resourceVersion"] == nil { patched.resourceVersion = current.resourceVersion }
        try checkKind(of: &patched)
        try checkIdentity(of: &patched)
        guard path.subresource == nil else { return try await respond(try await write(patched, dryRun: dryRun)) }
        if applying { patched = try withoutAbandonedFields(patched, applied: patch, current: current) }
        return try await respond(try await write(patched, dryRun: dryRun, replacing: current, applied: applying ? Optional(patch) : nil))
    }

    /// Stores a whole new version: of `status` alone on the status subresource, else of the rest,
    /// with its field ownership when it replaces `current` (`applied`: a server-side apply's body).
    private func write(_ object: JSONValue, dryRun: Bool, replacing current: JSONValue? = nil, applied: JSONValue? = nil) async throws
        -> JSONValue
    {
        guard path.subresource != "status" else {
            return try await store.updateStatus(try await statusOwnership(of: object), as: type, dryRun: dryRun)
        }
        if path.subresource == "ephemeralcontainers" {
            return try await store.update(try await withEphemeralContainers(of: object), as: type, dryRun: dryRun)
        }
        var admittedObject = try admitted(object, replacing: current)
        if let current, handler.configuration.enforcesNamespaceLimits, kind.group.isEmpty, kind.kind == "PersistentVolumeClaim" {
            try await admitResize(of: admittedObject, from: current)
        }
        if let current { admittedObject = try ownership(of: admittedObject, current: current, applied: applied) }
        let updated = try await store.update(admittedObject, as: type, dryRun: dryRun)
        if !dryRun {
            await definitionServed(updated)
            await recordRevision(of: updated)
        }
        return updated
    }

    /// After a write of a CustomResourceDefinition, waits (5 s at most) until the kinds served
    /// reflect it, so `kubectl apply -f crd.yaml` then `-f objects.yaml` works as on kube-apiserver.
    private func definitionServed(_ written: JSONValue) async {
        guard kind.group == CustomResourceDefinition.group, kind.plural == "customresourcedefinitions", let version = written.resourceVersion
        else { return }
        if !(await handler.catalog.waitUntilApplied(version, timeout: .seconds(5))) {
            warnings.add(["the definition is stored but not yet served; retry its objects in a moment"])
        }
    }

    /// The object as the kind's plugin normalizes it, or 422 listing every problem the plugin finds.
    ///
    /// First the kind's schema: a value of the wrong type is 400 whatever the client asked, as
    /// Kubernetes cannot decode it either; unknown fields are 400 under `fieldValidation=Strict`,
    /// a `Warning` header under `Warn` (the default), nothing under `Ignore`. Unknown fields are
    /// kept, not dropped as Kubernetes drops them: the schemas here are Tether's own and must
    /// never lose what a newer client sends (docs/api.md).
    func admitted(_ object: JSONValue, replacing current: JSONValue? = nil) throws -> JSONValue {
        let metadataProblems = KubernetesNames.metadataProblems(of: object, nameRule: kind.nameRule)
        guard metadataProblems.isEmpty else {
            let name = (object.name ?? object.metadata["generateName"]?.stringValue ?? "").prefix(80)
            throw APIError.invalid(kind: kind.kind, group: kind.group, name: String(name), problems: metadataProblems)
        }
        let findings = kind.schema.check(object)
        let cannotHandle = "\(kind.kind) in version \"\(kind.version)\" cannot be handled as a \(kind.kind)"
        // A custom kind's schema reports wrong types itself, as 422s naming each field.
        if let wrong = findings.wrongTypes.first, kind.definition == nil {
            let more = findings.wrongTypes.count > 1 ? " (and \(findings.wrongTypes.count - 1) more)" : ""
            throw APIError.badRequest("\(cannotHandle): field \(wrong.path) must be \(wrong.expected)\(more)")
        }
        if !findings.unknownFields.isEmpty {
            switch try query.fieldValidation() {
            case .strict:
                let fields = findings.unknownFields.map { "unknown field \"\($0)\"" }.joined(separator: ", ")
                throw APIError.badRequest("\(cannotHandle): strict decoding error: \(fields)")
            case .warn:
                warnings.add(findings.unknownFields.map { "unknown field \"\($0)\"" })
            case .ignore:
                break
            }
        }
        let plugin = handler.registry.plugin(apiVersion: kind.apiVersion, kind: kind.kind)
        let problems = plugin.validate(object) + (current.map { plugin.validateUpdate(object, from: $0) } ?? [])
        guard problems.isEmpty else {
            throw APIError.invalid(kind: kind.kind, group: kind.group, name: object.name ?? "", problems: problems.map(\.description))
        }
        warnings.add(plugin.warnings(on: object))
        return plugin.normalizeOnWrite(object)
    }

    /// Writes the replica count of a `Scale` into the object behind it. Without a resourceVersion
    /// in the Scale, it applies to whatever is current, again when another write lands first.
    private func rescale(with scale: JSONValue, dryRun: Bool) async throws -> Response {
        guard let replicas = scale["spec"]?["replicas"]?.integerValue, replicas >= 0 else {
            throw APIError.invalid("Scale.spec.replicas must be a non-negative integer")
        }
        var attempt = 1
        while true {
            do {
                return try await rescaleOnce(to: replicas, expecting: scale.resourceVersion, dryRun: dryRun)
            } catch let error as StoreError where error.code == .conflict && scale.resourceVersion == nil && attempt < Self.patchAttempts {
                attempt += 1
            }
        }
    }

    private func rescaleOnce(to replicas: Int64, expecting expectedVersion: UInt64?, dryRun: Bool) async throws -> Response {
        var object = try await store.get(type, namespace: path.namespace, name: path.name ?? "")
        if let expected = expectedVersion, expected != object.resourceVersion {
            throw APIError(StoreError(.conflict, "the object has been modified; read the scale again and retry"))
        }
        let before = object
        var spec = object["spec"] ?? [:]
        spec[member: "replicas"] = .integer(replicas)
        object[member: "spec"] = spec
        object = try ownership(of: object, current: before, applied: nil, subresource: "scale")
        let updated = try await store.update(object, as: type, dryRun: dryRun)
        return ResourceHandler.json(Scale(of: updated).object)
    }

    func delete(dryRun: Bool) async throws -> Response {
        let options = try await deleteOptions()
        let outcome = try await store.delete(
            type, namespace: path.namespace, name: path.name ?? "", preconditions: options, dryRun: dryRun
        )
        if !dryRun, case .finalizing(let object) = outcome { await definitionServed(object) }
        switch outcome {
        case .deleted(let object): return try await respond(object)
        // A Pod in its grace period is answered 200, as kube-apiserver does; one held by finalizers 202.
        case .finalizing(let object): return try await respond(object, status: object.finalizers.isEmpty ? .ok : .accepted)
        }
    }

    func deleteCollection(dryRun: Bool) async throws -> Response {
        let page = try await store.list(type, options: try listOptions())
        var items: [JSONValue] = []
        for object in page.objects {
            do {
                switch try await store.delete(type, namespace: object.namespace, name: object.name ?? "", preconditions: .init(), dryRun: dryRun) {
                case .deleted(let gone), .finalizing(let gone): items.append(gone)
                }
            } catch {
                // Gone already (deleted by someone else since the list): nothing left to do for it.
                guard error.code == .notFound else { throw error }
            }
        }
        return ResourceHandler.json([
            "kind": .string("\(kind.kind)List"), "apiVersion": .string(served.apiVersion),
            "metadata": ["resourceVersion": .string(String(try await store.currentResourceVersion()))], "items": .array(try await shownAll(items)),
        ])
    }

    // MARK: Checks

    private func decodedBody(patch: Bool = false) async throws -> JSONValue {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: handler.configuration.maximumBodyBytes)
        } catch {
            throw APIError.tooLarge("the request body exceeds \(handler.configuration.maximumBodyBytes) bytes")
        }
        let contentType = (request.headers[.contentType] ?? "application/json").split(separator: ";").first.map(String.init) ?? ""
        guard buffer.readableBytes <= handler.configuration.maximumObjectBytes else {
            throw APIError.tooLarge("the object is \(buffer.readableBytes) bytes; the limit is \(handler.configuration.maximumObjectBytes)")
        }
        if !patch, contentType == KubernetesProtobuf.contentType {
            // kubectl's generator commands (`kubectl create namespace X`) send protobuf.
            do {
                let object = try KubernetesProtobuf.decode(Array(buffer.readableBytesView), registry: handler.registry)
                try checkLimits(of: object, after: "the protobuf body")
                return object
            } catch let error as APIError {
                throw error
            } catch let unsupported as KubernetesProtobuf.Unsupported {
                throw APIError.unsupportedMediaType(
                    "this server decodes protobuf for \(KubernetesProtobuf.decodedKinds(in: handler.registry).joined(separator: ", ")) only, not \(unsupported.kind); "
                        + "send JSON: `kubectl create ... --dry-run=client -o yaml | kubectl apply -f -`"
                )
            } catch {
                throw APIError.badRequest(
                    "the protobuf body cannot be decoded: \(error); send JSON: `kubectl create ... --dry-run=client -o yaml | kubectl apply -f -`")
            }
        }
        if !patch, !["application/json", ""].contains(contentType) {
            throw APIError.unsupportedMediaType(
                "this server accepts objects as application/json (and protobuf for \(KubernetesProtobuf.decodedKinds(in: handler.registry).joined(separator: ", "))), "
                    + "not \(contentType); use `kubectl create -f` or `kubectl apply -f`"
            )
        }
        // A patch's own structure wraps the values it carries; the object that results is held
        // to the object depth after the patch is applied.
        let depth = handler.configuration.limits.maximumDepth + (patch ? ObjectLimits.patchEnvelopeDepth : 0)
        let parsed = buffer.withUnsafeReadableBytes { bytes in
            Result { () throws(JSONSyntaxError) in try JSONValue(parsing: bytes, maximumDepth: depth) }
        }
        switch parsed {
        case .success(let value): return value
        case .failure(let error) where error.isNestingTooDeep: throw APIError.badRequest("the JSON body nests deeper than \(depth) levels")
        case .failure(let error): throw APIError.badRequest("the request body is not valid JSON: \(error)")
        }
    }

    /// Refuses an object outside the object limits, however it came about (a patch can grow an
    /// object far past the size of the request that carried it).
    private func checkLimits(of object: JSONValue, after cause: String) throws {
        guard let violation = handler.configuration.limits.check(object) else { return }
        switch violation.code {
        case .tooLarge: throw APIError.tooLarge("\(cause) would make the object too large: \(violation)")
        case .tooDeep: throw APIError.invalid("\(cause) would make the object too deep: \(violation)")
        }
    }

    /// The body must be an object of the URL's kind. Like kube-apiserver, a body that leaves out
    /// `apiVersion` or `kind` (the Python client's typed objects do) gets them from the URL.
    /// The body's `apiVersion` and `kind` (filled in when absent) must be `expected`'s: the
    /// storage version's by default, the URL's before a conversion.
    func checkKind(of object: inout JSONValue, as expected: KindDescriptor? = nil) throws {
        let expected = expected ?? kind
        guard case .object = object else { throw APIError.badRequest("the body must be a JSON object") }
        if object.apiVersion == nil { object[member: "apiVersion"] = .string(expected.apiVersion) }
        if object.kind == nil { object[member: "kind"] = .string(expected.kind) }
        guard object.apiVersion == expected.apiVersion, object.kind == expected.kind else {
            throw APIError.badRequest(
                "the body is \(object.apiVersion ?? "?") \(object.kind ?? "?"), but the URL is for \(expected.apiVersion) \(expected.kind)"
            )
        }
    }

    /// A body for an existing object must name the object in the URL.
    private func checkIdentity(of object: inout JSONValue) throws {
        guard object.name == path.name else {
            throw APIError.badRequest("the name of the object (\(object.name ?? "")) does not match the name on the URL (\(path.name ?? ""))")
        }
        if kind.namespaced {
            if object.namespace == nil { object.namespace = path.namespace }
            guard object.namespace == path.namespace else {
                throw APIError.badRequest("the namespace of the object (\(object.namespace ?? "")) does not match the URL (\(path.namespace ?? ""))")
            }
        }
    }

    /// Fields only the server sets are dropped from what a client sends.
    private static func withoutServerFields(_ object: JSONValue) -> JSONValue {
        var cleaned = object
        for field in ["uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "generation", "managedFields"] {
            cleaned.metadata[field] = nil
        }
        return cleaned
    }
}
