import CRdKafka
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle

/// What happened to one sent message.
public struct DeliveryReport: Sendable {
    public var partition: Int32
    public var offset: Int64
    public var error: KafkaError?

    public var isDelivered: Bool { error == nil }
}

/// An idempotent producer whose sends can be awaited for their delivery reports.
/// Run it as a `Service` (it polls delivery reports on a thread of its own and flushes on shutdown).
public final class KafkaProducer: Service, Sendable {
    private let client: RDKafkaClient
    private let logger: Logger
    private let state = NIOLockedValueBox(State())

    private struct State {
        var nextBatch: UInt = 1
        var pending: [UInt: PendingBatch] = [:]
        var running = true
        var pollerStarted = false
        var fatal: KafkaError?
    }

    /// Bits of the opaque value that carry a message's index inside its batch.
    private static let indexBits: UInt = 20

    public init(configuration: KafkaProducerConfiguration, logger: Logger) throws(KafkaError) {
        self.logger = logger
        self.client = try RDKafkaClient(role: .producer, properties: configuration.properties(), logger: logger)
        startPoller()
    }

    private func startPoller() {
        let start = state.withLockedValue { state -> Bool in
            if state.pollerStarted { return false }
            state.pollerStarted = true
            return true
        }
        guard start else { return }
        Blocking.startThread(name: "redress-kafka-producer") { [self] in
            while state.withLockedValue({ $0.running }) || client.outstandingMessages() > 0 {
                switch client.poll(timeoutMilliseconds: 100) {
                case .deliveries(let reports):
                    deliver(reports)
                case .error(let error):
                    if error.isFatal {
                        logger.critical("Kafka producer fatal error: \(error.message)")
                        state.withLockedValue { $0.fatal = error }
                    } else {
                        logger.warning("Kafka producer: \(error.message)")
                    }
                default:
                    break
                }
            }
        }
    }

    private func deliver(_ reports: [(opaque: UInt, error: rd_kafka_resp_err_t, partition: Int32, offset: Int64)]) {
        for report in reports {
            let batchID = report.opaque >> Self.indexBits
            let index = Int(report.opaque & ((1 << Self.indexBits) - 1))
            let batch = state.withLockedValue { $0.pending[batchID] }
            let error = report.error == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError(code: report.error, context: "delivery")
            if batch?.complete(index, DeliveryReport(partition: report.partition, offset: report.offset, error: error)) == true {
                state.withLockedValue { _ = $0.pending.removeValue(forKey: batchID) }
            }
        }
    }

    /// The fatal error librdkafka reported, if any: the producer cannot send again.
    public var fatalError: KafkaError? { state.withLockedValue { $0.fatal } }

    /// Sends the messages in order and returns when every one has its delivery report.
    /// With idempotence on, messages with the same key arrive in the order given.
    public func send(_ messages: [KafkaOutgoingMessage]) async throws(KafkaError) -> [DeliveryReport] {
        guard !messages.isEmpty else { return [] }
        precondition(messages.count < (1 << Self.indexBits), "send at most \((1 << Self.indexBits) - 1) messages at once")
        let batch = PendingBatch(count: messages.count)
        let registered: Result<UInt, KafkaError> = state.withLockedValue { state in
            if let fatal = state.fatal { return .failure(fatal) }
            guard state.running else { return .failure(KafkaError.closed) }
            let id = state.nextBatch
            state.nextBatch += 1
            state.pending[id] = batch
            return .success(id)
        }
        let batchID = try registered.get()
        for (index, message) in messages.enumerated() {
            while true {
                let code = client.produce(topic: message.topic, key: message.key, value: message.value,
                                          headers: message.headers, opaque: batchID << Self.indexBits | UInt(index))
                if code == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                    // librdkafka's queue is full: wait for deliveries to drain it rather than drop.
                    try? await Task.sleep(for: .milliseconds(2))
                    continue
                }
                if code != RD_KAFKA_RESP_ERR_NO_ERROR {
                    if batch.complete(index, DeliveryReport(partition: -1, offset: -1, error: KafkaError(code: code, context: "produce to \(message.topic)"))) {
                        state.withLockedValue { _ = $0.pending.removeValue(forKey: batchID) }
                    }
                }
                break
            }
        }
        return await batch.wait()
    }

    /// Sends one message and waits for its delivery; throws if it was not delivered.
    public func send(_ message: KafkaOutgoingMessage) async throws(KafkaError) {
        let report = try await send([message])[0]
        if let error = report.error { throw error }
    }

    /// Topic names the cluster knows: proves a broker answers (readiness).
    public func topicNames(timeout: Duration = .seconds(2)) async throws(KafkaError) -> [String] {
        let client = self.client
        let millis = Int32(timeout.milliseconds)
        return try await Blocking.run { () throws(KafkaError) -> [String] in try client.topicNames(timeoutMilliseconds: millis) }
    }

    /// Every topic the cluster has, with its partition count.
    public func topicPartitions(timeout: Duration = .seconds(2)) async throws(KafkaError) -> [String: Int] {
        let client = self.client
        let millis = Int32(timeout.milliseconds)
        return try await Blocking.run { () throws(KafkaError) -> [String: Int] in try client.topicPartitions(timeoutMilliseconds: millis) }
    }

    public func run() async throws {
        // Stay up until shutdown; then deliver what is queued before the process exits.
        try? await gracefulShutdown()
        await shutdown()
    }

    public func shutdown() async {
        let client = self.client
        let code = await Blocking.run { client.flush(timeoutMilliseconds: 10_000) }
        if code != RD_KAFKA_RESP_ERR_NO_ERROR {
            logger.error("Kafka producer: \(client.outstandingMessages()) messages undelivered at shutdown")
        }
        state.withLockedValue { $0.running = false }
    }
}

/// The delivery reports of one `send`, filled in by the poll thread.
final class PendingBatch: Sendable {
    private struct State {
        var reports: [DeliveryReport?]
        var remaining: Int
        var continuation: CheckedContinuation<[DeliveryReport], Never>?
    }

    private let state: NIOLockedValueBox<State>

    init(count: Int) {
        state = NIOLockedValueBox(State(reports: Array(repeating: nil, count: count), remaining: count))
    }

    /// Records one report; true when it was the last.
    func complete(_ index: Int, _ report: DeliveryReport) -> Bool {
        let (done, continuation, reports) = state.withLockedValue { state -> (Bool, CheckedContinuation<[DeliveryReport], Never>?, [DeliveryReport]) in
            guard state.reports[index] == nil else { return (false, nil, []) }
            state.reports[index] = report
            state.remaining -= 1
            guard state.remaining == 0 else { return (false, nil, []) }
            let continuation = state.continuation
            state.continuation = nil
            return (true, continuation, state.reports.map { $0! })
        }
        continuation?.resume(returning: reports)
        return done
    }

    func wait() async -> [DeliveryReport] {
        await withCheckedContinuation { continuation in
            let ready: [DeliveryReport]? = state.withLockedValue { state in
                if state.remaining == 0 { return state.reports.map { $0! } }
                state.continuation = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}
