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

/// `redress-cases`: the case state machine and the staff API. It applies routing's decisions,
/// escalates breached cases, reopens cases whose customers were dissatisfied, and serves staff
/// their queues, cases and actions (`schemas/openapi/cases.yaml`).
public enum CasesService {
    public static let name = "redress-cases"
    public static let defaultPort = 8082
    public static let consumerGroup = "redress-cases"
    static let actor = Actor.service(name)

    public static func main() async throws {
        let file = ProcessInfo.processInfo.environment["REDRESS_CLOSURE_TAXONOMY"] ?? "deploy/cases/closure-taxonomy.json"
        try await ServiceHost.serve(service: name, defaultPort: defaultPort) { host in
            do {
                // Inquiries and committee rulings are due in working time: the policy and calendars the supervisor reads.
                return build(host: host, taxonomy: try loadTaxonomy(file: file), clocks: try ClockBook.fromEnvironment())
            } catch {
                host.logger.critical("\(error)")
                exit(2)
            }
        }
    }

    public struct TaxonomyError: Error, CustomStringConvertible {
        public var description: String
    }

    /// The closure taxonomy (责任环节 and cause codes) of this deployment; refused at start when unusable.
    public static func loadTaxonomy(file: String) throws -> ClosureTaxonomy {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw TaxonomyError(description: "closure taxonomy \(file) cannot be read: set REDRESS_CLOSURE_TAXONOMY to the JSON file (deploy/cases/closure-taxonomy.json)")
        }
        let taxonomy: ClosureTaxonomy
        do {
            taxonomy = try JSONDecoder().decode(ClosureTaxonomy.self, from: data)
        } catch {
            throw TaxonomyError(description: "closure taxonomy \(file) is not valid: \(error); it needs responsibleLinks and causes, each a list of {code, name}")
        }
        var problems: [String] = []
        if taxonomy.responsibleLinks.isEmpty { problems.append("responsibleLinks is empty") }
        if taxonomy.causes.isEmpty { problems.append("causes is empty") }
        for (list, entries) in [("responsibleLinks", taxonomy.responsibleLinks), ("causes", taxonomy.causes)] {
            let codes = entries.map(\.code)
            for code in Set(codes) where codes.filter({ $0 == code }).count > 1 { problems.append("\(list) lists '\(code)' twice") }
            for entry in entries where entry.code.isEmpty || entry.code.count > 64 { problems.append("\(list) has a code of \(entry.code.count) characters (1 to 64)") }
        }
        guard problems.isEmpty else { throw TaxonomyError(description: "closure taxonomy \(file): " + problems.joined(separator: "; ")) }
        return taxonomy
    }

    public static func build(host: ServiceHost, taxonomy: ClosureTaxonomy, clocks: ClockBook? = nil,
                             gaugeInterval: Duration = .seconds(15)) -> (Router<RedressRequestContext>, [any Service]) {
        let router = host.router()
        let workflow = CaseWorkflow(taxonomy: taxonomy, clocks: clocks)
        CaseAPI(postgres: host.postgres, workflow: workflow, personalData: host.personalData).add(to: router, tokens: host.tokens)
        // Routing's decision applied, and a complaint with litigation or media risk sent to legal for review, in one transaction.
        let assignments = host.consumer(group: consumerGroup, topics: [EventType.complaintAssigned.topic], handler: EventHandler<ComplaintAssigned> { events, connection, logger in
            try await applyAssignment(events, on: connection, logger: logger)
            try await CaseAPI.openLegalReviews(events, workflow: workflow, on: connection, logger: logger)
        })
        // Breaches and dissatisfied customers act on cases too, each in a group of its own so a
        // backlog of one never holds up routing's decisions.
        let breaches = host.consumer(group: consumerGroup + "-sla", topics: [EventType.slaBreached.topic],
                                     handler: EventHandler<SLABreached> { try await escalateBreaches($0, workflow: workflow, on: $1, logger: $2) }, gathers: true)
        let reopenings = host.consumer(group: consumerGroup + "-surveys", topics: [EventType.surveyDissatisfied.topic],
                                       handler: EventHandler<SurveyDissatisfied> { try await reopenDissatisfied($0, workflow: workflow, on: $1, logger: $2) }, gathers: true)
        // Open-case counters recounted from the cases, so a missed decrement cannot drift a workload for good.
        let recount = Periodic("workload recount", every: .seconds(300), gate: host.gate, logger: host.logger) { [postgres = host.postgres, logger = host.logger] in
            let fixed = try await StaffDirectory.recountWorkload(on: postgres, logger: logger)
            if fixed > 0 { logger.warning("open-case counts of \(fixed) agents had drifted and were recounted") }
        }
        let series = GaugeSeries()
        // Counted from the system of record, so the gauge is right after restarts and whoever changed the cases.
        let gauges = Periodic("open-case gauges", every: gaugeInterval, gate: host.gate, logger: host.logger) { [postgres = host.postgres, logger = host.logger] in
            var open: [[String]: Double] = [:]
            let rows = try await postgres.query("""
                SELECT COALESCE(handling_unit, branch), status, COALESCE(priority, 'unset'), count(*)
                FROM complaints WHERE status <> 'closed' GROUP BY 1, 2, 3
                """, logger: logger)
            for try await (unit, status, priority, count) in rows.decode((String, String, String, Int).self) { open[[unit, status, priority]] = Double(count) }
            series.record("redress_cases_open", dimensions: ["unit", "status", "priority"], open)
        }
        // 有责率: the share of the last 90 days' closures ruled liable, by unit (a slower cadence: it reads closed cases).
        let liable = Periodic("liable-rate gauge", every: .seconds(60), gate: host.gate, logger: host.logger) { [postgres = host.postgres, logger = host.logger] in
            var ratio: [[String]: Double] = [:]
            let rows = try await postgres.query("""
                SELECT COALESCE(handling_unit, branch), count(*) FILTER (WHERE liability = 'liable')::float8 / count(*)
                FROM complaints WHERE status = 'closed' AND closed_at > now() - interval '90 days' GROUP BY 1
                """, logger: logger)
            for try await (unit, share) in rows.decode((String, Double).self) { ratio[[unit]] = share }
            series.record("redress_case_liable_ratio", dimensions: ["unit"], ratio)
        }
        return (router, [assignments, breaches, reopenings, gauges, liable, recount])
    }

    /// 超时升级: a missed deadline sends the case one level up (routing names the new unit and owner),
    /// for the clocks the policy says escalate; the others only alert.
    /// A case that cannot escalate from where it is (already escalated, resolved, closed) is left as it is.
    static func escalateBreaches(_ events: [EventEnvelope<SLABreached>], workflow: CaseWorkflow, on connection: PostgresConnection, logger: Logger) async throws {
        for event in events where event.payload.clock.escalates {
            let clock = event.payload.clock
            let request = ActionRequest(version: nil, reason: "SLA breached: \(clock.clock.rawValue) clock was due \(Timestamp.format(clock.dueAt))")
            try await applyAsService(.escalate, to: event.complaintId, request: request, workflow: workflow, on: connection, logger: logger)
        }
    }

    /// 回访不满意: the closed case comes back as a second complaint, handled one level up, once per case.
    static func reopenDissatisfied(_ events: [EventEnvelope<SurveyDissatisfied>], workflow: CaseWorkflow, on connection: PostgresConnection, logger: Logger) async throws {
        for event in events {
            // A case already reopened is refused (and logged) by the workflow, under the case's row lock.
            let p = event.payload
            let request = ActionRequest(version: nil, reason: "return visit \(p.wave): score \(p.score), \(p.resolved ? "resolved" : "not resolved")")
            try await applyAsService(.reopen, to: event.complaintId, request: request, workflow: workflow, on: connection, logger: logger)
        }
    }

    /// Applies an action for a service to the case as it is; a refusal (no such case, a state that
    /// does not allow it) is logged, not retried.
    static func applyAsService(_ action: CaseAction, to id: UUID, request: ActionRequest, workflow: CaseWorkflow,
                               on connection: PostgresConnection, logger: Logger) async throws {
        do {
            _ = try await workflow.apply(action, key: id.uuidString, request: request, by: .service, on: connection, logger: logger)
        } catch let refusal as CaseRefusal {
            logger.info("case left as it is", metadata: ["complaint": "\(id)", "action": "\(action.rawValue)", "reason": "\(refusal.reason)"])
        }
    }

    /// Applies routing's decision: the `assign` transition, its audit row and `case.assigned`, per case.
    @Sendable
    static func applyAssignment(_ events: [EventEnvelope<ComplaintAssigned>], on connection: PostgresConnection, logger: Logger) async throws {
        let ids = events.map(\.complaintId)
        var current: [UUID: (status: CaseStatus, version: Int)] = [:]
        // NO KEY UPDATE serialises writers of a case like FOR UPDATE, but does not block the foreign-key
        // checks of rows that merely refer to it (notifications, clocks, history) written meanwhile.
        let rows = try await connection.query(
            "SELECT id, status, version FROM complaints WHERE id = ANY(\(ids)::uuid[]) ORDER BY id FOR NO KEY UPDATE", logger: logger)
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
        let auditEncoder = JSONEncoder()
        var eventIDs: [UUID] = [], complaintIDs: [UUID] = [], fromStatuses: [String] = [], reasons: [String] = [], payloads: [String] = []
        for entry in audit {
            let p = entry.event.payload
            let transition = CaseTransition(number: p.number, fromStatus: entry.from, toStatus: .assigned, handlingUnit: p.handlingUnit,
                                            assignee: p.assignee, reason: p.reason.rawValue, caseVersion: entry.version, action: .assign)
            outbox.append(try OutboxEntry(EventEnvelope(id: entry.eventID, complaintId: entry.event.complaintId, orgUnit: p.handlingUnit,
                                                        actor: actor, payload: CaseAssigned(transition: transition)), encoder: encoder))
            eventIDs.append(entry.eventID)
            complaintIDs.append(entry.event.complaintId)
            fromStatuses.append(entry.from.rawValue)
            reasons.append("routing: \(p.reason.rawValue); rules \(p.ruleIds.joined(separator: ",")) of \(p.rulesVersion)")
            payloads.append(String(decoding: try auditEncoder.encode(["category": p.category.rawValue, "priority": p.priority.rawValue,
                                                                       "handlingUnit": p.handlingUnit, "assignee": p.assignee ?? ""]), as: UTF8.self))
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
