import Foundation
import TetherSecurity

/// The federation's records as an RFC 1035 master file, for BIND, Knot or CoreDNS's `file`
/// plugin. The hub rewrites it whole (atomically) when a record changes, with a higher SOA serial.
enum ZoneFile {
    /// The SOA's timers: secondaries check every minute and give up on a primary after a week;
    /// a name that does not exist is cached as long as a record is.
    static let refresh = 60
    static let retry = 30
    static let expire = 604_800

    /// The file's text, records in name order; `serial` goes in the SOA.
    static func render(_ records: [DNSRecord], dns: FederationDNS, serial: UInt32) -> String {
        let origin = dns.zone + "."
        var lines = [
            "; The DNS records of the federated Services and Ingresses of the federation named \"\(dns.federation)\",",
            "; written by tether-hub on every change (docs/dns.md). Edits here are lost at the next change.",
            "$ORIGIN \(origin)",
            "$TTL \(dns.ttl)",
            "@\t\(dns.ttl)\tIN\tSOA\t\(absolute(dns.nameservers[0].name)) hostmaster.\(origin) "
                + "(\(serial) \(refresh) \(retry) \(expire) \(dns.ttl))",
        ]
        for server in dns.nameservers {
            lines.append("@\t\(dns.ttl)\tIN\tNS\t\(absolute(server.name))")
        }
        for server in dns.nameservers {
            guard let address = server.address, server.name == dns.zone || server.name.hasSuffix("." + dns.zone) else { continue }
            let type = address.contains(":") ? "AAAA" : "A"
            lines.append("\(relative(server.name, dns))\t\(dns.ttl)\tIN\t\(type)\t\(address)")
        }
        for record in records.sorted(by: { ($0.name, $0.type) < ($1.name, $1.type) }) {
            for target in record.targets {
                let value = record.type == .cname ? absolute(target) : target
                lines.append("\(relative(record.name, dns))\t\(record.ttl)\tIN\t\(record.type.rawValue)\t\(value)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The serial in a file this type wrote, if `text` is one.
    static func serial(of text: String) -> UInt32? {
        for line in text.split(separator: "\n") where line.contains("\tSOA\t") {
            guard let open = line.firstIndex(of: "(") else { return nil }
            return line[line.index(after: open)...].split(separator: " ").first.flatMap { UInt32($0) }
        }
        return nil
    }

    /// The file without its serial: two texts that differ only there carry the same records.
    static func withoutSerial(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            guard line.contains("\tSOA\t"), let open = line.firstIndex(of: "("), let space = line[open...].firstIndex(of: " ") else {
                return String(line)
            }
            return String(line[..<line.index(after: open)] + line[space...])
        }.joined(separator: "\n")
    }

    /// The next serial after `previous`: the current time in seconds when that is larger (so a
    /// file lost and written again still moves forward), else one more; RFC 1982 arithmetic.
    static func nextSerial(after previous: UInt32?, now: Date) -> UInt32 {
        let clock = UInt32(clamping: Int64(now.timeIntervalSince1970))
        guard let previous else { return clock }
        let next = previous &+ 1
        let ahead = clock &- previous
        return ahead > 0 && ahead < 1 << 31 ? clock : next
    }

    private static func absolute(_ name: String) -> String { name + "." }

    private static func relative(_ name: String, _ dns: FederationDNS) -> String {
        if name == dns.zone { return "@" }
        return String(name.dropLast(dns.zone.utf8.count + 1))
    }
}
