import Foundation
import Hummingbird
import Logging
import PostgresNIO
import RedressContracts
import RedressDomain
import RedressServiceKit
import RedressStore

// The oversight duties of the rules (第五条–第七条) on the staff API: department inquiries,
// spot-checks with verdicts, corrective actions and the vexatious-complainant register. Each runs
// in `scoped` (as `redress_staff`, under row-level security), so a unit reaches its subtree only.

struct InquiryRequest: Codable, Sendable {
    var unit: String?
    var department: String?
    var question: String?
    var attachments: [AttachmentReference]?
}

struct AnswerRequest: Codable, Sendable {
    var version: Int?
    var findings: String?
    var evidence: [AttachmentReference]?
}

struct InquiryView: ResponseEncodable, Codable, Sendable {
    var id: UUID
    var caseId: UUID
    var number: String
    var unit: String
    var department: String
    var question: String
    var attachments: [AttachmentReference]
    var automatic: Bool
    var askedBy: String
    var askedAt: String
    var dueAt: String
    var status: String
    var overdue: Bool
    var findings: String?
    var evidence: [AttachmentReference]
    var answeredBy: String?
    var answeredAt: String?
    var version: Int
}

struct InquiryList: ResponseEncodable, Sendable { var items: [InquiryView] }

struct DrawRequest: Codable, Sendable {
    var kind: String?
    var period: String?
}

struct VerdictRequest: Codable, Sendable {
    var version: Int?
    var verdict: String?
    var note: String?
    var liability: String?
    var responsibleLink: String?
    var causeCode: String?
}

struct SpotCheckView: ResponseEncodable, Codable, Sendable {
    var id: UUID
    var kind: String
    var unit: String
    var period: String
    var caseId: UUID
    var number: String
    var handlingUnit: String
    var status: String
    var note: String?
    var liability: String?
    var responsibleLink: String?
    var causeCode: String?
    var reviewCase: ComplaintReference?
    var decidedBy: String?
    var decidedAt: String?
    var version: Int
}

struct SpotCheckList: ResponseEncodable, Sendable { var items: [SpotCheckView] }

struct DrawView: ResponseEncodable, Sendable {
    var draw: SpotChecks.Draw
    var items: [SpotCheckView]
}

struct CorrectiveRequest: Codable, Sendable {
    var source: String?
    var caseKey: String?
    var spotCheck: UUID?
    var ownerUnit: String?
    var responsible: String?
    var action: String?
    var dueAt: String?
}

struct CorrectiveChange: Codable, Sendable {
    var version: Int?
    var note: String?
}

struct CorrectiveView: ResponseEncodable, Codable, Sendable {
    var id: UUID
    var source: String
    var caseNumber: String?
    var spotCheck: UUID?
    var ownerUnit: String
    var responsible: String
    var action: String
    var dueAt: String
    var status: String
    var overdue: Bool
    var createdBy: String
    var createdAt: String
    var doneNote: String?
    var doneBy: String?
    var doneAt: String?
    var verifiedBy: String?
    var verifiedAt: String?
    var version: Int
}

struct CorrectiveList: ResponseEncodable, Sendable { var items: [CorrectiveView] }

struct RegisterProposal: Codable, Sendable {
    var caseNumbers: [String]?
    var reasons: String?
}

struct RegisterDecision: Codable, Sendable {
    var version: Int?
    var decision: String?
    var note: String?
}

struct RegisterEntryView: ResponseEncodable, Codable, Sendable {
    struct Customer: Codable, Sendable {
        var name: String
        var phone: String
        var key: String
    }

    var id: UUID
    var customer: Customer
    var unit: String
    var reasons: String
    var caseNumbers: [String]
    var status: String
    var proposedBy: String
    var proposedAt: String
    var decidedBy: String?
    var decidedAt: String?
    var decisionNote: String?
    var reviewAt: String?
    var version: Int
}

struct RegisterList: ResponseEncodable, Sendable { var items: [RegisterEntryView] }

struct Department: Codable, Sendable {
    var unit: String
    var code: String
    var name: String
}

struct DepartmentList: ResponseEncodable, Sendable { var items: [Department] }

extension CaseAPI {
    func addOversight(to router: Router<RedressRequestContext>, tokens: TokenAuthority, standing: StaffCheck) {
        let everyone = RequireRoles([.agent, .supervisor, .committee, .auditor, .admin, .coordinator, .salesLiaison], authority: tokens, staff: standing)
        router.group("v1/cases").add(middleware: everyone).post(":key/inquiries") { request, context in
            let body = try await Self.decode(InquiryRequest.self, request, context)
            return try await openInquiry(key: context.parameters.require("key"), body, context).response(from: request, context: context).withStatus(.created)
        }
        router.group("v1/departments").add(middleware: everyone).get("") { request, context in try await departments(request, context) }
        let inquiries = router.group("v1/inquiries").add(middleware: everyone)
        inquiries.get("") { request, context in try await listInquiries(request, context) }
        inquiries.get(":id") { _, context in try await inquiry(id: Self.uuid(context.parameters.require("id"), "id"), context) }
        inquiries.post(":id/answer") { request, context in
            let body = try await Self.decode(AnswerRequest.self, request, context)
            return try await answer(id: Self.uuid(context.parameters.require("id"), "id"), body, context)
        }
        let checks = router.group("v1/spot-checks").add(middleware: everyone)
        checks.get("") { request, context in try await listSpotChecks(request, context) }
        checks.post("draw") { request, context in
            let body = try await Self.decode(DrawRequest.self, request, context)
            let (view, created) = try await draw(body, context)
            return try view.response(from: request, context: context).withStatus(created ? .created : .ok)
        }
        checks.post(":id/verdict") { request, context in
            let body = try await Self.decode(VerdictRequest.self, request, context)
            return try await verdict(id: Self.uuid(context.parameters.require("id"), "id"), body, context)
        }
        let corrective = router.group("v1/corrective-actions").add(middleware: everyone)
        corrective.get("") { request, context in try await listCorrective(request, context) }
        corrective.post("") { request, context in
            let body = try await Self.decode(CorrectiveRequest.self, request, context)
            return try await openCorrective(body, context).response(from: request, context: context).withStatus(.created)
        }
        corrective.post(":id/done") { request, context in
            let body = try await Self.decode(CorrectiveChange.self, request, context)
            return try await progressCorrective(id: Self.uuid(context.parameters.require("id"), "id"), to: "done", body, context)
        }
        corrective.post(":id/verify") { request, context in
            let body = try await Self.decode(CorrectiveChange.self, request, context)
            return try await progressCorrective(id: Self.uuid(context.parameters.require("id"), "id"), to: "verified", body, context)
        }
        let register = router.group("v1/register").add(middleware: everyone)
        register.get("") { request, context in try await listRegister(request, context) }
        register.post("") { request, context in
            let body = try await Self.decode(RegisterProposal.self, request, context)
            return try await propose(body, context).response(from: request, context: context).withStatus(.created)
        }
        register.post(":id/decision") { request, context in
            let body = try await Self.decode(RegisterDecision.self, request, context)
            return try await decide(id: Self.uuid(context.parameters.require("id"), "id"), body, context)
        }
        register.post(":id/renew") { request, context in
            let body = try await Self.decode(RegisterDecision.self, request, context)
            return try await renew(id: Self.uuid(context.parameters.require("id"), "id"), body, context)
        }
    }

    // MARK: Shared checks

    static func uuid(_ text: String, _ field: String) throws -> UUID {
        guard let id = UUID(uuidString: text) else {
            throw Problem(status: .notFound, title: "Not found", detail: "\(field) '\(text)' is not an id this API gave out (a UUID)")
        }
        return id
    }

    static func need(_ value: String?, _ field: String, max: Int, into errors: inout [FieldError]) {
        guard let value, !value.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            errors.append(FieldError(field, "is required"))
            return
        }
        if value.count > max { errors.append(FieldError(field, "is longer than \(max) characters")) }
    }

    static func check(_ attachments: [AttachmentReference]?, _ field: String, into errors: inout [FieldError]) {
        for (index, item) in (attachments ?? []).enumerated() {
            if item.name.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty || item.name.count > 200 {
                errors.append(FieldError("\(field)[\(index)].name", "is required, at most 200 characters"))
            }
            if !(item.uri.hasPrefix("https://") || item.uri.hasPrefix("http://")) || item.uri.count > 1000 {
                errors.append(FieldError("\(field)[\(index)].uri", "must be an http(s) address of the document store, at most 1000 characters"))
            }
        }
        if (attachments ?? []).count > 20 { errors.append(FieldError(field, "lists more than 20 documents")) }
    }

    static func refuseUnless(_ allowed: Bool, _ why: String) throws {
        if !allowed { throw CaseRefusal.forbidden(why).problem }
    }

    static func version(_ value: Int?) throws -> Int {
        guard let value else {
            throw CaseRefusal.invalid([FieldError("version", "is required: send the version you saw, so a concurrent change is not overwritten")]).problem
        }
        return value
    }

    static func json(_ value: some Encodable) throws -> String { String(decoding: try JSONEncoder().encode(value), as: UTF8.self) }

    /// A history row on the case for an oversight step: by a staff member (`caller`) or by the service,
    /// leaving the status as it is unless `to` says otherwise.
    static func history(_ complaint: UUID, status: String, to: String? = nil, action: String, caller: Identity?, reason: String?,
                        payload: [String: String], eventID: UUID = UUID(), on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("""
            INSERT INTO case_events (complaint_id, event_id, actor, actor_role, actor_unit, action, from_status, to_status, reason, payload)
            VALUES (\(complaint), \(eventID), \(caller?.subject ?? CasesService.name), \(caller?.role.rawValue ?? "service"), \(caller?.unit), \(action),
                    \(status), \(to ?? status), \(reason), \(try json(payload))::jsonb)
            """, logger: logger)
    }

    static func level(of unit: String, on connection: PostgresConnection, logger: Logger) async throws -> (OrgLevel, String)? {
        for try await (level, path) in try await connection.query("SELECT level, path FROM org_units WHERE code = \(unit)", logger: logger).decode((String, String).self) {
            return (OrgLevel(rawValue: level) ?? .county, path)
        }
        return nil
    }

    // MARK: 转相关部门调查 — department inquiries

    func departments(_ request: Request, _ context: RedressRequestContext) async throws -> DepartmentList {
        let unit = request.uri.queryParameters.get("unit")
        try NULCharacter.refuse(parameter: "unit", unit)
        return try await scoped(context) { connection, _ in
            var items: [Department] = []
            let rows = try await connection.query("""
                SELECT unit, code, name FROM departments WHERE \(unit)::text IS NULL OR unit = \(unit) ORDER BY unit, code
                """, logger: context.logger)
            for try await (unit, code, name) in rows.decode((String, String, String).self) { items.append(Department(unit: unit, code: code, name: name)) }
            return DepartmentList(items: items)
        }
    }

    func openInquiry(key: String, _ body: InquiryRequest, _ context: RedressRequestContext) async throws -> InquiryView {
        let caller = try context.caller()
        var errors: [FieldError] = []
        Self.need(body.department, "department", max: 32, into: &errors)
        Self.need(body.question, "question", max: 4000, into: &errors)
        if let unit = body.unit, unit.isEmpty || unit.count > 32 { errors.append(FieldError("unit", "names a unit code; leave it out for the handling unit")) }
        Self.check(body.attachments, "attachments", into: &errors)
        if !errors.isEmpty { throw CaseRefusal.invalid(errors).problem }
        return try await scoped(context) { connection, _ in
            guard let row = try await workflow.lock(key: key, on: connection, logger: context.logger) else { throw CaseRefusal.notFound(key) }
            let owner = caller.role == .agent && row.assignee == caller.subject
            try Self.refuseUnless(owner || caller.role == .supervisor || caller.role == .admin,
                                  "an inquiry is opened by the case's owner (\(row.assignee ?? "nobody yet")) or a supervisor")
            guard row.status != .closed else { throw CaseRefusal.conflict("the case is closed: reopen it, or open a corrective action instead") }
            let unit = body.unit ?? row.handlingUnit
            // A department of the handling unit or of a unit above it: the coordinator then sees the case.
            guard row.unitPath.split(separator: "/").map(String.init).contains(unit) else {
                throw CaseRefusal.unknown([FieldError("unit", "'\(unit)' is not the handling unit \(row.handlingUnit) or a unit above it")])
            }
            return try await insertInquiry(row: row, unit: unit, department: body.department!, question: PersonalData.scrub(body.question!),
                                           attachments: body.attachments ?? [], automatic: false, actor: caller.subject,
                                           history: caller, on: connection, logger: context.logger)
        }
    }

    func insertInquiry(row: CaseRow, unit: String, department: String, question: String, attachments: [AttachmentReference], automatic: Bool,
                       actor: String, history caller: Identity?, on connection: PostgresConnection, logger: Logger) async throws -> InquiryView {
        try await Self.insertInquiry(workflow: workflow, complaint: row.id, number: row.number, status: row.status.rawValue, handlingUnit: row.handlingUnit,
                                     unit: unit, department: department, question: question, attachments: attachments, automatic: automatic,
                                     actor: actor, history: caller, on: connection, logger: logger)
    }

    static func insertInquiry(workflow: CaseWorkflow, complaint: UUID, number: String, status: String, handlingUnit: String, unit: String, department: String,
                              question: String, attachments: [AttachmentReference], automatic: Bool, actor: String, history caller: Identity?,
                              on connection: PostgresConnection, logger: Logger) async throws -> InquiryView {
        var known = false
        for try await _ in try await connection.query("SELECT 1 FROM departments WHERE unit = \(unit) AND code = \(department)", logger: logger).decode(Int.self) {
            known = true
        }
        guard known else {
            throw CaseRefusal.unknown([FieldError("department", "\(unit) has no department '\(department)' (GET /v1/departments?unit=\(unit) lists them)")])
        }
        let id = UUID(), now = Date()
        let (warnAt, dueAt) = try await workflow.deadline(.inquiry, unit: unit, from: now, on: connection, logger: logger)
        try await connection.query("""
            INSERT INTO inquiries (id, complaint_id, unit, department, question, attachments, automatic, asked_by, asked_at, warn_at, due_at)
            VALUES (\(id), \(complaint), \(unit), \(department), \(question), \(try json(attachments))::jsonb, \(automatic), \(actor), \(now), \(warnAt), \(dueAt))
            """, logger: logger)
        let payload = ["inquiry": id.uuidString.lowercased(), "unit": unit, "department": department, "dueAt": Timestamp.format(dueAt)]
        try await history(complaint, status: status, action: "open_inquiry", caller: caller, reason: question, payload: payload, on: connection, logger: logger)
        try await Outbox.append([try OutboxEntry(EventEnvelope(complaintId: complaint, orgUnit: handlingUnit, actor: caller.map { Actor(kind: .staff, id: $0.subject) } ?? CasesService.actor,
            payload: InquiryOpened(number: number, inquiryId: id, unit: unit, department: department, dueAt: dueAt, automatic: automatic)))], on: connection, logger: logger)
        let coordinators = try await InboxNote.staff(role: "coordinator", unit: unit, department: department, on: connection, logger: logger)
        try await InboxNote.record(coordinators.map { InboxNote(complaintID: complaint, recipient: $0, template: "inquiry.opened.coordinator") },
                                   on: connection, logger: logger)
        return try await Self.readInquiries(where: "i.id = $1", bind: id, on: connection, logger: logger)[0]
    }

    /// 法律风险评估: a complaint routed with litigation or media risk (routing's `priority.litigation` or
    /// `priority.media` rule) asks the legal department of its handling unit, or of the nearest unit above it that has one.
    static func openLegalReviews(_ events: [EventEnvelope<ComplaintAssigned>], workflow: CaseWorkflow, on connection: PostgresConnection, logger: Logger) async throws {
        let risky = events.filter { $0.payload.reason == .initial && $0.payload.ruleIds.contains { $0 == "priority.litigation" || $0 == "priority.media" } }
        for event in risky {
            var legal: String?
            for try await unit in try await connection.query("""
                SELECT d.unit FROM org_units h JOIN org_units u ON h.path = u.path OR h.path LIKE u.path || '/%'
                JOIN departments d ON d.unit = u.code AND d.code = 'legal'
                WHERE h.code = \(event.payload.handlingUnit) ORDER BY length(u.path) DESC LIMIT 1
                """, logger: logger).decode(String.self) { legal = unit }
            guard let legal else {
                logger.warning("no legal department at or above the handling unit: no legal review opened", metadata: ["unit": "\(event.payload.handlingUnit)"])
                continue
            }
            var already = false
            for try await _ in try await connection.query("""
                SELECT 1 FROM inquiries WHERE complaint_id = \(event.complaintId) AND automatic
                """, logger: logger).decode(Int.self) { already = true }
            if already { continue }
            let risks = event.payload.ruleIds.filter { $0 == "priority.litigation" || $0 == "priority.media" }.map { $0 == "priority.media" ? "媒体曝光" : "诉讼/仲裁" }
            let question = "法律风险评估：投诉涉及\(risks.joined(separator: "、"))风险（路由规则 \(event.payload.ruleIds.joined(separator: ", "))），请评估法律风险并提出处理意见。"
            _ = try await insertInquiry(workflow: workflow, complaint: event.complaintId, number: event.payload.number, status: CaseStatus.assigned.rawValue,
                                        handlingUnit: event.payload.handlingUnit, unit: legal, department: "legal", question: question, attachments: [],
                                        automatic: true, actor: CasesService.name, history: nil, on: connection, logger: logger)
        }
    }

    static let inquirySelect = """
        SELECT i.id, i.complaint_id, c.number, i.unit, i.department, i.question, i.attachments::text, i.automatic, i.asked_by, i.asked_at, i.due_at,
               i.status, i.findings, i.evidence::text, i.answered_by, i.answered_at, i.version
        FROM inquiries i JOIN complaints c ON c.id = i.complaint_id
        """

    static func readInquiries(where condition: String, bind: some PostgresThrowingDynamicTypeEncodable, suffix: String = "", on connection: PostgresConnection,
                       logger: Logger) async throws -> [InquiryView] {
        var binds = PostgresBindings()
        try binds.append(bind)
        return try await readInquiries(where: condition, binds, suffix: suffix, on: connection, logger: logger)
    }

    static func readInquiries(where condition: String, _ binds: PostgresBindings, suffix: String = "", on connection: PostgresConnection,
                              logger: Logger) async throws -> [InquiryView] {
        let query = PostgresQuery(unsafeSQL: Self.inquirySelect + " WHERE " + condition + suffix, binds: binds)
        var items: [InquiryView] = []
        let now = Date()
        let decoder = JSONDecoder()
        for try await row in try await connection.query(query, logger: logger) {
            let r = row.makeRandomAccess()
            let due = try r["due_at"].decode(Date.self)
            let status = try r["status"].decode(String.self)
            items.append(InquiryView(
                id: try r["id"].decode(UUID.self), caseId: try r["complaint_id"].decode(UUID.self), number: try r["number"].decode(String.self),
                unit: try r["unit"].decode(String.self), department: try r["department"].decode(String.self), question: try r["question"].decode(String.self),
                attachments: (try? decoder.decode([AttachmentReference].self, from: Data(try r["attachments"].decode(String.self).utf8))) ?? [],
                automatic: try r["automatic"].decode(Bool.self), askedBy: try r["asked_by"].decode(String.self),
                askedAt: Timestamp.format(try r["asked_at"].decode(Date.self)), dueAt: Timestamp.format(due), status: status,
                overdue: status == "open" && due <= now, findings: try r["findings"].decode(String?.self),
                evidence: (try? decoder.decode([AttachmentReference].self, from: Data(try r["evidence"].decode(String.self).utf8))) ?? [],
                answeredBy: try r["answered_by"].decode(String?.self), answeredAt: try r["answered_at"].decode(Date?.self).map(Timestamp.format),
                version: try r["version"].decode(Int.self)))
        }
        return items
    }

    /// A coordinator's department, from the directory (a token does not carry it).
    static func department(of subject: String, on connection: PostgresConnection, logger: Logger) async throws -> String? {
        for try await department in try await connection.query("SELECT department FROM staff WHERE id = \(subject)", logger: logger).decode(String?.self) {
            return department
        }
        return nil
    }

    func listInquiries(_ request: Request, _ context: RedressRequestContext) async throws -> InquiryList {
        let caller = try context.caller()
        let query = request.uri.queryParameters
        let status = query.get("status")
        if let status, !["open", "answered"].contains(status) { throw CaseRefusal.invalid([FieldError("status", "must be open or answered")]).problem }
        let key = query.get("case")
        try NULCharacter.refuse(parameter: "case", key)
        try Self.refuseUnless(caller.role != .salesLiaison, "inquiries are read by case handlers, supervisors, auditors and the departments' coordinators")
        return try await scoped(context) { connection, _ in
            // A coordinator sees what is addressed to their unit's department; the others every inquiry of the cases they see.
            var department = ""
            if caller.role == .coordinator { department = try await Self.department(of: caller.subject, on: connection, logger: context.logger) ?? "-" }
            var binds = PostgresBindings()
            binds.append(department)
            binds.append(caller.unit)
            binds.append(status ?? "")
            binds.append(key.map { UUID(uuidString: $0)?.uuidString.lowercased() ?? $0 } ?? "")
            let condition = "($1 = '' OR (i.unit = $2 AND i.department = $1)) AND ($3 = '' OR i.status = $3) AND ($4 = '' OR c.id::text = $4 OR c.number = $4)"
            return InquiryList(items: try await Self.readInquiries(where: condition, binds, suffix: " ORDER BY i.status DESC, i.due_at LIMIT 200",
                                                              on: connection, logger: context.logger))
        }
    }

    func inquiry(id: UUID, _ context: RedressRequestContext) async throws -> InquiryView {
        let caller = try context.caller()
        try Self.refuseUnless(caller.role != .salesLiaison, "inquiries are read by case handlers, supervisors, auditors and the departments' coordinators")
        return try await scoped(context) { connection, _ in
            guard let found = try await Self.readInquiries(where: "i.id = $1", bind: id, on: connection, logger: context.logger).first else {
                throw Problem(status: .notFound, title: "No such inquiry", detail: "no inquiry '\(id)' is visible to you; GET /v1/inquiries lists yours")
            }
            return found
        }
    }

    func answer(id: UUID, _ body: AnswerRequest, _ context: RedressRequestContext) async throws -> InquiryView {
        let caller = try context.caller()
        var errors: [FieldError] = []
        if body.version == nil { errors.append(FieldError("version", "is required: send the inquiry's version you saw")) }
        Self.need(body.findings, "findings", max: 8000, into: &errors)
        Self.check(body.evidence, "evidence", into: &errors)
        if !errors.isEmpty { throw CaseRefusal.invalid(errors).problem }
        return try await scoped(context) { connection, _ in
            guard let found = try await Self.readInquiries(where: "i.id = $1", bind: id, suffix: " FOR UPDATE OF i", on: connection, logger: context.logger).first else {
                throw Problem(status: .notFound, title: "No such inquiry", detail: "no inquiry '\(id)' is visible to you; GET /v1/inquiries lists yours")
            }
            let department = try await Self.department(of: caller.subject, on: connection, logger: context.logger)
            try Self.refuseUnless(caller.role == .coordinator && caller.unit == found.unit && department == found.department,
                                  "the inquiry is answered by a coordinator of the \(found.department) department of \(found.unit)")
            guard found.status == "open" else { throw CaseRefusal.conflict("the inquiry was already answered by \(found.answeredBy ?? "someone")") }
            guard body.version == found.version else {
                throw CaseRefusal.conflict("the inquiry is at version \(found.version), you sent \(body.version!): reload it")
            }
            let findings = PersonalData.scrub(body.findings!)
            try await connection.query("""
                UPDATE inquiries SET status = 'answered', findings = \(findings), evidence = \(try Self.json(body.evidence ?? []))::jsonb,
                    answered_by = \(caller.subject), answered_at = now(), version = version + 1 WHERE id = \(id)
                """, logger: context.logger)
            var owner: String?, status = "", unit = ""
            for try await (assignee, s, u) in try await connection.query("""
                SELECT assignee, status, COALESCE(handling_unit, branch) FROM complaints WHERE id = \(found.caseId)
                """, logger: context.logger).decode((String?, String, String).self) { (owner, status, unit) = (assignee, s, u) }
            // The answer joins the case's history and its owner's inbox.
            try await Self.history(found.caseId, status: status, action: "answer_inquiry", caller: caller, reason: findings,
                                   payload: ["inquiry": id.uuidString.lowercased(), "unit": found.unit, "department": found.department,
                                             "evidence": String((body.evidence ?? []).count)], on: connection, logger: context.logger)
            if let owner {
                try await InboxNote.record([InboxNote(complaintID: found.caseId, recipient: "staff:" + owner, template: "inquiry.answered.owner")],
                                           on: connection, logger: context.logger)
            }
            let late = Timestamp.parse(found.dueAt).map { $0 < Date() } ?? false
            try await Outbox.append([try OutboxEntry(EventEnvelope(complaintId: found.caseId, orgUnit: unit, actor: Actor(kind: .staff, id: caller.subject),
                payload: InquiryAnswered(number: found.number, inquiryId: id, unit: found.unit, department: found.department, answeredBy: caller.subject,
                                         late: late)))], on: connection, logger: context.logger)
            return try await Self.readInquiries(where: "i.id = $1", bind: id, on: connection, logger: context.logger)[0]
        }
    }

    // MARK: 抽查 — spot-checks

    static let spotCheckSelect = """
        SELECT s.id, s.kind, s.unit, s.period, s.complaint_id, c.number, s.handling_unit, s.status, s.note, s.liability, s.responsible_link, s.cause_code,
               s.review_complaint_id, r.number AS review_number, s.decided_by, s.decided_at, s.version
        FROM spot_checks s JOIN complaints c ON c.id = s.complaint_id LEFT JOIN complaints r ON r.id = s.review_complaint_id
        """

    func readSpotChecks(_ condition: String, _ binds: PostgresBindings, on connection: PostgresConnection, logger: Logger) async throws -> [SpotCheckView] {
        var items: [SpotCheckView] = []
        for try await row in try await connection.query(PostgresQuery(unsafeSQL: Self.spotCheckSelect + " WHERE " + condition, binds: binds), logger: logger) {
            let r = row.makeRandomAccess()
            let review = try r["review_complaint_id"].decode(UUID?.self)
            items.append(SpotCheckView(
                id: try r["id"].decode(UUID.self), kind: try r["kind"].decode(String.self), unit: try r["unit"].decode(String.self),
                period: try r["period"].decode(String.self), caseId: try r["complaint_id"].decode(UUID.self), number: try r["number"].decode(String.self),
                handlingUnit: try r["handling_unit"].decode(String.self), status: try r["status"].decode(String.self), note: try r["note"].decode(String?.self),
                liability: try r["liability"].decode(String?.self), responsibleLink: try r["responsible_link"].decode(String?.self),
                causeCode: try r["cause_code"].decode(String?.self),
                reviewCase: try review.map { ComplaintReference(id: $0, number: try r["review_number"].decode(String.self)) },
                decidedBy: try r["decided_by"].decode(String?.self), decidedAt: try r["decided_at"].decode(Date?.self).map(Timestamp.format),
                version: try r["version"].decode(Int.self)))
        }
        return items
    }

    func listSpotChecks(_ request: Request, _ context: RedressRequestContext) async throws -> SpotCheckList {
        let caller = try context.caller()
        try Self.refuseUnless([.supervisor, .admin, .auditor].contains(caller.role), "spot-checks are read by supervisors, admins and auditors")
        let query = request.uri.queryParameters
        var errors: [FieldError] = []
        let status = query.get("status"), kind = query.get("kind"), period = query.get("period")
        if let status, !["pending", "upheld", "revised", "reinvestigate"].contains(status) {
            errors.append(FieldError("status", "must be one of pending, upheld, revised, reinvestigate"))
        }
        if let kind, SpotCheckKind(rawValue: kind) == nil { errors.append(FieldError("kind", "must be not_liable or satisfaction")) }
        try NULCharacter.refuse(parameter: "period", period)
        if let period, period.count > 32 { errors.append(FieldError("period", "is not a period (2026-11, 2026-Q4, 2026)")) }
        if !errors.isEmpty { throw CaseRefusal.invalid(errors).problem }
        return try await scoped(context) { connection, _ in
            var binds = PostgresBindings()
            binds.append(status ?? "")
            binds.append(kind ?? "")
            binds.append(period ?? "")
            return SpotCheckList(items: try await readSpotChecks("($1 = '' OR s.status = $1) AND ($2 = '' OR s.kind = $2) AND ($3 = '' OR s.period = $3) ORDER BY s.period DESC, c.number LIMIT 500",
                                                                 binds, on: connection, logger: context.logger))
        }
    }

    func draw(_ body: DrawRequest, _ context: RedressRequestContext) async throws -> (DrawView, Bool) {
        let caller = try context.caller()
        var errors: [FieldError] = []
        let kind = body.kind.flatMap(SpotCheckKind.init(rawValue:))
        if kind == nil { errors.append(FieldError("kind", "must be not_liable (a province's) or satisfaction (HQ's)")) }
        let period = body.period.flatMap(ReportPeriod.parse)
        if !(body.period.map(ReportPeriod.isShaped) ?? false) {
            errors.append(FieldError("period", "must be a month (2026-11), a quarter (2026-Q4), a year (2026) or days (2026-11-01..2026-11-15)"))
        }
        if !errors.isEmpty { throw CaseRefusal.invalid(errors).problem }
        // The right shape, but no real period (a 30 February, days running backwards, more than ten years).
        if period == nil { throw CaseRefusal.inconsistent([FieldError("period", "'\(body.period!)' names no period: check the dates")]).problem }
        try Self.refuseUnless(caller.role == .supervisor || caller.role == .admin, "a spot-check is drawn by a supervisor of the province (or HQ, for satisfaction)")
        return try await scoped(context) { connection, _ in
            guard let (level, _) = try await Self.level(of: caller.unit, on: connection, logger: context.logger) else { throw CaseRefusal.notFound(caller.unit) }
            if let why = SpotChecks.refusal(kind: kind!, level: level) { throw CaseRefusal.forbidden(why) }
            let (draw, created) = try await SpotChecks.draw(kind: kind!, unit: caller.unit, period: period!, by: Actor(kind: .staff, id: caller.subject),
                                                            policy: spotCheckPolicy, on: connection, logger: context.logger)
            var binds = PostgresBindings()
            binds.append(kind!.rawValue)
            binds.append(caller.unit)
            binds.append(period!.label)
            let items = try await readSpotChecks("s.kind = $1 AND s.unit = $2 AND s.period = $3 ORDER BY c.number", binds, on: connection, logger: context.logger)
            return (DrawView(draw: draw, items: items), created)
        }
    }

    func verdict(id: UUID, _ body: VerdictRequest, _ context: RedressRequestContext) async throws -> SpotCheckView {
        let caller = try context.caller()
        var errors: [FieldError] = []
        if body.version == nil { errors.append(FieldError("version", "is required: send the spot-check's version you saw")) }
        let verdict = body.verdict.flatMap(SpotCheckVerdict.init(rawValue:))
        if verdict == nil { errors.append(FieldError("verdict", "must be upheld, revised or reinvestigate")) }
        if let note = body.note, note.count > 4000 { errors.append(FieldError("note", "is longer than 4000 characters")) }
        if verdict == .revised {
            Self.need(body.liability, "liability", max: 32, into: &errors)
            Self.need(body.responsibleLink, "responsibleLink", max: 64, into: &errors)
            Self.need(body.causeCode, "causeCode", max: 64, into: &errors)
        }
        if verdict == .reinvestigate { Self.need(body.note, "note", max: 4000, into: &errors) }
        if !errors.isEmpty { throw CaseRefusal.invalid(errors).problem }
        return try await scoped(context) { connection, _ in
            var binds = PostgresBindings()
            binds.append(id)
            guard let check = try await readSpotChecks("s.id = $1 FOR UPDATE OF s", binds, on: connection, logger: context.logger).first else {
                throw Problem(status: .notFound, title: "No such spot-check", detail: "no spot-check '\(id)' is visible to you; GET /v1/spot-checks lists them")
            }
            try Self.refuseUnless(caller.role == .supervisor || caller.role == .admin,
                                  "the verdict is given by a supervisor of \(check.unit), the unit that drew the spot-check, or of a unit above it")
            guard check.status == "pending" else { throw CaseRefusal.conflict("the spot-check already has its verdict (\(check.status))") }
            guard body.version == check.version else { throw CaseRefusal.conflict("the spot-check is at version \(check.version), you sent \(body.version!): reload it") }
            guard let row = try await workflow.lock(key: check.caseId.uuidString, on: connection, logger: context.logger) else { throw CaseRefusal.notFound(check.number) }
            var payload = ["spotCheck": id.uuidString.lowercased(), "verdict": verdict!.rawValue]
            var review: ComplaintReference?
            var liability: Liability?
            switch verdict! {
            case .upheld:
                break
            case .revised:
                let problems = workflow.taxonomy.problems(liability: body.liability, responsibleLink: body.responsibleLink, causeCode: body.causeCode)
                guard problems.isEmpty, let ruled = body.liability.flatMap(Liability.init(rawValue:)) else {
                    throw CaseRefusal.unprocessable(problems.joined(separator: "; ") + " (GET /v1/closure-taxonomy lists them)")
                }
                liability = ruled
                // The revision replaces the closure's ruling and stays in the history beside the first one.
                for try await (l, link, cause) in try await connection.query("""
                    SELECT liability, responsible_link, cause_code FROM complaints WHERE id = \(row.id)
                    """, logger: context.logger).decode((String?, String?, String?).self) {
                    payload["previousLiability"] = l ?? ""
                    payload["previousResponsibleLink"] = link ?? ""
                    payload["previousCauseCode"] = cause ?? ""
                }
                payload["liability"] = ruled.rawValue
                payload["responsibleLink"] = body.responsibleLink!
                payload["causeCode"] = body.causeCode!
                try await connection.query("""
                    UPDATE complaints SET liability = \(ruled.rawValue), responsible_link = \(body.responsibleLink!), cause_code = \(body.causeCode!),
                        version = version + 1, updated_at = now() WHERE id = \(row.id)
                    """, logger: context.logger)
            case .reinvestigate:
                review = try await openReview(row, reason: PersonalData.scrub(body.note!), caller: caller, on: connection, logger: context.logger)
                payload["reviewCase"] = review!.number
            }
            try await connection.query("""
                UPDATE spot_checks SET status = \(verdict!.rawValue), note = \(body.note.map(PersonalData.scrub)), liability = \(liability?.rawValue),
                    responsible_link = \(verdict == .revised ? body.responsibleLink : nil), cause_code = \(verdict == .revised ? body.causeCode : nil),
                    review_complaint_id = \(review?.id), decided_by = \(caller.subject), decided_at = now(), version = version + 1
                WHERE id = \(id)
                """, logger: context.logger)
            try await Self.history(row.id, status: row.status.rawValue, action: verdict == .revised ? "revise_closure" : "spot_check_verdict", caller: caller,
                                   reason: body.note.map(PersonalData.scrub), payload: payload, on: connection, logger: context.logger)
            if let owner = row.assignee {
                try await InboxNote.record([InboxNote(complaintID: row.id, recipient: "staff:" + owner, template: "spotcheck.decided.owner")],
                                           on: connection, logger: context.logger)
            }
            try await Outbox.append([try OutboxEntry(EventEnvelope(complaintId: row.id, orgUnit: row.handlingUnit, actor: Actor(kind: .staff, id: caller.subject),
                payload: SpotCheckDecided(number: row.number, spotCheckId: id, kind: SpotCheckKind(rawValue: check.kind) ?? .notLiable, drawingUnit: check.unit,
                                          handlingUnit: check.handlingUnit, verdict: verdict!, liability: liability,
                                          responsibleLink: verdict == .revised ? body.responsibleLink : nil,
                                          causeCode: verdict == .revised ? body.causeCode : nil, reviewCase: review)))], on: connection, logger: context.logger)
            return try await readSpotChecks("s.id = $1", binds, on: connection, logger: context.logger)[0]
        }
    }

    /// 重新调查: a review case linked to the drawn one, handled again at its original unit. It is a new
    /// case (number `-S<n>`) starting in `reopened`; `case.transferred` to that unit lets routing name its owner.
    func openReview(_ row: CaseRow, reason: String, caller: Identity, on connection: PostgresConnection, logger: Logger) async throws -> ComplaintReference {
        let id = UUID()
        let number = try await CaseWorkflow.insertLinkedCase(of: row.id, id: id, suffix: "S", now: Date(), on: connection, logger: logger)
        let eventID = UUID()
        try await Self.history(id, status: CaseStatus.closed.rawValue, to: CaseStatus.reopened.rawValue, action: "reinvestigate", caller: caller,
                               reason: reason, payload: ["reviewOf": row.number], eventID: eventID, on: connection, logger: logger)
        let transition = CaseTransition(number: number, fromStatus: .closed, toStatus: .reopened, handlingUnit: row.handlingUnit, assignee: nil,
                                        reason: "spot-check: investigate again", caseVersion: 1, action: .transfer)
        try await Outbox.append([try OutboxEntry(EventEnvelope(id: eventID, complaintId: id, orgUnit: row.handlingUnit, actor: Actor(kind: .staff, id: caller.subject),
                                                               payload: CaseTransferred(transition: transition, targetUnit: row.handlingUnit)))],
                                on: connection, logger: logger)
        return ComplaintReference(id: id, number: number)
    }

    // MARK: 整改 — corrective actions

    static let correctiveSelect = """
        SELECT a.id, a.source, c.number, a.spot_check_id, a.owner_unit, a.responsible, a.action, a.due_at, a.status, a.created_by, a.created_at,
               a.done_note, a.done_by, a.done_at, a.verified_by, a.verified_at, a.version
        FROM corrective_actions a LEFT JOIN complaints c ON c.id = a.complaint_id
        """

    func readCorrective(_ condition: String, _ binds: PostgresBindings, on connection: PostgresConnection, logger: Logger) async throws -> [CorrectiveView] {
        var items: [CorrectiveView] = []
        let now = Date()
        for try await row in try await connection.query(PostgresQuery(unsafeSQL: Self.correctiveSelect + " WHERE " + condition, binds: binds), logger: logger) {
            let r = row.makeRandomAccess()
            let due = try r["due_at"].decode(Date.self), status = try r["status"].decode(String.self)
            items.append(CorrectiveView(
                id: try r["id"].decode(UUID.self), source: try r["source"].decode(String.self), caseNumber: try r["number"].decode(String?.self),
                spotCheck: try r["spot_check_id"].decode(UUID?.self), ownerUnit: try r["owner_unit"].decode(String.self),
                responsible: try r["responsible"].decode(String.self), action: try r["action"].decode(String.self), dueAt: Timestamp.format(due),
                status: status, overdue: status == "open" && due <= now, createdBy: try r["created_by"].decode(String.self),
                createdAt: Timestamp.format(try r["created_at"].decode(Date.self)), doneNote: try r["done_note"].decode(String?.self),
                doneBy: try r["done_by"].decode(String?.self), doneAt: try r["done_at"].decode(Date?.self).map(Timestamp.format),
                verifiedBy: try r["verified_by"].decode(String?.self), verifiedAt: try r["verified_at"].decode(Date?.self).map(Timestamp.format),
                version: try r["version"].decode(Int.self)))
        }
        return items
    }

    func listCorrective(_ request: Request, _ context: RedressRequestContext) async throws -> CorrectiveList {
        let caller = try context.caller()
        try Self.refuseUnless(caller.role != .salesLiaison, "corrective actions are read by the units' staff, not by sales liaisons")
        let status = request.uri.queryParameters.get("status")
        if let status, !["open", "done", "verified"].contains(status) { throw CaseRefusal.invalid([FieldError("status", "must be open, done or verified")]).problem }
        return try await scoped(context) { connection, _ in
            var binds = PostgresBindings()
            binds.append(status ?? "")
            return CorrectiveList(items: try await readCorrective("($1 = '' OR a.status = $1) ORDER BY a.status, a.due_at LIMIT 500", binds,
                                                                  on: connection, logger: context.logger))
        }
    }

    func openCorrective(_ body: CorrectiveRequest, _ context: RedressRequestContext) async throws -> CorrectiveView {
        let caller = try context.caller()
        var errors: [FieldError] = []
        let sources = ["case", "spot_check", "review"]
        if !sources.contains(body.source ?? "") { errors.append(FieldError("source", "must be case, spot_check or review")) }
        if body.source == "spot_check", body.spotCheck == nil { errors.append(FieldError("spotCheck", "is required when the source is a spot-check")) }
        if body.source == "case" || body.source == "review", (body.caseKey ?? "").isEmpty { errors.append(FieldError("caseKey", "is required when the source is a case or a review")) }
        Self.need(body.ownerUnit, "ownerUnit", max: 32, into: &errors)
        Self.need(body.responsible, "responsible", max: 64, into: &errors)
        Self.need(body.action, "action", max: 4000, into: &errors)
        if body.source != "spot_check", body.spotCheck != nil { errors.append(FieldError("spotCheck", "is only for a corrective action from a spot-check (source spot_check)")) }
        let due = body.dueAt.flatMap(Timestamp.parseStorable)
        if due == nil { errors.append(FieldError("dueAt", "is required: an RFC 3339 date-time between 1970 and 9999")) }
        if !errors.isEmpty { throw CaseRefusal.invalid(errors).problem }
        // Well-formed, but a deadline already passed is no deadline.
        if due! <= Date() { throw CaseRefusal.inconsistent([FieldError("dueAt", "is in the past: give the date by which the change is made")]).problem }
        try Self.refuseUnless(caller.role == .supervisor || caller.role == .admin, "a corrective action is opened by a supervisor of the owner unit or a unit above it")
        return try await scoped(context) { connection, callerPath in
            guard let (_, ownerPath) = try await Self.level(of: body.ownerUnit!, on: connection, logger: context.logger) else {
                throw CaseRefusal.unknown([FieldError("ownerUnit", "'\(body.ownerUnit!)' is not a unit of the organisation")])
            }
            guard ownerPath == callerPath || ownerPath.hasPrefix(callerPath + "/") else {
                throw CaseRefusal.forbidden("\(body.ownerUnit!) is outside your unit's subtree: a supervisor of \(body.ownerUnit!) or a unit above it opens its corrective actions")
            }
            var responsibleUnit: String?
            for try await unit in try await connection.query("SELECT org_unit FROM staff WHERE id = \(body.responsible!) AND active", logger: context.logger)
                .decode(String.self) { responsibleUnit = unit }
            guard responsibleUnit == body.ownerUnit else {
                throw CaseRefusal.unknown([FieldError("responsible", "'\(body.responsible!)' is not an active staff member of \(body.ownerUnit!)")])
            }
            var complaint: UUID?
            if let key = body.caseKey, !key.isEmpty {
                guard let row = try await workflow.lock(key: key, on: connection, logger: context.logger) else {
                    throw CaseRefusal.unknown([FieldError("caseKey", "no case '\(key)' is visible to you")])
                }
                complaint = row.id
            }
            if let check = body.spotCheck {
                var binds = PostgresBindings()
                binds.append(check)
                guard let found = try await readSpotChecks("s.id = $1", binds, on: connection, logger: context.logger).first else {
                    throw CaseRefusal.unknown([FieldError("spotCheck", "no spot-check '\(check)' is visible to you")])
                }
                complaint = complaint ?? found.caseId
            }
            let id = UUID()
            try await connection.query("""
                INSERT INTO corrective_actions (id, source, complaint_id, spot_check_id, owner_unit, unit_path, responsible, action, due_at, created_by)
                VALUES (\(id), \(body.source!), \(complaint), \(body.spotCheck), \(body.ownerUnit!), \(ownerPath), \(body.responsible!),
                        \(PersonalData.scrub(body.action!)), \(due!), \(caller.subject))
                """, logger: context.logger)
            if let complaint {
                var status = ""
                for try await s in try await connection.query("SELECT status FROM complaints WHERE id = \(complaint)", logger: context.logger).decode(String.self) { status = s }
                try await Self.history(complaint, status: status, action: "open_corrective_action", caller: caller, reason: PersonalData.scrub(body.action!),
                                       payload: ["correctiveAction": id.uuidString.lowercased(), "ownerUnit": body.ownerUnit!, "responsible": body.responsible!,
                                                 "dueAt": Timestamp.format(due!)], on: connection, logger: context.logger)
            }
            try await InboxNote.record([InboxNote(complaintID: complaint, recipient: "staff:" + body.responsible!, template: "corrective.opened.responsible",
                                                  reference: complaint == nil ? "corrective:\(id.uuidString.lowercased())" : nil)], on: connection, logger: context.logger)
            var binds = PostgresBindings()
            binds.append(id)
            return try await readCorrective("a.id = $1", binds, on: connection, logger: context.logger)[0]
        }
    }

    func progressCorrective(id: UUID, to next: String, _ body: CorrectiveChange, _ context: RedressRequestContext) async throws -> CorrectiveView {
        let caller = try context.caller()
        _ = try Self.version(body.version)
        if next == "done" {
            var errors: [FieldError] = []
            Self.need(body.note, "note", max: 4000, into: &errors)
            if !errors.isEmpty { throw CaseRefusal.invalid(errors).problem }
        } else if let note = body.note, note.count > 4000 {
            throw CaseRefusal.invalid([FieldError("note", "is longer than 4000 characters")]).problem
        }
        return try await scoped(context) { connection, callerPath in
            var binds = PostgresBindings()
            binds.append(id)
            guard let action = try await readCorrective("a.id = $1 FOR UPDATE OF a", binds, on: connection, logger: context.logger).first else {
                throw Problem(status: .notFound, title: "No such corrective action", detail: "no corrective action '\(id)' is visible to you")
            }
            guard let (_, ownerPath) = try await Self.level(of: action.ownerUnit, on: connection, logger: context.logger) else { throw CaseRefusal.notFound(action.ownerUnit) }
            let supervisor = caller.role == .supervisor || caller.role == .admin
            if next == "done" {
                try Self.refuseUnless(caller.subject == action.responsible || supervisor,
                                      "a corrective action is reported done by its responsible person (\(action.responsible)) or a supervisor")
                guard action.status == "open" else { throw CaseRefusal.conflict("the corrective action is already \(action.status)") }
            } else {
                // Verified by the level above the owner (or by whoever opened it): not by the unit that made the change.
                let above = callerPath != ownerPath && ownerPath.hasPrefix(callerPath + "/")
                try Self.refuseUnless(supervisor && (above || caller.subject == action.createdBy),
                                      "a corrective action is verified by a supervisor of a unit above \(action.ownerUnit), or by \(action.createdBy) who opened it")
                guard action.status == "done" else {
                    throw CaseRefusal.conflict(action.status == "open" ? "the corrective action is not done yet: its responsible person reports it done first"
                                                                      : "the corrective action is already verified")
                }
            }
            guard body.version == action.version else { throw CaseRefusal.conflict("the corrective action is at version \(action.version), you sent \(body.version!): reload it") }
            let note = body.note.map(PersonalData.scrub)
            if next == "done" {
                try await connection.query("""
                    UPDATE corrective_actions SET status = 'done', done_note = \(note), done_by = \(caller.subject), done_at = now(), version = version + 1 WHERE id = \(id)
                    """, logger: context.logger)
            } else {
                try await connection.query("""
                    UPDATE corrective_actions SET status = 'verified', verified_by = \(caller.subject), verified_at = now(), version = version + 1 WHERE id = \(id)
                    """, logger: context.logger)
            }
            if let number = action.caseNumber {
                for try await (complaint, status) in try await connection.query("SELECT id, status FROM complaints WHERE number = \(number)", logger: context.logger)
                    .decode((UUID, String).self) {
                    try await Self.history(complaint, status: status, action: next == "done" ? "corrective_action_done" : "corrective_action_verified", caller: caller,
                                           reason: note, payload: ["correctiveAction": id.uuidString.lowercased()], on: connection, logger: context.logger)
                }
            }
            if next == "done" {
                try await InboxNote.record([InboxNote(complaintID: nil, recipient: "staff:" + action.createdBy, template: "corrective.done.creator",
                                                      reference: "corrective:\(id.uuidString.lowercased())")], on: connection, logger: context.logger)
            }
            return try await readCorrective("a.id = $1", binds, on: connection, logger: context.logger)[0]
        }
    }

    // MARK: 无理缠访备案 — the vexatious-complainant register

    static let registerSelect = """
        SELECT r.id, r.customer_key, r.unit, r.reasons, r.case_numbers, r.status, r.proposed_by, r.proposed_at, r.decided_by, r.decided_at, r.decision_note,
               r.review_at, r.version,
               (SELECT c.customer_name FROM complaints c WHERE c.customer_key = r.customer_key ORDER BY c.received_at DESC LIMIT 1) AS name,
               (SELECT c.customer_phone FROM complaints c WHERE c.customer_key = r.customer_key ORDER BY c.received_at DESC LIMIT 1) AS phone
        FROM vexatious_register r
        """

    /// Reads entries and puts each read on record (who, role, unit, when), like a personal-data read.
    func readRegister(_ condition: String, _ binds: PostgresBindings, caller: Identity, audit action: String, on connection: PostgresConnection,
                      logger: Logger) async throws -> [RegisterEntryView] {
        var items: [RegisterEntryView] = []
        for try await row in try await connection.query(PostgresQuery(unsafeSQL: Self.registerSelect + " WHERE " + condition, binds: binds), logger: logger) {
            let r = row.makeRandomAccess()
            // Identities masked for everyone: the register names a customer, it does not disclose them.
            items.append(RegisterEntryView(
                id: try r["id"].decode(UUID.self),
                customer: .init(name: PersonalData.maskName(try r["name"].decode(String?.self) ?? ""), phone: PersonalData.maskPhone(try r["phone"].decode(String?.self) ?? ""),
                                key: try r["customer_key"].decode(String.self)),
                unit: try r["unit"].decode(String.self), reasons: try r["reasons"].decode(String.self), caseNumbers: try r["case_numbers"].decode([String].self),
                status: try r["status"].decode(String.self), proposedBy: try r["proposed_by"].decode(String.self),
                proposedAt: Timestamp.format(try r["proposed_at"].decode(Date.self)), decidedBy: try r["decided_by"].decode(String?.self),
                decidedAt: try r["decided_at"].decode(Date?.self).map(Timestamp.format), decisionNote: try r["decision_note"].decode(String?.self),
                reviewAt: try r["review_at"].decode(Date?.self).map(Timestamp.format), version: try r["version"].decode(Int.self)))
        }
        if !items.isEmpty {
            try await connection.query("""
                INSERT INTO register_reads (entry_id, actor, actor_role, actor_unit, action)
                SELECT id, \(caller.subject), \(caller.role.rawValue), \(caller.unit), \(action) FROM unnest(\(items.map(\.id))::uuid[]) AS t(id)
                """, logger: logger)
        }
        return items
    }

    func listRegister(_ request: Request, _ context: RedressRequestContext) async throws -> RegisterList {
        let caller = try context.caller()
        try Self.refuseUnless([.supervisor, .admin, .auditor, .salesLiaison].contains(caller.role),
                              "the register is read by supervisors, admins, auditors and sales liaisons")
        let status = request.uri.queryParameters.get("status")
        if let status, RegisterStatus(rawValue: status) == nil {
            throw CaseRefusal.invalid([FieldError("status", "must be one of \(RegisterStatus.allCases.map(\.rawValue).joined(separator: ", "))")]).problem
        }
        return try await scoped(context) { connection, _ in
            var binds = PostgresBindings()
            binds.append(status ?? "")
            return RegisterList(items: try await readRegister("($1 = '' OR r.status = $1) ORDER BY r.proposed_at DESC LIMIT 500", binds, caller: caller,
                                                              audit: "read", on: connection, logger: context.logger))
        }
    }

    func propose(_ body: RegisterProposal, _ context: RedressRequestContext) async throws -> RegisterEntryView {
        let caller = try context.caller()
        var errors: [FieldError] = []
        Self.need(body.reasons, "reasons", max: 4000, into: &errors)
        let numbers = Array(Set(body.caseNumbers ?? [])).sorted()
        if numbers.isEmpty { errors.append(FieldError("caseNumbers", "name the cases that show the behaviour (at least one)")) }
        if numbers.count > 50 || numbers.contains(where: { $0.count > 64 }) { errors.append(FieldError("caseNumbers", "at most 50 case numbers of at most 64 characters")) }
        if !errors.isEmpty { throw CaseRefusal.invalid(errors).problem }
        try Self.refuseUnless(caller.role == .supervisor, "an entry is proposed by a supervisor; a province supervisor then approves or rejects it")
        return try await scoped(context) { connection, path in
            var keys: [String: String] = [:]
            var latest: UUID?
            for try await (id, number, key) in try await connection.query("""
                SELECT id, number, customer_key FROM complaints WHERE number = ANY(\(numbers)::text[]) ORDER BY received_at
                """, logger: context.logger).decode((UUID, String, String).self) {
                keys[number] = key
                latest = id
            }
            let missing = numbers.filter { keys[$0] == nil }
            if !missing.isEmpty { throw CaseRefusal.unknown([FieldError("caseNumbers", "no case \(missing.joined(separator: ", ")) is visible to you")]) }
            guard Set(keys.values).count == 1, let key = keys.values.first else {
                throw CaseRefusal.inconsistent([FieldError("caseNumbers", "the cases are not all the same customer's: an entry is about one customer")])
            }
            let id = UUID()
            let inserted = try await connection.query("""
                INSERT INTO vexatious_register (id, customer_key, unit, unit_path, reasons, case_numbers, proposed_by)
                VALUES (\(id), \(key), \(caller.unit), \(path), \(PersonalData.scrub(body.reasons!)), \(numbers), \(caller.subject))
                ON CONFLICT DO NOTHING RETURNING 1
                """, logger: context.logger)
            var created = false
            for try await _ in inserted.decode(Int.self) { created = true }
            guard created else { throw CaseRefusal.conflict("the customer already has an entry proposed or approved: GET /v1/register shows it") }
            // The province (or HQ, for an entry proposed there) decides.
            let levels = path.split(separator: "/").map(String.init)
            let decider = levels.count >= 2 ? levels[1] : levels[0]
            try await InboxNote.record([InboxNote(complaintID: nil, recipient: "supervisors:" + decider, template: "register.proposed.supervisors",
                                                  reference: "register:\(id.uuidString.lowercased())")], on: connection, logger: context.logger)
            try await Outbox.append([try OutboxEntry(EventEnvelope(complaintId: latest!, orgUnit: caller.unit, actor: Actor(kind: .staff, id: caller.subject),
                payload: RegisterChanged(entryId: id, customerKey: key, status: .proposed, change: "propose", unit: caller.unit, reviewAt: nil)))],
                                    on: connection, logger: context.logger)
            var binds = PostgresBindings()
            binds.append(id)
            return try await readRegister("r.id = $1", binds, caller: caller, audit: "propose", on: connection, logger: context.logger)[0]
        }
    }

    /// How long an approved entry holds before it lapses unless renewed (`REDRESS_REGISTER_REVIEW_MONTHS`, 12).
    static let reviewMonths: Int = ProcessInfo.processInfo.environment["REDRESS_REGISTER_REVIEW_MONTHS"].flatMap(Int.init).map { min(60, max(1, $0)) } ?? 12

    func decide(id: UUID, _ body: RegisterDecision, _ context: RedressRequestContext) async throws -> RegisterEntryView {
        var errors: [FieldError] = []
        if body.version == nil { errors.append(FieldError("version", "is required: send the entry's version you saw")) }
        if !["approve", "reject"].contains(body.decision ?? "") { errors.append(FieldError("decision", "must be approve or reject")) }
        if body.decision == "reject" { Self.need(body.note, "note", max: 4000, into: &errors) }
        if let note = body.note, note.count > 4000 { errors.append(FieldError("note", "is longer than 4000 characters")) }
        if !errors.isEmpty { throw CaseRefusal.invalid(errors).problem }
        return try await changeEntry(id: id, body: body, context: context, expect: .proposed, change: body.decision!)
    }

    func renew(id: UUID, _ body: RegisterDecision, _ context: RedressRequestContext) async throws -> RegisterEntryView {
        _ = try Self.version(body.version)
        if let note = body.note, note.count > 4000 { throw CaseRefusal.invalid([FieldError("note", "is longer than 4000 characters")]).problem }
        return try await changeEntry(id: id, body: body, context: context, expect: .approved, change: "renew")
    }

    private func changeEntry(id: UUID, body: RegisterDecision, context: RedressRequestContext, expect: RegisterStatus, change: String) async throws -> RegisterEntryView {
        let caller = try context.caller()
        return try await scoped(context) { connection, _ in
            var binds = PostgresBindings()
            binds.append(id)
            guard let entry = try await readRegister("r.id = $1 FOR UPDATE OF r", binds, caller: caller, audit: "read", on: connection, logger: context.logger).first else {
                throw Problem(status: .notFound, title: "No such register entry", detail: "no register entry '\(id)' is visible to you; GET /v1/register lists them")
            }
            let level = try await Self.level(of: caller.unit, on: connection, logger: context.logger)?.0
            try Self.refuseUnless(caller.role == .supervisor && (level == .province || level == .hq),
                                  "a register entry is approved, rejected or renewed by a supervisor of the province (or HQ) above \(entry.unit)")
            guard entry.status == expect.rawValue else {
                throw CaseRefusal.conflict(expect == .proposed ? "the entry is \(entry.status), not awaiting a decision" : "only an approved entry is renewed; this one is \(entry.status)")
            }
            guard body.version == entry.version else { throw CaseRefusal.conflict("the entry is at version \(entry.version), you sent \(body.version!): reload it") }
            let status: RegisterStatus = change == "reject" ? .rejected : .approved
            var reviewAt: Date?
            if status == .approved {
                var calendar = Calendar(identifier: .gregorian)
                calendar.timeZone = TimeZone(identifier: ReportRollup.zone)!
                reviewAt = calendar.date(byAdding: .month, value: Self.reviewMonths, to: Date())
            }
            try await connection.query("""
                UPDATE vexatious_register SET status = \(status.rawValue), decided_by = \(caller.subject), decided_at = now(),
                    decision_note = COALESCE(\(body.note.map(PersonalData.scrub)), decision_note), review_at = \(reviewAt), version = version + 1
                WHERE id = \(id)
                """, logger: context.logger)
            try await InboxNote.record([InboxNote(complaintID: nil, recipient: "staff:" + entry.proposedBy, template: "register.\(change).proposer",
                                                  reference: "register:\(id.uuidString.lowercased())")], on: connection, logger: context.logger)
            if let latest = try await OversightDeadlines.latestCase(entry.caseNumbers, on: connection, logger: context.logger) {
                try await Outbox.append([try OutboxEntry(EventEnvelope(complaintId: latest, orgUnit: entry.unit, actor: Actor(kind: .staff, id: caller.subject),
                    payload: RegisterChanged(entryId: id, customerKey: entry.customer.key, status: status, change: change, unit: entry.unit, reviewAt: reviewAt)))],
                                        on: connection, logger: context.logger)
            }
            return try await readRegister("r.id = $1", binds, caller: caller, audit: change, on: connection, logger: context.logger)[0]
        }
    }
}
