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

    /// A Pod's address from 10.244.0.0/16: the one it has, or the first no other Pod holds.
    func podIP(store: any ResourceStore, for pod: JSONValue) async -> String {
        if let held = pod.string(at: "status", "podIP") { return held }
        let used = Set(await objects("pods", store: store).compactMap { $0.string(at: "status", "podIP") })
        for index in 2..<65_000 {
            let candidate = "10.244.\(index / 256).\(index % 256)"
            if !used.contains(candidate) { return candidate }
        }
        return "10.244.255.254"
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
