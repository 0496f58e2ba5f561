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

/// `redress-cases`: the case state machine and the staff API. In the foundation it applies
/// routing's decisions to the case and answers `GET /v1/complaints/{id}`.
public enum CasesService {
    public static let name = "redress-cases"
    public static let defaultPort = 8082
    public static let consumerGroup = "redress-cases"
    static let actor = Actor.service(name)

    public static func main() async throws {
        try await ServiceHost.serve(service: name, defaultPort: defaultPort) { build(host: $0) }
    }

    public static func build(host: ServiceHost) -> (Router<RedressRequestContext>, [any Service]) {
        let router = host.router()
        CaseController(postgres: host.postgres)
            .add(to: router.group("v1/complaints").add(middleware: RequireRoles([.agent, .supervisor, .committee, .auditor, .admin], authority: host.tokens)))
        let consumer = host.consumer(group: consumerGroup, topics: [EventType.complaintAssigned.topic], handler: EventHandler<ComplaintAssigned>(applyAssignment))
        return (router, [consumer])
    }

    /// Applies routing's decision: the `assign` transition, its audit row and `case.assigned`, per case.
    @Sendable
    static func applyAssignment(_ events: [EventEnvelope<ComplaintAssigned>], on connection: PostgresConnection, logger: Logger) async throws {
        let ids = events.map(\.complaintId)
        var current: [UUID: (status: CaseStatus, version: Int)] = [:]
        let rows = try await connection.query(
            "SELECT id, status, version FROM complaints WHERE id = ANY(\(ids)::uuid[]) ORDER BY id FOR UPDATE", logger: logger)
        for try await (id, status, version) in rows.decode((UUID, String, Int).self) {
            current[id] = (CaseStatus(rawValue: status) ?? .registered, version)
        }
        var updIDs: [UUID] = [], categories: [String] = [], priorities: [String] = [], units: [String] = [], assignees: [String] = []
        var position: [UUID: Int] = [:]
        var audit: [(event: EventEnvelope<ComplaintAssigned>, from: CaseStatus, version: Int, eventID: UUID)] = []
        for (index, event) in events.enumerated() {
            guard let state = current[event.complaintId] else {
                throw Rejection(index: index, reason: "complaint \(event.complaintId) does not exist")
            }
            let next: CaseStatus
            do {
                next = try CaseStateMachine.next(from: state.status, on: .assign)
            } catch {
                // A decision that arrives after the case moved on (closed, say) is recorded nowhere: say why, and go on.
                throw Rejection(index: index, reason: error.description)
            }
            let version = state.version + 1
            current[event.complaintId] = (next, version)
            if let at = position[event.complaintId] {
                // Assigned twice in one batch: the later decision wins.
                categories[at] = event.payload.category.rawValue
                priorities[at] = event.payload.priority.rawValue
                units[at] = event.payload.handlingUnit
                assignees[at] = event.payload.assignee ?? ""
            } else {
                position[event.complaintId] = updIDs.count
                updIDs.append(event.complaintId)
                categories.append(event.payload.category.rawValue)
                priorities.append(event.payload.priority.rawValue)
                units.append(event.payload.handlingUnit)
                assignees.append(event.payload.assignee ?? "")
            }
            audit.append((event, state.status, version, UUID()))
        }
        let versions = updIDs.map { current[$0]!.version }
        try await connection.query("""
            UPDATE complaints c SET status = 'assigned', category = t.category, priority = t.priority,
                handling_unit = t.unit, assignee = NULLIF(t.assignee, ''), version = t.version, updated_at = now()
            FROM unnest(\(updIDs)::uuid[], \(categories)::text[], \(priorities)::text[], \(units)::text[], \(assignees)::text[], \(versions)::int[])
                AS t(id, category, priority, unit, assignee, version)
            WHERE c.id = t.id
            """, logger: logger)
        var outbox: [OutboxEntry] = []
        let encoder = EventCoding.encoder()
        var eventIDs: [UUID] = [], complaintIDs: [UUID] = [], fromStatuses: [String] = [], reasons: [String] = [], payloads: [String] = []
        for entry in audit {
            let p = entry.event.payload
            let transition = CaseTransition(number: p.number, fromStatus: entry.from, toStatus: .assigned, handlingUnit: p.handlingUnit,
                                            assignee: p.assignee, reason: p.reason.rawValue, caseVersion: entry.version)
            outbox.append(try OutboxEntry(EventEnvelope(id: entry.eventID, complaintId: entry.event.complaintId, orgUnit: p.handlingUnit,
                                                        actor: actor, payload: CaseAssigned(transition: transition)), encoder: encoder))
            eventIDs.append(entry.eventID)
            complaintIDs.append(entry.event.complaintId)
            fromStatuses.append(entry.from.rawValue)
            reasons.append("routing: \(p.reason.rawValue); rules \(p.ruleIds.joined(separator: ",")) of \(p.rulesVersion)")
            payloads.append(#"{"category":"\#(p.category.rawValue)","priority":"\#(p.priority.rawValue)","handlingUnit":"\#(p.handlingUnit)","assignee":\#(p.assignee.map { "\"\($0)\"" } ?? "null")}"#)
        }
        try await connection.query("""
            INSERT INTO case_events (complaint_id, event_id, actor, actor_role, action, from_status, to_status, reason, payload)
            SELECT complaint_id, event_id, 'redress-routing', 'service', 'assign', from_status, 'assigned', reason, payload::jsonb
            FROM unnest(\(complaintIDs)::uuid[], \(eventIDs)::uuid[], \(fromStatuses)::text[], \(reasons)::text[], \(payloads)::text[])
                AS t(complaint_id, event_id, from_status, reason, payload)
            """, logger: logger)
        try await Outbox.append(outbox, on: connection, logger: logger)
        Counter(label: "redress_case_transitions_total", dimensions: [("action", CaseAction.assign.rawValue)]).increment(by: events.count)
    }
}

/// A case as staff see it: personal data masked (full data is a separate, audited read).
struct CaseView: ResponseEncodable {
    struct Customer: Codable {
        var name: String
        var phone: String
    }

    var id: UUID
    var number: String
    var status: String
    var channel: String
    var branch: String
    var handlingUnit: String?
    var assignee: String?
    var category: String?
    var priority: String?
    var receivedAt: String
    var registeredAt: String
    var promisedReplyBy: String
    var customer: Customer
    var version: Int
    /// 重复投诉: the open complaint this one repeats.
    var repeatOf: ComplaintReference?
}

struct CaseController {
    let postgres: PostgresClient

    func add(to group: RouterGroup<RedressRequestContext>) {
        group.get(":id") { _, context in
            let caller = try context.caller()
            let key = try context.parameters.require("id")
            let byID = UUID(uuidString: key)
            let number = byID == nil ? key : ""
            // Visibility is part of the query: the case's unit must lie in the caller's subtree.
            let rows = try await postgres.query("""
                SELECT c.id, c.number, c.status, c.channel, c.branch, c.handling_unit, c.assignee, c.category, c.priority,
                       c.received_at, c.registered_at, c.promised_reply_by, c.customer_name, c.customer_phone, c.version,
                       r.id, r.number
                FROM complaints c
                LEFT JOIN complaints r ON r.id = c.repeat_of
                JOIN org_units u ON u.code = COALESCE(c.handling_unit, c.branch)
                JOIN org_units me ON me.code = \(caller.unit)
                WHERE (c.id = \(byID ?? UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))) OR c.number = \(number))
                  AND (u.path = me.path OR u.path LIKE me.path || '/%')
                """, logger: context.logger)
            for try await row in rows.decode((UUID, String, String, String, String, String?, String?, String?, String?, Date, Date, Date, String, String, Int, UUID?, String?).self) {
                return CaseView(
                    id: row.0, number: row.1, status: row.2, channel: row.3, branch: row.4, handlingUnit: row.5, assignee: row.6,
                    category: row.7, priority: row.8, receivedAt: Timestamp.format(row.9), registeredAt: Timestamp.format(row.10),
                    promisedReplyBy: Timestamp.format(row.11),
                    customer: .init(name: PersonalData.maskName(row.12), phone: PersonalData.maskPhone(row.13)), version: row.14,
                    repeatOf: row.15.flatMap { id in row.16.map { ComplaintReference(id: id, number: $0) } })
            }
            // The same answer whether it does not exist or is outside the caller's part of the tree.
            throw Problem(status: .notFound, title: "No such complaint", detail: "no complaint '\(key)' is visible to you; check the id or number")
        }
    }
}
