import Foundation
import Logging
import PostgresNIO
import RedressContracts
import RedressDomain
import RedressKafka
import RedressServiceKit
import RedressStore
import Testing

/// Outbox, relay, inbox and dead letters against a real PostgreSQL and the mock cluster.
@Suite struct OutboxInboxTests {
    static let topic = EventType.complaintAssigned.topic
    static let logger = TestDatabase.logger

    static func event(_ complaint: UUID, _ sequence: Int) -> EventEnvelope<ComplaintAssigned> {
        EventEnvelope(complaintId: complaint, orgUnit: "GD-SZ", actor: .service("test"),
                      payload: ComplaintAssigned(number: "seq-\(sequence)", category: .other, priority: .normal, handlingUnit: "GD-SZ",
                                                 assignee: nil, ruleIds: [], rulesVersion: "test", reason: .initial))
    }

    static func openGate() -> StartupGate {
        let gate = StartupGate()
        gate.open()
        return gate
    }

    static func sequence(_ message: KafkaMessage) throws -> Int {
        let envelope = try EventCoding.decoder().decode(EventEnvelope<ComplaintAssigned>.self, from: Data(message.value))
        return Int(envelope.payload.number.dropFirst(4))!
    }

    /// A handler that records each event it handles in `effects` (no unique key: a second handling would show).
    static func recordingHandler(rejecting: String? = nil) -> EventHandler<ComplaintAssigned> {
        EventHandler<ComplaintAssigned> { events, connection, logger in
            if let rejecting, let index = events.firstIndex(where: { $0.payload.number == rejecting }) {
                throw Rejection(index: index, reason: "test rejects \(rejecting)")
            }
            try await connection.query("INSERT INTO effects (event_id) SELECT * FROM unnest(\(events.map(\.id))::uuid[])", logger: logger)
        }
    }

    /// The wake-up names whose rows were written, so a service's commit wakes its own relay, not all six.
    @Test(.timeLimit(.minutes(1)))
    func theWakeUpNamesTheWriter() async throws {
        try await TestDatabase.withFresh(seed: false) { client, _ in
            let complaint = UUID()
            let payloads = try await client.withConnection { listener in
                try await listener.listen(on: "redress_outbox") { notifications in
                    try await client.withTransaction(logger: Self.logger) { tx in
                        try await tx.query("SET LOCAL application_name = 'redress-routing'", logger: Self.logger)
                        try await Outbox.append([try OutboxEntry(Self.event(complaint, 1))], on: tx, logger: Self.logger)
                    }
                    try await client.withTransaction(logger: Self.logger) { tx in
                        try await Outbox.append([try OutboxEntry(Self.event(complaint, 2))], on: tx, logger: Self.logger)
                    }
                    var got: [String] = []
                    for try await notification in notifications {
                        got.append(notification.payload)
                        if got.count == 2 { break }
                    }
                    return got
                }
            }
            #expect(payloads == ["redress-routing", "any"])
            #expect(try await TestDatabase.count(client, "SELECT count(*) FROM outbox WHERE writer = 'redress-routing'") == 1, "the payload is the row's writer")
            #expect(OutboxRelay.wakes(["redress-routing", "any"], for: "redress-routing"))
            #expect(!OutboxRelay.wakes(["redress-cases", "any"], for: "redress-routing"), "another service's rows wake another relay")
            #expect(OutboxRelay.wakes(["redress-cases", "any"], for: "any"), "rows of no service wake every relay")
            #expect(OutboxRelay.wakes(["redress-cases", "any"], for: ""), "a wake-up from before migration 12")
            // The pending gauge counts the service's own rows: routing's relay sees its one, cases' none.
            #expect(try await Outbox.pendingCount(writers: ["redress-routing"], client, logger: Self.logger) == 1)
            #expect(try await Outbox.pendingCount(writers: ["redress-cases"], client, logger: Self.logger) == 0)
            #expect(try await Outbox.pendingCount(writers: ["redress-routing", "any"], client, logger: Self.logger) == 2)
        }
    }

    /// A lane is locked per writer: routing's relay holding a lane does not leave intake's rows in
    /// that lane waiting (its wake-up already spent, intake's relay slept its poll interval: a 1 s
    /// tail at idle); a second routing relay still waits for the first.
    @Test(.timeLimit(.minutes(1)))
    func aLaneHeldByOneServicesRelayDoesNotHoldAnothers() async throws {
        try await TestDatabase.withFresh(seed: false) { client, _ in
            let complaint = UUID()
            let routed = Self.event(complaint, 1), registered = Self.event(complaint, 2)
            for (writer, event) in [("redress-routing", routed), ("redress-intake", registered)] {
                try await client.withTransaction(logger: Self.logger) { tx in
                    try await tx.query("SET LOCAL application_name = '\(unescaped: writer)'", logger: Self.logger)
                    try await Outbox.append([try OutboxEntry(event)], on: tx, logger: Self.logger)
                }
            }
            #expect(try await TestDatabase.count(client, "SELECT count(DISTINCT lane) FROM outbox") == 1, "one key, one lane")
            try await client.withTransaction(logger: Self.logger) { routing in
                let held = try await Outbox.claim(lanes: OutboxEntry.laneCount, limit: 100, writers: ["redress-routing", Outbox.anyWriter],
                                                  on: routing, logger: Self.logger)
                #expect(held.map(\.eventID) == [routed.id])
                try await client.withTransaction(logger: Self.logger) { other in
                    let intake = try await Outbox.claim(lanes: OutboxEntry.laneCount, limit: 100, writers: ["redress-intake", Outbox.anyWriter],
                                                        on: other, logger: Self.logger)
                    #expect(intake.map(\.eventID) == [registered.id], "intake's row in the lane routing's relay holds")
                }
                try await client.withTransaction(logger: Self.logger) { second in
                    let again = try await Outbox.claim(lanes: OutboxEntry.laneCount, limit: 100, writers: ["redress-routing", Outbox.anyWriter],
                                                       on: second, logger: Self.logger)
                    #expect(again.isEmpty, "a second routing relay waits for the lane")
                }
            }
        }
    }

    static func createEffects(_ client: PostgresClient) async throws {
        try await client.query("CREATE TABLE effects (event_id uuid NOT NULL)", logger: logger)
    }

    @Test func relayPublishesInCommitOrderAndMarksRows() async throws {
        try await TestDatabase.withFresh(seed: false) { client, _ in
            let cluster = try TestKafka.cluster(topics: [Self.topic])
            let producer = try TestKafka.producer(cluster)
            let complaint = UUID()
            for batch in 0..<5 {
                try await client.withTransaction(logger: Self.logger) { tx in
                    try await Outbox.append((0..<10).map { try OutboxEntry(Self.event(complaint, batch * 10 + $0)) }, on: tx, logger: Self.logger)
                }
            }
            // Written by no service in particular ('any'); a relay for another service's rows alone leaves them.
            #expect(try await TestDatabase.count(client, "SELECT count(*) FROM outbox WHERE writer = 'any'") == 50)
            var other = OutboxRelay.Settings()
            other.writers = ["redress-surveys"]
            #expect(try await OutboxRelay(postgres: client, producer: producer, gate: Self.openGate(), settings: other, logger: Self.logger).publishOnce() == 0)
            try await Task.sleep(for: .milliseconds(50))
            #expect(try await Outbox.oldestPendingAge(writers: ["any"], client, logger: Self.logger) > 0, "the backlog has an age")
            let relay = OutboxRelay(postgres: client, producer: producer, gate: Self.openGate(), logger: Self.logger)
            var published = 0
            while true {
                let n = try await relay.publishOnce()
                if n == 0 { break }
                published += n
            }
            #expect(published == 50)
            #expect(try await TestDatabase.count(client, "SELECT count(*) FROM outbox") == 0)
            #expect(try await Outbox.oldestPendingAge(writers: ["any"], client, logger: Self.logger) == 0, "nothing waits")
            let consumer = try TestKafka.consumer(cluster, group: "g-relay", topics: [Self.topic])
            let received = try await TestKafka.drain(consumer, count: 50)
            #expect(try received.map(Self.sequence) == Array(0..<50))
            #expect(received.allSatisfy { $0.key == complaint.uuidString.lowercased() && $0.header(Headers.eventType) == "complaint.assigned" })
            await consumer.close()
            await producer.shutdown()
        }
    }

    @Test func twoRelaysKeepEachComplaintsOrder() async throws {
        try await TestDatabase.withFresh(seed: false) { client, _ in
            let cluster = try TestKafka.cluster(topics: [Self.topic], partitions: 8)
            let producer = try TestKafka.producer(cluster)
            let complaints = (0..<20).map { _ in UUID() }
            // Interleaved writes: each transaction adds the next five events of every complaint.
            for round in 0..<10 {
                try await client.withTransaction(logger: Self.logger) { tx in
                    var entries: [OutboxEntry] = []
                    for complaint in complaints {
                        for step in 0..<5 { entries.append(try OutboxEntry(Self.event(complaint, round * 5 + step))) }
                    }
                    try await Outbox.append(entries, on: tx, logger: Self.logger)
                }
            }
            var settings = OutboxRelay.Settings()
            settings.batchSize = 37
            settings.lanesPerCycle = 3
            let relays = (0..<2).map { _ in OutboxRelay(postgres: client, producer: producer, gate: Self.openGate(), settings: settings, logger: Self.logger) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for relay in relays {
                    group.addTask {
                        while try await TestDatabase.count(client, "SELECT count(*) FROM outbox") > 0 {
                            try await relay.publishOnce()
                        }
                    }
                }
                try await group.waitForAll()
            }
            let consumer = try TestKafka.consumer(cluster, group: "g-two-relays", topics: [Self.topic])
            let received = try await TestKafka.drain(consumer, count: 1_000)
            #expect(received.count == 1_000)
            for complaint in complaints {
                let sequence = try received.filter { $0.key == complaint.uuidString.lowercased() }.map(Self.sequence)
                #expect(sequence == Array(0..<50), "complaint \(complaint) out of order")
            }
            await consumer.close()
            await producer.shutdown()
        }
    }

    @Test func aCrashBetweenPublishAndMarkRepublishesAndTheInboxAbsorbsIt() async throws {
        try await TestDatabase.withFresh(seed: false) { client, _ in
            try await Self.createEffects(client)
            let cluster = try TestKafka.cluster(topics: [Self.topic])
            let producer = try TestKafka.producer(cluster)
            let complaint = UUID()
            try await client.withTransaction(logger: Self.logger) { tx in
                try await Outbox.append((0..<20).map { try OutboxEntry(Self.event(complaint, $0)) }, on: tx, logger: Self.logger)
            }
            // The "crash": rows published, then the transaction that would mark them rolls back.
            struct Crash: Error {}
            await #expect(throws: (any Error).self) {
                try await client.withTransaction(logger: Self.logger) { tx in
                    let rows = try await Outbox.claim(lanes: 64, limit: 100, on: tx, logger: Self.logger)
                    _ = try await producer.send(rows.map { KafkaOutgoingMessage(topic: $0.topic, key: $0.key, value: Array($0.payload.readableBytesView)) })
                    throw Crash()
                }
            }
            #expect(try await TestDatabase.count(client, "SELECT count(*) FROM outbox") == 20)
            // After restart the relay publishes them again: every event is on the topic twice.
            let relay = OutboxRelay(postgres: client, producer: producer, gate: Self.openGate(), logger: Self.logger)
            #expect(try await relay.publishOnce() == 20)

            let kafka = try TestKafka.consumer(cluster, group: "g-crash", topics: [Self.topic])
            let received = try await TestKafka.drain(kafka, count: 40)
            #expect(received.count == 40)
            let consumer = EventConsumer(
                configuration: TestKafka.consumerConfiguration(cluster, group: "g-crash", topics: [Self.topic]), handler: Self.recordingHandler(),
                postgres: client, producer: producer, gate: Self.openGate(), logger: Self.logger)
            try await consumer.process(received, consumer: kafka)
            await kafka.close()
            #expect(try await TestDatabase.count(client, "SELECT count(*) FROM effects") == 20)
            #expect(try await TestDatabase.count(client, "SELECT count(DISTINCT event_id) FROM effects") == 20)
            await producer.shutdown()
        }
    }

    /// The statements of every relay cycle and consumer batch are prepared once per connection and
    /// then only executed: on one connection, two rounds of append, claim, mark and inbox claim leave
    /// each of the five named in `pg_prepared_statements`, executed twice — and do what they did as
    /// unnamed statements (the rows come back oldest first, marked rows go, a second inbox claim of
    /// the same events returns none).
    @Test func theRelaysAndInboxsStatementsArePreparedOncePerConnection() async throws {
        try await TestDatabase.withFresh(seed: false) { client, _ in
            try await client.withConnection { connection in
                for round in 0..<2 {
                    let complaint = UUID()
                    let events = try (0..<3).map { try OutboxEntry(Self.event(complaint, 3 * round + $0)) }
                    try await connection.query("BEGIN", logger: Self.logger)
                    try await Outbox.append(events, on: connection, logger: Self.logger)
                    let rows = try await Outbox.claim(lanes: 64, limit: 100, on: connection, logger: Self.logger)
                    #expect(rows.map(\.eventID) == events.map(\.eventID))
                    try await Outbox.markPublished(rows.map(\.id), on: connection, logger: Self.logger)
                    let ids = Set(events.map(\.eventID))
                    #expect(try await Inbox.claim(group: "g-prepared", eventIDs: Array(ids), on: connection, logger: Self.logger) == ids)
                    #expect(try await Inbox.claim(group: "g-prepared", eventIDs: Array(ids), on: connection, logger: Self.logger).isEmpty)
                    try await connection.query("COMMIT", logger: Self.logger)
                }
                var executions: [String: Int64] = [:]
                for try await (name, count) in try await connection.query("""
                    SELECT name, generic_plans + custom_plans FROM pg_prepared_statements WHERE name LIKE 'redress_%'
                    """, logger: Self.logger).decode((String, Int64).self) {
                    executions[name] = count
                }
                #expect(executions == ["redress_outbox_append": 2, "redress_outbox_claim_lanes": 2, "redress_outbox_claimed_rows": 2,
                                       "redress_outbox_mark_published": 2, "redress_inbox_claim": 4])
            }
            #expect(try await TestDatabase.count(client, "SELECT count(*) FROM outbox") == 0)
        }
    }

    @Test func redeliveryHasNoSecondEffect() async throws {
        try await TestDatabase.withFresh(seed: false) { client, _ in
            try await Self.createEffects(client)
            let cluster = try TestKafka.cluster(topics: [Self.topic])
            let producer = try TestKafka.producer(cluster)
            let kafka = try TestKafka.consumer(cluster, group: "g-redeliver", topics: [Self.topic])
            let consumer = EventConsumer(
                configuration: TestKafka.consumerConfiguration(cluster, group: "g-redeliver", topics: [Self.topic]), handler: Self.recordingHandler(),
                postgres: client, producer: producer, gate: Self.openGate(), logger: Self.logger)
            let events = try (0..<10).map { i -> KafkaMessage in
                let envelope = Self.event(UUID(), i)
                return KafkaMessage(topic: Self.topic, partition: 0, offset: Int64(i), key: envelope.complaintId.uuidString,
                                    value: Array(try EventCoding.encoder().encode(envelope)), headers: [])
            }
            // The same event twice in one batch, then the whole batch again (a redelivery after a rebalance).
            try await consumer.process(events + [events[3]], consumer: kafka)
            try await consumer.process(events, consumer: kafka)
            #expect(try await TestDatabase.count(client, "SELECT count(*) FROM effects") == 10)
            await kafka.close()
            await producer.shutdown()
        }
    }

    @Test func invalidEventsAreDeadLetteredWithTheReasonAndTheRestIsHandled() async throws {
        try await TestDatabase.withFresh(seed: false) { client, _ in
            try await Self.createEffects(client)
            let dlq = Topics.deadLetter(Self.topic)
            let cluster = try TestKafka.cluster(topics: [Self.topic, dlq])
            let producer = try TestKafka.producer(cluster)
            let good = try (0..<5).map { i in
                KafkaOutgoingMessage(topic: Self.topic, key: "k\(i)", value: Array(try EventCoding.encoder().encode(Self.event(UUID(), i))))
            }
            let wrongType = EventEnvelope(complaintId: UUID(), orgUnit: "GD-SZ", actor: .service("test"),
                                          payload: SLAWarning(clock: SLAClockEvent(number: "n", clock: .decision, startedAt: Date(), dueAt: Date(), handlingUnit: "GD-SZ", assignee: nil)))
            let bad = [
                TestKafka.message(Self.topic, key: "bad-json", "{not json"),
                KafkaOutgoingMessage(topic: Self.topic, key: "bad-type", value: Array(try EventCoding.encoder().encode(wrongType)),
                                     headers: [KafkaHeader(name: Headers.eventType, value: "sla.warning")]),
                KafkaOutgoingMessage(topic: Self.topic, key: "bad-type-no-header", value: Array(try EventCoding.encoder().encode(wrongType))),
                KafkaOutgoingMessage(topic: Self.topic, key: "rejected", value: Array(try EventCoding.encoder().encode(Self.event(UUID(), 99)))),
            ]
            _ = try await producer.send(good + bad)
            let consumer = EventConsumer(
                configuration: TestKafka.consumerConfiguration(cluster, group: "g-dlq", topics: [Self.topic]),
                handler: Self.recordingHandler(rejecting: "seq-99"), postgres: client, producer: producer, gate: Self.openGate(), logger: Self.logger)
            let running = Task { try await consumer.run() }
            let deadLetters = try TestKafka.consumer(cluster, group: "g-dlq-reader", topics: [dlq])
            let received = try await TestKafka.drain(deadLetters, count: 4)
            try await eventually("the good events are handled") { try await TestDatabase.count(client, "SELECT count(*) FROM effects") == 5 }
            running.cancel()
            _ = await running.result
            #expect(Set(received.compactMap(\.key)) == ["bad-json", "bad-type", "bad-type-no-header", "rejected"])
            let reasons = Dictionary(uniqueKeysWithValues: received.map { ($0.key!, $0.header(Headers.deadLetterReason) ?? "") })
            #expect(reasons["bad-json"]?.contains("not a valid complaint.assigned event") == true)
            #expect(reasons["bad-type"]?.contains("event type 'sla.warning'") == true)
            #expect(reasons["bad-type-no-header"]?.contains("not a valid complaint.assigned event: payload.") == true)
            #expect(reasons["rejected"] == "test rejects seq-99")
            #expect(received.allSatisfy { $0.header(Headers.deadLetterSource) == Self.topic && $0.header(Headers.deadLetterConsumer) == "g-dlq" })
            await deadLetters.close()
            await producer.shutdown()
        }
    }

    @Test func oldInboxEntriesArePurgedAndRecentOnesKept() async throws {
        try await TestDatabase.withFresh(seed: false) { client, _ in
            try await client.query("""
                INSERT INTO inbox (consumer_group, event_id, handled_at)
                SELECT 'g', gen_random_uuid(), now() - make_interval(days => (i % 30)) FROM generate_series(1, 3000) AS i
                """, logger: Self.logger)
            let kept = try await TestDatabase.count(client, "SELECT count(*) FROM inbox WHERE handled_at >= now() - interval '14 days'")
            let purged = try await Inbox.purge(handledBefore: Date().addingTimeInterval(-14 * 86_400), slice: 500, client, logger: Self.logger)
            #expect(purged == 3000 - kept)
            #expect(try await TestDatabase.count(client, "SELECT count(*) FROM inbox") == kept)
        }
    }
}
