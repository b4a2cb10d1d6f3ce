import Foundation
import TetherJSON
import TetherModel
import TetherPlugin
import TetherSecurity
import TetherWire

/// How each ``ClusterStatusChange`` shows in a Cluster's `status`: pure, so the engine's writer
/// can apply the pending changes of a cluster to the status it has just read, in one write.
enum ClusterStatus {
    static func apply(_ change: ClusterStatusChange, to status: inout [String: JSONValue]) {
        switch change {
        case .phase(let phase, let reason, let message, let at):
            status["phase"] = .string(phase)
            setCondition(
                "Ready", phase == "Ready",
                reason: reason ?? (phase == "Ready" ? "SessionUp" : phase == "NotReady" ? "SessionLost" : "Offline"),
                message: message, at: at, in: &status
            )
        case .claim(let hub, let session, let api, let at):
            let epoch = (status["session"]?["epoch"]?.integerValue ?? 0) + 1
            var record: [String: JSONValue] = [
                "hub": .string(hub), "id": .string(session), "epoch": .integer(epoch), "since": .string(kubernetesTimestamp(at)),
            ]
            if let api { record["api"] = .string(api) }
            status["session"] = .object(record)
            status["phase"] = "Ready"
            setCondition("Ready", true, reason: "SessionUp", message: "an agent session is up on hub \(hub)", at: at, in: &status)
        case .release(let session, let message, let at):
            guard status["session"]?["id"]?.stringValue == session else { return }
            status["session"] = nil
            status["phase"] = "NotReady"
            setCondition("Ready", false, reason: "SessionLost", message: message, at: at, in: &status)
        case .agent(let version, let kinds, let proxy):
            status["agentVersion"] = .string(version)
            status["kinds"] = .array(kinds.map(JSONValue.string))
            status["proxy"] = proxy.map(JSONValue.string)
        case .certificate(let certificate, let at):
            describe(certificate, at: at, into: &status)
        case .health(let health, let certificate, let at):
            if let certificate { describe(certificate, at: at, into: &status) }
            status["lastHeartbeatTime"] = .string(kubernetesTimestamp(at))
            status["kubernetesVersion"] = health.kubernetesVersion.map(JSONValue.string)
            status["nodeCount"] = health.nodeCount.map { .integer(Int64($0)) }
            status["apiReachable"] = .bool(health.apiReachable)
            if let allocatable = health.allocatable { status["allocatable"] = .object(allocatable.mapValues(JSONValue.integer)) }
        case .delivery(let delivered, let reason, let message, let at):
            setCondition("DesiredStateDelivered", delivered, reason: reason, message: message, at: at, in: &status)
        case .hold(let hold, let cluster, let at):
            guard let hold else {
                status["hold"] = nil
                setCondition(
                    "DesiredStateHeld", false, reason: "Applied", message: "the agent applies its desired state in full", at: at, in: &status)
                return
            }
            status["hold"] = [
                "reason": .string(hold.reason.rawValue), "message": .string(hold.message), "token": .string(hold.token),
                "wouldRemove": .integer(Int64(hold.wouldRemove)), "managed": .integer(Int64(hold.managed)),
            ]
            let next =
                hold.reason == .foreignFederation
                ? "give the agent a bundle of this federation, or clear its state directory"
                : "check, then run `tetherctl cluster confirm \(cluster)`"
            setCondition("DesiredStateHeld", true, reason: hold.reason.rawValue, message: hold.message + "; " + next, at: at, in: &status)
        case .movedAway(let moved, let message, let at):
            setCondition(movedAwayCondition, moved, reason: moved ? "AgentAway" : "AgentBack", message: message, at: at, in: &status)
        }
    }

    static let movedAwayCondition = "ReplicasMovedAway"

    /// The session the Cluster's status says a hub holds (agents on every hub), if any.
    struct SessionRecord: Sendable, Equatable {
        var hub: String
        var id: String
        var epoch: UInt64
        var api: String?
    }

    static func session(of cluster: JSONValue?) -> SessionRecord? {
        guard let record = cluster?["status"]?["session"], let hub = record["hub"]?.stringValue, let id = record["id"]?.stringValue else {
            return nil
        }
        return SessionRecord(hub: hub, id: id, epoch: UInt64(max(record["epoch"]?.integerValue ?? 0, 0)), api: record["api"]?.stringValue)
    }

    /// Whether a change of this aspect is the holding hub's to write (what its agent says), so a
    /// hub that no longer holds the session must not write it over the holder's.
    static func isHolders(_ aspect: ClusterStatusChange.Aspect) -> Bool {
        switch aspect {
        case .agent, .certificate, .health, .delivery, .hold: true
        case .session, .phase, .movedAway: false
        }
    }

    /// Whether the Cluster's stored status says its divided replicas run in the other clusters.
    static func movedAway(_ cluster: JSONValue) -> Bool {
        condition(movedAwayCondition, of: cluster)?["status"]?.stringValue == "True"
    }

    /// When the Cluster's stored status says its agent session ended, if it says one has.
    static func sessionLostAt(_ cluster: JSONValue) -> String? {
        guard let ready = condition("Ready", of: cluster), ready["status"]?.stringValue == "False" else { return nil }
        return ready["lastTransitionTime"]?.stringValue
    }

    private static func condition(_ type: String, of cluster: JSONValue) -> JSONValue? {
        cluster["status"]?["conditions"]?.arrayElements.first { $0["type"]?.stringValue == type }
    }

    /// Sets one condition of a status, keeping the others; its transition time moves only when its status does.
    static func setCondition(_ type: String, _ value: Bool, reason: String, message: String, at: Date, in status: inout [String: JSONValue]) {
        var object = JSONValue.object(status)
        Conditions.set(type, value, reason: reason, message: message, at: at, in: &object)
        status = object.objectMembers
    }

    /// The agent's certificate, and a `CertificateExpiring` condition once less than a quarter of
    /// its lifetime is left (renewal is due at two thirds).
    static func describe(_ certificate: CertificateSummary, at now: Date, into status: inout [String: JSONValue]) {
        status["certificate"] = [
            "serial": .string(certificate.serial), "issuer": .string(certificate.issuer),
            "notBefore": .string(kubernetesTimestamp(certificate.notBefore)), "notAfter": .string(kubernetesTimestamp(certificate.notAfter)),
        ]
        let lifetime = certificate.notAfter.timeIntervalSince(certificate.notBefore)
        let left = certificate.notAfter.timeIntervalSince(now)
        let expiring = left < lifetime / 4
        let message =
            expiring
            ? "the agent's certificate (serial \(certificate.serial)) expires at \(kubernetesTimestamp(certificate.notAfter)) and was not renewed; "
                + "see the agent's certificates.renewal_* log events, or renew with `tetherctl certs renew --cluster`"
            : "the agent's certificate is valid until \(kubernetesTimestamp(certificate.notAfter))"
        setCondition("CertificateExpiring", expiring, reason: expiring ? "NotRenewed" : "Valid", message: message, at: now, in: &status)
    }
}
