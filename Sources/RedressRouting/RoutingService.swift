import Foundation
import Hummingbird
import Logging
import Metrics
import PostgresNIO
import RedressContracts
import RedressDomain
import RedressServiceKit
import RedressStore
import ServiceLifecycle

/// `redress-routing`: gives every registered complaint a category, a priority, a handling unit
/// and a named owner, and says so in `complaint.assigned`.
public enum RoutingService {
    public static let name = "redress-routing"
    public static let defaultPort = 8084
    public static let consumerGroup = "redress-routing"
    static let actor = Actor.service(name)

    public static func main() async throws {
        let host = try ServiceHost.fromEnvironment(service: name, defaultPort: defaultPort)
        let (router, services) = build(host: host)
        try await host.run(router: router, services: services)
    }

    public static func build(host: ServiceHost) -> (Router<RedressRequestContext>, [any Service]) {
        // One lane: every batch locks the agents of the units it routes to, so concurrent batches would only wait on each other.
        let consumer = host.consumer(group: consumerGroup, topics: [EventType.complaintRegistered.topic], handler: EventHandler<ComplaintRegistered>(route), lanes: 1)
        return (host.router(), [consumer])
    }

    /// Routes a batch: one staff query per batch, owners picked in memory under row locks, so two
    /// routing instances never push one person past capacity.
    @Sendable
    static func route(_ events: [EventEnvelope<ComplaintRegistered>], on connection: PostgresConnection, logger: Logger) async throws {
        // The handling unit: by default the customer's branch (city unit).
        let units = events.map(\.payload.branch)
        let rows = try await connection.query("""
            SELECT id, org_unit, open_cases, capacity, extract(epoch FROM last_assigned_at)::float8
            FROM staff
            WHERE org_unit = ANY(\(Array(Set(units)))::text[]) AND role = 'agent' AND active AND available
            ORDER BY org_unit, id
            FOR UPDATE
            """, logger: logger)
        var candidates: [String: [Assignment.Candidate]] = [:]
        for try await (id, unit, open, capacity, last) in rows.decode((String, String, Int, Int, Double?).self) {
            candidates[unit, default: []].append(Assignment.Candidate(id: id, openCases: open, capacity: capacity, lastAssigned: last))
        }
        var clock = Date().timeIntervalSince1970
        var outbox: [OutboxEntry] = []
        var load: [String: Int] = [:]
        var assignedTally = CounterTally("redress_complaints_assigned_total", dimensions: ["category", "priority", "unit"])
        var unassignable = CounterTally("redress_routing_unassignable_total", dimensions: ["unit"])
        var waiting: [String] = []
        let encoder = EventCoding.encoder()
        for event in events {
            let decision = Triage.decide(event.payload)
            let unit = event.payload.branch
            var pool = candidates[unit] ?? []
            let assignee = Assignment.pick(1, from: &pool, clock: &clock)[0]
            candidates[unit] = pool
            if let assignee { load[assignee, default: 0] += 1 } else {
                unassignable.add(unit)
                waiting.append(event.payload.number)
            }
            let payload = ComplaintAssigned(
                number: event.payload.number, category: decision.category, priority: decision.priority, handlingUnit: unit,
                assignee: assignee, ruleIds: decision.ruleIds, rulesVersion: Triage.rulesVersion, reason: .initial)
            outbox.append(try OutboxEntry(EventEnvelope(complaintId: event.complaintId, orgUnit: unit, actor: actor, payload: payload), encoder: encoder))
            assignedTally.add(decision.category.rawValue, decision.priority.rawValue, unit)
        }
        assignedTally.record()
        unassignable.record()
        if !waiting.isEmpty {
            // One line per batch: in a surge, a line per complaint would drown the log.
            logger.warning("no eligible agent; complaints wait in their unit's supervisor queue", metadata: [
                "count": "\(waiting.count)", "first": "\(waiting.prefix(5).joined(separator: ","))",
            ])
        }
        if !load.isEmpty {
            let ids = Array(load.keys)
            let counts = ids.map { load[$0]! }
            try await connection.query("""
                UPDATE staff s SET open_cases = s.open_cases + t.n, last_assigned_at = now()
                FROM unnest(\(ids)::text[], \(counts)::int[]) AS t(id, n) WHERE s.id = t.id
                """, logger: logger)
        }
        try await Outbox.append(outbox, on: connection, logger: logger)
        // Registration to routing decision, per complaint: what operations watch during a surge.
        let now = Date()
        let timer = Metrics.Timer(label: "redress_routing_latency_seconds")
        for event in events {
            timer.recordNanoseconds(Int64(max(0, now.timeIntervalSince(event.payload.registeredAt)) * 1e9))
        }
    }
}
