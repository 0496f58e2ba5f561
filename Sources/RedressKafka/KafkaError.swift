import CRdKafka

/// The one error type of the Kafka client: a librdkafka code (or a client-side kind) with a message.
public struct KafkaError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// A librdkafka error code (`rd_kafka_resp_err_t`).
        case broker(Int32)
        /// A configuration property was refused.
        case configuration
        /// The client was shut down.
        case closed
    }

    public var kind: Kind
    public var message: String
    /// librdkafka says the operation may succeed if tried again.
    public var isRetriable: Bool
    /// The client instance is unusable and must be recreated (for example an idempotence failure).
    public var isFatal: Bool

    public init(kind: Kind, message: String, isRetriable: Bool = false, isFatal: Bool = false) {
        self.kind = kind
        self.message = message
        self.isRetriable = isRetriable
        self.isFatal = isFatal
    }

    init(code: rd_kafka_resp_err_t, context: String) {
        let text = String(cString: rd_kafka_err2str(code))
        let retriable: Bool
        switch code {
        case RD_KAFKA_RESP_ERR__QUEUE_FULL, RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__TRANSPORT,
             RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
             RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN,
             RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
            retriable = true
        default:
            retriable = false
        }
        self.init(kind: .broker(code.rawValue), message: "\(context): \(text)", isRetriable: retriable,
                  isFatal: code == RD_KAFKA_RESP_ERR__FATAL)
    }

    public static let closed = KafkaError(kind: .closed, message: "the Kafka client is shut down")

    public var description: String { "KafkaError(\(message))" }
}
