import Foundation
import RedressKafka
import RedressServiceKit
import Testing

/// The Kafka client against librdkafka's mock cluster: the real protocol over TCP.
@Suite struct KafkaClientTests {
    @Test func sendAwaitsDeliveryAndKeysKeepTheirPartition() async throws {
        let cluster = try TestKafka.cluster(topics: ["t.orders"])
        let producer = try TestKafka.producer(cluster)
        let messages = (0..<200).map { i in
            KafkaOutgoingMessage(topic: "t.orders", key: "complaint-\(i % 10)", value: Array("\(i)".utf8),
                                 headers: [KafkaHeader(name: "redress-event-type", value: "test.event")])
        }
        let reports = try await producer.send(messages)
        #expect(reports.count == 200)
        #expect(reports.allSatisfy { $0.isDelivered })
        // Same key, same partition, offsets increasing in send order.
        for key in 0..<10 {
            let mine = reports.enumerated().filter { $0.offset % 10 == key }.map(\.element)
            #expect(Set(mine.map(\.partition)).count == 1)
            #expect(mine.map(\.offset) == mine.map(\.offset).sorted())
        }

        let consumer = try TestKafka.consumer(cluster, group: "g-roundtrip", topics: ["t.orders"])
        let received = try await TestKafka.drain(consumer, count: 200)
        #expect(received.count == 200)
        #expect(received.allSatisfy { $0.header("redress-event-type") == "test.event" })
        // Per key, consumed in the order sent.
        for key in 0..<10 {
            let values = received.filter { $0.key == "complaint-\(key)" }.map { Int(String(decoding: $0.value, as: UTF8.self))! }
            #expect(values == values.sorted())
            #expect(values.count == 20)
        }
        await consumer.close()
        await producer.shutdown()
    }

    @Test func aSendDuringABrokerOutageIsDeliveredOnceItIsBack() async throws {
        let cluster = try TestKafka.cluster(topics: ["t.outage"])
        let producer = try TestKafka.producer(cluster)
        #expect(try await producer.send([TestKafka.message("t.outage", key: "a", "before")])[0].isDelivered)
        try cluster.setBroker(1, up: false)
        async let reports = producer.send((0..<20).map { TestKafka.message("t.outage", key: "a", "during-\($0)") })
        try await Task.sleep(for: .seconds(1))
        try cluster.setBroker(1, up: true)
        #expect(try await reports.allSatisfy(\.isDelivered))
        let consumer = try TestKafka.consumer(cluster, group: "g-outage", topics: ["t.outage"])
        let received = try await TestKafka.drain(consumer, count: 21)
        // Idempotence: retried sends are neither lost nor doubled, and keep their order.
        #expect(received.map { String(decoding: $0.value, as: UTF8.self) } == ["before"] + (0..<20).map { "during-\($0)" })
        await consumer.close()
        await producer.shutdown()
    }

    @Test func aGroupOfTwoSharesThePartitions() async throws {
        let cluster = try TestKafka.cluster(topics: ["t.shared"], partitions: 6)
        let producer = try TestKafka.producer(cluster)
        let first = try TestKafka.consumer(cluster, group: "g-shared", topics: ["t.shared"])
        let second = try TestKafka.consumer(cluster, group: "g-shared", topics: ["t.shared"])
        try await eventually("both members hold partitions") {
            !first.assignment.isEmpty && !second.assignment.isEmpty && first.assignment.count + second.assignment.count == 6
        }
        #expect(first.assignment.isDisjoint(with: second.assignment))
        _ = try await producer.send((0..<300).map { TestKafka.message("t.shared", key: "k\($0)", "\($0)") })
        let both = try await TestKafka.drain([first, second], distinct: 300)
        let (fromFirst, fromSecond) = (both[0], both[1])
        #expect(!fromFirst.isEmpty)
        #expect(!fromSecond.isEmpty)
        #expect(Set((fromFirst + fromSecond).map { String(decoding: $0.value, as: UTF8.self) }).count == 300)
        await first.close()
        await second.close()
        await producer.shutdown()
    }

    @Test func committedOffsetsSurviveARestartAndUnstoredOnesAreRedelivered() async throws {
        let cluster = try TestKafka.cluster(topics: ["t.resume"], partitions: 1)
        let producer = try TestKafka.producer(cluster)
        _ = try await producer.send((0..<10).map { TestKafka.message("t.resume", key: "k", "\($0)") })

        let first = try TestKafka.consumer(cluster, group: "g-resume", topics: ["t.resume"])
        let all = try await TestKafka.drain(first, count: 10)
        #expect(all.count == 10)
        // Only the first six were processed: their offsets are stored, the rest are not.
        first.storeOffsets(for: Array(all.prefix(6)))
        try await first.commit()
        await first.close()

        let second = try TestKafka.consumer(cluster, group: "g-resume", topics: ["t.resume"])
        let rest = try await TestKafka.drain(second, count: 4)
        #expect(rest.map { String(decoding: $0.value, as: UTF8.self) } == ["6", "7", "8", "9"])
        let more = try await TestKafka.drain(second, count: 1, timeout: .seconds(2))
        #expect(more.isEmpty)
        await second.close()
        await producer.shutdown()
    }

    @Test func revocationHandsPartitionsOverAndDropsTheirBufferedMessages() async throws {
        let cluster = try TestKafka.cluster(topics: ["t.revoke"], partitions: 4)
        let producer = try TestKafka.producer(cluster)
        let first = try TestKafka.consumer(cluster, group: "g-revoke", topics: ["t.revoke"])
        try await eventually("the first member holds every partition") { first.assignment.count == 4 }
        _ = try await producer.send((0..<100).map { TestKafka.message("t.revoke", key: "k\($0)", "\($0)") })
        // Let the first member buffer messages without processing them, then let a second join.
        try await Task.sleep(for: .seconds(1))
        let second = try TestKafka.consumer(cluster, group: "g-revoke", topics: ["t.revoke"])
        try await eventually("partitions are shared after the rebalance") {
            first.assignment.count + second.assignment.count == 4 && !second.assignment.isEmpty && !first.assignment.isEmpty
        }
        let kept = first.assignment
        let both = try await TestKafka.drain([first, second], distinct: 100)
        let (fromFirst, fromSecond) = (both[0], both[1])
        // Nothing of a partition the first member lost reaches its handler.
        #expect(fromFirst.allSatisfy { kept.contains($0.topicPartition) })
        #expect(fromSecond.allSatisfy { second.assignment.contains($0.topicPartition) })
        // Nothing committed: between them they saw every message.
        #expect(Set((fromFirst + fromSecond).map { String(decoding: $0.value, as: UTF8.self) }).count == 100)
        await first.close()
        await second.close()
        await producer.shutdown()
    }

    /// A lane whose handler is stuck does not starve the others: with a small buffer and lane 0 never
    /// read, lane 1 still receives all its messages (lane 0's partition is paused at its share), and
    /// once lane 0 is read, every one of its messages arrives too, in order — none lost to the pause.
    @Test func aStuckLaneDoesNotStarveTheOthersAndLosesNothing() async throws {
        let cluster = try TestKafka.cluster(topics: ["t.lanes"], partitions: 2)
        let producer = try TestKafka.producer(cluster)
        var configuration = TestKafka.consumerConfiguration(cluster, group: "g-lanes", topics: ["t.lanes"])
        configuration.lanes = 2
        configuration.bufferCapacity = 8
        let consumer = try KafkaConsumer(configuration: configuration, logger: TestDatabase.logger)
        try await eventually("the member holds both partitions") { consumer.assignment.count == 2 }
        let messages = (0..<120).map { TestKafka.message("t.lanes", key: "k\($0)", "\($0)") }
        let reports = try await producer.send(messages)
        let lane1 = Set(zip(messages, reports).filter { $0.1.partition == 1 }.map { String(decoding: $0.0.value, as: UTF8.self) })
        let lane0 = zip(messages, reports).filter { $0.1.partition == 0 }.map { String(decoding: $0.0.value, as: UTF8.self) }
        #expect(lane1.count > 20 && lane0.count > 20, "keys spread over both partitions")

        var received: [String] = []
        let deadline = ContinuousClock.now + .seconds(30)
        while received.count < lane1.count, ContinuousClock.now < deadline {
            received += (try await consumer.nextBatch(maxCount: 1000, lane: 1, timeout: .milliseconds(500)) ?? []).map { String(decoding: $0.value, as: UTF8.self) }
        }
        #expect(Set(received) == lane1, "lane 1 received \(received.count) of \(lane1.count) while lane 0 was not read")

        var fromLane0: [String] = []
        let deadline0 = ContinuousClock.now + .seconds(30)
        while fromLane0.count < lane0.count, ContinuousClock.now < deadline0 {
            fromLane0 += (try await consumer.nextBatch(maxCount: 3, lane: 0, timeout: .milliseconds(500)) ?? []).map { String(decoding: $0.value, as: UTF8.self) }
        }
        #expect(fromLane0 == lane0, "lane 0, paused and resumed, still delivers every message once and in order")
        await consumer.close()
        await producer.shutdown()
    }

    /// The lag gauge as the supervisor measures it: zero while the group keeps up, rising while its
    /// consumer is stopped, back to zero once it has caught up again.
    @Test func consumerLagRisesWhileTheConsumerIsStoppedAndFallsAfter() async throws {
        let cluster = try TestKafka.cluster(topics: ["t.lag"], partitions: 2)
        let producer = try TestKafka.producer(cluster)
        let client = KafkaClientConfiguration(bootstrapServers: cluster.bootstrapServers, clientID: "lag-test")
        let groups = ["g-lag": ["t.lag"]]
        var admins: [String: KafkaAdmin] = [:]
        func total() async throws -> Int64 {
            try await ConsumerLagExporter.measure(client: client, groups: groups, admins: &admins, logger: TestDatabase.logger).reduce(0) { $0 + $1.lag }
        }
        func catchUp(_ count: Int) async throws {
            let consumer = try TestKafka.consumer(cluster, group: "g-lag", topics: ["t.lag"])
            let received = try await TestKafka.drain(consumer, count: count)
            #expect(received.count == count)
            consumer.storeOffsets(for: received)
            try await consumer.commit()
            await consumer.close()
        }
        _ = try await producer.send((0..<30).map { TestKafka.message("t.lag", key: "k\($0)", "\($0)") })
        try await catchUp(30)
        #expect(try await total() == 0, "caught up")
        // The consumer's service is down: what is published meanwhile is lag.
        _ = try await producer.send((30..<50).map { TestKafka.message("t.lag", key: "k\($0)", "\($0)") })
        #expect(try await total() == 20)
        _ = try await producer.send((50..<60).map { TestKafka.message("t.lag", key: "k\($0)", "\($0)") })
        #expect(try await total() == 30, "rising while it is stopped")
        try await catchUp(30)
        #expect(try await total() == 0, "back to zero once it has caught up")
        await producer.shutdown()
    }

    /// Every request to create a topic is answered. Each development broker start makes 52; made
    /// from a task, about one start in thirty hung for good on one of them (`MockCluster.createTopic`).
    /// Three thousand requests outlasted a minute that way; on threads of their own they take a
    /// quarter of a second alone, ~20 s beside the rest of the suite. A hang fails the test at its
    /// time limit.
    @Test(.timeLimit(.minutes(2))) func aClusterAnswersEveryRequestToCreateATopic() async throws {
        let cluster = try MockCluster(logger: TestDatabase.logger)
        for index in 0..<3_000 { try cluster.createTopic("t.create.\(index)", partitions: 1) }
        #expect(throws: KafkaError.self, "a topic that exists is refused, not created twice") {
            try cluster.createTopic("t.create.0", partitions: 1)
        }
    }
}
