import Foundation
import NIOConcurrencyHelpers
import Logging
import PostgresNIO
import RedressContracts
import RedressKafka
@testable import RedressServiceKit
import Testing

/// No event can hold its partition: a value PostgreSQL refuses is dead-lettered at once and the
/// others in its batch are handled; an error that keeps coming is retried a bounded number of
/// times; a dead letter too large for the broker is kept in PostgreSQL behind a reference; the
/// reason header is bounded. Against a real PostgreSQL and the mock cluster.
@Suite struct ConsumerFaultTests {
    static let topic = "redress.fault-probe"
    static let logger = TestDatabase.logger

    /// Items are the message values as numbers; handling inserts them into `probe`, whose CHECK
    /// refuses 13 (SQLSTATE 23514, a permanent failure). `flaky` numbers throw a plain error.
    struct ProbeHandler: BatchHandler {
        var flaky: Set<Int> = []
        var reject: Set<Int> = []
        /// How many times each item was handed to `handle` (in a batch or alone): attempts, not time.
        let attempts = NIOLockedValueBox<[Int: Int]>([:])

        func decode(_ message: KafkaMessage) -> Result<Int, Rejection> {
            guard let n = Int(String(decoding: message.value, as: UTF8.self)) else {
                return .failure(Rejection(index: 0, reason: String(repeating: "bad value; ", count: 500)))
            }
            return .success(n)
        }

        func eventID(of item: Int) -> UUID? { nil }

        struct Flaky: Error {}

        func handle(_ items: [Int], on connection: PostgresConnection, logger: Logger) async throws {
            attempts.withLockedValue { counts in for item in items { counts[item, default: 0] += 1 } }
            if let index = items.firstIndex(where: reject.contains) { throw Rejection(index: index, reason: "refused \(items[index])") }
            if items.contains(where: flaky.contains) { throw Flaky() }
            try await connection.query("INSERT INTO probe (n) SELECT * FROM unnest(\(items)::int[])", logger: logger)
        }
    }

    static func withProbe(_ body: @Sendable (PostgresClient, MockCluster, KafkaProducer) async throws -> Void) async throws {
        try await TestDatabase.withFresh(seed: false) { client, _ in
            try await client.query("CREATE TABLE probe (n integer NOT NULL CHECK (n <> 13))", logger: Self.logger)
            let cluster = try TestKafka.cluster(topics: [Self.topic, Topics.deadLetter(Self.topic)], partitions: 1)
            let producer = try TestKafka.producer(cluster)
            try await body(client, cluster, producer)
            await producer.shutdown()
        }
    }

    static func messages(_ values: [String]) -> [KafkaMessage] {
        values.enumerated().map { KafkaMessage(topic: topic, partition: 0, offset: Int64($0.offset), key: "k\($0.offset)", value: Array($0.element.utf8), headers: []) }
    }

    static func gate() -> StartupGate {
        let gate = StartupGate()
        gate.open()
        return gate
    }

    @Test func aValueTheDatabaseRefusesIsDeadLetteredAndTheRestOfItsBatchIsHandled() async throws {
        try await Self.withProbe { client, cluster, producer in
            let kafka = try TestKafka.consumer(cluster, group: "g-fault", topics: [Self.topic])
            let handler = ProbeHandler()
            let consumer = EventConsumer(configuration: TestKafka.consumerConfiguration(cluster, group: "g-fault", topics: [Self.topic]),
                                         handler: handler, postgres: client, producer: producer, gate: Self.gate(), logger: Self.logger)
            try await consumer.process(Self.messages((1...20).map(String.init)), consumer: kafka)
            // Once in the batch, once alone when the batch was narrowed down: a permanent failure is not retried.
            #expect(handler.attempts.withLockedValue { $0[13] } == 2)
            #expect(handler.attempts.withLockedValue { $0[12] } == 2, "the others were handled once more, alone")
            #expect(try await TestDatabase.count(client, "SELECT count(*) FROM probe") == 19, "every other event of the batch is handled")
            let dead = try TestKafka.consumer(cluster, group: "g-fault-dlq", topics: [Topics.deadLetter(Self.topic)])
            let letters = try await TestKafka.drain(dead, count: 1)
            #expect(letters.map { String(decoding: $0.value, as: UTF8.self) } == ["13"])
            let reason = letters.first?.header(Headers.deadLetterReason) ?? ""
            #expect(reason.contains("23514") && reason.hasPrefix("cannot be handled"), "\(reason)")
            await dead.close()
            await kafka.close()
        }
    }

    @Test func anErrorThatKeepsComingIsRetriedABoundedNumberOfTimes() async throws {
        try await Self.withProbe { client, cluster, producer in
            let kafka = try TestKafka.consumer(cluster, group: "g-flaky", topics: [Self.topic])
            var settings = EventConsumer<ProbeHandler>.Settings()
            settings.maxAttempts = 3
            let handler = ProbeHandler(flaky: [7])
            let consumer = EventConsumer(configuration: TestKafka.consumerConfiguration(cluster, group: "g-flaky", topics: [Self.topic]),
                                         handler: handler, postgres: client, producer: producer, gate: Self.gate(),
                                         settings: settings, logger: Self.logger)
            try await consumer.process(Self.messages(["5", "6", "7", "8"]), consumer: kafka)
            #expect(handler.attempts.withLockedValue { $0[7] } == 1 + 3, "once in the batch, then the three attempts alone")
            #expect(try await TestDatabase.count(client, "SELECT count(*) FROM probe") == 3)
            let dead = try TestKafka.consumer(cluster, group: "g-flaky-dlq", topics: [Topics.deadLetter(Self.topic)])
            let letters = try await TestKafka.drain(dead, count: 1)
            #expect(letters.map { String(decoding: $0.value, as: UTF8.self) } == ["7"])
            #expect(letters.first?.header(Headers.deadLetterReason)?.hasPrefix("failed 3 times") == true)
            await dead.close()
            await kafka.close()
        }
    }

    @Test func aDeadLetterTooLargeForTheBrokerIsKeptInPostgreSQLAndTheReasonIsBounded() async throws {
        try await Self.withProbe { client, cluster, producer in
            let kafka = try TestKafka.consumer(cluster, group: "g-large", topics: [Self.topic])
            var settings = EventConsumer<ProbeHandler>.Settings()
            settings.maxDeadLetterBytes = 4_000
            let consumer = EventConsumer(configuration: TestKafka.consumerConfiguration(cluster, group: "g-large", topics: [Self.topic]),
                                         handler: ProbeHandler(), postgres: client, producer: producer, gate: Self.gate(),
                                         settings: settings, logger: Self.logger)
            let large = String(repeating: "x", count: 10_000)
            try await consumer.process(Self.messages(["1", large, "2", "bad"]), consumer: kafka)
            #expect(try await TestDatabase.count(client, "SELECT count(*) FROM probe") == 2, "the partition moves on")
            let dead = try TestKafka.consumer(cluster, group: "g-large-dlq", topics: [Topics.deadLetter(Self.topic)])
            let letters = try await TestKafka.drain(dead, count: 2)
            #expect(letters.count == 2)
            for letter in letters {
                let reason = letter.header(Headers.deadLetterReason) ?? ""
                #expect(reason.count < 1_100 && reason.hasSuffix("more characters)"), "the reason header is bounded: \(reason.count)")
            }
            let stored = try #require(letters.first { $0.key == "k1" })
            let id = try #require(stored.header(Headers.deadLetterStored).flatMap(UUID.init(uuidString:)))
            #expect(stored.value.count < 200, "the topic gets a reference")
            let kept = try #require(try await DeadLetters.load(id, on: client, logger: Self.logger))
            #expect(kept.value == Array(large.utf8))
            #expect(letters.first { $0.key == "k3" }?.header(Headers.deadLetterStored) == nil, "a small one travels whole")
            await dead.close()
            await kafka.close()
        }
    }

    @Test func theGateLetsGoWhenTheTaskIsCancelled() async throws {
        let gate = StartupGate()
        let waiting = Task { await gate.wait() }
        try await Task.sleep(for: .milliseconds(50))
        waiting.cancel()
        _ = await waiting.value
        #expect(!gate.isOpen, "it returned without opening: the caller sees it is still shut")
    }

    @Test func failuresAreClassifiedByWhatRetryingCanFix() {
        typealias C = EventConsumer<ProbeHandler>
        #expect(C.classify(DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "x"))) == .permanent)
        #expect(C.classify(ProbeHandler.Flaky()) == .other)
    }
}
