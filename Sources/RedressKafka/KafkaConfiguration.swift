/// Where the brokers are and how to identify ourselves to them.
public struct KafkaClientConfiguration: Sendable {
    /// `host:port[,host:port…]` — in development the address the development broker wrote to its file.
    public var bootstrapServers: String
    /// Names this process in broker logs and metrics (`redress-intake-1`).
    public var clientID: String
    /// Any further librdkafka property (security settings for a production cluster, say).
    public var extraProperties: [String: String]

    public init(bootstrapServers: String, clientID: String, extraProperties: [String: String] = [:]) {
        self.bootstrapServers = bootstrapServers
        self.clientID = clientID
        self.extraProperties = extraProperties
    }
}

public struct KafkaProducerConfiguration: Sendable {
    public var client: KafkaClientConfiguration
    /// Idempotent producer: no duplicates from retries, order kept per partition.
    public var idempotence: Bool = true
    /// How long librdkafka waits to fill a batch before sending. Small: latency matters more than a few bytes.
    public var linger: Duration = .milliseconds(2)
    /// Give up on a message after this long; the delivery report then carries the error.
    public var messageTimeout: Duration = .seconds(30)
    /// librdkafka's local queue bound; a full queue is waited out, never dropped.
    public var queueBufferingMaxMessages: Int = 200_000

    public init(client: KafkaClientConfiguration) {
        self.client = client
    }

    func properties() -> [String: String] {
        var p = client.extraProperties
        p["bootstrap.servers"] = client.bootstrapServers
        p["client.id"] = client.clientID
        p["enable.idempotence"] = idempotence ? "true" : "false"
        p["linger.ms"] = String(linger.milliseconds)
        p["message.timeout.ms"] = String(messageTimeout.milliseconds)
        p["queue.buffering.max.messages"] = String(queueBufferingMaxMessages)
        p["log.queue"] = "true"
        // Requests go out at once, not held by Nagle's algorithm for the broker's delayed ACK (the Java client's default too).
        p["socket.nagle.disable"] = "true"
        // The key decides the partition: all events of a complaint share one.
        p["partitioner"] = "murmur2_random"
        return p
    }
}

public struct KafkaConsumerConfiguration: Sendable {
    public var client: KafkaClientConfiguration
    /// Consumers of one group share the topics' partitions; each event is handled once per group.
    public var groupID: String
    public var topics: [String]
    /// The mock cluster makes joins wait `sessionTimeout − 1 s`: development uses 6 s, production Kafka's 45 s default is fine.
    public var sessionTimeout: Duration = .seconds(45)
    public var heartbeatInterval: Duration = .seconds(2)
    /// Stored offsets (stored only after processing) are committed this often, and synchronously on revocation and close.
    public var autoCommitInterval: Duration = .seconds(1)
    /// Where a new group starts: the earliest message, so nothing published before it joined is missed.
    public var startFromEarliest: Bool = true
    /// Messages held in memory between librdkafka and the handler; the poll thread waits when it is full.
    public var bufferCapacity: Int = 4_000
    /// How long a broker may hold a fetch waiting for data. Shorter cuts latency at low load
    /// (a complaint crosses four topics) but, measured with the development broker on 2 cores,
    /// 100 ms lost a quarter of the throughput at 1,500 complaints/s: librdkafka's 500 ms stays.
    public var fetchWait: Duration = .milliseconds(500)
    /// Independent processing lanes: partition `p` is handled by lane `p mod lanes`, so batches of
    /// different lanes run concurrently while each partition — and so each key — stays in order.
    public var lanes: Int = 1
    /// librdkafka's own prefetch bound.
    public var queuedMaxKilobytes: Int = 16_384

    public init(client: KafkaClientConfiguration, groupID: String, topics: [String]) {
        self.client = client
        self.groupID = groupID
        self.topics = topics
    }

    func properties() -> [String: String] {
        var p = client.extraProperties
        p["bootstrap.servers"] = client.bootstrapServers
        p["client.id"] = client.clientID
        p["group.id"] = groupID
        p["enable.auto.commit"] = "true"
        // Offsets are stored by the application after its transaction commits, never by librdkafka on delivery.
        p["enable.auto.offset.store"] = "false"
        p["auto.commit.interval.ms"] = String(autoCommitInterval.milliseconds)
        p["auto.offset.reset"] = startFromEarliest ? "earliest" : "latest"
        p["session.timeout.ms"] = String(sessionTimeout.milliseconds)
        p["heartbeat.interval.ms"] = String(heartbeatInterval.milliseconds)
        p["queued.max.messages.kbytes"] = String(queuedMaxKilobytes)
        p["fetch.wait.max.ms"] = String(fetchWait.milliseconds)
        p["socket.nagle.disable"] = "true"
        p["log.queue"] = "true"
        p["enable.partition.eof"] = "false"
        return p
    }
}

extension Duration {
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
