import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import PostgresNIO
import RedressContracts
import RedressDomain
import RedressServiceKit
import RedressStore
import ServiceLifecycle

/// Delivers pending customer notifications. Each round claims due rows (marking them `sending`
/// and counting the attempt, committed before anything is sent), sends them through their
/// channel, and records the outcome with its proof. A process that dies mid-round leaves rows in
/// `sending`; they come due again after `claimTimeout` and are resent with the same id as the
/// idempotency key, so the gateway recognises the repeat. Texts due in the quiet hours wait for
/// the morning; each channel is held to its rate; retries back off exponentially with jitter,
/// and after the last the notification fails, with an event and an alert to the unit's supervisors.
public final class Dispatcher: Service, Sendable {
    let postgres: PostgresClient
    let settings: NotifyService.Settings
    let gate: StartupGate
    let logger: Logger
    let claimTimeout: Double
    let now: @Sendable () -> Date
    let jitter: @Sendable () -> Double
    private let buckets: NIOLockedValueBox<[String: TokenBucket]>
    /// Rows the last round found due but over a channel's rate.
    let throttledLastRound = NIOLockedValueBox(0)
    /// The channels of the rows the last round claimed (empty: it found none): only their buckets
    /// bound the next claim.
    private let channelsLastRound = NIOLockedValueBox(Set<String>())

    public init(postgres: PostgresClient, settings: NotifyService.Settings, gate: StartupGate, logger: Logger, claimTimeout: Double = 120,
                now: @escaping @Sendable () -> Date = { Date() }, jitter: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }) {
        self.postgres = postgres
        self.settings = settings
        self.gate = gate
        self.logger = logger
        self.claimTimeout = claimTimeout
        self.now = now
        self.jitter = jitter
        self.buckets = NIOLockedValueBox([:])
    }

    public func run() async throws {
        await gate.wait()
        guard gate.isOpen else { return }
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            var sent = 0
            do {
                sent = try await dispatch()
            } catch {
                logger.warning("notification round failed; retrying", metadata: ["error": "\(String(reflecting: error))"])
            }
            if sent == 0 {
                try? await Task.sleep(for: .milliseconds(500))
            } else if throttledLastRound.withLockedValue({ $0 }) > 0 {
                // Over a channel's rate: claiming again at once only finds the same rows still due
                // (in a surge, 100 claims a second cost PostgreSQL more than the sending): let the buckets refill.
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    struct Claimed: Sendable {
        var id: UUID
        var complaintID: UUID
        var eventID: UUID
        var number: String
        var recipient: String
        var channel: String
        var template: String
        var subject: String?
        var body: String
        var attempt: Int
        var address: String?
        /// The handling unit (the receiving branch before routing): whose supervisors hear of a failure.
        var unit: String
    }

    /// A channel's bucket before its first send: full, a second's rate.
    private func newBucket() -> TokenBucket {
        TokenBucket(rate: settings.ratePerSecond, burst: max(1, settings.ratePerSecond))
    }

    /// One round: claim, send, record. Returns how many were sent.
    @discardableResult
    public func dispatch(limit: Int = 500) async throws -> Int {
        let at = now()
        // No more than the buckets of the channels in use hold now (plus one, to learn whether more
        // wait). Claiming a whole second's rate every round while throttled re-read ~150 rows to send ~5
        // (at 50/s, a round each 100 ms): with a backlog, as much PostgreSQL work as the path to an owner.
        // An idle channel's full bucket does not count while the last round found only others' rows.
        let seen = channelsLastRound.withLockedValue { $0 }
        let inUse = seen.isEmpty ? Array(settings.channels.keys) : settings.channels.keys.filter(seen.contains)
        let room = buckets.withLockedValue { buckets in
            inUse.reduce(0) { sum, channel in
                sum + Int((buckets[channel] ?? newBucket()).available(now: at))
            }
        }
        let limit = min(limit, (settings.channels.isEmpty ? Int(settings.ratePerSecond) : room) + 1)
        let claimed = try await claim(at: at, limit: limit)
        guard !claimed.isEmpty else { return 0 }
        let outcomes = await withTaskGroup(of: (Claimed, DeliveryOutcome).self) { group in
            for item in claimed {
                group.addTask { [settings] in
                    guard let channel = settings.channels[item.channel] else {
                        return (item, .failed(reason: "no \(item.channel) channel is configured (see REDRESS_SMS_GATEWAY_URL, REDRESS_WECHAT_GATEWAY_URL, REDRESS_SMTP)"))
                    }
                    guard let address = item.address, !address.isEmpty else {
                        return (item, .failed(reason: "the customer has no \(item.channel) address"))
                    }
                    return (item, await channel.send(OutgoingMessage(id: item.id, channel: item.channel, address: address, template: item.template,
                                                                     subject: item.subject, body: item.body)))
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        try await record(outcomes, at: now())
        return claimed.count
    }

    private func claim(at: Date, limit: Int) async throws -> [Claimed] {
        try await postgres.withTransaction(logger: logger) { connection in
            var due: [Claimed] = []
            // The due rows are picked (and locked) off the index in due order first, then joined: joining
            // first made the planner sort every due row of a backlog to take the first few hundred.
            let rows = try await connection.query("""
                WITH due AS (
                    SELECT id FROM notifications
                    WHERE status IN ('pending', 'sending', 'retrying') AND next_attempt_at <= \(at) AND channel <> 'staff_inbox'
                    ORDER BY next_attempt_at LIMIT \(limit)
                    FOR UPDATE SKIP LOCKED
                )
                SELECT n.id, n.complaint_id, n.event_id, c.number, n.recipient, n.channel, n.template, n.subject, n.body, n.attempts,
                       CASE n.channel WHEN 'sms' THEN c.customer_phone WHEN 'email' THEN c.customer_contact->>'email'
                                      WHEN 'wechat' THEN c.customer_contact->>'wechatOpenId' END,
                       COALESCE(c.handling_unit, c.branch)
                FROM due JOIN notifications n ON n.id = due.id JOIN complaints c ON c.id = n.complaint_id
                ORDER BY n.next_attempt_at
                """, logger: logger)
            for try await r in rows.decode((UUID, UUID, UUID, String, String, String, String, String?, String, Int, String?, String).self) {
                due.append(Claimed(id: r.0, complaintID: r.1, eventID: r.2, number: r.3, recipient: r.4, channel: r.5, template: r.6, subject: r.7,
                                   body: r.8, attempt: r.9 + 1, address: r.10, unit: r.11))
            }
            var send: [Claimed] = [], wait: [(UUID, Date)] = [], throttled = 0
            for item in due {
                // Quiet hours hold customer texts until the morning; not a look-up code the customer
                // has just asked for.
                if item.channel == "sms", item.template != "status.code.customer", let release = settings.quietHours?.release(for: at) {
                    wait.append((item.id, release))
                    continue
                }
                let allowed = buckets.withLockedValue { buckets in
                    var bucket = buckets[item.channel] ?? newBucket()
                    defer { buckets[item.channel] = bucket }
                    return bucket.take(now: at)
                }
                // Over the channel's rate: left as it is, still due, for a later round (rewriting each
                // such row to defer it cost more than the sending under a surge).
                if allowed { send.append(item) } else { throttled += 1 }
            }
            if !wait.isEmpty {
                try await connection.query("""
                    UPDATE notifications n SET next_attempt_at = t.at
                    FROM unnest(\(wait.map(\.0))::uuid[], \(wait.map(\.1))::timestamptz[]) AS t(id, at) WHERE n.id = t.id
                    """, logger: logger)
                Counter(label: "redress_notifications_deferred_total").increment(by: wait.count)
            }
            if throttled > 0 { Counter(label: "redress_notifications_throttled_total").increment(by: throttled) }
            throttledLastRound.withLockedValue { $0 = throttled }
            channelsLastRound.withLockedValue { $0 = Set(due.map(\.channel)) }
            if !send.isEmpty {
                try await connection.query("""
                    UPDATE notifications SET status = 'sending', attempts = attempts + 1, claimed_at = \(at),
                        next_attempt_at = \(at.addingTimeInterval(claimTimeout))
                    WHERE id = ANY(\(send.map(\.id))::uuid[])
                    """, logger: logger)
            }
            return send
        }
    }

    /// Records a round's outcomes in one transaction, a statement per kind of outcome (a statement
    /// per notification cost more than the sending at surge volumes).
    private func record(_ outcomes: [(Claimed, DeliveryOutcome)], at: Date) async throws {
        var delivered: [(Claimed, String?, String?)] = [], retrying: [(Claimed, Date, String)] = [], failed: [(Claimed, String, String?)] = []
        var outbox: [OutboxEntry] = []
        let encoder = EventCoding.encoder()
        for (item, outcome) in outcomes {
            let recipient = NotificationRecipient(kind: item.recipient.hasPrefix("customer:") ? .customer : .staff,
                                                  id: String(item.recipient.split(separator: ":", maxSplits: 1).last ?? ""),
                                                  address: item.address.map { Self.mask($0, channel: item.channel) })
            var final: String?
            switch outcome {
            case .delivered(let receipt):
                delivered.append((item, receipt, recipient.address))
                outbox.append(try OutboxEntry(EventEnvelope(complaintId: item.complaintID, orgUnit: item.unit, actor: NotifyService.actor, payload: NotificationDelivered(
                    notificationId: item.id, number: item.number, template: item.template, channel: item.channel, recipient: recipient,
                    sourceEventId: item.eventID, attempt: item.attempt, gatewayMessageId: receipt, deliveredAt: at)), encoder: encoder))
            case .retry(let reason, let after) where item.attempt < settings.maxAttempts:
                retrying.append((item, at.addingTimeInterval(after ?? settings.backoff.delay(afterAttempt: item.attempt, unit: jitter())), reason))
            case .retry(let reason, _):
                final = "gave up after \(item.attempt) attempts: \(reason)"
            case .failed(let reason):
                final = reason
            }
            if let final {
                failed.append((item, final, recipient.address))
                outbox.append(try OutboxEntry(EventEnvelope(complaintId: item.complaintID, orgUnit: item.unit, actor: NotifyService.actor, payload: NotificationFailed(
                    notificationId: item.id, number: item.number, template: item.template, channel: item.channel, recipient: recipient,
                    sourceEventId: item.eventID, attempts: item.attempt, error: final, failedAt: at)), encoder: encoder))
            }
        }
        try await postgres.withTransaction(logger: logger) { connection in
            if !delivered.isEmpty {
                // A survey link is a credential: once sent, the stored copy of the text loses it.
                try await connection.query("""
                    UPDATE notifications n SET status = 'delivered', delivered_at = \(at), gateway_message_id = NULLIF(t.receipt, ''), last_error = NULL,
                        address_masked = NULLIF(t.address, ''),
                        body = CASE WHEN n.template = 'survey.requested.customer' THEN regexp_replace(n.body, 'https?://[^[:space:]]+', '[link sent]', 'g')
                                    WHEN n.template = 'status.code.customer' THEN regexp_replace(n.body, '[0-9]{6}', '[code sent]', 'g')
                                    ELSE n.body END
                    FROM unnest(\(delivered.map(\.0.id))::uuid[], \(delivered.map { $0.1 ?? "" })::text[], \(delivered.map { $0.2 ?? "" })::text[])
                        AS t(id, receipt, address)
                    WHERE n.id = t.id
                    """, logger: logger)
            }
            if !retrying.isEmpty {
                try await connection.query("""
                    UPDATE notifications n SET status = 'retrying', next_attempt_at = t.at, last_error = t.reason
                    FROM unnest(\(retrying.map(\.0.id))::uuid[], \(retrying.map(\.1))::timestamptz[], \(retrying.map(\.2))::text[]) AS t(id, at, reason)
                    WHERE n.id = t.id
                    """, logger: logger)
            }
            if !failed.isEmpty {
                try await connection.query("""
                    UPDATE notifications n SET status = 'failed', last_error = t.reason, address_masked = NULLIF(t.address, ''),
                        body = CASE WHEN n.template = 'survey.requested.customer' THEN regexp_replace(n.body, 'https?://[^[:space:]]+', '[link not sent]', 'g')
                                    ELSE n.body END
                    FROM unnest(\(failed.map(\.0.id))::uuid[], \(failed.map(\.1))::text[], \(failed.map { $0.2 ?? "" })::text[]) AS t(id, reason, address)
                    WHERE n.id = t.id
                    """, logger: logger)
                // The handling unit's supervisors must reach the customer another way.
                let composer = Composer(settings: settings)
                try await Composer.record(failed.map { item, reason, _ in
                    composer.staffNotice("notification.failed.supervisors", complaint: item.complaintID, event: item.id, recipient: "supervisors:" + item.unit,
                                         fields: ["number": item.number, "channel": item.channel, "reason": reason])
                }, on: connection, logger: logger)
            }
            try await Outbox.append(outbox, on: connection, logger: logger)
        }
        var tally = CounterTally("redress_notifications_outcomes_total", dimensions: ["channel", "outcome"])
        for item in delivered { tally.add(item.0.channel, "delivered") }
        for item in retrying { tally.add(item.0.channel, "retrying") }
        for item in failed { tally.add(item.0.channel, "failed") }
        tally.record()
    }

    static func mask(_ address: String, channel: String) -> String {
        switch channel {
        case "sms": return PersonalData.maskPhone(address)
        case "email":
            let parts = address.split(separator: "@", maxSplits: 1)
            guard parts.count == 2, let first = parts[0].first else { return "***" }
            return "\(first)***@\(parts[1])"
        default: return String(address.prefix(4)) + "***"
        }
    }
}
