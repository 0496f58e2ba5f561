import CRdKafka
import Foundation
import Logging

/// The one place that calls librdkafka. Everything above it sees Swift values only.
/// A handle is owned by exactly one `RDKafkaClient`; blocking calls (queue polls with a timeout,
/// commit, close, metadata) are only made from the client's own thread, never the cooperative pool.
final class RDKafkaClient: @unchecked Sendable {
    enum Role {
        case producer
        case consumer
    }

    let handle: OpaquePointer
    let role: Role
    let logger: Logger
    /// The queue events are served from: the main queue for a producer, the consumer queue for a consumer.
    let queue: OpaquePointer

    init(role: Role, properties: [String: String], logger: Logger) throws(KafkaError) {
        let conf = rd_kafka_conf_new()!
        var errorText = [CChar](repeating: 0, count: 512)
        for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
            if rd_kafka_conf_set(conf, key, value, &errorText, errorText.count) != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                throw KafkaError(kind: .configuration, message: "Kafka property \(key)=\(value) refused: \(cString(errorText))")
            }
        }
        switch role {
        case .producer:
            rd_kafka_conf_set_events(conf, Int32(RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR | RD_KAFKA_EVENT_LOG))
        case .consumer:
            rd_kafka_conf_set_events(conf, Int32(RD_KAFKA_EVENT_REBALANCE | RD_KAFKA_EVENT_OFFSET_COMMIT | RD_KAFKA_EVENT_ERROR | RD_KAFKA_EVENT_LOG))
        }
        guard let rk = rd_kafka_new(role == .producer ? RD_KAFKA_PRODUCER : RD_KAFKA_CONSUMER, conf, &errorText, errorText.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(kind: .configuration, message: "cannot create Kafka client: \(cString(errorText))")
        }
        self.handle = rk
        self.role = role
        self.logger = logger
        if role == .consumer {
            rd_kafka_poll_set_consumer(rk)
            self.queue = rd_kafka_queue_get_consumer(rk)
        } else {
            self.queue = rd_kafka_queue_get_main(rk)
        }
        // Log lines arrive as events on the same queue instead of a C callback on librdkafka's threads.
        rd_kafka_set_log_queue(rk, queue)
    }

    deinit {
        rd_kafka_queue_destroy(queue)
        rd_kafka_destroy(handle)
    }

    // MARK: Events

    enum Event {
        case deliveries([(opaque: UInt, error: rd_kafka_resp_err_t, partition: Int32, offset: Int64)])
        case message(KafkaMessage)
        case assign([TopicPartition])
        case revoke([TopicPartition])
        case error(KafkaError)
        case none
    }

    /// Waits up to `timeoutMilliseconds` for the next event. Call only from the client's own thread.
    func poll(timeoutMilliseconds: Int32) -> Event {
        guard let event = rd_kafka_queue_poll(queue, timeoutMilliseconds) else { return .none }
        defer { rd_kafka_event_destroy(event) }
        switch rd_kafka_event_type(event) {
        case Int32(RD_KAFKA_EVENT_DR):
            var reports: [(UInt, rd_kafka_resp_err_t, Int32, Int64)] = []
            reports.reserveCapacity(rd_kafka_event_message_count(event))
            while let message = rd_kafka_event_message_next(event) {
                let m = message.pointee
                reports.append((UInt(bitPattern: m._private), m.err, m.partition, m.offset))
            }
            return .deliveries(reports)
        case Int32(RD_KAFKA_EVENT_FETCH):
            guard let message = rd_kafka_event_message_next(event) else { return .none }
            if message.pointee.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                return .error(KafkaError(code: message.pointee.err, context: "fetch"))
            }
            return .message(Self.copy(message))
        case Int32(RD_KAFKA_EVENT_REBALANCE):
            let partitions = Self.partitions(rd_kafka_event_topic_partition_list(event))
            let code = rd_kafka_event_error(event)
            let cooperative = String(cString: rd_kafka_rebalance_protocol(handle)) == "COOPERATIVE"
            if code == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
                if cooperative {
                    if let error = rd_kafka_incremental_assign(handle, rd_kafka_event_topic_partition_list(event)) { rd_kafka_error_destroy(error) }
                } else {
                    rd_kafka_assign(handle, rd_kafka_event_topic_partition_list(event))
                }
                return .assign(partitions)
            } else {
                // Commit what was processed before the partitions go to another member.
                _ = rd_kafka_commit(handle, nil, 0)
                if cooperative {
                    if let error = rd_kafka_incremental_unassign(handle, rd_kafka_event_topic_partition_list(event)) { rd_kafka_error_destroy(error) }
                } else {
                    rd_kafka_assign(handle, nil)
                }
                return .revoke(partitions)
            }
        case Int32(RD_KAFKA_EVENT_ERROR):
            let code = rd_kafka_event_error(event)
            let text = String(cString: rd_kafka_event_error_string(event))
            var error = KafkaError(code: code, context: text)
            error.isFatal = rd_kafka_event_error_is_fatal(event) != 0
            return .error(error)
        case Int32(RD_KAFKA_EVENT_LOG):
            var facility: UnsafePointer<CChar>?
            var text: UnsafePointer<CChar>?
            var level: Int32 = 0
            if rd_kafka_event_log(event, &facility, &text, &level) == 0, let text {
                let line = "\(facility.map { String(cString: $0) } ?? "rdkafka"): \(String(cString: text))"
                switch level {
                case ...3: logger.error("\(line)")
                case 4: logger.warning("\(line)")
                default: logger.debug("\(line)")
                }
            }
            return .none
        default:
            return .none
        }
    }

    private static func copy(_ message: UnsafePointer<rd_kafka_message_t>) -> KafkaMessage {
        let m = message.pointee
        let topic = String(cString: rd_kafka_topic_name(m.rkt))
        let key = m.key.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: m.key_len), as: UTF8.self) }
        let value = m.payload.map { [UInt8](UnsafeRawBufferPointer(start: $0, count: m.len)) } ?? []
        var headers: [KafkaHeader] = []
        var hdrs: OpaquePointer?
        if rd_kafka_message_headers(message, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs {
            var index = 0
            var name: UnsafePointer<CChar>?
            var valuePointer: UnsafeRawPointer?
            var size = 0
            while rd_kafka_header_get_all(hdrs, index, &name, &valuePointer, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
                let headerValue = valuePointer.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: size), as: UTF8.self) } ?? ""
                headers.append(KafkaHeader(name: name.map { String(cString: $0) } ?? "", value: headerValue))
                index += 1
            }
        }
        var type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let millis = rd_kafka_message_timestamp(message, &type)
        let created = type == RD_KAFKA_TIMESTAMP_CREATE_TIME && millis > 0 ? Date(timeIntervalSince1970: Double(millis) / 1000) : nil
        return KafkaMessage(topic: topic, partition: m.partition, offset: m.offset, key: key, value: value, headers: headers, timestamp: created)
    }

    private static func partitions(_ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) -> [TopicPartition] {
        guard let list else { return [] }
        var result: [TopicPartition] = []
        for i in 0..<Int(list.pointee.cnt) {
            let element = list.pointee.elems[i]
            result.append(TopicPartition(topic: String(cString: element.topic), partition: element.partition))
        }
        return result
    }

    // MARK: Producer

    /// Enqueues one message; the delivery report arrives later as an event carrying `opaque`.
    func produce(topic: String, key: String?, value: [UInt8], headers: [KafkaHeader], opaque: UInt) -> rd_kafka_resp_err_t {
        var cHeaders: OpaquePointer?
        if !headers.isEmpty {
            cHeaders = rd_kafka_headers_new(headers.count)
            for header in headers {
                rd_kafka_header_add(cHeaders, header.name, -1, header.value, -1)
            }
        }
        let opaquePointer = UnsafeMutableRawPointer(bitPattern: opaque)
        let code: rd_kafka_resp_err_t = value.withUnsafeBytes { valueBytes in
            if let key {
                var key = key
                return key.withUTF8 { keyBytes in
                    redress_produce(handle, topic, keyBytes.baseAddress, keyBytes.count, valueBytes.baseAddress, valueBytes.count, cHeaders, opaquePointer)
                }
            }
            return redress_produce(handle, topic, nil, 0, valueBytes.baseAddress, valueBytes.count, cHeaders, opaquePointer)
        }
        if code != RD_KAFKA_RESP_ERR_NO_ERROR, let cHeaders {
            rd_kafka_headers_destroy(cHeaders)
        }
        return code
    }

    /// Blocks until every queued message is delivered or the timeout passes. Own thread only.
    func flush(timeoutMilliseconds: Int32) -> rd_kafka_resp_err_t {
        rd_kafka_flush(handle, timeoutMilliseconds)
    }

    func outstandingMessages() -> Int32 {
        rd_kafka_outq_len(handle)
    }

    // MARK: Consumer

    func subscribe(_ topics: [String]) throws(KafkaError) {
        let list = rd_kafka_topic_partition_list_new(Int32(topics.count))
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for topic in topics {
            rd_kafka_topic_partition_list_add(list, topic, redress_partition_unassigned())
        }
        let code = rd_kafka_subscribe(handle, list)
        if code != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(code: code, context: "subscribe to \(topics.joined(separator: ", "))")
        }
    }

    /// Marks offsets as processed; librdkafka commits them on its next auto-commit. Non-blocking.
    /// Partitions no longer assigned are refused by librdkafka and skipped: their new owner re-reads
    /// from the last commit and the inbox absorbs the repeat.
    func storeOffsets(_ offsets: [TopicPartition: Int64]) {
        guard !offsets.isEmpty else { return }
        let list = rd_kafka_topic_partition_list_new(Int32(offsets.count))
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for (partition, next) in offsets {
            let element = rd_kafka_topic_partition_list_add(list, partition.topic, partition.partition)
            element?.pointee.offset = next
        }
        let code = rd_kafka_offsets_store(handle, list)
        if code != RD_KAFKA_RESP_ERR_NO_ERROR {
            logger.debug("some offsets not stored (partitions revoked): \(String(cString: rd_kafka_err2str(code)))")
        }
    }

    /// Stops (or restarts) fetching these partitions: the consumer buffer's flow control per lane.
    /// Pausing drops what librdkafka had fetched ahead for them; it fetches again from the next
    /// offset not yet handed to the application when they are resumed. Own thread only.
    func setPaused(_ partitions: [TopicPartition], _ paused: Bool) {
        guard !partitions.isEmpty else { return }
        let list = rd_kafka_topic_partition_list_new(Int32(partitions.count))
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for partition in partitions {
            rd_kafka_topic_partition_list_add(list, partition.topic, partition.partition)
        }
        let code = paused ? rd_kafka_pause_partitions(handle, list) : rd_kafka_resume_partitions(handle, list)
        if code != RD_KAFKA_RESP_ERR_NO_ERROR {
            logger.debug("\(paused ? "pause" : "resume") partitions: \(String(cString: rd_kafka_err2str(code)))")
        }
    }

    /// Synchronous commit of the stored offsets. Own thread only.
    func commitStored() -> rd_kafka_resp_err_t {
        rd_kafka_commit(handle, nil, 0)
    }

    /// Starts leaving the group; the caller keeps polling until `isClosed`. Own thread only.
    func beginClose() {
        if let error = rd_kafka_consumer_close_queue(handle, queue) {
            logger.warning("consumer close: \(String(cString: rd_kafka_error_string(error)))")
            rd_kafka_error_destroy(error)
        }
    }

    var isClosed: Bool { rd_kafka_consumer_closed(handle) != 0 }

    // MARK: Metadata

    /// Asks a broker for the cluster's metadata: the readiness check. Blocks up to the timeout; own thread only.
    func topicNames(timeoutMilliseconds: Int32) throws(KafkaError) -> [String] {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let code = rd_kafka_metadata(handle, 1, nil, &metadata, timeoutMilliseconds)
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            throw KafkaError(code: code, context: "metadata request")
        }
        defer { rd_kafka_metadata_destroy(metadata) }
        return (0..<Int(metadata.pointee.topic_cnt)).map { String(cString: metadata.pointee.topics[$0].topic) }
    }

    /// Every topic with its partition count. Blocks up to the timeout; own thread only.
    func topicPartitions(timeoutMilliseconds: Int32) throws(KafkaError) -> [String: Int] {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let code = rd_kafka_metadata(handle, 1, nil, &metadata, timeoutMilliseconds)
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            throw KafkaError(code: code, context: "metadata request")
        }
        defer { rd_kafka_metadata_destroy(metadata) }
        var result: [String: Int] = [:]
        for index in 0..<Int(metadata.pointee.topic_cnt) where metadata.pointee.topics[index].err == RD_KAFKA_RESP_ERR_NO_ERROR {
            result[String(cString: metadata.pointee.topics[index].topic)] = Int(metadata.pointee.topics[index].partition_cnt)
        }
        return result
    }
}

/// Text out of a fixed-size C error buffer.
private func cString(_ buffer: [CChar]) -> String {
    buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

public struct TopicPartition: Hashable, Sendable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32

    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    public var description: String { "\(topic)[\(partition)]" }
}

public struct KafkaHeader: Sendable, Hashable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// A consumed message, copied out of librdkafka's memory.
public struct KafkaMessage: Sendable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var key: String?
    public var value: [UInt8]
    public var headers: [KafkaHeader]
    /// When the producer created the message (CreateTime), if the broker kept it: the start of the
    /// hop a consumer measures (`redress_event_transit_seconds`).
    public var timestamp: Date?

    public init(topic: String, partition: Int32, offset: Int64, key: String?, value: [UInt8], headers: [KafkaHeader], timestamp: Date? = nil) {
        self.timestamp = timestamp
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = headers
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.name == name }?.value
    }

    public var topicPartition: TopicPartition { TopicPartition(topic: topic, partition: partition) }
}

/// A message to send. The key decides the partition.
public struct KafkaOutgoingMessage: Sendable {
    public var topic: String
    public var key: String?
    public var value: [UInt8]
    public var headers: [KafkaHeader]

    public init(topic: String, key: String?, value: [UInt8], headers: [KafkaHeader] = []) {
        self.topic = topic
        self.key = key
        self.value = value
        self.headers = headers
    }
}
