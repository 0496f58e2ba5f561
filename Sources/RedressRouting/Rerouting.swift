import Foundation
import Logging
import Metrics
import PostgresNIO
import RedressContracts
import RedressDomain
import RedressKafka
import RedressServiceKit
import RedressStore

/// A case that must move: escalated (one level up), transferred (to the unit named) or reopened
/// (one level above the first complaint's unit). Routing names the new unit and owner.
public struct Reroute: Sendable, Equatable {
    public enum Move: Sendable, Equatable {
        case escalate(from: String)
        case transfer(to: String)
        case reopen(firstUnit: String)
    }

    public var eventID: UUID
    public var complaintID: UUID
    public var move: Move
    /// The owner it leaves (their open workload goes down).
    public var previousAssignee: String?

    var reason: ComplaintAssigned.Reason {
        switch move {
        case .escalate: .escalated
        case .transfer: .transferred
        case .reopen: .reopened
        }
    }
}

/// Reads `case.escalated`, `case.transferred` and `case.reopened` — one consumer for the three, since
/// each asks the same question: which unit now, and who there.
public struct RerouteHandler: BatchHandler {
    let engine: RoutingEngine
    // Decoding only: the three event types share one handler body.
    let escalations = EventHandler<CaseEscalated> { _, _, _ in }
    let transfers = EventHandler<CaseTransferred> { _, _, _ in }
    let reopenings = EventHandler<CaseReopened> { _, _, _ in }

    public init(engine: RoutingEngine) {
        self.engine = engine
    }

    public static let topics = [EventType.caseEscalated.topic, EventType.caseTransferred.topic, EventType.caseReopened.topic]

    public func decode(_ message: KafkaMessage) -> Result<Reroute, Rejection> {
        switch message.topic {
        case EventType.caseEscalated.topic:
            return escalations.decode(message).map {
                Reroute(eventID: $0.id, complaintID: $0.complaintId, move: .escalate(from: $0.payload.transition.handlingUnit), previousAssignee: $0.payload.transition.assignee)
            }
        case EventType.caseTransferred.topic:
            return transfers.decode(message).map {
                Reroute(eventID: $0.id, complaintID: $0.complaintId, move: .transfer(to: $0.payload.targetUnit), previousAssignee: $0.payload.transition.assignee)
            }
        case EventType.caseReopened.topic:
            return reopenings.decode(message).map {
                Reroute(eventID: $0.id, complaintID: $0.complaintId, move: .reopen(firstUnit: $0.payload.firstHandlingUnit), previousAssignee: nil)
            }
        default:
            return .failure(Rejection(index: 0, reason: "routing does not re-route events of topic \(message.topic)"))
        }
    }

    public func eventID(of item: Reroute) -> UUID? { item.eventID }

    public func handle(_ items: [Reroute], on connection: PostgresConnection, logger: Logger) async throws {
        try await engine.reroute(items, on: connection, logger: logger)
    }
}

extension RoutingEngine {
    /// Re-routes in one pass: the complaints' category, priority and conflicts come from the system
    /// of record; the new unit from the move; the owner from the same fair assignment as new complaints.
    public func reroute(_ items: [Reroute], on connection: PostgresConnection, logger: Logger) async throws {
        let triage = self.triage.withLockedValue { $0 }
        let org = try await org(on: connection)
        var known: [UUID: (number: String, category: Category, priority: Priority, conflicts: Set<String>)] = [:]
        let rows = try await connection.query("""
            SELECT id, number, COALESCE(category, 'other'), COALESCE(priority, 'normal'), policy_agent, claim_handler
            FROM complaints WHERE id = ANY(\(items.map(\.complaintID))::uuid[])
            """, logger: logger)
        for try await (id, number, category, priority, agent, handler) in rows.decode((UUID, String, String, String, String?, String?).self) {
            known[id] = (number, Category(rawValue: category) ?? .other, Priority(rawValue: priority) ?? .normal, Set([agent, handler].compactMap { $0 }))
        }
        var outcomes: [UnitResolution.Outcome] = []
        for (index, item) in items.enumerated() {
            guard known[item.complaintID] != nil else {
                throw Rejection(index: index, reason: "complaint \(item.complaintID) does not exist")
            }
            switch item.move {
            case .escalate(let from): outcomes.append(UnitResolution.escalated(from: from, org: org))
            case .reopen(let first): outcomes.append(UnitResolution.reopened(firstUnit: first, org: org))
            case .transfer(let target):
                guard let outcome = UnitResolution.transferred(to: target, org: org) else {
                    throw Rejection(index: index, reason: "transfer target '\(target)' is not a unit of the organisation")
                }
                outcomes.append(outcome)
            }
        }
        var candidates = try await AgentPool.lock(units: Set(outcomes.map(\.unit)), on: connection, logger: logger)
        var clock = Date().timeIntervalSince1970
        var load: [String: Int] = [:]
        var outbox: [OutboxEntry] = []
        let encoder = EventCoding.encoder()
        for (item, outcome) in zip(items, outcomes) {
            let complaint = known[item.complaintID]!
            // A second complaint (二次投诉) ranks at least high, like any repeat.
            let priority = item.reason == .reopened ? max(complaint.priority, .high) : complaint.priority
            let skill = triage.skill(for: complaint.category)
            var pool = candidates[outcome.unit] ?? []
            let excluded = complaint.conflicts.union([item.previousAssignee].compactMap { $0 })
            let assignee = Assignment.pick(1, from: &pool, clock: &clock, skill: skill, excluded: excluded)[0]
            candidates[outcome.unit] = pool
            if let assignee { load[assignee, default: 0] += 1 }
            if let previous = item.previousAssignee { load[previous, default: 0] -= 1 }
            if assignee == nil {
                outbox.append(try OutboxEntry(EventEnvelope(complaintId: item.complaintID, orgUnit: outcome.unit, actor: RoutingService.actor,
                    payload: ComplaintUnassignable(number: complaint.number, handlingUnit: outcome.unit, category: complaint.category, priority: priority,
                                                   reason: Self.whyUnassignable(pool: pool, skill: skill, excluded: excluded))), encoder: encoder))
            }
            let payload = ComplaintAssigned(number: complaint.number, category: complaint.category, priority: priority, handlingUnit: outcome.unit,
                                            assignee: assignee, ruleIds: [outcome.ruleID], rulesVersion: triage.rules.version, reason: item.reason)
            outbox.append(try OutboxEntry(EventEnvelope(complaintId: item.complaintID, orgUnit: outcome.unit, actor: RoutingService.actor, payload: payload), encoder: encoder))
            Counter(label: "redress_routing_reroutes_total", dimensions: [("reason", item.reason.rawValue), ("unit", outcome.unit)]).increment()
        }
        // The owners it leaves lose the case from their workload, never below zero.
        try await connection.query("""
            UPDATE staff s SET open_cases = greatest(0, s.open_cases + t.n),
                last_assigned_at = CASE WHEN t.n > 0 THEN now() ELSE s.last_assigned_at END
            FROM unnest(\(Array(load.keys))::text[], \(Array(load.values))::int[]) AS t(id, n) WHERE s.id = t.id AND t.n <> 0
            """, logger: logger)
        try await Outbox.append(outbox, on: connection, logger: logger)
    }
}
