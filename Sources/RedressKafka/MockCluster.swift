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
        let cluster = Pointer(cluster)
        let code = try command("create topic \(name)") { rd_kafka_mock_topic_create(cluster.value, name, Int32(partitions), 1) }
        if code != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(code: code, context: "create topic \(name)")
        }
    }

    /// Runs a mock cluster command, which blocks until the cluster's thread answers, on a thread of
    /// its own. Called from a task on Swift's cooperative pool, librdkafka 2.0.2 (Debian's) sometimes
    /// never saw the answer: about one development broker start in thirty hung for good at one of
    /// its 52 topics, and 3,000 topics in a row outlasted a minute
    /// (`aClusterAnswersEveryRequestToCreateATopic`). On threads of their own, 800 starts and the
    /// 3,000 topics (a quarter of a second) never waited. Should it happen still, the caller hears
    /// of it instead of hanging.
    private func command(_ what: String, _ body: @escaping @Sendable () -> rd_kafka_resp_err_t) throws(KafkaError) -> rd_kafka_resp_err_t {
        let answer = Answer()
        Thread { answer.set(body()) }.start()
        guard let code = answer.wait(seconds: 10) else {
            throw KafkaError(kind: .configuration, message: "the mock cluster did not answer within 10 s (\(what)); start it again")
        }
        return code
    }

    private struct Pointer: @unchecked Sendable { let value: OpaquePointer; init(_ value: OpaquePointer) { self.value = value } }

    /// One command's answer, waited for with a limit.
    private final class Answer: @unchecked Sendable {
        private let done = DispatchSemaphore(value: 0)
        private let lock = NSLock()
        private var code: rd_kafka_resp_err_t?

        func set(_ code: rd_kafka_resp_err_t) {
            lock.withLock { self.code = code }
            done.signal()
        }

        func wait(seconds: Int) -> rd_kafka_resp_err_t? {
            guard done.wait(timeout: .now() + .seconds(seconds)) == .success else { return nil }
            return lock.withLock { code }
        }
    }

    /// Takes a broker down or brings it back (fault injection in tests).
    public func setBroker(_ id: Int32, up: Bool) throws(KafkaError) {
        let cluster = Pointer(cluster)
        let code = try command("set broker \(id) \(up ? "up" : "down")") {
            up ? rd_kafka_mock_broker_set_up(cluster.value, id) : rd_kafka_mock_broker_set_down(cluster.value, id)
        }
        if code != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(code: code, context: "set broker \(id) \(up ? "up" : "down")")
        }
    }
}
