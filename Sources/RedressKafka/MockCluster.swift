import CRdKafka
import Logging

/// librdkafka's built-in mock cluster: a Kafka protocol server inside this process, reachable
/// over TCP by any client. In-memory only, random ports on 127.0.0.1, about 5 MiB kept per
/// partition (older messages silently dropped), no CreateTopics admin call (topics are created
/// here), joins wait for the session timeout, and `read_committed` is not honoured.
public final class MockCluster: @unchecked Sendable {
    private let client: RDKafkaClient
    private let cluster: OpaquePointer

    /// Address list to give clients as `bootstrap.servers`.
    public let bootstrapServers: String

    public init(brokers: Int = 1, logger: Logger) throws(KafkaError) {
        // The cluster lives inside a client handle; a producer handle is enough.
        client = try RDKafkaClient(role: .producer, properties: ["log.queue": "true"], logger: logger)
        guard let cluster = rd_kafka_mock_cluster_new(client.handle, Int32(brokers)) else {
            throw KafkaError(kind: .configuration, message: "librdkafka could not start a mock cluster")
        }
        self.cluster = cluster
        bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
    }

    deinit {
        rd_kafka_mock_cluster_destroy(cluster)
    }

    public func createTopic(_ name: String, partitions: Int) throws(KafkaError) {
        let code = rd_kafka_mock_topic_create(cluster, name, Int32(partitions), 1)
        if code != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(code: code, context: "create topic \(name)")
        }
    }

    /// Takes a broker down or brings it back (fault injection in tests).
    public func setBroker(_ id: Int32, up: Bool) {
        if up {
            rd_kafka_mock_broker_set_up(cluster, id)
        } else {
            rd_kafka_mock_broker_set_down(cluster, id)
        }
    }
}
