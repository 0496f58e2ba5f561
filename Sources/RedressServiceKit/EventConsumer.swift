import Foundation
import Logging
import Metrics
import PostgresNIO
import RedressContracts
import RedressKafka
import RedressStore
import ServiceLifecycle

/// A handler is refusing one item of a batch for good (bad data, unknown unit…): it goes to the
/// dead-letter topic with this reason, and the rest of the batch is handled without it.
public struct Rejection: Error, Sendable, CustomStringConvertible {
    public var index: Int
    public var reason: String

    public init(index: Int, reason: String) {
        self.index = index
        self.reason = reason
    }

    public var description: String { reason }
}

/// Handles a batch of decoded items in one database transaction.
public protocol BatchHandler: Sendable {
    associatedtype Item: Sendable
    /// Turns a message into an item, or says why it cannot be handled (→ dead-letter topic).
    func decode(_ message: KafkaMessage) -> Result<Item, Rejection>
    /// The id the inbox de-duplicates on; nil when the handler is idempotent by its own keys.
    func eventID(of item: Item) -> UUID?
    /// Applies the items' effects, and appends any events they cause to the outbox, on `connection`
    /// inside the batch's transaction. Throw `Rejection` to refuse one item; any other error retries.
    func handle(_ items: [Item], on connection: PostgresConnection, logger: Logger) async throws
}

/// Handles events of one payload type: decoding, type check and inbox come for free.
public struct EventHandler<Payload: EventPayload>: BatchHandler {
    public typealias Item = EventEnvelope<Payload>
    let body: @Sendable ([EventEnvelope<Payload>], PostgresConnection, Logger) async throws -> Void
    /// One decoder for every message: it is Sendable, and making one per message showed in profiles.
    let decoder = EventCoding.decoder()

    public init(_ body: @escaping @Sendable ([EventEnvelope<Payload>], PostgresConnection, Logger) async throws -> Void) {
        self.body = body
    }

    public func decode(_ message: KafkaMessage) -> Result<EventEnvelope<Payload>, Rejection> {
        // The relay names the type in a header: a stray event is refused without parsing its body.
        if let type = message.header(Headers.eventType), type != Payload.eventType.rawValue {
            return .failure(Rejection(index: 0, reason: "event type '\(type)' on a topic of \(Payload.eventType.rawValue)"))
        }
        do {
            let envelope = try decoder.decode(EventEnvelope<Payload>.self, from: Data(message.value))
            guard envelope.type == Payload.eventType.rawValue else {
                return .failure(Rejection(index: 0, reason: "event type '\(envelope.type)' on a topic of \(Payload.eventType.rawValue)"))
            }
            guard envelope.version <= Payload.version else {
                return .failure(Rejection(index: 0, reason: "event version \(envelope.version) is newer than this consumer understands (\(Payload.version)); upgrade it and replay"))
            }
            return .success(envelope)
        } catch {
            return .failure(Rejection(index: 0, reason: "not a valid \(Payload.eventType.rawValue) event: \(EventCoding.describe(error))"))
        }
    }

    public func eventID(of item: EventEnvelope<Payload>) -> UUID? { item.id }

    public func handle(_ items: [EventEnvelope<Payload>], on connection: PostgresConnection, logger: Logger) async throws {
        try await body(items, connection, logger)
    }
}

/// A consumer-group member that handles each batch in one transaction together with its inbox
/// entries, then dead-letters what could not be handled, then stores the offsets.
/// Transient failures (database down) retry the same batch with backoff and store nothing.
public final class EventConsumer<Handler: BatchHandler>: Service, Sendable {
    public struct Settings: Sendable {
        public var maxBatch = 500
        public init() {}
    }

    let group: String
    let configuration: KafkaConsumerConfiguration
    let handler: Handler
    let postgres: PostgresClient
    let producer: KafkaProducer
    let gate: StartupGate
    let settings: Settings
    let logger: Logger

    public init(
        configuration: KafkaConsumerConfiguration, handler: Handler, postgres: PostgresClient, producer: KafkaProducer,
        gate: StartupGate, settings: Settings = Settings(), logger: Logger
    ) {
        self.group = configuration.groupID
        self.configuration = configuration
        self.handler = handler
        self.postgres = postgres
        self.producer = producer
        self.gate = gate
        self.settings = settings
        var logger = logger
        logger[metadataKey: "group"] = "\(configuration.groupID)"
        self.logger = logger
    }

    public func run() async throws {
        await gate.wait()
        let consumer = try KafkaConsumer(configuration: configuration, logger: logger)
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for lane in 0..<consumer.lanes {
                    group.addTask {
                        // Graceful shutdown ends the iteration between batches; the batch in hand is finished first.
                        for try await batch in consumer.batches(maxCount: self.settings.maxBatch, lane: lane).cancelOnGracefulShutdown() {
                            try await self.process(batch, consumer: consumer)
                        }
                    }
                }
                try await group.waitForAll()
            }
        } catch {
            logger.error("consumer stopped", metadata: ["error": "\(error)"])
            await consumer.close()
            throw error
        }
        await consumer.close()
    }

    /// Handles one batch to completion: effects committed, dead letters sent, offsets stored.
    public func process(_ messages: [KafkaMessage], consumer: KafkaConsumer) async throws {
        let start = ContinuousClock.now
        var items: [(message: KafkaMessage, item: Handler.Item)] = []
        var dead: [(KafkaMessage, String)] = []
        for message in messages {
            switch handler.decode(message) {
            case .success(let item): items.append((message, item))
            case .failure(let rejection): dead.append((message, rejection.reason))
            }
        }

        var backoff: Duration = .milliseconds(50)
        var handled = 0
        var duplicates = 0
        while true {
            do {
                (handled, duplicates) = try await handleInTransaction(items.map(\.item))
                break
            } catch let rejection as Rejection where items.indices.contains(rejection.index) {
                let refused = items.remove(at: rejection.index)
                dead.append((refused.message, rejection.reason))
            } catch {
                if Task.isShuttingDownGracefully {
                    // Nothing stored: the group re-reads this batch after restart.
                    logger.warning("batch abandoned at shutdown; it will be redelivered", metadata: ["error": "\(error)"])
                    return
                }
                logger.error("batch failed; retrying", metadata: ["error": "\(String(reflecting: error))", "retryIn": "\(backoff)"])
                try await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(5))
            }
        }

        if !dead.isEmpty {
            try await deadLetter(dead)
        }
        consumer.storeOffsets(for: messages)

        let topic = messages.first?.topic ?? ""
        Counter(label: "redress_events_consumed_total", dimensions: [("group", group), ("topic", topic), ("outcome", "handled")]).increment(by: handled)
        if duplicates > 0 {
            Counter(label: "redress_events_consumed_total", dimensions: [("group", group), ("topic", topic), ("outcome", "duplicate")]).increment(by: duplicates)
        }
        if !dead.isEmpty {
            Counter(label: "redress_events_consumed_total", dimensions: [("group", group), ("topic", topic), ("outcome", "dead_lettered")]).increment(by: dead.count)
        }
        Metrics.Timer(label: "redress_event_batch_duration_seconds", dimensions: [("group", group)]).recordNanoseconds((ContinuousClock.now - start).nanoseconds)
    }

    /// Returns (handled, duplicates).
    private func handleInTransaction(_ items: [Handler.Item]) async throws -> (Int, Int) {
        guard !items.isEmpty else { return (0, 0) }
        let handler = self.handler
        let group = self.group
        let logger = self.logger
        do {
            return try await transaction(items, handler: handler, group: group, logger: logger)
        } catch let error as PostgresTransactionError {
            // The handler's refusal of one item arrives wrapped in the rolled-back transaction's error.
            if let rejection = error.closureError as? Rejection { throw rejection }
            throw error
        }
    }

    private func transaction(_ items: [Handler.Item], handler: Handler, group: String, logger: Logger) async throws -> (Int, Int) {
        try await postgres.withTransaction(logger: logger) { connection in
            // Positions in `items` of the items still to handle, so a refusal names the caller's index.
            var positions = Array(items.indices)
            let ids = items.compactMap { handler.eventID(of: $0) }
            if !ids.isEmpty {
                let new = try await Inbox.claim(group: group, eventIDs: ids, on: connection, logger: logger)
                var seen = Set<UUID>()
                positions = items.indices.filter { index in
                    guard let id = handler.eventID(of: items[index]) else { return true }
                    // Keep the first copy of each new id; drop repeats (also within this batch).
                    return new.contains(id) && seen.insert(id).inserted
                }
            }
            let fresh = positions.map { items[$0] }
            let duplicates = items.count - fresh.count
            if !fresh.isEmpty {
                do {
                    try await handler.handle(fresh, on: connection, logger: logger)
                } catch var rejection as Rejection where positions.indices.contains(rejection.index) {
                    rejection.index = positions[rejection.index]
                    throw rejection
                }
            }
            return (fresh.count, duplicates)
        }
    }

    private func deadLetter(_ dead: [(KafkaMessage, String)]) async throws {
        let messages = dead.map { message, reason in
            KafkaOutgoingMessage(
                topic: Topics.deadLetter(message.topic), key: message.key, value: message.value,
                headers: message.headers.filter { !$0.name.hasPrefix("redress-dlq-") } + [
                    KafkaHeader(name: Headers.deadLetterReason, value: reason),
                    KafkaHeader(name: Headers.deadLetterSource, value: message.topic),
                    KafkaHeader(name: Headers.deadLetterConsumer, value: group),
                ])
        }
        for (message, reason) in dead {
            logger.warning("event dead-lettered", metadata: [
                "topic": "\(message.topic)", "partition": "\(message.partition)", "offset": "\(message.offset)", "reason": "\(reason)",
            ])
        }
        var backoff: Duration = .milliseconds(100)
        while true {
            let reports = try await producer.send(messages)
            if reports.allSatisfy(\.isDelivered) { return }
            logger.error("dead-letter publish failed; retrying", metadata: ["error": "\(reports.first { !$0.isDelivered }?.error?.message ?? "")"])
            try await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(5))
        }
    }
}
