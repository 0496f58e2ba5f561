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
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            var sent = 0
            do {
                sent = try await dispatch()
            } catch {
                logger.warning("notification round failed; retrying", metadata: ["error": "\(String(reflecting: error))"])
            }
            if sent == 0 { try? await Task.sleep(for: .milliseconds(500)) }
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
    }

    /// One round: claim, send, record. Returns how many were sent.
    @discardableResult
    public func dispatch(limit: Int = 100) async throws -> Int {
        let at = now()
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
            let rows = try await connection.query("""
                SELECT n.id, n.complaint_id, n.event_id, c.number, n.recipient, n.channel, n.template, n.subject, n.body, n.attempts,
                       CASE n.channel WHEN 'sms' THEN c.customer_phone WHEN 'email' THEN c.customer_contact->>'email'
                                      WHEN 'wechat' THEN c.customer_contact->>'wechatOpenId' END
                FROM notifications n JOIN complaints c ON c.id = n.complaint_id
                WHERE n.status IN ('pending', 'sending', 'retrying') AND n.next_attempt_at <= \(at)
                ORDER BY n.next_attempt_at LIMIT \(limit)
                FOR UPDATE OF n SKIP LOCKED
                """, logger: logger)
            for try await r in rows.decode((UUID, UUID, UUID, String, String, String, String, String?, String, Int, String?).self) {
                due.append(Claimed(id: r.0, complaintID: r.1, eventID: r.2, number: r.3, recipient: r.4, channel: r.5, template: r.6, subject: r.7,
                                   body: r.8, attempt: r.9 + 1, address: r.10))
            }
            var send: [Claimed] = [], wait: [(UUID, Date)] = []
            for item in due {
                // Quiet hours hold customer texts until the morning.
                if item.channel == "sms", let release = settings.quietHours?.release(for: at) {
                    wait.append((item.id, release))
                    continue
                }
                let allowed = buckets.withLockedValue { buckets in
                    var bucket = buckets[item.channel] ?? TokenBucket(rate: settings.ratePerSecond, burst: max(1, settings.ratePerSecond))
                    defer { buckets[item.channel] = bucket }
                    return bucket.take(now: at)
                }
                if allowed { send.append(item) } else { wait.append((item.id, at.addingTimeInterval(1))) }
            }
            if !wait.isEmpty {
                try await connection.query("""
                    UPDATE notifications n SET next_attempt_at = t.at
                    FROM unnest(\(wait.map(\.0))::uuid[], \(wait.map(\.1))::timestamptz[]) AS t(id, at) WHERE n.id = t.id
                    """, logger: logger)
                Counter(label: "redress_notifications_deferred_total").increment(by: wait.count)
            }
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

    private func record(_ outcomes: [(Claimed, DeliveryOutcome)], at: Date) async throws {
        try await postgres.withTransaction(logger: logger) { connection in
            var outbox: [OutboxEntry] = []
            var alerts: [NoticeRow] = []
            let encoder = EventCoding.encoder()
            for (item, outcome) in outcomes {
                let recipient = NotificationRecipient(kind: item.recipient.hasPrefix("customer:") ? .customer : .staff,
                                                      id: String(item.recipient.split(separator: ":", maxSplits: 1).last ?? ""),
                                                      address: item.address.map { Self.mask($0, channel: item.channel) })
                var final: String?
                switch outcome {
                case .delivered(let receipt):
                    try await connection.query("""
                        UPDATE notifications SET status = 'delivered', delivered_at = \(at), gateway_message_id = \(receipt), last_error = NULL,
                            address_masked = \(recipient.address)
                        WHERE id = \(item.id)
                        """, logger: logger)
                    outbox.append(try OutboxEntry(EventEnvelope(complaintId: item.complaintID, orgUnit: "HQ", actor: NotifyService.actor, payload: NotificationDelivered(
                        notificationId: item.id, number: item.number, template: item.template, channel: item.channel, recipient: recipient,
                        sourceEventId: item.eventID, attempt: item.attempt, gatewayMessageId: receipt, deliveredAt: at)), encoder: encoder))
                    Counter(label: "redress_notifications_delivered_total", dimensions: [("channel", item.channel), ("template", item.template)]).increment()
                case .retry(let reason, let after) where item.attempt < settings.maxAttempts:
                    let wait = after ?? settings.backoff.delay(afterAttempt: item.attempt, unit: jitter())
                    try await connection.query("""
                        UPDATE notifications SET status = 'retrying', next_attempt_at = \(at.addingTimeInterval(wait)), last_error = \(reason)
                        WHERE id = \(item.id)
                        """, logger: logger)
                    Counter(label: "redress_notifications_retried_total", dimensions: [("channel", item.channel)]).increment()
                case .retry(let reason, _):
                    final = "gave up after \(item.attempt) attempts: \(reason)"
                case .failed(let reason):
                    final = reason
                }
                guard let final else { continue }
                try await connection.query("""
                    UPDATE notifications SET status = 'failed', last_error = \(final), address_masked = \(recipient.address) WHERE id = \(item.id)
                    """, logger: logger)
                outbox.append(try OutboxEntry(EventEnvelope(complaintId: item.complaintID, orgUnit: "HQ", actor: NotifyService.actor, payload: NotificationFailed(
                    notificationId: item.id, number: item.number, template: item.template, channel: item.channel, recipient: recipient,
                    sourceEventId: item.eventID, attempts: item.attempt, error: final, failedAt: at)), encoder: encoder))
                alerts.append(Composer(settings: settings).staffNotice(
                    "notification.failed.supervisors", complaint: item.complaintID, event: item.id, recipient: "supervisors:",
                    fields: ["number": item.number, "channel": item.channel, "reason": final]))
                Counter(label: "redress_notifications_failed_total", dimensions: [("channel", item.channel), ("template", item.template)]).increment()
            }
            if !alerts.isEmpty {
                // The handling unit's supervisors must reach the customer another way.
                var units: [UUID: String] = [:]
                for try await (id, unit) in try await connection.query("""
                    SELECT id, COALESCE(handling_unit, branch) FROM complaints WHERE id = ANY(\(alerts.map(\.complaintID))::uuid[])
                    """, logger: logger).decode((UUID, String).self) { units[id] = unit }
                for index in alerts.indices { alerts[index].recipient = "supervisors:" + (units[alerts[index].complaintID] ?? "HQ") }
                try await Composer.record(alerts, on: connection, logger: logger)
            }
            try await Outbox.append(outbox, on: connection, logger: logger)
        }
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
