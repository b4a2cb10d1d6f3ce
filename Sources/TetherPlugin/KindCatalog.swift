import Synchronization
import TetherJSON
import TetherModel

/// The kinds a server serves right now: the plugins' kinds, which never change, and those its
/// CustomResourceDefinitions define, which come and go while it runs.
///
/// Readers take ``registry`` per use (a lock and a copy of a few references); the definitions'
/// follower replaces it with ``update(definitions:through:)``, and whoever must act on a new
/// kind (the federation engine follows its objects) reads ``changes()``.
public final class KindCatalog: Sendable {
    public let builtin: KindRegistry

    private struct State {
        var registry: KindRegistry
        var definitions: [String: CustomResourceDefinition] = [:]
        var customizations: [String: InterpreterCustomization] = [:]
        /// The store version of the last definition change applied, for read-your-writes.
        var appliedVersion: UInt64 = 0
        var generation: UInt64 = 0
        var waiters: [(id: Int, version: UInt64, continuation: CheckedContinuation<Bool, Never>)] = []
        var nextWaiter = 0
        var subscribers: [Int: AsyncStream<KindRegistry>.Continuation] = [:]
        var nextSubscriber = 0
    }

    private let state: Mutex<State>

    /// Where scripts that fail are reported (the owner logs them).
    public let interpreterFailures: InterpreterFailures

    /// The out-of-process plugins (`--plugin-dir`), in front of the kinds they declare.
    public let external: [ExternalPluginProcess]

    public init(builtin: KindRegistry, external: [ExternalPluginProcess] = [], interpreterFailures: InterpreterFailures = InterpreterFailures()) {
        self.builtin = builtin
        self.external = external
        self.interpreterFailures = interpreterFailures
        self.state = Mutex(State(registry: external.isEmpty ? builtin : KindRegistry.layered(plugins: builtin.plugins, external: external)))
    }

    /// The customization named `name` as served now (reused while its resource version holds).
    public func customization(named name: String) -> InterpreterCustomization? { state.withLock { $0.customizations[name] } }

    /// Interprets each customization's target kind with its scripts from now on (the first by
    /// name when several target one kind).
    public func update(customizations: [InterpreterCustomization]) {
        let (subscribers, registry) = state.withLock { state -> ([AsyncStream<KindRegistry>.Continuation], KindRegistry?) in
            let kept = Dictionary(customizations.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
            guard kept.mapValues(\.resourceVersion) != state.customizations.mapValues(\.resourceVersion) else { return ([], nil) }
            state.customizations = kept
            return rebuild(&state)
        }
        if let registry { for subscriber in subscribers { subscriber.yield(registry) } }
    }

    /// A new registry from `state`'s definitions and customizations, for the subscribers.
    private func rebuild(_ state: inout State) -> ([AsyncStream<KindRegistry>.Continuation], KindRegistry?) {
        state.registry = makeRegistry(state)
        state.generation += 1
        return (Array(state.subscribers.values), state.registry)
    }

    private func makeRegistry(_ state: State) -> KindRegistry {
        let custom = state.definitions.values.sorted { $0.name < $1.name }
        return KindRegistry.layered(
            plugins: builtin.plugins + (custom.isEmpty ? [] : [CustomResourcePlugin(definitions: custom)]), external: external,
            customizations: Array(state.customizations.values), failures: interpreterFailures)
    }

    /// Every kind served now, custom kinds after the plugins' (a definition never shadows one).
    public var registry: KindRegistry { state.withLock { $0.registry } }

    /// Moves on every change of the served kinds (what caches of derived documents key on).
    public var generation: UInt64 { state.withLock { $0.generation } }

    /// Whether the server serves CustomResourceDefinitions at all.
    public var servesDefinitions: Bool {
        builtin.kind(apiVersion: CustomResourceDefinitionPlugin.definition.apiVersion, kind: CustomResourceDefinitionPlugin.definition.kind) != nil
    }

    /// Whether the server serves ResourceInterpreterCustomizations (the hub does).
    public var servesCustomizations: Bool {
        builtin.kind(apiVersion: InterpreterCustomization.apiVersion, kind: InterpreterCustomization.kind) != nil
    }

    /// The definition behind a custom kind, while it is served.
    public func definition(named name: String) -> CustomResourceDefinition? { state.withLock { $0.definitions[name] } }

    /// Serves exactly `definitions` from now on, as of store version `version`. A definition
    /// naming a group or kind a plugin serves, or one another definition already serves, is left out.
    public func update(definitions: [CustomResourceDefinition], through version: UInt64) {
        let builtinGroups = Set(builtin.kinds.map(\.group))
        var kept: [String: CustomResourceDefinition] = [:]
        var served: Set<String> = []
        for definition in definitions.sorted(by: { $0.name < $1.name }) where !builtinGroups.contains(definition.group) {
            guard served.insert("\(definition.apiVersion)/\(definition.kind)").inserted,
                served.insert("\(definition.group)/\(definition.plural)").inserted
            else { continue }
            kept[definition.name] = definition
        }
        let (ready, subscribers, registry) = state.withLock {
            state -> ([CheckedContinuation<Bool, Never>], [AsyncStream<KindRegistry>.Continuation], KindRegistry?) in
            state.appliedVersion = max(state.appliedVersion, version)
            let ready = state.waiters.filter { $0.version <= state.appliedVersion }.map(\.continuation)
            state.waiters.removeAll { $0.version <= state.appliedVersion }
            // A stored definition changes with its resource version (names, schema, columns, deletion).
            guard kept.mapValues(\.resourceVersion) != state.definitions.mapValues(\.resourceVersion) else { return (ready, [], nil) }
            state.definitions = kept
            let (subscribers, registry) = rebuild(&state)
            return (ready, subscribers, registry)
        }
        if let registry { for subscriber in subscribers { subscriber.yield(registry) } }
        for continuation in ready { continuation.resume(returning: true) }
    }

    /// Returns once definition changes up to store version `version` are served, or after
    /// `timeout`; false on the timeout.
    public func waitUntilApplied(_ version: UInt64, timeout: Duration) async -> Bool {
        let id = state.withLock { state -> Int? in
            guard state.appliedVersion < version else { return nil }
            state.nextWaiter += 1
            return state.nextWaiter
        }
        guard let id else { return true }
        let timer = Task { [weak self] in
            guard (try? await Task.sleep(for: timeout)) != nil else { return }
            self?.expire(id)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let applied = state.withLock { state -> Bool in
                if state.appliedVersion >= version { return true }
                state.waiters.append((id, version, continuation))
                return false
            }
            if applied { continuation.resume(returning: true) }
        }
    }

    private func expire(_ id: Int) {
        let expired = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index).continuation
        }
        expired?.resume(returning: false)
    }

    /// Each new registry from now on, until the stream is dropped.
    public func changes() -> AsyncStream<KindRegistry> {
        let (stream, continuation) = AsyncStream.makeStream(of: KindRegistry.self, bufferingPolicy: .bufferingNewest(1))
        let id = state.withLock { state -> Int in
            state.nextSubscriber += 1
            state.subscribers[state.nextSubscriber] = continuation
            return state.nextSubscriber
        }
        continuation.onTermination = { [weak self] _ in _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) } }
        return stream
    }
}
