import Foundation
import Logging
import Metrics
import PostgresNIO
import RedressContracts
import RedressKafka
import RedressStore
import ServiceLifecycle

/// Publishes outbox rows to Kafka. Woken by NOTIFY on `redress_outbox`, with a polling fallback.
/// Each cycle locks a set of lanes (`FOR UPDATE SKIP LOCKED`), publishes their pending rows in
/// commit order and awaits every delivery report, marks them published, and commits — so several
/// relays share the work and one complaint's events are never published by two relays at once.
/// A crash between publish and mark republishes those rows; consumers' inboxes absorb the repeat.
public final class OutboxRelay: Service, Sendable {
    public struct Settings: Sendable {
        /// Inbox entries are kept this long: longer than any topic's retention, so no redelivery outlives its entry.
        public var inboxRetention: Duration = .seconds(14 * 86_400)
        /// Lanes one cycle takes. All of them by default: one relay then drains everything pending in
        /// a single ordered pass while the others find nothing to do; fewer lets relays work side by side.
        public var lanesPerCycle = OutboxEntry.laneCount
        public var batchSize = 2_000
        public var pollInterval: Duration = .seconds(1)
        /// Whose rows this relay publishes: its service's (the outbox's `writer`) and those of no
        /// service in particular. Only the service's own principal may write its topics.
        public var writers: [String] = [Outbox.anyWriter]
        public init() {}
    }

    let postgres: PostgresClient
    let producer: KafkaProducer
    let gate: StartupGate
    let settings: Settings
    let logger: Logger
    let wakeup = Wakeup()
    /// Where this relay starts taking lanes, so relays with fewer lanes per cycle spread out.
    let firstLane = Int.random(in: 0..<OutboxEntry.laneCount)

    public init(postgres: PostgresClient, producer: KafkaProducer, gate: StartupGate, settings: Settings = Settings(), logger: Logger) {
        self.postgres = postgres
        self.producer = producer
        self.gate = gate
        self.settings = settings
        self.logger = logger
    }

    public func run() async throws {
        await gate.wait()
        guard gate.isOpen else { return }
        await withDiscardingTaskGroup { group in
            group.addTask { await self.listen() }
            group.addTask { await self.housekeeping() }
            await self.publishLoop()
            group.cancelAll()
        }
    }

    private func publishLoop() async {
        var backoff: Duration = .milliseconds(100)
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            do {
                let published = try await publishOnce()
                backoff = .milliseconds(100)
                if published == 0 {
                    await wakeup.wait(timeout: settings.pollInterval)
                }
            } catch {
                logger.error("outbox relay cycle failed; retrying", metadata: ["error": "\(error)", "retryIn": "\(backoff)"])
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(5))
            }
        }
    }

    /// One cycle; returns how many rows were published.
    @discardableResult
    public func publishOnce() async throws -> Int {
        let start = ContinuousClock.now
        let settings = self.settings
        let logger = self.logger
        let producer = self.producer
        let firstLane = self.firstLane
        func phase(_ name: String, since: ContinuousClock.Instant) {
            Metrics.Timer(label: "redress_outbox_phase_seconds", dimensions: [("phase", name)]).recordNanoseconds((ContinuousClock.now - since).nanoseconds)
        }
        var committing = ContinuousClock.now
        let published = try await postgres.withTransaction(logger: logger) { connection -> Int in
            let rows = try await Outbox.claim(lanes: settings.lanesPerCycle, from: firstLane, limit: settings.batchSize, writers: settings.writers,
                                              on: connection, logger: logger)
            guard !rows.isEmpty else { return 0 }
            phase("claim", since: start)
            let sending = ContinuousClock.now
            let messages = rows.map { row in
                KafkaOutgoingMessage(
                    topic: row.topic, key: row.key, value: Array(row.payload.readableBytesView),
                    headers: [KafkaHeader(name: Headers.eventType, value: row.eventType),
                              KafkaHeader(name: Headers.eventID, value: row.eventID.uuidString.lowercased())])
            }
            let reports = try await producer.send(messages)
            phase("send", since: sending)
            let marking = ContinuousClock.now
            // After a failed delivery, later rows of the same key stay pending too, so order holds on retry.
            var failedKeys = Set<String>()
            var done: [Int64] = []
            var perTopic: [String: Int] = [:]
            for (row, report) in zip(rows, reports) {
                if report.isDelivered, !failedKeys.contains(row.key) {
                    done.append(row.id)
                    perTopic[row.topic, default: 0] += 1
                } else {
                    failedKeys.insert(row.key)
                }
            }
            if let failure = reports.first(where: { !$0.isDelivered })?.error {
                logger.warning("outbox rows not delivered; they stay pending", metadata: ["count": "\(rows.count - done.count)", "error": "\(failure.message)"])
            }
            try await Outbox.markPublished(done, on: connection, logger: logger)
            // The first hop of each event: its writer's transaction began → delivered to the broker.
            // (created_at is the writing transaction's start, so this includes that transaction's own time.)
            let now = Date()
            let delay = Metrics.Timer(label: "redress_outbox_delay_seconds")
            for row in rows { delay.recordNanoseconds(Int64(max(0, now.timeIntervalSince(row.createdAt)) * 1e9)) }
            for (topic, count) in perTopic {
                Counter(label: "redress_outbox_published_total", dimensions: [("topic", topic)]).increment(by: count)
            }
            phase("mark", since: marking)
            committing = ContinuousClock.now
            return done.count
        }
        if published > 0 { phase("commit", since: committing) }
        if published > 0 {
            Metrics.Timer(label: "redress_outbox_publish_duration_seconds").recordNanoseconds((ContinuousClock.now - start).nanoseconds)
        }
        return published
    }

    /// Whether a NOTIFY on `redress_outbox` is for this relay: its payload names the writer of the
    /// rows inserted (migration 12). Rows of no particular writer ('any'), or a payload from before
    /// migration 12 (empty), wake every relay.
    public static func wakes(_ writers: [String], for payload: String) -> Bool {
        payload.isEmpty || payload == Outbox.anyWriter || writers.contains(payload)
    }

    /// LISTEN on a connection of its own; every notification for this relay's writers wakes the
    /// publish loop. Reconnects on failure.
    private func listen() async {
        let settings = self.settings
        while !Task.isCancelled {
            do {
                try await postgres.withConnection { connection in
                    try await connection.listen(on: "redress_outbox") { notifications in
                        self.wakeup.signal()
                        for try await notification in notifications where Self.wakes(settings.writers, for: notification.payload) {
                            self.wakeup.signal()
                        }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                logger.warning("outbox LISTEN connection lost; polling until it is back", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    private func housekeeping() async {
        let pending = Gauge(label: "redress_outbox_pending")
        // How long this service's oldest event has waited for the broker: the backlog's age, which a
        // count alone hides (a few rows stuck for an hour look like a calm queue).
        let oldest = Gauge(label: "redress_outbox_oldest_seconds")
        var lastPurge = ContinuousClock.now - .seconds(3600)
        while !Task.isCancelled {
            do {
                // This service's own rows: summed over the services, the whole backlog ('any' rows,
                // from tools, are in every relay's oldest-age gauge instead).
                pending.record(try await Outbox.pendingCount(writers: settings.writers.filter { $0 != Outbox.anyWriter }, postgres, logger: logger))
                oldest.record(try await Outbox.oldestPendingAge(writers: settings.writers, postgres, logger: logger))
                if ContinuousClock.now - lastPurge > .seconds(600) {
                    lastPurge = .now
                    let cutoff = Date().addingTimeInterval(-settings.inboxRetention.seconds)
                    let purged = try await Inbox.purge(handledBefore: cutoff, postgres, logger: logger)
                    if purged > 0 { logger.info("inbox entries purged", metadata: ["count": "\(purged)"]) }
                }
            } catch {
                if Task.isCancelled { return }
                logger.debug("outbox housekeeping failed", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: .seconds(5))
        }
    }
}
