import Foundation
import Testing
import TetherJSON
import TetherModel
import TetherPlugin

/// CustomResourceDefinitions read as kube-apiserver reads them: what is refused, and how the
/// structural schema checks, defaults and prunes the objects of the kind.
@Suite("custom resources")
struct CustomResourceTests {
    static func definition(_ schema: String, extra: String = "", name: String = "widgets.example.com") -> JSONValue {
        yaml(
            """
            apiVersion: apiextensions.k8s.io/v1
            kind: CustomResourceDefinition
            metadata: {name: \(name)}
            spec:
              group: example.com
              scope: Namespaced
              names: {plural: widgets, kind: Widget}
              versions:
              - name: v1
                served: true
                storage: true
                \(extra)
                schema:
                  openAPIV3Schema: \(schema)
            """)
    }

    static let widgetSchema = """
        {type: object, properties: {spec: {type: object, required: [size], properties: {
          size: {type: integer, minimum: 1, maximum: 5, exclusiveMaximum: true},
          colour: {type: string, enum: [red, blue], default: red},
          name: {type: string, maxLength: 4, pattern: '^[a-z]+$'},
          tags: {type: array, maxItems: 2, items: {type: string}},
          port: {x-kubernetes-int-or-string: true},
          extra: {type: object, x-kubernetes-preserve-unknown-fields: true},
          limits: {type: object, additionalProperties: {type: integer}},
          nested: {type: object, default: {}, properties: {depth: {type: integer, default: 3}}}}}}}
        """

    @Test("a definition is refused with every problem named by field")
    func refusals() {
        let plugin = CustomResourceDefinitionPlugin()
        func problems(_ object: JSONValue) -> String { plugin.validate(object).map(\.description).joined(separator: "\n") }
        #expect(problems(Self.definition(Self.widgetSchema)).isEmpty)
        #expect(problems(Self.definition(Self.widgetSchema, name: "gadgets.example.com")).contains("metadata.name: Invalid value"))
        #expect(
            problems(Self.definition("{type: object, properties: {spec: {properties: {a: {type: string}}}}}")).contains(
                "properties[spec].type: Required value"))
        #expect(problems(Self.definition("{type: object, properties: {spec: {type: thing}}}")).contains("Unsupported value: \"thing\""))
        #expect(problems(Self.definition("{type: object, properties: {a: {type: string, pattern: '(['}}}")).contains("not a regular expression"))
        #expect(
            problems(Self.definition("{type: object, properties: {a: {type: integer, minimum: 2, default: 1}}}")).contains(
                "greater than or equal to 2"))
        #expect(problems(Self.definition("{type: object, anyOf: [{}]}")).contains("anyOf: is not supported"))
        var twoServed = Self.definition(Self.widgetSchema)
        var versions = twoServed.value(at: "spec", "versions")?.arrayElements ?? []
        var second = versions[0]
        second[member: "name"] = "v2"
        second[member: "storage"] = false
        versions.append(second)
        twoServed.set(.array(versions), at: ["spec", "versions"])
        #expect(problems(twoServed).isEmpty, "two served versions with conversion None are served")
        twoServed.set(
            yaml("{strategy: Webhook, webhook: {conversionReviewVersions: [v1], clientConfig: {url: 'https://convert.example.com/crd'}}}"),
            at: ["spec", "conversion"])
        #expect(problems(twoServed).isEmpty, "a conversion webhook the hub can call")
        for (conversion, problem) in [
            ("{strategy: Custom}", "spec.conversion.strategy: Unsupported value: \"Custom\""),
            ("{strategy: Webhook, webhook: {clientConfig: {url: 'https://a.example'}}}", "conversionReviewVersions: Required value"),
            ("{strategy: Webhook, webhook: {conversionReviewVersions: [v1beta1], clientConfig: {url: 'https://a.example'}}}", "include \"v1\""),
            (
                "{strategy: Webhook, webhook: {conversionReviewVersions: [v1], clientConfig: {url: 'http://a.example'}}}",
                "'https' is the only allowed"
            ),
            ("{strategy: Webhook, webhook: {conversionReviewVersions: [v1], clientConfig: {url: 'https://a.example/?x=1'}}}", "query parameters"),
            ("{strategy: Webhook, webhook: {conversionReviewVersions: [v1], clientConfig: {service: {name: c, namespace: d}}}}", "runs no Services"),
            ("{strategy: Webhook, webhook: {conversionReviewVersions: [v1], clientConfig: {url: 'https://a.example', caBundle: '%%%'}}}", "caBundle"),
        ] {
            twoServed.set(yaml(conversion), at: ["spec", "conversion"])
            #expect(problems(twoServed).contains(problem), "\(conversion): \(problems(twoServed))")
        }
        var deep: JSONValue = ["type": "string"]
        for _ in 0..<70 { deep = ["type": "object", "properties": ["x": deep]] }
        var tooDeep = Self.definition("{type: object}")
        let versionsDeep = [yaml("{name: v1, served: true, storage: true}")].map { version -> JSONValue in
            var version = version
            version[member: "schema"] = ["openAPIV3Schema": deep]
            return version
        }
        tooDeep.set(.array(versionsDeep), at: ["spec", "versions"])
        #expect(problems(tooDeep).contains("nested more than 64 levels deep"))
    }

    @Test("another served version is its own kind at the API: checked and pruned by its own schema, stored at the storage version")
    func otherServedVersion() throws {
        var object = Self.definition(Self.widgetSchema)
        var versions = object.value(at: "spec", "versions")?.arrayElements ?? []
        var beta = yaml("{name: v1beta1, served: true, storage: false}")
        beta[member: "schema"] = [
            "openAPIV3Schema": yaml("{type: object, properties: {spec: {type: object, properties: {size: {type: integer, maximum: 9}}}}}")
        ]
        versions.insert(beta, at: 0)
        object.set(.array(versions), at: ["spec", "versions"])
        let definition = try CustomResourceDefinition(parsing: object)
        #expect(definition.version == "v1")
        let other = try #require(definition.otherDescriptors.first)
        #expect(other.apiVersion == "example.com/v1beta1" && other.definition == "widgets.example.com")
        let conversion = try #require(other.conversion)
        let sent = yaml("{apiVersion: example.com/v1beta1, kind: Widget, metadata: {name: w}, spec: {size: 7, stray: 1}}")
        let stored = try conversion.toStorage(sent)
        #expect(stored == yaml("{apiVersion: example.com/v1, kind: Widget, metadata: {name: w}, spec: {size: 7}}"))
        #expect(conversion.fromStorage(stored)["apiVersion"] == "example.com/v1beta1")
        do {
            _ = try conversion.toStorage(yaml("{apiVersion: example.com/v1beta1, kind: Widget, metadata: {name: w}, spec: {size: 12}}"))
            Issue.record("a size over the v1beta1 maximum was converted")
        } catch let error as VersionConversionError {
            #expect(error.invalid && error.description.contains("spec.size"), "\(error)")
        }
        let plugin = CustomResourcePlugin(definitions: [definition])
        #expect(plugin.otherVersions.map(\.apiVersion) == ["example.com/v1beta1"])
    }

    @Test("objects are checked against the schema: types, required, enum, bounds, lengths, patterns, maps, int-or-string")
    func validation() throws {
        let definition = try CustomResourceDefinition(parsing: Self.definition(Self.widgetSchema))
        let plugin = CustomResourcePlugin(definitions: [definition])
        func problems(_ spec: String) -> [String] {
            plugin.validate(yaml("{apiVersion: example.com/v1, kind: Widget, metadata: {name: w}, spec: \(spec)}")).map(\.description)
        }
        #expect(problems("{size: 2, name: abc, tags: [a], port: http, limits: {cpu: 2}, extra: {anything: [1]}}").isEmpty)
        #expect(problems("{size: 2, port: 8080}").isEmpty)
        #expect(problems("{}") == ["spec.size: Required value"])
        #expect(problems("{size: 5}") == ["spec.size: Invalid value: 5: should be less than 5"])
        #expect(problems("{size: 0}") == ["spec.size: Invalid value: 0: should be greater than or equal to 1"])
        #expect(problems("{size: two}") == ["spec.size: Invalid value: \"a string\": spec.size in body must be of type integer"])
        #expect(problems("{size: 1, colour: green}") == ["spec.colour: Unsupported value: \"green\": supported values: \"red\", \"blue\""])
        #expect(problems("{size: 1, name: abcde}") == ["spec.name: Too long: may not be longer than 4"])
        #expect(problems("{size: 1, name: AB}") == ["spec.name: Invalid value: \"AB\": spec.name in body should match '^[a-z]+$'"])
        #expect(problems("{size: 1, tags: [a, b, c]}") == ["spec.tags: Too many: 3: must have at most 2 items"])
        #expect(problems("{size: 1, tags: [1]}") == ["spec.tags[0]: Invalid value: \"a number\": spec.tags[0] in body must be of type string"])
        #expect(
            problems("{size: 1, limits: {cpu: lots}}") == [
                "spec.limits.cpu: Invalid value: \"a string\": spec.limits.cpu in body must be of type integer"
            ])
        #expect(problems("{size: 1, port: [1]}") == ["spec.port: Invalid value: \"an array\": spec.port in body must be an integer or a string"])
    }

    @Test("defaults fill what is missing and unknown fields are pruned, except where preserved")
    func defaultsAndPruning() throws {
        let plugin = CustomResourcePlugin(definitions: [try CustomResourceDefinition(parsing: Self.definition(Self.widgetSchema))])
        let written = plugin.normalizeOnWrite(
            yaml(
                "{apiVersion: example.com/v1, kind: Widget, metadata: {name: w}, spec: {size: 2, colour: blue, stray: 1, extra: {kept: true}}, other: x}"
            ))
        #expect(written.string(at: "spec", "colour") == "blue")
        #expect(written.integer(at: "spec", "nested", "depth") == 3)
        #expect(written.value(at: "spec", "stray") == nil)
        #expect(written.value(at: "other") == nil)
        #expect(written.value(at: "spec", "extra", "kept") == .bool(true))
        #expect(written.name == "w")
        let defaulted = plugin.normalizeOnWrite(yaml("{apiVersion: example.com/v1, kind: Widget, metadata: {name: w}, spec: {size: 2}}"))
        #expect(defaulted.string(at: "spec", "colour") == "red")
    }

    @Test("the served kind: names, scope, columns, subresources, published fields")
    func descriptor() throws {
        let definition = try CustomResourceDefinition(
            parsing: Self.definition(
                Self.widgetSchema,
                extra: """
                    subresources: {status: {}, scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}}
                        additionalPrinterColumns: [{name: Size, type: integer, jsonPath: .spec.size}, {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}, {name: Age, type: date, jsonPath: .metadata.creationTimestamp}]
                    """))
        let kind = definition.descriptor
        #expect(kind.apiVersion == "example.com/v1" && kind.plural == "widgets" && kind.namespaced && kind.hasScale && kind.hasStatus)
        #expect(kind.definition == "widgets.example.com")
        #expect(kind.printerColumns.map(\.name) == ["Size", "Ready"])
        let object = yaml("{spec: {size: 4}, status: {conditions: [{type: Synced, status: 'False'}, {type: Ready, status: 'True'}]}}")
        #expect(kind.printerColumns.map { $0.cell(object) } == [.integer(4), .string("True")])
        guard case .object(let spec)? = kind.fields?["spec"] else {
            Issue.record("spec is not published as an object")
            return
        }
        #expect(spec["size"] == .integer && spec["port"] == .intOrString && spec["extra"] == .free && spec["limits"] == .map(.integer))
    }

    @Test("printer-column paths: fields, indexes, filters, wildcards; bad ones refused")
    func objectPaths() throws {
        let object = yaml("{items: [{name: a, n: 1}, {name: b, n: 2}], s: {t: x}}")
        #expect(try ObjectPath(parsing: ".s.t").values(in: object) == ["x"])
        #expect(try ObjectPath(parsing: ".items[1].name").values(in: object) == ["b"])
        #expect(try ObjectPath(parsing: ".items[-1].n").values(in: object) == [.integer(2)])
        #expect(try ObjectPath(parsing: ".items[*].name").values(in: object) == ["a", "b"])
        #expect(try ObjectPath(parsing: ".items[?(@.name==\"b\")].n").values(in: object) == [.integer(2)])
        #expect(try ObjectPath(parsing: ".missing.deeper").values(in: object).isEmpty)
        #expect(throws: ValidationProblem.self) { try ObjectPath(parsing: "spec.x") }
        #expect(throws: ValidationProblem.self) { try ObjectPath(parsing: ".items[") }
        #expect(throws: ValidationProblem.self) { try ObjectPath(parsing: ".items[name]") }
    }

    @Test("the catalog serves definitions, never over a plugin's kind, and wakes waiters")
    func catalog() async throws {
        let builtin = KindRegistry(plugins: [CustomResourceDefinitionPlugin()])
        let catalog = KindCatalog(builtin: builtin)
        let widgets = try CustomResourceDefinition(parsing: Self.definition(Self.widgetSchema))
        var shadow = Self.definition(Self.widgetSchema, name: "customresourcedefinitions.apiextensions.k8s.io")
        shadow.set("apiextensions.k8s.io", at: ["spec", "group"])
        shadow.set("customresourcedefinitions", at: ["spec", "names", "plural"])
        let shadowing = try CustomResourceDefinition(parsing: shadow)
        let changes = catalog.changes()
        async let waited = catalog.waitUntilApplied(7, timeout: .seconds(10))
        catalog.update(definitions: [widgets, shadowing], through: 7)
        #expect(await waited)
        #expect(catalog.registry.kind(apiVersion: "example.com/v1", kind: "Widget")?.definition == "widgets.example.com")
        #expect(catalog.registry.kinds.filter { $0.plural == "customresourcedefinitions" }.count == 1)
        var iterator = changes.makeAsyncIterator()
        #expect(await iterator.next()?.kind(apiVersion: "example.com/v1", kind: "Widget") != nil)
        #expect(await catalog.waitUntilApplied(8, timeout: .milliseconds(50)) == false)
        catalog.update(definitions: [], through: 9)
        #expect(catalog.registry.kind(apiVersion: "example.com/v1", kind: "Widget") == nil)
    }
}
