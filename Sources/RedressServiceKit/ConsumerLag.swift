import Foundation
import Logging
import Metrics
import RedressContracts
import RedressKafka
import ServiceLifecycle

/// Measures every Redress consumer group's lag — each partition's high watermark less the group's
/// committed offset — and exports it as `redress_consumer_lag{group,topic,partition}`. It runs in
/// the supervisor, not in the consumers themselves, so a group whose service is down still shows
/// its lag rising (the case the alert is for). One admin handle per group reads its committed
/// offsets without joining it.
public struct ConsumerLagExporter: Service {
    let client: KafkaClientConfiguration
    let groups: [String: [String]]
    let interval: Duration
    let logger: Logger

    public init(client: KafkaClientConfiguration, groups: [String: [String]] = ConsumerGroups.all, interval: Duration = .seconds(15), logger: Logger) {
        self.client = client
        self.groups = groups
        self.interval = interval
        self.logger = logger
    }

    public struct Sample: Sendable, Equatable {
        public var group: String
        public var partition: TopicPartition
        public var lag: Int64
    }

    /// One measurement of every group; also recorded in the gauge.
    public static func measure(client: KafkaClientConfiguration, groups: [String: [String]], admins: inout [String: KafkaAdmin],
                               logger: Logger) async throws -> [Sample] {
        // The handles live across measurements: one for metadata ("" in `admins`), one per group.
        let metadata: KafkaAdmin
        if let existing = admins[""] {
            metadata = existing
        } else {
            metadata = try KafkaAdmin(client: client, logger: logger)
            admins[""] = metadata
        }
        let (partitions, _) = try await metadata.topicsAsync()
        var samples: [Sample] = []
        for (group, topics) in groups.sorted(by: { $0.key < $1.key }) {
            let admin: KafkaAdmin
            if let existing = admins[group] {
                admin = existing
            } else {
                var own = client
                own.clientID = client.clientID + "-lag"
                admin = try KafkaAdmin(client: own, group: group, logger: logger)
                admins[group] = admin
            }
            let wanted = topics.flatMap { topic in (0..<(partitions[topic] ?? 0)).map { TopicPartition(topic: topic, partition: Int32($0)) } }
            for (partition, lag) in try await admin.lagAsync(wanted).sorted(by: { ($0.key.topic, $0.key.partition) < ($1.key.topic, $1.key.partition) }) {
                samples.append(Sample(group: group, partition: partition, lag: lag))
                Gauge(label: "redress_consumer_lag", dimensions: [("group", group), ("topic", partition.topic), ("partition", String(partition.partition))])
                    .record(lag)
            }
        }
        return samples
    }

    public func run() async throws {
        var admins: [String: KafkaAdmin] = [:]
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            do {
                _ = try await Self.measure(client: client, groups: groups, admins: &admins, logger: logger)
            } catch {
                logger.warning("consumer lag not measured this time", metadata: ["error": "\(error)"])
            }
            // The wait ends with a graceful shutdown too, so SIGTERM is never held up by it.
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}
