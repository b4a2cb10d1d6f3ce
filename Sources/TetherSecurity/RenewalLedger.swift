import Foundation
import NIOConcurrencyHelpers

/// Every certificate the hub signed on renewal, with the serials it descends from:
/// `D/renewals.json`, so revoking a certificate by serial also revokes each renewal made from it
/// (a thief who renewed a stolen certificate is cut off with it).
///
/// Written by the hub alone (one writer, atomically); entries go once their certificate has
/// expired, as an expired certificate is refused anyway. Each entry keeps its whole ancestry (up
/// to ``maximumAncestors``), so pruning a parent never breaks a child's line.
public final class RenewalLedger: Sendable {
    public struct Entry: Codable, Sendable, Hashable {
        /// The serials this certificate was renewed from, nearest first.
        public var ancestors: [String]
        public var identity: String
        public var notAfter: Date
    }

    struct Contents: Codable, Sendable, Hashable {
        var certificates: [String: Entry] = [:]
    }

    /// How many generations back a renewal remembers.
    public static let maximumAncestors = 64

    private let path: String?
    private let contents: NIOLockedValueBox<Contents>

    /// The ledger at `path` (nil keeps it in memory only); an absent file is an empty ledger, a
    /// malformed one an error.
    public init(path: String?) throws(SecurityError) {
        self.path = path
        var loaded = Contents()
        if let path, FileManager.default.fileExists(atPath: path) {
            loaded = try PEMFiles.readJSON(Contents.self, from: path)
        }
        contents = NIOLockedValueBox(loaded)
    }

    /// The serials `serial` descends from, nearest first; empty for a certificate never renewed.
    public func ancestors(of serial: String) -> [String] {
        contents.withLockedValue { $0.certificates[serial.uppercased()]?.ancestors ?? [] }
    }

    /// Records `serial`, signed to replace `parent`, and writes the ledger.
    public func record(serial: String, renewing parent: String, identity: String, notAfter: Date, now: Date = Date()) throws(SecurityError) {
        let path = self.path
        // Under the lock, file write included: renewals are rare, and two must not each write a
        // ledger missing the other's entry.
        let failure = contents.withLockedValue { contents -> SecurityError? in
            let lineage = [parent.uppercased()] + (contents.certificates[parent.uppercased()]?.ancestors ?? [])
            contents.certificates[serial.uppercased()] = Entry(
                ancestors: Array(lineage.prefix(Self.maximumAncestors)), identity: identity, notAfter: notAfter
            )
            contents.certificates = contents.certificates.filter { $0.value.notAfter > now }
            guard let path else { return nil }
            do throws(SecurityError) {
                try PEMFiles.writeJSON(contents, to: path, mode: PEMFiles.privateKeyMode)
                return nil
            } catch {
                return error
            }
        }
        if let failure { throw failure }
    }
}
