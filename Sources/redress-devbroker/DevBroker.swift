import ArgumentParser
import Foundation
import Logging
import RedressContracts
import RedressKafka
import ServiceLifecycle

/// The development broker: librdkafka's mock cluster in a process of its own, with the project's
/// topics created, its address written to a file for the scripts and services. Memory only.
@main
struct DevBroker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redress-devbroker",
        abstract: "Run a development Kafka broker (librdkafka's mock cluster) with Redress's topics.")

    @Option(help: "Where to write the bootstrap address (host:port,…).")
    var bootstrapFile = "run/kafka.bootstrap"

    @Option(help: "Brokers in the mock cluster.")
    var brokers = 1

    @Option(help: "A topic to create with other partitions than its definition, as name=count (to try drift detection; repeatable).")
    var partitionsOverride: [String] = []

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .notice
            return handler
        }
        let logger = Logger(label: "redress-devbroker")
        let cluster = try MockCluster(brokers: brokers, logger: logger)
        var overrides: [String: Int] = [:]
        for entry in partitionsOverride {
            let parts = entry.split(separator: "=")
            guard parts.count == 2, let count = Int(parts[1]), count > 0 else { throw ValidationError("--partitions-override \(entry): give name=count") }
            overrides[String(parts[0])] = count
        }
        // The topics as the code defines them (Topics.specs), which `redressctl topics apply` creates on a real cluster.
        for spec in Topics.specs {
            try cluster.createTopic(spec.name, partitions: overrides[spec.name] ?? spec.partitions)
        }
        let url = URL(fileURLWithPath: bootstrapFile)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        // Written last and atomically: a reader never sees the address before the topics exist.
        try Data((cluster.bootstrapServers + "\n").utf8).write(to: url, options: .atomic)
        print("redress-devbroker: \(cluster.bootstrapServers) (\(Topics.specs.count) topics as defined); address in \(bootstrapFile)")

        // Serve until SIGTERM or SIGINT, setting TCP_NODELAY on each new connection (MockCluster.disableNagle).
        let group = ServiceGroup(configuration: .init(services: [HoldOpen(cluster: cluster)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        try? FileManager.default.removeItem(at: url)
        withExtendedLifetime(cluster) {}
    }
}

/// Keeps the broker up until shutdown, setting TCP_NODELAY on connections opened since its last look.
struct HoldOpen: Service {
    let cluster: MockCluster

    func run() async throws {
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            cluster.disableNagle()
            try? await Task.sleep(for: .milliseconds(50))
        }
    }
}
