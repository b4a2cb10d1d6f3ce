import Foundation
import Testing
import TetherJSON
import TetherModel
import TetherSecurity
import TetherStore
import TetherWire

@testable import TetherHub

/// Federation v1's DNS names and fallback (docs/dns.md), from the engine's state to the zone file.
@Suite("DNS records: names, health, fallback, zone file")
struct DNSRecordsTests {
    static let dns = try! FederationDNS(zone: "Example.COM.", federation: "fed", ttl: 20)
    static let web = ObjectReference(apiVersion: "v1", kind: "Service", namespace: "shop", name: "web")

    static func member(
        _ cluster: String, _ region: String?, _ zone: String?, healthy: Bool = true, _ addresses: String...
    ) -> DNSSource.Member {
        DNSSource.Member(cluster: cluster, region: region, zone: zone, healthy: healthy, addresses: addresses)
    }

    static func answers(_ members: [DNSSource.Member], reference: ObjectReference = web) -> [String: String] {
        let planned = DNSRecordPlanner.records(for: DNSSource(reference: reference, uid: "u1", members: members), dns: dns)
        var answers: [String: String] = [:]
        for record in planned.records {
            answers[record.name, default: ""] +=
                (answers[record.name] == nil ? "" : " ") + "\(record.type.rawValue) \(record.targets.joined(separator: ","))"
        }
        return answers
    }

    @Test("every healthy member in the global name, each region's and each zone's in theirs; IPv6 as AAAA; host names left out")
    func names() {
        let answers = Self.answers([
            Self.member("a", "us-east1", "us-east1-b", "10.0.0.1"),
            Self.member("b", "us-east1", "us-east1-c", "10.0.0.2", "2001:db8::2"),
            Self.member("c", "europe-west1", "europe-west1-b", "10.0.0.3", "lb.example.net"),
        ])
        #expect(
            answers == [
                "web.shop.fed.svc.example.com": "A 10.0.0.1,10.0.0.2,10.0.0.3 AAAA 2001:db8::2",
                "web.shop.fed.svc.us-east1.example.com": "A 10.0.0.1,10.0.0.2 AAAA 2001:db8::2",
                "web.shop.fed.svc.us-east1-b.us-east1.example.com": "A 10.0.0.1",
                "web.shop.fed.svc.us-east1-c.us-east1.example.com": "A 10.0.0.2 AAAA 2001:db8::2",
                "web.shop.fed.svc.europe-west1.example.com": "A 10.0.0.3",
                "web.shop.fed.svc.europe-west1-b.europe-west1.example.com": "A 10.0.0.3",
            ], "\(answers)")
        let planned = DNSRecordPlanner.records(
            for: DNSSource(reference: Self.web, uid: "u", members: [Self.member("c", "r", "z", "lb.example.net")]), dns: Self.dns)
        #expect(planned.records.isEmpty && planned.skipped.count == 1, "\(planned)")
    }

    @Test("an empty zone is an alias of its region, an empty region of the global name; nothing healthy, no records")
    func fallback() {
        let zoneDown = Self.answers([
            Self.member("a", "r1", "z1", healthy: false, "10.0.0.1"), Self.member("b", "r1", "z2", "10.0.0.2"),
            Self.member("c", "r2", "z3", "10.0.0.3"),
        ])
        #expect(zoneDown["web.shop.fed.svc.z1.r1.example.com"] == "CNAME web.shop.fed.svc.r1.example.com")
        #expect(zoneDown["web.shop.fed.svc.r1.example.com"] == "A 10.0.0.2")
        #expect(zoneDown["web.shop.fed.svc.example.com"] == "A 10.0.0.2,10.0.0.3")

        let regionDown = Self.answers([
            Self.member("a", "r1", "z1", healthy: false, "10.0.0.1"), Self.member("b", "r1", "z2", healthy: false, "10.0.0.2"),
            Self.member("c", "r2", "z3", "10.0.0.3"),
        ])
        #expect(regionDown["web.shop.fed.svc.r1.example.com"] == "CNAME web.shop.fed.svc.example.com")
        #expect(regionDown["web.shop.fed.svc.z1.r1.example.com"] == "CNAME web.shop.fed.svc.r1.example.com")
        #expect(regionDown["web.shop.fed.svc.example.com"] == "A 10.0.0.3")

        #expect(Self.answers([Self.member("a", "r1", "z1", healthy: false, "10.0.0.1")]).isEmpty)
        // A member without an address yet counts as empty, not as a failure.
        #expect(Self.answers([Self.member("a", "r1", "z1")]).isEmpty)
    }

    @Test("clusters without topology labels count for the global name only; a label that is no DNS label is left out and said")
    func labels() {
        let source = DNSSource(
            reference: ObjectReference(apiVersion: "networking.k8s.io/v1", kind: "Ingress", namespace: "shop", name: "site"), uid: "u",
            members: [Self.member("a", nil, nil, "10.0.0.1"), Self.member("b", "US_East", "z", "10.0.0.2"), Self.member("c", "R2", nil, "10.0.0.3")])
        let planned = DNSRecordPlanner.records(for: source, dns: Self.dns)
        #expect(planned.records.map(\.name) == ["site.shop.fed.ing.example.com", "site.shop.fed.ing.r2.example.com"])
        #expect(planned.skipped == ["b: region 'US_East' is not a DNS label; the cluster counts for the wider names only"])
    }

    @Test("the zone file: SOA, NS, records relative to the origin, one line per target; the serial moves forward even if the clock does not")
    func zoneFile() throws {
        let records = DNSRecordPlanner.records(
            for: DNSSource(reference: Self.web, uid: "u", members: [Self.member("a", "r1", nil, "10.0.0.1")]), dns: Self.dns
        ).records
        let text = ZoneFile.render(records, dns: Self.dns, serial: 7)
        #expect(text.contains("$ORIGIN example.com.\n$TTL 20\n@\t20\tIN\tSOA\tlocalhost. hostmaster.example.com. (7 60 30 604800 20)\n"))
        #expect(text.contains("@\t20\tIN\tNS\tlocalhost.\n"))
        #expect(text.contains("web.shop.fed.svc\t20\tIN\tA\t10.0.0.1\n"))
        #expect(text.contains("web.shop.fed.svc.r1\t20\tIN\tA\t10.0.0.1\n"))
        #expect(ZoneFile.serial(of: text) == 7)
        #expect(ZoneFile.withoutSerial(text) == ZoneFile.withoutSerial(ZoneFile.render(records, dns: Self.dns, serial: 99)))

        let now = Date(timeIntervalSince1970: 1_800_000_000)
        #expect(ZoneFile.nextSerial(after: nil, now: now) == 1_800_000_000)
        #expect(ZoneFile.nextSerial(after: 5, now: now) == 1_800_000_000)
        #expect(ZoneFile.nextSerial(after: 1_800_000_000, now: now) == 1_800_000_001, "two writes in one second")
        #expect(ZoneFile.nextSerial(after: 1_900_000_000, now: now) == 1_900_000_001, "a clock that went back")

        let glued = try FederationDNS(zone: "example.com", nameservers: ["ns1.example.com=192.0.2.53", "ns2.example.net"])
        let withGlue = ZoneFile.render([], dns: glued, serial: 1)
        #expect(withGlue.contains("@\t30\tIN\tNS\tns1.example.com.\n@\t30\tIN\tNS\tns2.example.net.\nns1\t30\tIN\tA\t192.0.2.53\n"), "\(withGlue)")
    }

    @Test("settings are checked where they are given, each error naming its option")
    func settings() {
        #expect(throws: SecurityError.self) { try FederationDNS(zone: "exa mple.com") }
        #expect(throws: SecurityError.self) { try FederationDNS(zone: "example.com", federation: "Fed.1") }
        #expect(throws: SecurityError.self) { try FederationDNS(zone: "example.com", ttl: 0) }
        let inZone = #expect(throws: SecurityError.self) { try FederationDNS(zone: "example.com", nameservers: ["ns1.example.com"]) }
        #expect(inZone?.message.contains("ns1.example.com=ADDRESS") == true)
        #expect(throws: SecurityError.self) { try FederationDNS(zone: "example.com", nameservers: ["ns1.example.com=not-an-ip"]) }
        #expect(Self.dns.zone == "example.com")
    }

    @Test("the engine's view: placed members with their labels and addresses; a Degraded copy or a lost session does not count")
    func view() {
        let services = ResourceType(group: "", resource: "services", namespaced: true)
        var harness = FederationHarness()
        harness.settle(clusters: [
            "a": ["topology.kubernetes.io/region": "r1", "topology.kubernetes.io/zone": "z1"], "b": ["topology.kubernetes.io/region": "r1"],
        ])
        harness.connect("a")
        harness.connect("b")
        let service: JSONValue = [
            "apiVersion": "v1", "kind": "Service", "metadata": ["name": "web", "namespace": "shop", "uid": "uid-web"],
            "spec": ["type": "LoadBalancer", "ports": [["port": 80]]],
        ]
        let clusterIP: JSONValue = [
            "apiVersion": "v1", "kind": "Service", "metadata": ["name": "internal", "namespace": "shop", "uid": "uid-internal"],
            "spec": ["ports": [["port": 80]]],
        ]
        harness.send(.changed(.federated(services), object: service, deleted: false, version: 101, at: harness.now))
        harness.send(.changed(.federated(services), object: clusterIP, deleted: false, version: 102, at: harness.now))
        _ = harness.deliverPushes()
        #expect(harness.state.dnsView().complete == false, "no reports yet")
        func report(_ cluster: String, _ health: HealthState, _ ip: String) {
            let status = StatusReport.ObjectStatus(
                object: Self.web, state: .applied, health: health, summary: ["loadBalancer": ["ingress": [["ip": .string(ip)]]]])
            harness.send(.received(.status(StatusReport(objects: [status])), cluster: cluster, at: harness.now))
        }
        report("a", .healthy, "10.0.0.1")
        report("b", .degraded, "10.0.0.2")
        var view = harness.state.dnsView()
        #expect(view.complete)
        #expect(view.sources.map(\.reference) == [Self.web], "a ClusterIP Service has no records")
        #expect(
            view.sources.first?.members == [
                Self.member("a", "r1", "z1", "10.0.0.1"), Self.member("b", "r1", nil, healthy: false, "10.0.0.2"),
            ])
        harness.send(.sessionEnded(cluster: "a", session: "s-a", at: harness.now))
        view = harness.state.dnsView()
        #expect(view.sources.first?.members.first?.healthy == false)
        #expect(!view.complete)
    }
}
