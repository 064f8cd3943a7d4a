import ArgumentParser

@main
struct HailuoHookCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hailuo-hook",
        abstract: "A webhook receiver for MiniMax Hailuo video generation.",
        subcommands: [Serve.self, Simulate.self, Submit.self, Status.self, List.self, Watch.self, Healthcheck.self]
    )
}
