import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import TetherJSON
import TetherModel
import TetherSecurity

/// `tetherctl get pods -l app=web`: one table of what every member runs, through the hub's member
/// proxy, with the cluster of each row first (the question "where do my Pods run?" otherwise
/// takes one kubectl per cluster).
struct GetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "List objects of a kind in every member cluster (or those named), through the hub, as one table.",
        discussion: """
            RESOURCE is what kubectl takes: a plural, a singular, a short name or a kind, optionally with its group \
            (pods, po, deploy, deployments.apps, nodes). Each member is read through the hub's member proxy \
            (/clusters/NAME/proxy), as the admin of DIR, with kube-apiserver's own table columns; a member that \
            cannot be read is reported on stderr and the command exits 1 after printing the others.

            Examples:
              tetherctl get pods -l app=web --dir fed
              tetherctl get nodes --dir fed -o wide
              tetherctl get deploy -A --cluster eu-1 --cluster us-1 --dir fed
              tetherctl get pods --dir fed -o json   # a List; each item annotated tether.io/cluster
            """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, wide, json
    }

    @Argument(help: "The kind to list (pods, deploy, nodes, ...).")
    var resource: String

    @Argument(help: "One object's name (optional).")
    var name: String?

    @Option(name: .long, help: "The federation directory (from `tetherctl init`).")
    var dir: String

    @Option(name: .long, help: "The hub's API URL; default: from DIR/hub.ports.json.")
    var hub: String?

    @Option(name: [.customShort("n"), .long], help: "The namespace (default: default).")
    var namespace: String?

    @Flag(name: [.customShort("A"), .customLong("all-namespaces")], help: "Every namespace.")
    var allNamespaces = false

    @Option(name: [.customShort("l"), .long], help: "A label selector (app=web, tier in (a,b)).")
    var selector: String?

    @Option(name: .customLong("cluster"), help: "A member to read (repeatable); default: every joined cluster.")
    var clusters: [String] = []

    @Option(name: [.customShort("o"), .long], help: "text, wide (every column) or json.")
    var output: Format = .text

    func validate() throws {
        if allNamespaces, namespace != nil { throw ValidationError("--namespace and --all-namespaces exclude each other") }
        if allNamespaces, name != nil { throw ValidationError("a name cannot be looked up in every namespace; name a namespace with -n") }
        if let selector { _ = try LabelSelector(parsing: selector) }
    }

    func run() async throws {
        let api = try HubAPI(directory: FederationDirectory(path: dir), hub: hub)
        defer { Task { await api.shutdown() } }
        let members = try await memberNames(api)
        guard !members.isEmpty else {
            throw ValidationError("no member cluster has joined the federation yet; join one with `tetherctl join NAME --dir \(dir)`")
        }
        guard let kind = try await KindLookup.find(resource, api: api, members: members) else {
            throw ValidationError("the server doesn't have a resource type \"\(resource)\" (looked up at the hub and in \(members[0]))")
        }
        var failures: [String] = []
        var tables: [(cluster: String, table: JSONValue)] = []
        var objects: [JSONValue] = []
        for member in members {
            let path =
                "/clusters/\(member)/proxy" + kind.path(namespace: kind.namespaced && !allNamespaces ? namespace ?? "default" : nil, name: name)
                + query
            let accept = output == .json ? "application/json" : "application/json;as=Table;v=v1;g=meta.k8s.io"
            let (code, body) = try await api.read(path, accept: accept)
            guard code == 200 else {
                let reason = body["message"]?.stringValue ?? "the hub answered \(code)"
                failures.append("cluster \(member): \(reason)")
                continue
            }
            if output == .json {
                for var item in name == nil ? body["items"]?.arrayElements ?? [] : [body] {
                    item.set(.string(member), at: ["metadata", "annotations", "tether.io/cluster"])
                    objects.append(item)
                }
            } else {
                tables.append((member, body))
            }
        }
        if output == .json {
            let list: JSONValue = ["apiVersion": "v1", "kind": "List", "metadata": [:], "items": .array(objects)]
            print(try list.serializedText())
        } else {
            let printed = TableMerge.render(tables, wide: output == .wide, showNamespace: allNamespaces && kind.namespaced)
            if printed.isEmpty, failures.isEmpty {
                FileHandle.standardError.write(Data("No resources found in any member.\n".utf8))
            } else {
                print(printed, terminator: "")
            }
        }
        for failure in failures { FileHandle.standardError.write(Data("error: \(failure)\n".utf8)) }
        if !failures.isEmpty { throw ExitCode(1) }
    }

    private var query: String {
        guard let selector, !selector.isEmpty else { return "" }
        return "?labelSelector=" + (selector.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? selector)
    }

    /// The clusters named, else every joined one (by name).
    private func memberNames(_ api: HubAPI) async throws -> [String] {
        guard clusters.isEmpty else { return clusters }
        let (code, list) = try await api.read("/apis/core.tether.io/v1alpha1/clusters", accept: "application/json")
        guard code == 200 else {
            throw ValidationError("cannot list the federation's clusters: \(list["message"]?.stringValue ?? "the hub answered \(code)")")
        }
        return (list["items"]?.arrayElements ?? []).compactMap(\.name).sorted()
    }
}

/// A kind found in discovery: where its objects are listed.
struct KindLookup {
    var group: String
    var version: String
    var plural: String
    var namespaced: Bool

    func path(namespace: String?, name: String?) -> String {
        var path = group.isEmpty ? "/api/\(version)" : "/apis/\(group)/\(version)"
        if let namespace { path += "/namespaces/\(namespace)" }
        path += "/\(plural)"
        if let name { path += "/\(name)" }
        return path
    }

    /// `resource` as kubectl resolves it, from the hub's discovery, else the first member's
    /// (which serves kinds the hub does not, such as nodes).
    static func find(_ resource: String, api: HubAPI, members: [String]) async throws -> KindLookup? {
        for prefix in ["", "/clusters/\(members[0])/proxy"] {
            if let found = try await find(resource, in: discovery(api, prefix: prefix)) { return found }
        }
        return nil
    }

    private static func discovery(_ api: HubAPI, prefix: String) async throws -> [JSONValue] {
        var groups: [JSONValue] = []
        for root in ["/api", "/apis"] {
            let (code, body) = try await api.read(prefix + root, accept: "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
            if code == 200 { groups += body["items"]?.arrayElements ?? [] }
        }
        return groups
    }

    /// The preferred version's match: by plural, singular, short name or kind, with `.group` when given.
    static func find(_ resource: String, in groups: [JSONValue]) -> KindLookup? {
        let wanted = resource.lowercased()
        let parts = wanted.split(separator: ".", maxSplits: 1).map(String.init)
        for candidate in [(wanted, nil as String?), (parts[0], parts.count > 1 ? parts[1] : nil)] {
            for group in groups {
                let groupName = group.metadata["name"]?.stringValue ?? ""
                if let named = candidate.1, named != groupName, !(groupName.hasPrefix(named + ".")) { continue }
                guard let version = group["versions"]?.arrayElements.first, let versionName = version["version"]?.stringValue else { continue }
                for entry in version["resources"]?.arrayElements ?? [] {
                    let names =
                        [
                            entry["resource"]?.stringValue, entry["singularResource"]?.stringValue,
                            entry.string(at: "responseKind", "kind")?.lowercased(),
                        ]
                        .compactMap { $0 } + (entry["shortNames"]?.arrayElements ?? []).compactMap(\.stringValue)
                    guard names.contains(candidate.0), let plural = entry["resource"]?.stringValue else { continue }
                    return KindLookup(group: groupName, version: versionName, plural: plural, namespaced: entry["scope"]?.stringValue == "Namespaced")
                }
            }
        }
        return nil
    }
}

/// Member tables as one: CLUSTER first, NAMESPACE when listing every namespace, then the kind's
/// columns (those of priority 0 unless wide), padded as kubectl pads them.
enum TableMerge {
    static func render(_ tables: [(cluster: String, table: JSONValue)], wide: Bool, showNamespace: Bool) -> String {
        guard
            let definitions = tables.first(where: { !($0.table["columnDefinitions"]?.arrayElements ?? []).isEmpty })?.table["columnDefinitions"]?
                .arrayElements
        else { return "" }
        let shown = definitions.indices.filter { wide || (definitions[$0]["priority"]?.integerValue ?? 0) == 0 }
        var rows: [[String]] = []
        for (cluster, table) in tables {
            for row in table["rows"]?.arrayElements ?? [] {
                let cells = row["cells"]?.arrayElements ?? []
                var line = [cluster]
                if showNamespace { line.append(row.value(at: "object", "metadata", "namespace")?.stringValue ?? "") }
                line += shown.map { $0 < cells.count ? text(cells[$0]) : "" }
                rows.append(line)
            }
        }
        guard !rows.isEmpty else { return "" }
        let header = ["CLUSTER"] + (showNamespace ? ["NAMESPACE"] : []) + shown.map { (definitions[$0]["name"]?.stringValue ?? "").uppercased() }
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { line in
            line.indices.map { $0 == line.count - 1 ? line[$0] : line[$0].padding(toLength: widths[$0] + 3, withPad: " ", startingAt: 0) }.joined()
        }.joined(separator: "\n") + "\n"
    }

    private static func text(_ cell: JSONValue) -> String {
        switch cell {
        case .string(let text): text
        case .integer(let number): "\(number)"
        case .bool(let flag): "\(flag)"
        case .null: "<none>"
        default: (try? String(decoding: cell.serialized(), as: UTF8.self)) ?? ""
        }
    }
}
