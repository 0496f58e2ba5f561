import Foundation
import Logging
import Metrics
import PostgresNIO
import RedressContracts
import RedressDomain
import RedressServiceKit
import RedressStore

/// Who acts on a case: a staff member through the API (under row-level security, scoped to their
/// unit's subtree), or a service reacting to an event (a breach escalates, a dissatisfied customer reopens).
struct CaseActor: Sendable {
    var subject: String
    /// `agent`, `supervisor`, `committee`, `auditor`, `admin`, or `service`.
    var role: String
    var unit: String?
    var actor: Actor

    static func staff(_ identity: Identity) -> CaseActor {
        CaseActor(subject: identity.subject, role: identity.role.rawValue, unit: identity.unit, actor: Actor(kind: .staff, id: identity.subject))
    }

    static let service = CaseActor(subject: CasesService.name, role: "service", unit: nil, actor: CasesService.actor)
}

/// The fields an action may carry; which ones it needs depends on the action.
struct ActionRequest: Sendable, Codable {
    var version: Int?
    var reason: String?
    var text: String?
    var assignee: String?
    var contactChannel: String?
    var nextContactAt: String?
    var name: String?
    var uri: String?
    var contentType: String?
    var days: Int?
    var approvedBy: String?
    var targetUnit: String?
    var members: [String]?
    var liability: String?
    var responsibleLink: String?
    var causeCode: String?
    /// For `close`: the outcome as the customer is told it.
    var outcome: String?
    /// For `reclassify` and `reprioritise`.
    var category: String?
    var priority: String?
    /// For `await_customer`: by when the customer is asked to answer.
    var respondBy: String?
}

/// A case as the workflow needs it, read under a row lock.
struct CaseRow: Sendable {
    var id: UUID
    var number: String
    var status: CaseStatus
    var version: Int
    var assignee: String?
    var handlingUnit: String
    var unitLevel: OrgLevel
    var parentUnit: String?
    var decisionDays: Int
    var receivedAt: Date
    var committeeStatus: String?
    var unitPath: String
    var regulatorDeadline: Date?
    var category: String?
    var priority: String?
    /// Who sold the policy and who handled the claim: never the case's owner (conflict of interest).
    var policyAgent: String?
    var claimHandler: String?
}

/// What an action refused for: each maps to one HTTP status and to a DLQ reason for event-driven actions.
enum CaseRefusal: Error, Sendable {
    case notFound(String)
    /// A staff id in a path that names nobody.
    case noStaff(String)
    case forbidden(String)
    case invalid([FieldError])
    case conflict(String)
    case unprocessable(String)
    /// Well-formed values the organisation does not know (a category, a staff id, a unit): 422 naming each field.
    case unknown([FieldError])
    /// Each value well-formed, but together they break a rule (a leave ending before it starts).
    case inconsistent([FieldError])

    var problem: Problem {
        switch self {
        case .notFound(let key):
            Problem(status: .notFound, title: "No such case", detail: "no case '\(key)' is visible to you; check the id or number")
        case .noStaff(let id):
            Problem(status: .notFound, title: "No such staff member", detail: "no staff member '\(id)'; GET /v1/staff lists those you manage")
        case .forbidden(let why):
            Problem(status: .forbidden, title: "Not allowed", detail: why)
        case .invalid(let errors):
            Problem(status: .badRequest, title: "Invalid request", detail: errors.map(\.description).joined(separator: "; "), errors: errors)
        case .conflict(let why):
            Problem(status: .conflict, title: "Conflict", detail: why)
        case .unprocessable(let why):
            Problem(status: .unprocessableContent, title: "Refused by the rules", detail: why)
        case .unknown(let errors):
            Problem(status: .unprocessableContent, title: "Unknown value", detail: errors.map(\.description).joined(separator: "; "), errors: errors)
        case .inconsistent(let errors):
            Problem(status: .unprocessableContent, title: "Values do not fit together", detail: errors.map(\.description).joined(separator: "; "), errors: errors)
        }
    }

    var reason: String { problem.detail }
}

/// Who may take which action, pure: the role and org-unit rules of the staff API.
enum CaseAccess {
    /// Actions staff take through the API; `assign` is routing's alone.
    static let staffActions: Set<CaseAction> = Set(CaseAction.allCases).subtracting([.assign])

    /// Refuses with the reason, or returns nil when `actor` may take `action` on a case it can see.
    static func refusal(of action: CaseAction, by actor: CaseActor, assignee: String?) -> String? {
        switch actor.role {
        case "service", "admin", "supervisor":
            return nil
        case "auditor":
            return "auditors read cases; they do not change them"
        case "committee":
            let allowed: Set<CaseAction> = [.recordCommitteeRuling, .addNote]
            return allowed.contains(action) ? nil : "committee members record rulings and notes; '\(action.rawValue)' is for the case's handler or a supervisor"
        case "agent":
            if action == .reassign { return "only a supervisor reassigns cases" }
            if action == .reclassify || action == .reprioritise { return "only a supervisor corrects a case's category or priority" }
            if action == .excludeTime { return "only a supervisor stops the clocks for time the regulation excludes" }
            if action == .recordCommitteeRuling { return "a committee ruling is recorded by the committee or a supervisor" }
            if action == .sendBack { return "a case is sent back for re-investigation by a supervisor of a level above its handling unit" }
            guard assignee == actor.subject else {
                return "the case is assigned to \(assignee ?? "nobody"), not to you: an agent changes only their own cases (ask a supervisor to reassign it)"
            }
            return nil
        default:
            return "role '\(actor.role)' does not handle cases"
        }
    }

    /// Full personal data goes to those who handle the case: its agent, or a supervisor or admin above it.
    static func mayReadPersonalData(_ actor: CaseActor, assignee: String?) -> Bool {
        switch actor.role {
        case "supervisor", "admin": true
        case "agent": assignee == actor.subject
        default: false
        }
    }

    /// The per-action field requirements, all reported at once. Staff must send the version they saw;
    /// a service acting on an event acts on the case as it finds it under the lock.
    static func fieldErrors(_ action: CaseAction, _ request: ActionRequest, versionRequired: Bool = true) -> [FieldError] {
        var errors: [FieldError] = []
        func need(_ value: String?, _ field: String, max: Int = 2000) {
            guard let value, !value.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                errors.append(FieldError(field, "is required for \(action.rawValue)"))
                return
            }
            if value.count > max { errors.append(FieldError(field, "is longer than \(max) characters")) }
        }
        if versionRequired, request.version == nil {
            errors.append(FieldError("version", "is required: send the case version you saw, so a concurrent change is not overwritten"))
        }
        if let reason = request.reason, reason.count > 2000 { errors.append(FieldError("reason", "is longer than 2000 characters")) }
        switch action {
        case .reassign:
            // A service may release a case to the unit's supervisor queue (its owner left): an empty assignee.
            if versionRequired || request.assignee != "" { need(request.assignee, "assignee", max: 64) }
        case .addNote: need(request.text, "text", max: 4000)
        case .proposeResolution: need(request.text, "text", max: 4000)
        case .recordContact:
            need(request.text, "text", max: 4000)
            let channels = ["phone", "sms", "email", "wechat", "visit"]
            if let channel = request.contactChannel, !channels.contains(channel) {
                errors.append(FieldError("contactChannel", "must be one of \(channels.joined(separator: ", "))"))
            }
            if let next = request.nextContactAt, Timestamp.parseStorable(next) == nil {
                errors.append(FieldError("nextContactAt", "is not an RFC 3339 date-time between 1970 and 9999"))
            }
        case .addEvidence:
            need(request.name, "name", max: 200)
            need(request.uri, "uri", max: 1000)
        case .extend:
            if request.days == nil { errors.append(FieldError("days", "is required for extend: 30 or 60")) }
            need(request.reason, "reason")
        case .escalate: need(request.reason, "reason")
        case .transfer:
            need(request.targetUnit, "targetUnit", max: 32)
            need(request.reason, "reason")
        case .referToCommittee: need(request.reason, "reason")
        case .recordCommitteeRuling:
            need(request.text, "text", max: 4000)
            if (request.members ?? []).isEmpty { errors.append(FieldError("members", "name at least one committee member")) }
            // The ruling fixes the closure's liability, responsible link and cause (the closure must then use them).
            need(request.liability, "liability", max: 32)
            need(request.responsibleLink, "responsibleLink", max: 64)
            need(request.causeCode, "causeCode", max: 64)
        case .close:
            need(request.liability, "liability", max: 32)
            need(request.responsibleLink, "responsibleLink", max: 64)
            need(request.causeCode, "causeCode", max: 64)
            // The closure notice tells the customer what was decided, in words written for them.
            need(request.outcome, "outcome", max: 4000)
        case .reclassify:
            need(request.category, "category", max: 32)
            need(request.reason, "reason")
        case .reprioritise:
            need(request.priority, "priority", max: 32)
            need(request.reason, "reason")
        case .awaitCustomer:
            // The customer is told what is needed.
            need(request.reason, "reason")
            if let by = request.respondBy, Timestamp.parseStorable(by) == nil {
                errors.append(FieldError("respondBy", "is not an RFC 3339 date-time between 1970 and 9999"))
            }
        case .reopen: need(request.reason, "reason")
        case .excludeTime: need(request.reason, "reason")
        // The guidance: what to look at again, in the owner's history and inbox.
        case .sendBack: need(request.reason, "reason")
        case .assign, .startInvestigation, .customerResponded, .customerAccepts, .customerRefuses, .includeTime:
            break
        }
        return errors
    }
}

/// The outcome of an action: the case after it, and the new case when it was a reopening.
struct ActionOutcome: Sendable {
    var id: UUID
    var number: String
    var version: Int
    var reopened: ComplaintReference?
}

/// Applies actions to cases: the state machine, the rules of each action, the row, the audit trail
/// and the event, in the caller's transaction.
struct CaseWorkflow: Sendable {
    let taxonomy: ClosureTaxonomy
    /// The SLA policy and calendars: the committee's ruling clock and inquiries' deadlines run in working time.
    var clocks: ClockBook = CaseWorkflow.defaultClocks

    init(taxonomy: ClosureTaxonomy, clocks: ClockBook? = nil) {
        self.taxonomy = taxonomy
        self.clocks = clocks ?? Self.defaultClocks
    }

    /// The repository's policy and calendars when they can be read (tests, tools), else the standard
    /// policy over a Monday-to-Friday calendar; the service itself refuses to start without its files.
    static let defaultClocks: ClockBook = (try? ClockBook.fromEnvironment()) ?? ClockBook(policy: .standard, calendars: [
        "CN": WorkingCalendar(region: "CN", timeZone: TimeZone(identifier: "Asia/Shanghai")!, workingHours: [32_400..<43_200, 48_600..<64_800],
                              weekend: [6, 7], holidays: [], makeUpWorkingDays: []),
    ])

    /// When a clock of `kind` starting now at `unit` warns and falls due, in the unit's region's calendar.
    func deadline(_ kind: ClockKind, unit: String, from start: Date, on connection: PostgresConnection, logger: Logger) async throws -> (warnAt: Date, dueAt: Date) {
        var region = "CN"
        for try await value in try await connection.query("SELECT region FROM org_units WHERE code = \(unit)", logger: logger).decode(String.self) {
            region = value
        }
        return clocks.policy.deadline(kind, from: start, calendar: clocks.calendar(for: region))
    }

    static let selectCase = """
        SELECT c.id, c.number, c.status, c.version, c.assignee, u.code AS unit, u.level, u.parent_code, c.decision_days, c.received_at,
               c.committee_status, c.unit_path, c.regulator_deadline, c.category, c.priority, c.policy_agent, c.claim_handler
        FROM complaints c JOIN org_units u ON u.code = COALESCE(c.handling_unit, c.branch)
        """

    /// `sql` then the condition that picks the case (alias `c`) by its key: the id when the key is a
    /// UUID, else the number people read out. The key is bound, never spliced.
    static func query(_ sql: String, byKey key: String, then suffix: String = "") -> PostgresQuery {
        var query: PostgresQuery
        if let id = UUID(uuidString: key) {
            query = PostgresQuery(unsafeSQL: sql + " c.id = $1" + suffix)
            query.binds.append(id)
        } else {
            query = PostgresQuery(unsafeSQL: sql + " c.number = $1" + suffix)
            query.binds.append(key)
        }
        return query
    }

    /// Reads the case under a row lock (NO KEY UPDATE: writers of the case queue behind it, rows that
    /// only refer to it do not). Under the staff role, row-level security hides cases outside the caller's subtree.
    func lock(key: String, on connection: PostgresConnection, logger: Logger) async throws -> CaseRow? {
        let rows = try await connection.query(Self.query(Self.selectCase + " WHERE", byKey: key, then: " FOR NO KEY UPDATE OF c"), logger: logger)
        for try await row in rows {
            let c = row.makeRandomAccess()
            return CaseRow(id: try c["id"].decode(UUID.self), number: try c["number"].decode(String.self),
                           status: CaseStatus(rawValue: try c["status"].decode(String.self)) ?? .registered, version: try c["version"].decode(Int.self),
                           assignee: try c["assignee"].decode(String?.self), handlingUnit: try c["unit"].decode(String.self),
                           unitLevel: OrgLevel(rawValue: try c["level"].decode(String.self)) ?? .city, parentUnit: try c["parent_code"].decode(String?.self),
                           decisionDays: try c["decision_days"].decode(Int.self), receivedAt: try c["received_at"].decode(Date.self),
                           committeeStatus: try c["committee_status"].decode(String?.self), unitPath: try c["unit_path"].decode(String.self),
                           regulatorDeadline: try c["regulator_deadline"].decode(Date?.self), category: try c["category"].decode(String?.self),
                           priority: try c["priority"].decode(String?.self), policyAgent: try c["policy_agent"].decode(String?.self),
                           claimHandler: try c["claim_handler"].decode(String?.self))
        }
        return nil
    }

    /// Takes `action` on the case `key`, or refuses with a `CaseRefusal`. Runs inside the caller's transaction.
    func apply(_ action: CaseAction, key: String, request: ActionRequest, by actor: CaseActor,
               on connection: PostgresConnection, logger: Logger, now: Date = Date()) async throws -> ActionOutcome {
        let errors = CaseAccess.fieldErrors(action, request, versionRequired: actor.role != CaseActor.service.role)
        if !errors.isEmpty { throw CaseRefusal.invalid(errors) }
        guard let row = try await lock(key: key, on: connection, logger: logger) else { throw CaseRefusal.notFound(key) }
        if let why = CaseAccess.refusal(of: action, by: actor, assignee: row.assignee) { throw CaseRefusal.forbidden(why) }
        if let version = request.version, version != row.version {
            throw CaseRefusal.conflict("the case is at version \(row.version), you sent \(version): reload it and apply your change again")
        }
        let next: CaseStatus
        do {
            next = try CaseStateMachine.next(from: row.status, on: action)
        } catch {
            throw CaseRefusal.conflict(error.description)
        }
        var change = Change(row: row, action: action, next: next, actor: actor, reason: request.reason.map(PersonalData.scrub))
        try await prepare(&change, request: request, on: connection, logger: logger, now: now)
        return try await commit(change, on: connection, logger: logger, now: now)
    }

    /// One action's effect, gathered before anything is written.
    struct Change {
        var row: CaseRow
        var action: CaseAction
        var next: CaseStatus
        var actor: CaseActor
        var reason: String?
        var assignments: [String] = []
        var payload: [String: String] = [:]
        var members: [String] = []
        var event: EventKind = .updated
        var newAssignee: String??
        var nextContactAt: Date?
        var category: String?
        var priority: String?
        var outcome: String?
        var customerText: String?
        /// Events besides the case event (the committee's), written with it.
        var extra: [OutboxEntry] = []

        enum EventKind {
            case updated
            case escalated
            case transferred(String)
            case extended(days: Int, approvedBy: String)
            case closed(Liability, link: String, cause: String, spotCheck: Bool)
            case reopened
        }
    }

    private func prepare(_ change: inout Change, request: ActionRequest, on connection: PostgresConnection, logger: Logger, now: Date) async throws {
        let row = change.row
        switch change.action {
        case .reassign where request.assignee == "" && change.actor.role == CaseActor.service.role:
            change.newAssignee = .some(nil)
            change.payload["assignee"] = ""
            change.payload["previousAssignee"] = row.assignee ?? ""
        case .reassign:
            let target = request.assignee!
            var found: ReassignTarget?
            let rows = try await connection.query("""
                SELECT s.role, s.org_unit, u.path, s.active, \(unescaped: AgentPool.availableNow), s.open_cases, s.capacity, s.skills
                FROM staff s JOIN org_units u ON u.code = s.org_unit WHERE s.id = \(target)
                """, logger: logger)
            for try await (role, unit, path, active, available, open, capacity, skills) in rows.decode((String, String, String, Bool, Bool, Int, Int, [String]).self) {
                found = ReassignTarget(id: target, role: role, unit: unit, path: path, active: active, available: available, openCases: open,
                                       capacity: capacity, skills: skills)
            }
            guard let found else { throw CaseRefusal.unknown([FieldError("assignee", "'\(target)' is not a staff member")]) }
            if target == row.assignee { throw CaseRefusal.unprocessable("the case is already assigned to \(target)") }
            if let refusal = found.refusal(for: row) { throw refusal }
            change.newAssignee = .some(target)
            change.payload["assignee"] = target
            change.payload["previousAssignee"] = row.assignee ?? ""
        case .addNote:
            change.payload["text"] = request.text!
        case .proposeResolution:
            change.payload["text"] = request.text!
            change.customerText = PersonalData.scrub(request.text!)
        case .awaitCustomer:
            change.customerText = PersonalData.scrub(request.reason!)
            change.nextContactAt = request.respondBy.flatMap(Timestamp.parse)
            if let by = request.respondBy { change.payload["respondBy"] = by }
        case .reclassify:
            guard let category = RedressDomain.Category(rawValue: request.category!) else {
                throw CaseRefusal.unknown([FieldError("category", "'\(request.category!)' is not one of \(RedressDomain.Category.allCases.map(\.rawValue).joined(separator: ", "))")])
            }
            guard category.rawValue != row.category else { throw CaseRefusal.unprocessable("the case is already in category \(category.rawValue)") }
            change.category = category.rawValue
            change.payload["category"] = category.rawValue
            change.payload["previousCategory"] = row.category ?? ""
        case .reprioritise:
            guard let priority = Priority(rawValue: request.priority!) else {
                throw CaseRefusal.unknown([FieldError("priority", "'\(request.priority!)' is not one of \(Priority.allCases.map(\.rawValue).joined(separator: ", "))")])
            }
            guard priority.rawValue != row.priority else { throw CaseRefusal.unprocessable("the case already has priority \(priority.rawValue)") }
            change.priority = priority.rawValue
            change.payload["priority"] = priority.rawValue
            change.payload["previousPriority"] = row.priority ?? ""
        case .recordContact:
            change.payload["text"] = request.text!
            change.payload["contactChannel"] = request.contactChannel ?? "phone"
            change.nextContactAt = request.nextContactAt.flatMap(Timestamp.parse)
            if let next = request.nextContactAt { change.payload["nextContactAt"] = next }
        case .addEvidence:
            change.payload["name"] = request.name!
            change.payload["uri"] = request.uri!
            if let type = request.contentType { change.payload["contentType"] = type }
        case .extend:
            var approver: DecisionDeadline.Approver?
            if request.days == DecisionDeadline.maximumDays, change.actor.role != "service", request.approvedBy != change.actor.subject {
                throw CaseRefusal.unprocessable("a \(DecisionDeadline.maximumDays)-day extension is made by the approving supervisor of the level above, "
                                                + "in their own name: ask them to take this action (approvedBy is then themselves)")
            }
            if let approvedBy = request.approvedBy {
                let rows = try await connection.query("SELECT role, org_unit FROM staff WHERE id = \(approvedBy) AND active", logger: logger)
                for try await (role, unit) in rows.decode((String, String).self) {
                    approver = .init(staffID: approvedBy, role: role, unit: unit)
                }
                if approver == nil { throw CaseRefusal.unprocessable("approvedBy '\(approvedBy)' is not an active staff member") }
            }
            let approvedBy: String
            do {
                approvedBy = try DecisionDeadline.check(current: row.decisionDays, requested: request.days!, reason: request.reason ?? "",
                                                        requester: change.actor.subject, approver: approver,
                                                        parentUnit: row.parentUnit, handlingUnit: row.handlingUnit)
            } catch {
                throw CaseRefusal.unprocessable(error.description)
            }
            change.event = .extended(days: request.days!, approvedBy: approvedBy)
            change.payload["decisionDays"] = String(request.days!)
            change.payload["approvedBy"] = approvedBy
        case .escalate:
            change.event = .escalated
        case .transfer:
            let target = request.targetUnit!
            let known = try await connection.query("SELECT 1 FROM org_units WHERE code = \(target)", logger: logger)
            var exists = false
            for try await _ in known.decode(Int.self) { exists = true }
            guard exists else { throw CaseRefusal.unknown([FieldError("targetUnit", "'\(target)' is not a unit of the organisation")]) }
            guard target != row.handlingUnit else { throw CaseRefusal.unprocessable("the case is already handled by \(target)") }
            change.event = .transferred(target)
            change.payload["targetUnit"] = target
        case .referToCommittee:
            // Once ruled, a case may go to the committee again (new facts); never twice at once.
            guard row.committeeStatus != "referred" else {
                throw CaseRefusal.conflict("the case is already before the committee: wait for its ruling (GET /v1/cases?committee=referred is its queue)")
            }
            let referral = UUID()
            let (warnAt, dueAt) = try await deadline(.ruling, unit: row.handlingUnit, from: now, on: connection, logger: logger)
            try await connection.query("""
                INSERT INTO committee_referrals (id, complaint_id, referred_by, referred_at, reason, warn_at, due_at)
                VALUES (\(referral), \(row.id), \(change.actor.subject), \(now), \(change.reason ?? ""), \(warnAt), \(dueAt))
                """, logger: logger)
            change.payload["rulingDueAt"] = Timestamp.format(dueAt)
            change.extra.append(try OutboxEntry(EventEnvelope(complaintId: row.id, orgUnit: row.handlingUnit, actor: change.actor.actor,
                payload: CommitteeReferred(number: row.number, referralId: referral, handlingUnit: row.handlingUnit, dueAt: dueAt))))
        case .recordCommitteeRuling:
            guard row.committeeStatus == "referred" else {
                throw CaseRefusal.conflict("no committee referral is pending for this case: refer_to_committee first")
            }
            let problems = taxonomy.problems(liability: request.liability, responsibleLink: request.responsibleLink, causeCode: request.causeCode)
            guard problems.isEmpty, let liability = request.liability.flatMap(Liability.init(rawValue:)) else {
                throw CaseRefusal.unprocessable(problems.joined(separator: "; ") + " (GET /v1/closure-taxonomy lists them)")
            }
            let members = Array(Set(request.members!)).sorted()
            var known: Set<String> = []
            for try await id in try await connection.query("""
                SELECT id FROM staff WHERE id = ANY(\(members)::text[]) AND active
                """, logger: logger).decode(String.self) { known.insert(id) }
            // The members present: committee members, and the supervisors and department heads who sit with them.
            let strangers = members.filter { !known.contains($0) }
            if !strangers.isEmpty {
                throw CaseRefusal.unknown([FieldError("members", "\(strangers.joined(separator: ", ")) \(strangers.count == 1 ? "is not an active staff member" : "are not active staff members"): name the members present by staff id")])
            }
            if !members.contains(where: { id in id == change.actor.subject }) && change.actor.role == "committee" {
                throw CaseRefusal.inconsistent([FieldError("members", "list yourself among the members present: the ruling is recorded by a member who sat")])
            }
            var referral: UUID?
            for try await id in try await connection.query("""
                UPDATE committee_referrals SET ruled_at = \(now), ruled_by = \(change.actor.subject), members = \(members), decision = \(request.text!),
                    liability = \(liability.rawValue), responsible_link = \(request.responsibleLink!), cause_code = \(request.causeCode!)
                WHERE complaint_id = \(row.id) AND ruled_at IS NULL RETURNING id
                """, logger: logger).decode(UUID.self) { referral = id }
            change.payload["text"] = request.text!
            change.payload["liability"] = liability.rawValue
            change.payload["responsibleLink"] = request.responsibleLink!
            change.payload["causeCode"] = request.causeCode!
            change.members = members
            change.extra.append(try OutboxEntry(EventEnvelope(complaintId: row.id, orgUnit: row.handlingUnit, actor: change.actor.actor,
                payload: CommitteeRuled(number: row.number, referralId: referral ?? UUID(), handlingUnit: row.handlingUnit, members: members,
                                        liability: liability, responsibleLink: request.responsibleLink!, causeCode: request.causeCode!))))
        case .close:
            let problems = taxonomy.problems(liability: request.liability, responsibleLink: request.responsibleLink, causeCode: request.causeCode)
            guard problems.isEmpty, let liability = request.liability.flatMap(Liability.init(rawValue:)) else {
                throw CaseRefusal.unprocessable(problems.joined(separator: "; ") + " (GET /v1/closure-taxonomy lists them)")
            }
            // A committee ruling binds the closure: its liability, responsible link and cause, nothing else.
            if row.committeeStatus == "referred" {
                throw CaseRefusal.conflict("the case is before the committee: it is closed after the ruling, with the ruling's liability, responsible link and cause")
            }
            if row.committeeStatus == "ruled" {
                let rows = try await connection.query("""
                    SELECT liability, responsible_link, cause_code FROM committee_referrals
                    WHERE complaint_id = \(row.id) AND ruled_at IS NOT NULL ORDER BY ruled_at DESC LIMIT 1
                    """, logger: logger)
                for try await (ruledLiability, link, cause) in rows.decode((String?, String?, String?).self) {
                    var differ: [FieldError] = []
                    if let ruledLiability, ruledLiability != liability.rawValue { differ.append(FieldError("liability", "must be '\(ruledLiability)', as the committee ruled")) }
                    if let link, link != request.responsibleLink { differ.append(FieldError("responsibleLink", "must be '\(link)', as the committee ruled")) }
                    if let cause, cause != request.causeCode { differ.append(FieldError("causeCode", "must be '\(cause)', as the committee ruled")) }
                    if !differ.isEmpty { throw CaseRefusal.inconsistent(differ) }
                }
            }
            let spotCheck = ClosureTaxonomy.needsSpotCheck(liability: liability, unitLevel: row.unitLevel)
            change.event = .closed(liability, link: request.responsibleLink!, cause: request.causeCode!, spotCheck: spotCheck)
            change.payload["liability"] = liability.rawValue
            change.payload["responsibleLink"] = request.responsibleLink!
            change.payload["causeCode"] = request.causeCode!
            // Written for the customer: anyone else's phone, ID or e-mail in it is masked before it is kept or sent.
            change.outcome = PersonalData.scrub(request.outcome!)
            change.payload["outcome"] = change.outcome!
        case .reopen:
            // One second complaint per case: a further review goes through the reopened one.
            var reopened = false
            // (The linked case's own history starts with a reopen into `reopened`; only a reopen that left
            // this case closed counts, so a second complaint closed in its turn can come back once more.)
            for try await _ in try await connection.query("""
                SELECT 1 FROM case_events WHERE complaint_id = \(row.id) AND action = 'reopen' AND to_status = 'closed'
                """, logger: logger)
                .decode(Int.self) { reopened = true }
            if reopened {
                throw CaseRefusal.conflict("the case was already reopened as a second complaint; act on that one (its number ends in -R1)")
            }
            change.event = .reopened
        case .excludeTime, .includeTime:
            // One excluded period at a time, so every start has its end.
            let open = try await excludedTimeOpen(row.id, on: connection, logger: logger)
            if change.action == .excludeTime, open { throw CaseRefusal.conflict("excluded time is already running for this case: include_time ends it") }
            if change.action == .includeTime, !open { throw CaseRefusal.conflict("no excluded time is running for this case: exclude_time starts it") }
        case .sendBack:
            // A level above the handling unit: the caller's unit is on the case's path, and not its end.
            // (Row-level security already keeps the case inside the caller's subtree.)
            if change.actor.role == "supervisor", let unit = change.actor.unit {
                let path = row.unitPath.split(separator: "/").map(String.init)
                guard path.dropLast().contains(unit) else {
                    throw CaseRefusal.forbidden("sending back is for a supervisor of a level above the handling unit \(row.handlingUnit); yours is \(unit): "
                                                + "supervise the case in place, or ask the level above")
                }
            }
            change.payload["guidance"] = change.reason ?? ""
        case .assign, .startInvestigation, .customerResponded, .customerAccepts, .customerRefuses:
            break
        }
    }

    private func excludedTimeOpen(_ id: UUID, on connection: PostgresConnection, logger: Logger) async throws -> Bool {
        let rows = try await connection.query("""
            SELECT action FROM case_events WHERE complaint_id = \(id) AND action IN ('exclude_time', 'include_time') ORDER BY id DESC LIMIT 1
            """, logger: logger)
        for try await action in rows.decode(String.self) { return action == CaseAction.excludeTime.rawValue }
        return false
    }

    private func commit(_ change: Change, on connection: PostgresConnection, logger: Logger, now: Date) async throws -> ActionOutcome {
        let row = change.row
        let version = row.version + 1
        var assignee = row.assignee
        if case .some(let newAssignee) = change.newAssignee { assignee = newAssignee }
        let encoder = EventCoding.encoder()
        var outbox: [OutboxEntry] = change.extra
        var reopened: ComplaintReference?
        var promised: Date?
        var decisionDays: Int?
        var closure: (liability: String, link: String, cause: String, spotCheck: Bool)?
        var committee: String?
        switch change.action {
        case .referToCommittee: committee = "referred"
        case .recordCommitteeRuling: committee = "ruled"
        default: break
        }
        if case .extended(let days, _) = change.event {
            decisionDays = days
            // Never past a regulator's deadline (the earlier counts, as at intake).
            promised = DecisionDeadline.promise(receivedAt: row.receivedAt, days: days, regulatorDeadline: row.regulatorDeadline)
        }
        if case .closed(let liability, let link, let cause, let spotCheck) = change.event {
            closure = (liability.rawValue, link, cause, spotCheck)
        }
        try await connection.query("""
            UPDATE complaints SET status = \(change.next.rawValue), version = \(version), assignee = \(assignee),
                decision_days = COALESCE(\(decisionDays), decision_days), promised_reply_by = COALESCE(\(promised), promised_reply_by),
                liability = COALESCE(\(closure?.liability), liability), responsible_link = COALESCE(\(closure?.link), responsible_link),
                cause_code = COALESCE(\(closure?.cause), cause_code), spot_check = spot_check OR \(closure?.spotCheck ?? false),
                closed_at = CASE WHEN \(change.next == .closed) AND closed_at IS NULL THEN now() ELSE closed_at END,
                committee_status = COALESCE(\(committee), committee_status),
                first_contact_at = CASE WHEN \(change.action == .recordContact) THEN COALESCE(first_contact_at, now()) ELSE first_contact_at END,
                next_contact_at = CASE WHEN \(change.action == .recordContact) THEN \(change.nextContactAt) ELSE next_contact_at END,
                category = COALESCE(\(change.category), category), priority = COALESCE(\(change.priority), priority),
                outcome = COALESCE(\(change.outcome), outcome),
                updated_at = now()
            WHERE id = \(row.id) AND version = \(row.version)
            """, logger: logger)
        // Workload follows ownership: a closed case leaves its owner's count; a reassigned one moves.
        var load: [String: Int] = [:]
        if change.next == .closed, row.status != .closed, let owner = row.assignee { load[owner, default: 0] -= 1 }
        if change.action == .reassign {
            if let previous = row.assignee { load[previous, default: 0] -= 1 }
            if let assignee { load[assignee, default: 0] += 1 }
        }
        if !load.isEmpty {
            try await connection.query("""
                UPDATE staff s SET open_cases = greatest(0, s.open_cases + t.n)
                FROM unnest(\(Array(load.keys))::text[], \(Array(load.values))::int[]) AS t(id, n) WHERE s.id = t.id
                """, logger: logger)
        }
        let transition = CaseTransition(number: row.number, fromStatus: row.status, toStatus: change.next, handlingUnit: row.handlingUnit,
                                        assignee: assignee, reason: change.reason, caseVersion: version, action: change.action)
        let eventID = UUID()
        func envelope<P: EventPayload>(_ payload: P, complaint: UUID = row.id) -> EventEnvelope<P> {
            EventEnvelope(id: eventID, complaintId: complaint, orgUnit: row.handlingUnit, actor: change.actor.actor, payload: payload)
        }
        switch change.event {
        case .updated:
            outbox.append(try OutboxEntry(envelope(CaseUpdated(transition: transition, nextContactAt: change.nextContactAt,
                                                               customerText: change.customerText)), encoder: encoder))
        case .escalated:
            outbox.append(try OutboxEntry(envelope(CaseEscalated(transition: transition)), encoder: encoder))
        case .transferred(let target):
            outbox.append(try OutboxEntry(envelope(CaseTransferred(transition: transition, targetUnit: target)), encoder: encoder))
        case .extended(let days, let approvedBy):
            outbox.append(try OutboxEntry(envelope(CaseExtended(transition: transition, decisionDays: days, promisedReplyBy: promised!,
                                                                approvedBy: approvedBy)), encoder: encoder))
        case .closed(let liability, let link, let cause, let spotCheck):
            outbox.append(try OutboxEntry(envelope(CaseClosed(transition: transition, liability: liability, responsibleLink: link,
                                                              causeCode: cause, spotCheck: spotCheck, outcome: change.outcome)), encoder: encoder))
            let tally = Counter(label: "redress_case_closures_total", dimensions: [
                ("unit", row.handlingUnit), ("liability", liability.rawValue), ("cause", cause),
            ])
            tally.increment()
        case .reopened:
            reopened = try await openLinkedCase(row, change: change, on: connection, logger: logger, now: now, outbox: &outbox, encoder: encoder)
        }
        var payload = change.payload
        if let reopened { payload["reopenedAs"] = reopened.number }
        try await record(complaint: row.id, eventID: eventID, actor: change.actor, action: change.action, from: row.status, to: change.next,
                         reason: change.reason, payload: payload, members: change.members, on: connection, logger: logger)
        try await Outbox.append(outbox, on: connection, logger: logger)
        Counter(label: "redress_case_transitions_total", dimensions: [("action", change.action.rawValue)]).increment()
        return ActionOutcome(id: row.id, number: row.number, version: version, reopened: reopened)
    }

    /// 二次投诉: a new case linked to the closed one, starting in `reopened`; routing sends it one level
    /// above the first handling unit. The number is the first one's with `-R` and the reopening count.
    private func openLinkedCase(_ row: CaseRow, change: Change, on connection: PostgresConnection, logger: Logger, now: Date,
                                outbox: inout [OutboxEntry], encoder: JSONEncoder) async throws -> ComplaintReference {
        let id = UUID()
        let number = try await Self.insertLinkedCase(of: row.id, id: id, suffix: "R", now: now, on: connection, logger: logger)
        let transition = CaseTransition(number: number, fromStatus: .closed, toStatus: .reopened, handlingUnit: row.handlingUnit,
                                        assignee: nil, reason: change.reason, caseVersion: 1, action: .reopen)
        let eventID = UUID()
        outbox.append(try OutboxEntry(EventEnvelope(id: eventID, complaintId: id, orgUnit: row.handlingUnit, actor: change.actor.actor,
                                                    payload: CaseReopened(transition: transition, reopenedFrom: ComplaintReference(id: row.id, number: row.number),
                                                                          firstHandlingUnit: row.handlingUnit)), encoder: encoder))
        try await record(complaint: id, eventID: eventID, actor: change.actor, action: .reopen, from: .closed, to: .reopened,
                         reason: change.reason, payload: ["reopenedFrom": row.number], members: [], on: connection, logger: logger)
        return ComplaintReference(id: id, number: number)
    }

    /// A new case linked to `original` (its complaint copied, `reopened_from` set), starting in
    /// `reopened` at the same handling unit: `-R<n>` a second complaint, `-S<n>` a review a spot-check
    /// asked for, numbered per kind. Returns its number.
    static func insertLinkedCase(of original: UUID, id: UUID, suffix: String, now: Date, on connection: PostgresConnection,
                                 logger: Logger) async throws -> String {
        let rows = try await connection.query("""
            WITH n AS (SELECT count(*) + 1 AS k FROM complaints l, complaints o
                       WHERE o.id = \(original) AND l.reopened_from = o.id AND l.number LIKE o.number || '-' || \(suffix) || '%')
            INSERT INTO complaints (id, number, channel, external_ref, received_at, promised_reply_by, branch, customer_name, customer_phone,
                customer_id_number, customer_key, customer_id_key, customer_flags, policy_number, claim_number, claim_stage, subject, content,
                policy_agent, claim_handler, attachments, customer_contact, category, priority, handling_unit, status, reopened_from)
            SELECT \(id), c.number || '-' || \(suffix) || n.k, c.channel, c.external_ref || ' #' || \(suffix) || n.k, \(now),
                \(DecisionDeadline.promise(receivedAt: now)), c.branch, c.customer_name, c.customer_phone, c.customer_id_number, c.customer_key,
                c.customer_id_key, c.customer_flags, c.policy_number, c.claim_number, c.claim_stage, c.subject, c.content, c.policy_agent,
                c.claim_handler, c.attachments, c.customer_contact, c.category, c.priority, c.handling_unit, 'reopened', c.id
            FROM complaints c, n WHERE c.id = \(original)
            RETURNING number
            """, logger: logger)
        var number = ""
        for try await value in rows.decode(String.self) { number = value }
        return number
    }

    private func record(complaint: UUID, eventID: UUID, actor: CaseActor, action: CaseAction, from: CaseStatus, to: CaseStatus,
                        reason: String?, payload: [String: String], members: [String], on connection: PostgresConnection, logger: Logger) async throws {
        var object = payload.mapValues { AuditValue.string($0) }
        if !members.isEmpty { object["members"] = .array(members) }
        let json = String(decoding: try JSONEncoder().encode(object), as: UTF8.self)
        try await connection.query("""
            INSERT INTO case_events (complaint_id, event_id, actor, actor_role, actor_unit, action, from_status, to_status, reason, payload)
            VALUES (\(complaint), \(eventID), \(actor.subject), \(actor.role), \(actor.unit), \(action.rawValue), \(from.rawValue), \(to.rawValue),
                    \(reason), \(json)::jsonb)
            """, logger: logger)
    }
}

/// A staff member a supervisor wants to give a case to, and why they may not take it.
struct ReassignTarget: Sendable {
    var id: String
    var role: String
    var unit: String
    var path: String
    var active: Bool
    var available: Bool
    var openCases: Int
    var capacity: Int
    var skills: [String]

    /// The first reason this person may not own `row`, in the order a supervisor would check; nil when
    /// they may. Who is not an agent of the subtree is refused by the rules (422); an agent of it who
    /// cannot take the case now — away, full, unskilled or conflicted — is a conflict (409).
    func refusal(for row: CaseRow) -> CaseRefusal? {
        guard role == "agent", path == row.unitPath || path.hasPrefix(row.unitPath + "/") else {
            return .unprocessable("\(id) is not an agent of \(row.handlingUnit) or below: reassign to an agent of the handling unit's subtree, or transfer the case")
        }
        if !active { return .conflict("\(id) is deactivated: choose an active agent") }
        if !available { return .conflict("\(id) is unavailable (on leave or marked away): choose an agent who is at work") }
        if openCases >= capacity {
            return .conflict("\(id) already has \(openCases) open cases, their capacity of \(capacity): choose another agent or raise the capacity")
        }
        if let category = Assignment.requiredSkill(for: row.category), !skills.contains(category) {
            return .conflict("\(id) lacks the \(category) skill the case needs (skills: \(skills.joined(separator: ", ")))")
        }
        if id == row.policyAgent { return .conflict("\(id) sold the policy this complaint is about: a conflict of interest") }
        if id == row.claimHandler { return .conflict("\(id) handled the claim this complaint is about: a conflict of interest") }
        return nil
    }
}
