import Logging
import PostgresNIO
import TetherStore

/// Each cluster's revision in a row of its own (`tether_cluster_revisions`): a write touches only
/// the clusters that changed, so thousands of clusters cost one short statement per change
/// rather than their whole document, and hubs that record different clusters never overwrite
/// each other's.
extension PostgresResourceStore {
    public func clusterRevisions() async throws(StoreError) -> [String: ClusterRevision] {
        let logger = self.logger
        return try await snapshot("store read") { connection in
            var records: [String: ClusterRevision] = [:]
            let rows = try await connection.query("SELECT cluster, revision, digest FROM tether_cluster_revisions", logger: logger)
            for try await (cluster, revision, digest) in rows.decode((String, Int64, String).self) {
                records[cluster] = ClusterRevision(revision: UInt64(max(revision, 0)), digest: digest)
            }
            return records
        }
    }

    public func updateClusterRevisions(_ changed: [String: ClusterRevision], removing removed: Set<String>) async throws(StoreError) {
        guard !changed.isEmpty || !removed.isEmpty else { return }
        // Sorted, so two hubs writing overlapping sets take the rows' locks in one order.
        let clusters = changed.keys.sorted()
        let revisions = clusters.map { Int64(clamping: changed[$0]?.revision ?? 0) }
        let digests = clusters.map { changed[$0]?.digest ?? "" }
        let gone = removed.sorted()
        let logger = self.logger
        try await transaction("store write") { connection in
            if !clusters.isEmpty {
                try await connection.query(
                    """
                    INSERT INTO tether_cluster_revisions (cluster, revision, digest)
                    SELECT * FROM unnest(\(clusters)::text[], \(revisions)::bigint[], \(digests)::text[])
                    ON CONFLICT (cluster) DO UPDATE SET revision = excluded.revision, digest = excluded.digest
                    WHERE tether_cluster_revisions.revision <= excluded.revision
                    """, logger: logger)
            }
            if !gone.isEmpty {
                try await connection.query("DELETE FROM tether_cluster_revisions WHERE cluster = ANY(\(gone)::text[])", logger: logger)
            }
            return true
        }
    }
}
