import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
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

    /// False when the body is idempotent by its own keys (an `ON CONFLICT DO NOTHING` on the event's
    /// id, say): a redelivered event then writes nothing twice without an inbox row for every event.
    let inbox: Bool

    public init(inbox: Bool = true, _ body: @escaping @Sendable ([EventEnvelope<Payload>], PostgresConnection, Logger) async throws -> Void) {
        self.inbox = inbox
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

    public func eventID(of item: EventEnvelope<Payload>) -> UUID? { inbox ? item.id : nil }

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
        /// After a batch's first messages, wait this long for more before handling it (zero: at once).
        public var linger: Duration = .zero
        /// Attempts at one event whose handling fails (for a reason other than the database being
        /// unreachable) before it is dead-lettered: a bug or a bad row must not hold its partition.
        public var maxAttempts = 5
        /// A dead letter larger than this (value and headers) is kept in `dead_letters`, and the
        /// dead-letter topic gets a reference to it: the broker refuses records over its limit.
        public var maxDeadLetterBytes = 900_000
        /// The reason header is cut to this many characters, with a count of the rest.
        public var maxReasonCharacters = 1_000
        public init() {}
    }

    /// Why a batch failed, for what to do next.
    enum Failure: Equatable {
        /// PostgreSQL cannot be reached: no event is at fault; wait and retry, however long it takes.
        case unavailable
        /// Retrying cannot fix it (a value or constraint PostgreSQL refuses, data that does not decode): dead-letter at once.
        case permanent
        /// Anything else: retry a bounded number of times.
        case other
    }

    static func classify(_ error: any Error) -> Failure {
        var error = error
        if let transaction = error as? PostgresTransactionError {
            error = transaction.closureError ?? transaction.beginError ?? transaction.commitError ?? error
        }
        if let psql = error as? PSQLError {
            switch psql.code {
            case .server:
                let state = psql.serverInfo?[.sqlState] ?? ""
                // 22: data exception, 23: integrity constraint violation.
                if state.hasPrefix("22") || state.hasPrefix("23") { return .permanent }
                // 08: connection, 53: insufficient resources, 57P: the server shutting down.
                if state.hasPrefix("08") || state.hasPrefix("53") || state.hasPrefix("57P") { return .unavailable }
                return .other
            case .serverClosedConnection, .connectionError, .clientClosedConnection, .poolClosed, .uncleanShutdown, .failedToAddSSLHandler:
                return .unavailable
            default:
                return .other
            }
        }
        if error is DecodingError || error is EncodingError { return .permanent }
        if error is IOError || error is ChannelError || error is NIOConnectionError { return .unavailable }
        return .other
    }

    /// Words for a dead letter's reason: PostgreSQL's message and code, never its detail (which quotes values).
    static func describe(_ error: any Error) -> String {
        var error = error
        if let transaction = error as? PostgresTransactionError {
            error = transaction.closureError ?? transaction.beginError ?? transaction.commitError ?? error
        }
        if let psql = error as? PSQLError, let message = psql.serverInfo?[.message] {
            return "PostgreSQL refused it: \(message) (SQLSTATE \(psql.serverInfo?[.sqlState] ?? "?"))"
        }
        return String(describing: type(of: error)) + ": " + String(String(describing: error).prefix(300))
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
        guard gate.isOpen else { return }
        let consumer = try KafkaConsumer(configuration: configuration, logger: logger)
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for lane in 0..<consumer.lanes {
                    group.addTask {
                        // Graceful shutdown ends the iteration between batches; the batch in hand is finished first.
                        for try await batch in consumer.batches(maxCount: self.settings.maxBatch, lane: lane).cancelOnGracefulShutdown() {
                            var batch = batch
                            if self.settings.linger > .zero, batch.count < self.settings.maxBatch {
                                try? await Task.sleep(for: self.settings.linger)
                                if let more = try await consumer.nextBatch(maxCount: self.settings.maxBatch - batch.count, lane: lane, timeout: .zero) {
                                    batch += more
                                }
                            }
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

        var handled = 0
        var duplicates = 0
        if let outcome = try await handleWithRetries(items.map(\.item), isolateOnFailure: items.count > 1) {
            (handled, duplicates) = (outcome.handled, outcome.duplicates)
            dead += outcome.refused.map { (items[$0.index].message, $0.reason) }
        } else {
            // Shutting down: nothing stored; the group re-reads this batch after restart.
            return
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
        // One hop of a complaint's way, per event: produced by the relay → fetched → handled and committed here.
        let now = Date()
        let transit = Metrics.Timer(label: "redress_event_transit_seconds", dimensions: [("group", group)])
        for message in messages {
            if let created = message.timestamp { transit.recordNanoseconds(Int64(max(0, now.timeIntervalSince(created)) * 1e9)) }
        }
    }

    struct Outcome {
        var handled = 0
        var duplicates = 0
        /// Items refused (by the handler, or after failing for good), by position, with the reason.
        var refused: [(index: Int, reason: String)] = []
    }

    /// Handles the items in one transaction. A refusal drops the refused item and tries again with
    /// the rest. When the database is unreachable it waits and retries, however long it takes.
    /// Another failure of a batch of several is narrowed down by handling them one by one; a single
    /// item is retried up to `maxAttempts` times (a permanent failure not at all) and then refused.
    /// Nil when shutdown came first.
    func handleWithRetries(_ all: [Handler.Item], isolateOnFailure: Bool) async throws -> Outcome? {
        var outcome = Outcome()
        var positions = Array(all.indices)
        var backoff: Duration = .milliseconds(50)
        var attempts = 0
        while true {
            do {
                let (handled, duplicates) = try await handleInTransaction(positions.map { all[$0] })
                outcome.handled += handled
                outcome.duplicates += duplicates
                return outcome
            } catch let rejection as Rejection where positions.indices.contains(rejection.index) {
                outcome.refused.append((positions.remove(at: rejection.index), rejection.reason))
            } catch {
                if Task.isShuttingDownGracefully || Task.isCancelled {
                    logger.warning("batch abandoned at shutdown; it will be redelivered", metadata: ["error": "\(error)"])
                    return nil
                }
                let failure = Self.classify(error)
                if failure != .unavailable, positions.count > 1, isolateOnFailure {
                    // Which one? Each on its own, in order: the others are handled, the culprit is found.
                    logger.warning("batch failed; handling its events one by one", metadata: ["error": "\(Self.describe(error))"])
                    for position in positions {
                        guard let single = try await handleWithRetries([all[position]], isolateOnFailure: false) else { return nil }
                        outcome.handled += single.handled
                        outcome.duplicates += single.duplicates
                        outcome.refused += single.refused.map { (position, $0.reason) }
                    }
                    return outcome
                }
                attempts += failure == .unavailable ? 0 : 1
                if failure == .permanent || attempts >= settings.maxAttempts {
                    let why = failure == .permanent ? "cannot be handled" : "failed \(attempts) times"
                    outcome.refused += positions.map { ($0, "\(why): \(Self.describe(error))") }
                    Counter(label: "redress_events_failed_total", dimensions: [("group", group), ("kind", failure == .permanent ? "permanent" : "retries_exhausted")])
                        .increment(by: positions.count)
                    return outcome
                }
                logger.error("batch failed; retrying", metadata: ["error": "\(Self.describe(error))", "retryIn": "\(backoff)",
                                                               "attempt": "\(failure == .unavailable ? "database unreachable" : "\(attempts) of \(settings.maxAttempts)")"])
                try await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(5))
            }
        }
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

    /// The reason as a header: cut to `maxReasonCharacters`, saying how much was left out.
    func bounded(_ reason: String) -> String {
        guard reason.count > settings.maxReasonCharacters else { return reason }
        return String(reason.prefix(settings.maxReasonCharacters)) + "… (\(reason.count - settings.maxReasonCharacters) more characters)"
    }

    private func deadLetter(_ dead: [(KafkaMessage, String)]) async throws {
        var messages: [KafkaOutgoingMessage] = []
        for (message, reason) in dead {
            let headers = message.headers.filter { !$0.name.hasPrefix("redress-dlq-") } + [
                KafkaHeader(name: Headers.deadLetterReason, value: bounded(reason)),
                KafkaHeader(name: Headers.deadLetterSource, value: message.topic),
                KafkaHeader(name: Headers.deadLetterConsumer, value: group),
            ]
            let size = message.value.count + (message.key?.utf8.count ?? 0) + headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count }
            if size <= settings.maxDeadLetterBytes {
                messages.append(KafkaOutgoingMessage(topic: Topics.deadLetter(message.topic), key: message.key, value: message.value, headers: headers))
                continue
            }
            // Too large for the broker: kept in PostgreSQL, and the topic gets a reference (redressctl dlq replay follows it).
            let id = try await DeadLetters.store(message, reason: reason, consumer: group, on: postgres, logger: logger)
            messages.append(KafkaOutgoingMessage(
                topic: Topics.deadLetter(message.topic), key: message.key,
                value: Array(#"{"deadLetterId":"\#(id.uuidString.lowercased())","bytes":\#(message.value.count)}"#.utf8),
                headers: headers + [KafkaHeader(name: Headers.deadLetterStored, value: id.uuidString.lowercased())]))
        }
        for (message, reason) in dead {
            logger.warning("event dead-lettered", metadata: [
                "topic": "\(message.topic)", "partition": "\(message.partition)", "offset": "\(message.offset)", "reason": "\(bounded(reason))",
            ])
        }
        var backoff: Duration = .milliseconds(100)
        while true {
            let reports = try await producer.send(messages)
            if reports.allSatisfy(\.isDelivered) { return }
            if Task.isShuttingDownGracefully || Task.isCancelled { throw CancellationError() }
            logger.error("dead-letter publish failed; retrying", metadata: ["error": "\(reports.first { !$0.isDelivered }?.error?.message ?? "")"])
            try await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(5))
        }
    }
}

/// Dead letters too large for the broker, kept whole in PostgreSQL (`dead_letters`).
public enum DeadLetters {
    public static func store(_ message: KafkaMessage, reason: String, consumer: String, on postgres: PostgresClient, logger: Logger) async throws -> UUID {
        let id = UUID()
        let headers = String(decoding: try JSONEncoder().encode(Dictionary(message.headers.map { ($0.name, $0.value) }) { $1 }), as: UTF8.self)
        try await postgres.query("""
            INSERT INTO dead_letters (id, topic, partition, "offset", consumer, key, value, headers, reason)
            VALUES (\(id), \(message.topic), \(Int(message.partition)), \(Int64(message.offset)), \(consumer),
                    \(message.key), \(ByteBuffer(bytes: message.value)), \(headers)::jsonb, \(reason))
            """, logger: logger)
        return id
    }

    /// The stored message of a reference, for replay: its value and headers.
    public static func load(_ id: UUID, on postgres: PostgresClient, logger: Logger) async throws -> (value: [UInt8], headers: [String: String])? {
        let rows = try await postgres.query("SELECT value, headers::text FROM dead_letters WHERE id = \(id)", logger: logger)
        for try await (value, headers) in rows.decode((ByteBuffer, String).self) {
            return (Array(value.readableBytesView), (try? JSONDecoder().decode([String: String].self, from: Data(headers.utf8))) ?? [:])
        }
        return nil
    }
}
