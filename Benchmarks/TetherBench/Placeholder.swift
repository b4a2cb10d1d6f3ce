import ArgumentParser

struct AgentBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "agent", abstract: "A real agent's footprint.")
    func run() async throws { throw ValidationError("not written yet") }
}

struct APIBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "api", abstract: "The API under load.")
    func run() async throws { throw ValidationError("not written yet") }
}
