import CRdKafka
import Foundation
import Logging
import NIOConcurrencyHelpers

/// A consumer-group member. Messages arrive through `batches(maxCount:)`, an `AsyncSequence` of
/// arrays; the application calls `storeOffsets(for:)` only after its own side effects are committed,
/// and librdkafka commits stored offsets periodically, on revocation and on close.
///
/// A thread of its own polls librdkafka into a bounded buffer; when the buffer is full that thread
/// waits, so a slow handler slows fetching instead of growing memory. On revocation, buffered
/// messages of the revoked partitions are dropped: their new owner reads them again.
public final class KafkaConsumer: Sendable {
    private let client: RDKafkaClient
    private let configuration: KafkaConsumerConfiguration
    private let logger: Logger
    private let buffer: MessageBuffer

    public init(configuration: KafkaConsumerConfiguration, logger: Logger) throws(KafkaError) {
        self.configuration = configuration
        self.logger = logger
        self.buffer = MessageBuffer(capacity: configuration.bufferCapacity, lanes: configuration.lanes)
        self.client = try RDKafkaClient(role: .consumer, properties: configuration.properties(), logger: logger)
        try client.subscribe(configuration.topics)
        startPoller()
    }

    private func startPoller() {
        let client = self.client
        let buffer = self.buffer
        let logger = self.logger
        Blocking.startThread(name: "redress-kafka-consumer") {
            var closing = false
            var closeDeadline = ContinuousClock.now
            while true {
                if !closing, buffer.isClosing {
                    // Leave the group cleanly: commit stored offsets, then serve the queue until librdkafka is done.
                    _ = client.commitStored()
                    client.beginClose()
                    closing = true
                    closeDeadline = .now + .seconds(10)
                }
                if closing, client.isClosed { break }
                if closing, ContinuousClock.now > closeDeadline {
                    // The broker is gone: what was not committed is re-read by the group later.
                    logger.warning("consumer did not leave the group within 10 s; closing anyway")
                    break
                }
                if !closing {
                    // A lane whose handler is stuck holds its share of the buffer and no more: its
                    // partitions are paused, so the other lanes' partitions keep flowing.
                    let (pause, resume) = buffer.takeFlowChanges()
                    client.setPaused(pause, true)
                    client.setPaused(resume, false)
                }
                if !closing, !buffer.waitForSpace(timeout: 0.1) { continue }
                switch client.poll(timeoutMilliseconds: 100) {
                case .message(let message):
                    if !closing { buffer.append(message) }
                case .assign(let partitions):
                    logger.info("partitions assigned", metadata: ["partitions": "\(partitions.map(\.description).sorted())"])
                    buffer.assign(partitions)
                case .revoke(let partitions):
                    logger.info("partitions revoked", metadata: ["partitions": "\(partitions.map(\.description).sorted())"])
                    buffer.revoke(partitions)
                case .error(let error):
                    if error.isFatal {
                        logger.critical("Kafka consumer fatal error: \(error.message)")
                        buffer.fail(error)
                    } else {
                        logger.warning("Kafka consumer: \(error.message)")
                    }
                default:
                    break
                }
            }
            buffer.finish()
        }
    }

    /// The next messages available, up to `maxCount`, waiting if none are; nil once the consumer is closed.
    /// With a timeout, an empty array when nothing arrived in time (nothing is taken and dropped).
    /// `lane` selects the partitions `partition mod lanes == lane` (see `KafkaConsumerConfiguration.lanes`).
    public func nextBatch(maxCount: Int, lane: Int = 0, timeout: Duration? = nil) async throws(KafkaError) -> [KafkaMessage]? {
        try await buffer.next(maxCount: maxCount, lane: lane, timeout: timeout)
    }

    public func batches(maxCount: Int = 500, lane: Int = 0) -> Batches {
        Batches(consumer: self, maxCount: maxCount, lane: lane)
    }

    public var lanes: Int { buffer.laneCount }

    /// Records that these messages are fully processed. Call after the transaction that handled them commits.
    public func storeOffsets(for messages: [KafkaMessage]) {
        var next: [TopicPartition: Int64] = [:]
        for message in messages {
            let key = message.topicPartition
            next[key] = max(next[key] ?? 0, message.offset + 1)
        }
        client.storeOffsets(next)
    }

    /// Commits stored offsets now and waits for the broker's answer.
    public func commit() async throws(KafkaError) {
        let client = self.client
        let code = await Blocking.run { client.commitStored() }
        if code != RD_KAFKA_RESP_ERR_NO_ERROR, code != RD_KAFKA_RESP_ERR__NO_OFFSET {
            throw KafkaError(code: code, context: "commit offsets")
        }
    }

    /// The partitions this member holds now.
    public var assignment: Set<TopicPartition> { buffer.assignment }

    /// Leaves the group after committing stored offsets. Buffered, unprocessed messages are dropped;
    /// the group re-reads them from the committed offsets.
    public func close() async {
        buffer.beginClose()
        await buffer.waitFinished()
    }

    public struct Batches: AsyncSequence, Sendable {
        public typealias Element = [KafkaMessage]
        let consumer: KafkaConsumer
        let maxCount: Int
        let lane: Int

        public func makeAsyncIterator() -> Iterator { Iterator(consumer: consumer, maxCount: maxCount, lane: lane) }

        public struct Iterator: AsyncIteratorProtocol {
            let consumer: KafkaConsumer
            let maxCount: Int
            let lane: Int

            public mutating func next() async throws -> [KafkaMessage]? {
                try await consumer.nextBatch(maxCount: maxCount, lane: lane)
            }
        }
    }
}

/// The bounded hand-over between the poll thread and the async side. Messages are kept in
/// `lanes` queues by partition (`partition mod lanes`): each lane is read by one task, so batches of
/// different lanes are processed concurrently while each partition's messages stay in order.
/// Each lane holds at most its share of the capacity: beyond it, the partition that overfilled it is
/// paused (`takeFlowChanges`), and resumed once the lane is half drained — so one slow lane never
/// fills the buffer and starves the others.
final class MessageBuffer: Sendable {
    private struct Lane {
        var messages: [KafkaMessage] = []
        var head = 0
        var waiter: CheckedContinuation<Void, Never>?
        var count: Int { messages.count - head }

        mutating func takeWaiter() -> CheckedContinuation<Void, Never>? {
            defer { waiter = nil }
            return waiter
        }
    }

    private struct State {
        var lanes: [Lane]
        var count = 0
        var assignment: Set<TopicPartition> = []
        var closing = false
        var finished = false
        var failure: KafkaError?
        var finishWaiters: [CheckedContinuation<Void, Never>] = []
        /// Partitions paused because their lane is full, and the changes the poll thread has yet to make.
        var paused: Set<TopicPartition> = []
        var toPause: Set<TopicPartition> = []
        var toResume: Set<TopicPartition> = []

        mutating func takeAllWaiters() -> [CheckedContinuation<Void, Never>] {
            lanes.indices.compactMap { lanes[$0].takeWaiter() }
        }
    }

    private let state: NIOLockedValueBox<State>
    private let space = ConditionLock(value: 0)
    let capacity: Int
    let laneCount: Int
    /// What one lane may hold before its partitions are paused.
    let laneCapacity: Int

    init(capacity: Int, lanes: Int = 1) {
        self.capacity = capacity
        self.laneCount = max(1, lanes)
        self.laneCapacity = max(1, capacity / max(1, lanes))
        self.state = NIOLockedValueBox(State(lanes: Array(repeating: Lane(), count: max(1, lanes))))
    }

    var isClosing: Bool { state.withLockedValue { $0.closing } }
    var assignment: Set<TopicPartition> { state.withLockedValue { $0.assignment } }

    func lane(of message: KafkaMessage) -> Int { Int(message.partition) % laneCount }

    /// Poll thread: true when there is room for more messages, waiting up to `timeout` seconds for it.
    func waitForSpace(timeout: Double) -> Bool {
        if state.withLockedValue({ $0.count < capacity || $0.closing }) { return true }
        if space.lock(whenValue: 1, timeoutSeconds: timeout) {
            space.unlock(withValue: 0)
        }
        return state.withLockedValue { $0.count < capacity || $0.closing }
    }

    func append(_ message: KafkaMessage) {
        let lane = lane(of: message)
        let waiter = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            // A message of a partition revoked meanwhile is not ours to process any more.
            guard state.assignment.contains(message.topicPartition) else { return nil }
            state.lanes[lane].messages.append(message)
            state.count += 1
            if state.lanes[lane].count >= laneCapacity, state.paused.insert(message.topicPartition).inserted {
                state.toPause.insert(message.topicPartition)
                state.toResume.remove(message.topicPartition)
            }
            return state.lanes[lane].takeWaiter()
        }
        waiter?.resume()
    }

    func assign(_ partitions: [TopicPartition]) {
        state.withLockedValue { state in
            state.assignment.formUnion(partitions)
            // A partition comes back unpaused, whatever it was when it left.
            state.toResume.formUnion(partitions)
        }
    }

    /// Poll thread: the partitions to pause and to resume since the last call.
    func takeFlowChanges() -> (pause: [TopicPartition], resume: [TopicPartition]) {
        state.withLockedValue { state in
            defer { state.toPause = []; state.toResume = [] }
            return (Array(state.toPause), Array(state.toResume))
        }
    }

    /// The partitions paused now (for tests and diagnostics).
    var pausedPartitions: Set<TopicPartition> { state.withLockedValue { $0.paused } }

    func revoke(_ partitions: [TopicPartition]) {
        state.withLockedValue { state in
            let revoked = Set(partitions)
            state.assignment.subtract(revoked)
            state.paused.subtract(revoked)
            state.toPause.subtract(revoked)
            for index in state.lanes.indices {
                let kept = state.lanes[index].messages[state.lanes[index].head...].filter { !revoked.contains($0.topicPartition) }
                state.count -= state.lanes[index].count - kept.count
                state.lanes[index].messages = Array(kept)
                state.lanes[index].head = 0
            }
        }
        signalSpace()
    }

    func fail(_ error: KafkaError) {
        let waiters = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.failure = error
            return state.takeAllWaiters()
        }
        waiters.forEach { $0.resume() }
    }

    func beginClose() {
        let waiters = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.closing = true
            return state.takeAllWaiters()
        }
        waiters.forEach { $0.resume() }
        signalSpace()
    }

    func finish() {
        let (finishWaiters, waiters) = state.withLockedValue { state -> ([CheckedContinuation<Void, Never>], [CheckedContinuation<Void, Never>]) in
            state.finished = true
            state.closing = true
            defer { state.finishWaiters = [] }
            return (state.finishWaiters, state.takeAllWaiters())
        }
        finishWaiters.forEach { $0.resume() }
        waiters.forEach { $0.resume() }
    }

    func waitFinished() async {
        await withCheckedContinuation { continuation in
            let done = state.withLockedValue { state -> Bool in
                if state.finished { return true }
                state.finishWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    /// Up to `maxCount` messages of `lane`, waiting for some; nil when closing; [] after `timeout`.
    func next(maxCount: Int, lane: Int = 0, timeout: Duration? = nil) async throws(KafkaError) -> [KafkaMessage]? {
        precondition((0..<laneCount).contains(lane), "lane \(lane) of \(laneCount)")
        let deadline = timeout.map { ContinuousClock.now + $0 }
        while true {
            enum Step { case batch([KafkaMessage]), end, failed(KafkaError), wait }
            let step = state.withLockedValue { state -> Step in
                if let failure = state.failure { return .failed(failure) }
                if state.closing { return .end }
                guard state.lanes[lane].count > 0 else { return .wait }
                let head = state.lanes[lane].head
                let end = min(state.lanes[lane].messages.count, head + maxCount)
                let batch = Array(state.lanes[lane].messages[head..<end])
                state.lanes[lane].head = end
                state.count -= batch.count
                if state.lanes[lane].count <= laneCapacity / 2 {
                    let drained = state.paused.filter { Int($0.partition) % laneCount == lane }
                    state.paused.subtract(drained)
                    state.toPause.subtract(drained)
                    state.toResume.formUnion(drained)
                }
                if end > 4096 || end == state.lanes[lane].messages.count {
                    state.lanes[lane].messages.removeFirst(end)
                    state.lanes[lane].head = 0
                }
                return .batch(batch)
            }
            switch step {
            case .batch(let batch):
                signalSpace()
                return batch
            case .end:
                return nil
            case .failed(let error):
                throw error
            case .wait:
                if Task.isCancelled { return nil }
                if let deadline, ContinuousClock.now >= deadline { return [] }
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { await self.waitForMessages(lane: lane) }
                    if let deadline {
                        group.addTask { try? await Task.sleep(until: deadline) }
                    }
                    await group.next()
                    group.cancelAll()
                }
                if Task.isCancelled { return nil }
            }
        }
    }

    /// Returns when the lane has messages, on closing or failure, or when the task is cancelled.
    private func waitForMessages(lane: Int) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLockedValue { state -> Bool in
                    if state.lanes[lane].count > 0 || state.closing || state.failure != nil || Task.isCancelled { return true }
                    state.lanes[lane].waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            state.withLockedValue { $0.lanes[lane].takeWaiter() }?.resume()
        }
    }

    private func signalSpace() {
        space.lock()
        space.unlock(withValue: 1)
    }
}
