import Foundation
import Hummingbird
import Logging
import Metrics
import PostgresNIO
import RedressContracts
import RedressDomain
import RedressKafka
import RedressServiceKit
import RedressStore
import ServiceLifecycle

/// `redress-notify`: records what each person must be told. In the foundation: the customer's
/// acknowledgement of receipt (告知受理) and the new owner's staff-inbox entry. Delivery through
/// gateways, retries and proof of delivery come with the notifications issue.
public enum NotifyService {
    public static let name = "redress-notify"
    public static let defaultPort = 8085
    public static let consumerGroup = "redress-notify"

    public static func main() async throws {
        try await ServiceHost.serve(service: name, defaultPort: defaultPort) { build(host: $0) }
    }

    public static func build(host: ServiceHost) -> (Router<RedressRequestContext>, [any Service]) {
        let acknowledgements = host.consumer(group: consumerGroup + ".acknowledgement", topics: [EventType.complaintRegistered.topic],
                                             handler: EventHandler<ComplaintRegistered>(acknowledge))
        let staff = host.consumer(group: consumerGroup + ".staff", topics: [EventType.caseAssigned.topic],
                                  handler: EventHandler<CaseAssigned>(tellOwner))
        let alerts = host.consumer(group: consumerGroup + ".unassignable", topics: [EventType.complaintUnassignable.topic],
                                   handler: EventHandler<ComplaintUnassignable>(alertSupervisors))
        let deadlines = host.consumer(group: consumerGroup + ".sla", topics: [EventType.slaWarning.topic, EventType.slaBreached.topic],
                                      handler: SLAAlertHandler())
        return (host.router(), [acknowledgements, staff, alerts, deadlines])
    }

    /// The channel a customer is answered on: the one they complained through where it can carry a message, else SMS.
    static func customerChannel(_ channel: RedressDomain.Channel) -> String {
        switch channel {
        case .wechat: "wechat"
        case .email: "email"
        default: "sms"
        }
    }

    @Sendable
    static func acknowledge(_ events: [EventEnvelope<ComplaintRegistered>], on connection: PostgresConnection, logger: Logger) async throws {
        try await record(
            complaintIDs: events.map(\.complaintId), eventIDs: events.map(\.id),
            recipients: events.map { "customer:" + $0.payload.customer.key },
            channels: events.map { customerChannel($0.payload.channel) },
            template: "complaint.registered.acknowledgement", on: connection, logger: logger)
    }

    @Sendable
    static func tellOwner(_ events: [EventEnvelope<CaseAssigned>], on connection: PostgresConnection, logger: Logger) async throws {
        let owned = events.filter { $0.payload.transition.assignee != nil }
        try await record(
            complaintIDs: owned.map(\.complaintId), eventIDs: owned.map(\.id),
            recipients: owned.map { "staff:" + $0.payload.transition.assignee! },
            channels: owned.map { _ in "staff_inbox" },
            template: "case.assigned.owner", on: connection, logger: logger)
    }

    /// Nobody could take a complaint: the unit's supervisors hear of it in their inbox (the supervisor queue).
    @Sendable
    static func alertSupervisors(_ events: [EventEnvelope<ComplaintUnassignable>], on connection: PostgresConnection, logger: Logger) async throws {
        try await record(
            complaintIDs: events.map(\.complaintId), eventIDs: events.map(\.id),
            recipients: events.map { "supervisors:" + $0.payload.handlingUnit },
            channels: events.map { _ in "staff_inbox" },
            template: "complaint.unassignable.supervisors", on: connection, logger: logger)
    }

    /// A deadline near or missed: the owner and the unit's supervisors hear of it in their inbox.
    static func alertDeadline(_ events: [(id: UUID, complaintID: UUID, template: String, clock: SLAClockEvent)], on connection: PostgresConnection, logger: Logger) async throws {
        for template in Set(events.map(\.template)) {
            let chosen = events.filter { $0.template == template }
            var complaintIDs: [UUID] = [], eventIDs: [UUID] = [], recipients: [String] = []
            for event in chosen {
                for recipient in [event.clock.assignee.map { "staff:" + $0 }, "supervisors:" + event.clock.handlingUnit].compactMap({ $0 }) {
                    complaintIDs.append(event.complaintID)
                    eventIDs.append(event.id)
                    recipients.append(recipient)
                }
            }
            try await record(complaintIDs: complaintIDs, eventIDs: eventIDs, recipients: recipients, channels: recipients.map { _ in "staff_inbox" },
                             template: template, on: connection, logger: logger)
        }
    }

    static func record(complaintIDs: [UUID], eventIDs: [UUID], recipients: [String], channels: [String], template: String,
                       on connection: PostgresConnection, logger: Logger) async throws {
        guard !eventIDs.isEmpty else { return }
        let ids = eventIDs.map { _ in UUID() }
        // At most one notification per (event, recipient, channel), however often the event arrives.
        try await connection.query("""
            INSERT INTO notifications (id, complaint_id, event_id, recipient, channel, template)
            SELECT id, complaint_id, event_id, recipient, channel, \(template)
            FROM unnest(\(ids)::uuid[], \(complaintIDs)::uuid[], \(eventIDs)::uuid[], \(recipients)::text[], \(channels)::text[])
                AS t(id, complaint_id, event_id, recipient, channel)
            ON CONFLICT (event_id, recipient, channel) DO NOTHING
            """, logger: logger)
        var perChannel: [String: Int] = [:]
        for channel in channels { perChannel[channel, default: 0] += 1 }
        for (channel, count) in perChannel {
            Counter(label: "redress_notifications_recorded_total", dimensions: [("template", template), ("channel", channel)]).increment(by: count)
        }
    }
}

/// `sla.warning` and `sla.breached` in one consumer: both alert the same people.
struct SLAAlertHandler: BatchHandler {
    let warnings = EventHandler<SLAWarning> { _, _, _ in }
    let breaches = EventHandler<SLABreached> { _, _, _ in }

    func decode(_ message: KafkaMessage) -> Result<(id: UUID, complaintID: UUID, template: String, clock: SLAClockEvent), Rejection> {
        if message.topic == EventType.slaWarning.topic {
            return warnings.decode(message).map { ($0.id, $0.complaintId, "sla.warning.staff", $0.payload.clock) }
        }
        return breaches.decode(message).map { ($0.id, $0.complaintId, "sla.breached.staff", $0.payload.clock) }
    }

    func eventID(of item: (id: UUID, complaintID: UUID, template: String, clock: SLAClockEvent)) -> UUID? { item.id }

    func handle(_ items: [(id: UUID, complaintID: UUID, template: String, clock: SLAClockEvent)], on connection: PostgresConnection, logger: Logger) async throws {
        try await NotifyService.alertDeadline(items, on: connection, logger: logger)
    }
}
