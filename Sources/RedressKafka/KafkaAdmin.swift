import CRdKafka
import Foundation
import Logging

/// A topic to create: name, partitions, replication, and topic configs (`retention.ms`, …).
public struct KafkaTopicDefinition: Sendable, Equatable {
    public var name: String
    public var partitions: Int
    public var replicationFactor: Int
    public var configs: [String: String]

    public init(name: String, partitions: Int, replicationFactor: Int, configs: [String: String] = [:]) {
        self.name = name
        self.partitions = partitions
        self.replicationFactor = replicationFactor
        self.configs = configs
    }
}

/// The cluster's view an operator needs: topics with their partition counts, topic creation, and a
/// consumer group's lag. Each admin owns a handle of its own; every call blocks its caller (use
/// `Blocking.run` from async code) — none is made on librdkafka's or the cooperative pool's threads.
public final class KafkaAdmin: @unchecked Sendable {
    let handle: OpaquePointer
    let logger: Logger

    /// `group` names the consumer group whose committed offsets `lag` reads; without one, a producer
    /// handle (metadata and topic creation only).
    public init(client: KafkaClientConfiguration, group: String? = nil, logger: Logger) throws(KafkaError) {
        let conf = rd_kafka_conf_new()!
        var errorText = [CChar](repeating: 0, count: 512)
        var properties = client.extraProperties
        properties["bootstrap.servers"] = client.bootstrapServers
        properties["client.id"] = client.clientID
        if let group {
            properties["group.id"] = group
            properties["enable.auto.commit"] = "false"
        }
        for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
            if rd_kafka_conf_set(conf, key, value, &errorText, errorText.count) != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                throw KafkaError(kind: .configuration, message: "Kafka property \(key)=\(value) refused: \(bufferText(errorText))")
            }
        }
        guard let rk = rd_kafka_new(group == nil ? RD_KAFKA_PRODUCER : RD_KAFKA_CONSUMER, conf, &errorText, errorText.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(kind: .configuration, message: "cannot create Kafka client: \(bufferText(errorText))")
        }
        handle = rk
        self.logger = logger
    }

    deinit {
        rd_kafka_destroy(handle)
    }

    /// Every topic and its partition count, and how many brokers the cluster has.
    public func topics(timeout: Duration = .seconds(10)) throws(KafkaError) -> (partitions: [String: Int], brokers: Int) {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let code = rd_kafka_metadata(handle, 1, nil, &metadata, Int32(timeout.milliseconds))
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            throw KafkaError(code: code, context: "metadata request")
        }
        defer { rd_kafka_metadata_destroy(metadata) }
        var result: [String: Int] = [:]
        for index in 0..<Int(metadata.pointee.topic_cnt) {
            let topic = metadata.pointee.topics[index]
            guard topic.err == RD_KAFKA_RESP_ERR_NO_ERROR else { continue }
            result[String(cString: topic.topic)] = Int(topic.partition_cnt)
        }
        return (result, Int(metadata.pointee.broker_cnt))
    }

    /// Creates the topics; returns, per topic, nil when created or the broker's reason when not
    /// (`TOPIC_ALREADY_EXISTS` among them, which the caller may take as done).
    public func create(_ definitions: [KafkaTopicDefinition], timeout: Duration = .seconds(30)) throws(KafkaError) -> [String: String?] {
        guard !definitions.isEmpty else { return [:] }
        var errorText = [CChar](repeating: 0, count: 512)
        var newTopics: [OpaquePointer?] = []
        defer { newTopics.forEach { rd_kafka_NewTopic_destroy($0) } }
        for definition in definitions {
            guard let topic = rd_kafka_NewTopic_new(definition.name, Int32(definition.partitions), Int32(definition.replicationFactor),
                                                    &errorText, errorText.count) else {
                throw KafkaError(kind: .configuration, message: "topic \(definition.name): \(bufferText(errorText))")
            }
            for (key, value) in definition.configs.sorted(by: { $0.key < $1.key }) {
                _ = rd_kafka_NewTopic_set_config(topic, key, value)
            }
            newTopics.append(topic)
        }
        let queue = rd_kafka_queue_new(handle)
        defer { rd_kafka_queue_destroy(queue) }
        let options = rd_kafka_AdminOptions_new(handle, RD_KAFKA_ADMIN_OP_CREATETOPICS)
        defer { rd_kafka_AdminOptions_destroy(options) }
        _ = rd_kafka_AdminOptions_set_request_timeout(options, Int32(timeout.milliseconds), &errorText, errorText.count)
        newTopics.withUnsafeMutableBufferPointer { buffer in
            rd_kafka_CreateTopics(handle, buffer.baseAddress, buffer.count, options, queue)
        }
        guard let event = rd_kafka_queue_poll(queue, Int32(timeout.milliseconds) + 1000) else {
            throw KafkaError(code: RD_KAFKA_RESP_ERR__TIMED_OUT, context: "no answer to CreateTopics within \(timeout)")
        }
        defer { rd_kafka_event_destroy(event) }
        let eventError = rd_kafka_event_error(event)
        guard eventError == RD_KAFKA_RESP_ERR_NO_ERROR, let result = rd_kafka_event_CreateTopics_result(event) else {
            let text = rd_kafka_event_error_string(event).map { String(cString: $0) } ?? "unknown error"
            throw KafkaError(code: eventError, context: "CreateTopics: \(text)")
        }
        var count = 0
        guard let topics = rd_kafka_CreateTopics_result_topics(result, &count) else { return [:] }
        var outcome: [String: String?] = [:]
        for index in 0..<count {
            let topic = topics[index]
            let name = String(cString: rd_kafka_topic_result_name(topic))
            let code = rd_kafka_topic_result_error(topic)
            outcome[name] = code == RD_KAFKA_RESP_ERR_NO_ERROR ? nil
                : (code == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS ? "TOPIC_ALREADY_EXISTS"
                    : (rd_kafka_topic_result_error_string(topic).map { String(cString: $0) } ?? String(cString: rd_kafka_err2str(code))))
        }
        return outcome
    }

    public func topicsAsync(timeout: Duration = .seconds(10)) async throws(KafkaError) -> (partitions: [String: Int], brokers: Int) {
        try await Blocking.run { () throws(KafkaError) -> (partitions: [String: Int], brokers: Int) in try self.topics(timeout: timeout) }
    }

    public func lagAsync(_ partitions: [TopicPartition], timeout: Duration = .seconds(10)) async throws(KafkaError) -> [TopicPartition: Int64] {
        try await Blocking.run { () throws(KafkaError) -> [TopicPartition: Int64] in try self.lag(partitions, timeout: timeout) }
    }

    /// The lag of this admin's consumer group on `partitions`: the high watermark less the
    /// committed offset (a partition the group never committed counts from its low watermark).
    public func lag(_ partitions: [TopicPartition], timeout: Duration = .seconds(10)) throws(KafkaError) -> [TopicPartition: Int64] {
        guard !partitions.isEmpty else { return [:] }
        let list = rd_kafka_topic_partition_list_new(Int32(partitions.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for partition in partitions {
            rd_kafka_topic_partition_list_add(list, partition.topic, partition.partition)
        }
        let code = rd_kafka_committed(handle, list, Int32(timeout.milliseconds))
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(code: code, context: "committed offsets") }
        var result: [TopicPartition: Int64] = [:]
        for index in 0..<Int(list.pointee.cnt) {
            let element = list.pointee.elems[index]
            let partition = TopicPartition(topic: String(cString: element.topic), partition: element.partition)
            var low: Int64 = 0, high: Int64 = 0
            let watermarks = rd_kafka_query_watermark_offsets(handle, element.topic, element.partition, &low, &high, Int32(timeout.milliseconds))
            guard watermarks == RD_KAFKA_RESP_ERR_NO_ERROR else { continue }
            let committed = element.offset >= 0 ? element.offset : low
            result[partition] = max(0, high - committed)
        }
        return result
    }
}

/// Text out of a fixed-size C error buffer.
private func bufferText(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
