import Foundation
import TetherJSON
import TetherModel
import TetherStore

/// Hands out the addresses a cluster's networking would: cluster IPs from 10.96.0.0/16 and
/// load-balancer addresses from a block of 198.18.0.0/15 (a range reserved for testing) chosen
/// by the cluster's name, so two simulated clusters give different addresses.
///
/// Addresses in use are read back from the store, so a restart never hands one out twice.
actor AddressAllocator {
    private let loadBalancerPrefix: String

    init(clusterName: String) {
        // FNV-1a: stable across runs and platforms, unlike Hasher.
        var hash: UInt32 = 2_166_136_261
        for byte in clusterName.utf8 {
            hash ^= UInt32(byte)
            hash = hash &* 16_777_619
        }
        let block = Int(hash % 512)
        loadBalancerPrefix = "198.\(18 + block / 256).\(block % 256)."
    }

    func clusterIP(store: any ResourceStore) async -> String {
        let used = Set(await objects("services", store: store).compactMap { $0["spec"]?["clusterIP"]?.stringValue })
        for index in 10..<65_000 {
            let candidate = "10.96.\(index / 256).\(index % 256)"
            if !used.contains(candidate) { return candidate }
        }
        return "10.96.255.254"
    }

    /// Each Pod's address (by uid) and the addresses held, read from the store once by
    /// ``loadPodAddresses(store:)`` and kept since: a member making a thousand Pods would
    /// otherwise list every Pod for each one.
    private var podAddresses: [String: String] = [:]
    private var podAddressesHeld: Set<String> = []
    private var nextPodIndex = 2
    private static let podIndices = 2..<65_534

    /// Reads the addresses Pods hold, before any is handed out.
    func loadPodAddresses(store: any ResourceStore) async {
        for pod in await objects("pods", store: store) {
            guard let uid = pod.uid, let address = pod.string(at: "status", "podIP") else { continue }
            podAddresses[uid] = address
            podAddressesHeld.insert(address)
        }
    }

    /// A Pod's address from 10.244.0.0/16: the one it has or was given, or the next no Pod holds.
    func podIP(for pod: JSONValue) -> String {
        if let held = pod.string(at: "status", "podIP") { return held }
        guard let uid = pod.uid else { return "10.244.255.254" }
        if let given = podAddresses[uid] { return given }
        for _ in Self.podIndices {
            let index = nextPodIndex
            nextPodIndex = index + 1 == Self.podIndices.upperBound ? Self.podIndices.lowerBound : index + 1
            let candidate = "10.244.\(index / 256).\(index % 256)"
            guard !podAddressesHeld.contains(candidate) else { continue }
            podAddresses[uid] = candidate
            podAddressesHeld.insert(candidate)
            return candidate
        }
        return "10.244.255.254"
    }

    /// A deleted Pod's address is free again.
    func release(pod: JSONValue) {
        guard let uid = pod.uid, let address = podAddresses.removeValue(forKey: uid) ?? pod.string(at: "status", "podIP") else { return }
        podAddressesHeld.remove(address)
    }

    func loadBalancerIP(store: any ResourceStore) async -> String {
        let holders = await objects("services", store: store) + objects("ingresses", store: store)
        let used = Set(holders.compactMap(StatusPlan.loadBalancerIP))
        for index in 1..<255 where !used.contains(loadBalancerPrefix + "\(index)") {
            return loadBalancerPrefix + "\(index)"
        }
        return loadBalancerPrefix + "254"
    }

    private func objects(_ resource: String, store: any ResourceStore) async -> [JSONValue] {
        let group = resource == "ingresses" ? "networking.k8s.io" : ""
        let type = ResourceType(group: group, resource: resource, namespaced: true)
        return (try? await store.list(type, options: ListOptions()).objects) ?? []
    }
}
