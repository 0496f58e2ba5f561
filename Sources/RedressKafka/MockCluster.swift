import Foundation
import CRdKafka
#if canImport(Glibc)
import Glibc
#endif
import Logging

/// librdkafka's built-in mock cluster: a Kafka protocol server inside this process, reachable
/// over TCP by any client. In-memory only, random ports on 127.0.0.1, about 5 MiB kept per
/// partition (older messages silently dropped), no CreateTopics admin call (topics are created
/// here), joins wait for the session timeout, and `read_committed` is not honoured.
public final class MockCluster: @unchecked Sendable {
    private let client: RDKafkaClient
    private let cluster: OpaquePointer
    /// The cluster's listening ports.
    private let ports: Set<UInt16>

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
        ports = Set(bootstrapServers.split(separator: ",").compactMap { $0.split(separator: ":").last.flatMap { UInt16($0) } })
        disableNagle()
    }

    /// The mock cluster leaves Nagle's algorithm on for its connections: a response written in two
    /// pieces then waits for the client's delayed ACK (40 ms on Linux) at every produce and fetch.
    /// Its sockets (listening and accepted, on its ports) are found among this process's descriptors
    /// and get TCP_NODELAY, as a production broker sets it on its own.
    /// Call again as clients connect (the development broker does, every 50 ms): Linux passes the
    /// listening socket's setting on to accepted connections only sometimes, so each is set itself.
    public func disableNagle() {
        Self.disableNagle(ports: ports)
    }

    static func disableNagle(ports: Set<UInt16>) {
        #if os(Linux)
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return }
        for fd in entries.compactMap(Int32.init) {
            var address = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let named = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            guard named == 0, address.sin_family == sa_family_t(AF_INET), ports.contains(UInt16(bigEndian: address.sin_port)) else { continue }
            var on: Int32 = 0
            var size = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, &size) == 0, on == 0 else { continue }
            on = 1
            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
        }
        #endif
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
