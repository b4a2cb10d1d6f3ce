import ServiceLifecycle

/// Work that runs for as long as its process does, as a member of the process's service group:
/// cancelled on graceful shutdown (the out-of-process plugins of hub and agent).
public struct TaskService: Service {
    private let body: @Sendable () async -> Void

    public init(_ body: @escaping @Sendable () async -> Void) {
        self.body = body
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { await body() }
    }
}
