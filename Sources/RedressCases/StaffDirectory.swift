import Foundation
import Hummingbird
import Logging
import Metrics
import PostgresNIO
import RedressContracts
import RedressDomain
import RedressServiceKit
import RedressStore

/// A staff member as administrators read them.
struct StaffView: ResponseEncodable, Codable, Sendable {
    var id: String
    var name: String
    var unit: String
    var role: String
    var skills: [String]
    var capacity: Int
    var openCases: Int
    var active: Bool
    var available: Bool
    var leaveFrom: String?
    var leaveTo: String?
    /// A coordinator's department (协调员); nobody else has one.
    var department: String?
}

struct StaffList: ResponseEncodable, Sendable {
    var items: [StaffView]
}

/// What an administrator may send to add (`POST`, every field but the flags required) or change
/// (`PATCH`, any field) a staff member. An empty `leaveFrom`/`leaveTo` clears it.
struct StaffRequest: Codable, Sendable {
    var id: String?
    var name: String?
    var unit: String?
    var role: String?
    var skills: [String]?
    var capacity: Int?
    var active: Bool?
    var available: Bool?
    var leaveFrom: String?
    var leaveTo: String?
    /// Required for a coordinator: a department of the unit (GET /v1/departments?unit=); "" clears it.
    var department: String?
}

/// Who changes the staff directory: an admin anywhere, a supervisor within their subtree (agents and
/// committee members only), or an operator with `redressctl`.
struct StaffEditor: Sendable {
    var subject: String
    var role: String
    /// The editor's unit path; nil for an operator (the whole organisation).
    var unitPath: String?
}

/// The staff directory (人员管理): one place for listing, adding and changing staff, used by the staff
/// API and `redressctl staff`. Every change is in the append-only `staff_events`; a deactivated
/// agent's open cases go to new owners picked by routing's fair-assignment rule, keeping their state.
struct StaffDirectory: Sendable {
    let workflow: CaseWorkflow

    static let roles = ["agent", "supervisor", "committee", "auditor", "admin", "coordinator", "sales_liaison"]
    /// Whose joining, leaving or moving the level above's customer-service supervisors are told of
    /// (the rules' report of handling staff changes within seven working days).
    static let reportedRoles: Set<String> = ["agent", "coordinator"]
    /// The states in which a case has an owner's work pending and may be reassigned; an escalated or
    /// transferred case is already on its way to a new owner through routing.
    static let handedOnStatuses = CaseStatus.allCases.filter { CaseStateMachine.allowedActions(from: $0).contains(.reassign) }.map(\.rawValue)
    /// Roles a supervisor may give; the others are an admin's to give.
    static let supervisorGivesRoles: Set<String> = ["agent", "committee"]
    /// Staff ids: 2–32 capital letters, digits and dashes, starting with a letter or digit (GD-SZ-AGE04).
    static func isStaffID(_ id: String) -> Bool {
        let bytes = Array(id.utf8)
        func allowed(_ b: UInt8) -> Bool { (b >= 65 && b <= 90) || (b >= 48 && b <= 57) }
        return (2...32).contains(bytes.count) && allowed(bytes[0]) && bytes.allSatisfy { allowed($0) || $0 == 45 }
    }

    static let columns = "s.id, s.name, s.org_unit, s.role, s.skills, s.capacity, s.open_cases, s.active, s.available, s.leave_from, s.leave_to, s.department"

    static func view(_ s: PostgresRandomAccessRow) throws -> StaffView {
        StaffView(id: try s["id"].decode(String.self), name: try s["name"].decode(String.self), unit: try s["org_unit"].decode(String.self),
                  role: try s["role"].decode(String.self), skills: try s["skills"].decode([String].self), capacity: try s["capacity"].decode(Int.self),
                  openCases: try s["open_cases"].decode(Int.self), active: try s["active"].decode(Bool.self),
                  available: try s["available"].decode(Bool.self), leaveFrom: try s["leave_from"].decode(Date?.self).map(Timestamp.format),
                  leaveTo: try s["leave_to"].decode(Date?.self).map(Timestamp.format), department: try s["department"].decode(String?.self))
    }

    func list(by editor: StaffEditor, unit: String?, on connection: PostgresConnection, logger: Logger) async throws -> [StaffView] {
        let path = editor.unitPath ?? ""
        var items: [StaffView] = []
        for try await row in try await connection.query("""
            SELECT \(unescaped: Self.columns) FROM staff s JOIN org_units u ON u.code = s.org_unit
            WHERE (\(path) = '' OR u.path = \(path) OR u.path LIKE \(path) || '/%') AND (\(unit ?? "") = '' OR s.org_unit = \(unit ?? ""))
            ORDER BY u.path, s.role, s.id
            """, logger: logger) {
            items.append(try Self.view(row.makeRandomAccess()))
        }
        return items
    }

    func get(_ id: String, on connection: PostgresConnection, logger: Logger) async throws -> (view: StaffView, path: String)? {
        for try await row in try await connection.query("""
            SELECT \(unescaped: Self.columns), u.path FROM staff s JOIN org_units u ON u.code = s.org_unit WHERE s.id = \(id) FOR NO KEY UPDATE OF s
            """, logger: logger) {
            let r = row.makeRandomAccess()
            return (try Self.view(r), try r["path"].decode(String.self))
        }
        return nil
    }

    /// The path of `unit`, or nil when it is not a unit.
    func path(of unit: String, on connection: PostgresConnection, logger: Logger) async throws -> String? {
        for try await path in try await connection.query("SELECT path FROM org_units WHERE code = \(unit)", logger: logger).decode(String.self) { return path }
        return nil
    }

    /// Malformed values (400), unknown ones (422) and values that do not fit together (422), all at once.
    static func problems(_ request: StaffRequest, adding: Bool) -> (malformed: [FieldError], unknown: [FieldError], inconsistent: [FieldError]) {
        var malformed: [FieldError] = [], unknown: [FieldError] = [], inconsistent: [FieldError] = []
        if adding {
            if let id = request.id {
                if !isStaffID(id) { malformed.append(FieldError("id", "must be 2–32 capital letters, digits and dashes, e.g. GD-SZ-AGE04")) }
            } else {
                malformed.append(FieldError("id", "is required"))
            }
            for (value, field) in [(request.name, "name"), (request.unit, "unit"), (request.role, "role")] where value == nil {
                malformed.append(FieldError(field, "is required"))
            }
        }
        if let name = request.name, name.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty || name.count > 64 {
            malformed.append(FieldError("name", "must be 1 to 64 characters"))
        }
        if let capacity = request.capacity, !(1...500).contains(capacity) { malformed.append(FieldError("capacity", "must be 1 to 500 open cases")) }
        for (value, field) in [(request.leaveFrom, "leaveFrom"), (request.leaveTo, "leaveTo")] {
            if let value, !value.isEmpty, Timestamp.parseStorable(value) == nil {
                malformed.append(FieldError(field, "is not an RFC 3339 date-time between 1970 and 9999 (or \"\" to clear it)"))
            }
        }
        if let from = request.leaveFrom.flatMap(Timestamp.parse), let to = request.leaveTo.flatMap(Timestamp.parse), to <= from {
            inconsistent.append(FieldError("leaveTo", "must be after leaveFrom"))
        }
        if let department = request.department, !department.isEmpty, department.wholeMatch(of: /[a-z][a-z_]{1,31}/) == nil {
            malformed.append(FieldError("department", "is a department code such as claims or legal (GET /v1/departments lists them)"))
        }
        if let role = request.role, !roles.contains(role) { unknown.append(FieldError("role", "'\(role)' is not one of \(roles.joined(separator: ", "))")) }
        for skill in request.skills ?? [] where RedressDomain.Category(rawValue: skill) == nil {
            unknown.append(FieldError("skills", "'\(skill)' is not a category (\(RedressDomain.Category.allCases.map(\.rawValue).joined(separator: ", ")))"))
        }
        return (malformed, unknown, inconsistent)
    }

    /// Whether `editor` may manage staff of `path` with `role`.
    static func refusal(_ editor: StaffEditor, path: String, role: String) -> CaseRefusal? {
        guard let editorPath = editor.unitPath else { return nil }
        switch editor.role {
        case "admin":
            return nil
        case "supervisor":
            guard path == editorPath || path.hasPrefix(editorPath + "/") else {
                return .forbidden("a supervisor manages the staff of their own unit and below only")
            }
            guard supervisorGivesRoles.contains(role) else {
                return .forbidden("a supervisor manages agents and committee members; '\(role)' is an admin's to give or change")
            }
            return nil
        default:
            return .forbidden("only admins and supervisors manage staff")
        }
    }

    func add(_ request: StaffRequest, by editor: StaffEditor, on connection: PostgresConnection, logger: Logger) async throws -> StaffView {
        let (malformed, unknown, inconsistent) = Self.problems(request, adding: true)
        if !malformed.isEmpty { throw CaseRefusal.invalid(malformed) }
        if !inconsistent.isEmpty { throw CaseRefusal.inconsistent(inconsistent) }
        var unknownFields = unknown
        let unitPath = try await path(of: request.unit!, on: connection, logger: logger)
        if unitPath == nil { unknownFields.append(FieldError("unit", "'\(request.unit!)' is not a unit of the organisation")) }
        if !unknownFields.isEmpty { throw CaseRefusal.unknown(unknownFields) }
        if let refusal = Self.refusal(editor, path: unitPath!, role: request.role!) { throw refusal }
        let department = try await checkDepartment(role: request.role!, unit: request.unit!, department: request.department.flatMap { $0.isEmpty ? nil : $0 },
                                                   on: connection, logger: logger)
        let rows = try await connection.query("""
            INSERT INTO staff (id, name, org_unit, role, skills, capacity, available, leave_from, leave_to, department)
            VALUES (\(request.id!), \(request.name!), \(request.unit!), \(request.role!), \(request.skills ?? []), \(request.capacity ?? 20),
                    \(request.available ?? true), \(request.leaveFrom.flatMap(Timestamp.parse)), \(request.leaveTo.flatMap(Timestamp.parse)), \(department))
            ON CONFLICT (id) DO NOTHING RETURNING id
            """, logger: logger)
        var inserted = false
        for try await _ in rows.decode(String.self) { inserted = true }
        guard inserted else { throw CaseRefusal.conflict("staff id \(request.id!) is taken: choose another id (ids are never reused)") }
        try await record(request.id!, action: "added", changes: Self.changes(request), by: editor, on: connection, logger: logger)
        if Self.reportedRoles.contains(request.role!) {
            try await reportUp(request.id!, change: "joined", units: [request.unit!], on: connection, logger: logger)
        }
        return try await get(request.id!, on: connection, logger: logger)!.view
    }

    /// Changes a staff member. Deactivating an agent sends their open cases to new owners.
    func change(_ id: String, _ request: StaffRequest, by editor: StaffEditor, on connection: PostgresConnection, logger: Logger) async throws -> StaffView {
        let (malformed, unknown, inconsistent) = Self.problems(request, adding: false)
        if !malformed.isEmpty { throw CaseRefusal.invalid(malformed) }
        if !inconsistent.isEmpty { throw CaseRefusal.inconsistent(inconsistent) }
        var unknownFields = unknown
        var newPath: String?
        if let unit = request.unit {
            newPath = try await path(of: unit, on: connection, logger: logger)
            if newPath == nil { unknownFields.append(FieldError("unit", "'\(unit)' is not a unit of the organisation")) }
        }
        if !unknownFields.isEmpty { throw CaseRefusal.unknown(unknownFields) }
        guard let (current, currentPath) = try await get(id, on: connection, logger: logger) else { throw CaseRefusal.noStaff(id) }
        // Both where they are and where they go must be within the editor's reach, in both roles.
        if let refusal = Self.refusal(editor, path: currentPath, role: current.role) { throw refusal }
        if let refusal = Self.refusal(editor, path: newPath ?? currentPath, role: request.role ?? current.role) { throw refusal }
        let role = request.role ?? current.role, unit = request.unit ?? current.unit
        let department = try await checkDepartment(role: role, unit: unit,
                                                   department: request.department.map { $0.isEmpty ? nil : $0 } ?? (role == "coordinator" ? current.department : nil),
                                                   on: connection, logger: logger)
        func leave(_ text: String?, _ now: String?) -> Date? {
            guard let text else { return now.flatMap(Timestamp.parse) }
            return text.isEmpty ? nil : Timestamp.parseStorable(text)
        }
        try await connection.query("""
            UPDATE staff SET name = \(request.name ?? current.name), org_unit = \(request.unit ?? current.unit), role = \(request.role ?? current.role),
                skills = \(request.skills ?? current.skills), capacity = \(request.capacity ?? current.capacity),
                active = \(request.active ?? current.active), available = \(request.available ?? current.available),
                leave_from = \(leave(request.leaveFrom, current.leaveFrom)), leave_to = \(leave(request.leaveTo, current.leaveTo)),
                department = \(department)
            WHERE id = \(id)
            """, logger: logger)
        let deactivated = current.active && request.active == false
        let action = deactivated ? "deactivated" : (!current.active && request.active == true ? "reactivated" : "changed")
        try await record(id, action: action, changes: Self.changes(request), by: editor, on: connection, logger: logger)
        if deactivated { try await releaseCases(of: id, on: connection, logger: logger) }
        if Self.reportedRoles.contains(current.role) || Self.reportedRoles.contains(role) {
            if deactivated {
                try await reportUp(id, change: "left", units: [current.unit], on: connection, logger: logger)
            } else if !current.active && request.active == true {
                try await reportUp(id, change: "joined", units: [unit], on: connection, logger: logger)
            } else if unit != current.unit || Self.reportedRoles.contains(current.role) != Self.reportedRoles.contains(role) {
                try await reportUp(id, change: "moved", units: [current.unit, unit], on: connection, logger: logger)
            }
        }
        return try await get(id, on: connection, logger: logger)!.view
    }

    /// A leaver's open cases: each to the least loaded eligible agent of its handling unit (routing's
    /// rule: skill, capacity, no conflict of interest), its state kept; with nobody eligible, to the
    /// unit's supervisor queue, and its supervisors are alerted.
    func releaseCases(of leaver: String, on connection: PostgresConnection, logger: Logger) async throws {
        var cases: [(id: UUID, number: String, unit: String, category: String?, priority: String?, conflicts: Set<String>)] = []
        for try await row in try await connection.query("""
            SELECT c.id, c.number, c.handling_unit, c.category, c.priority, c.policy_agent, c.claim_handler
            FROM complaints c WHERE c.assignee = \(leaver) AND c.status = ANY(\(Self.handedOnStatuses)::text[]) ORDER BY c.promised_reply_by
            """, logger: logger) {
            let c = row.makeRandomAccess()
            cases.append((try c["id"].decode(UUID.self), try c["number"].decode(String.self), try c["handling_unit"].decode(String?.self) ?? "",
                          try c["category"].decode(String?.self), try c["priority"].decode(String?.self),
                          Set([try c["policy_agent"].decode(String?.self), try c["claim_handler"].decode(String?.self)].compactMap { $0 })))
        }
        guard !cases.isEmpty else { return }
        // The leaver is already inactive in this transaction, so the pool leaves them out.
        var pools = try await AgentPool.lock(units: Set(cases.map(\.unit)), on: connection, logger: logger)
        var clock = Date().timeIntervalSince1970
        var alerts: [OutboxEntry] = []
        let encoder = EventCoding.encoder()
        for item in cases {
            var pool = pools[item.unit] ?? []
            let pick = Assignment.pick(1, from: &pool, clock: &clock, skill: Assignment.requiredSkill(for: item.category), excluded: item.conflicts)[0]
            pools[item.unit] = pool
            var request = ActionRequest()
            request.assignee = pick ?? ""
            request.reason = "\(leaver) was deactivated"
            _ = try await workflow.apply(.reassign, key: item.id.uuidString, request: request, by: .service, on: connection, logger: logger)
            if pick == nil {
                alerts.append(try OutboxEntry(EventEnvelope(complaintId: item.id, orgUnit: item.unit, actor: CasesService.actor, payload: ComplaintUnassignable(
                    number: item.number, handlingUnit: item.unit, category: item.category.flatMap(RedressDomain.Category.init(rawValue:)) ?? .other,
                    priority: item.priority.flatMap(Priority.init(rawValue:)) ?? .normal,
                    reason: "its owner \(leaver) was deactivated and no active, available agent of \(item.unit) with the skill and capacity is free")), encoder: encoder))
            }
            Counter(label: "redress_case_released_total", dimensions: [("outcome", pick == nil ? "unassigned" : "reassigned")]).increment()
        }
        try await Outbox.append(alerts, on: connection, logger: logger)
    }

    /// A coordinator's department must be one of the unit's; nobody else has one.
    func checkDepartment(role: String, unit: String, department: String?, on connection: PostgresConnection, logger: Logger) async throws -> String? {
        guard role == "coordinator" else {
            if department != nil { throw CaseRefusal.inconsistent([FieldError("department", "is only for coordinators (role coordinator); leave it out")]) }
            return nil
        }
        guard let department else {
            throw CaseRefusal.invalid([FieldError("department", "is required for a coordinator: the department of \(unit) they answer inquiries for")])
        }
        var known = false
        for try await _ in try await connection.query("SELECT 1 FROM departments WHERE unit = \(unit) AND code = \(department)", logger: logger).decode(Int.self) {
            known = true
        }
        if !known { throw CaseRefusal.unknown([FieldError("department", "\(unit) has no department '\(department)' (GET /v1/departments?unit=\(unit) lists them)")]) }
        return department
    }

    /// 人员变动报告: the customer-service supervisors of the level above (HQ's own, for HQ) hear in
    /// their inbox that a handler or coordinator joined, left or moved.
    func reportUp(_ id: String, change: String, units: [String], on connection: PostgresConnection, logger: Logger) async throws {
        var recipients: [String] = []
        for unit in units {
            for try await (code, parent) in try await connection.query("SELECT code, parent_code FROM org_units WHERE code = \(unit)", logger: logger)
                .decode((String, String?).self) {
                let above = "supervisors:" + (parent ?? code)
                if !recipients.contains(above) { recipients.append(above) }
            }
        }
        try await InboxNote.record(recipients.map { InboxNote(complaintID: nil, recipient: $0, template: "staff.changed.supervisors", reference: "staff:\(id):\(change)") },
                                   on: connection, logger: logger)
    }

    static func changes(_ request: StaffRequest) -> [String: String] {
        var changes: [String: String] = [:]
        if let name = request.name { changes["name"] = name }
        if let unit = request.unit { changes["unit"] = unit }
        if let role = request.role { changes["role"] = role }
        if let skills = request.skills { changes["skills"] = skills.joined(separator: ",") }
        if let capacity = request.capacity { changes["capacity"] = String(capacity) }
        if let active = request.active { changes["active"] = String(active) }
        if let available = request.available { changes["available"] = String(available) }
        if let from = request.leaveFrom { changes["leaveFrom"] = from }
        if let to = request.leaveTo { changes["leaveTo"] = to }
        if let department = request.department { changes["department"] = department }
        return changes
    }

    func record(_ id: String, action: String, changes: [String: String], by editor: StaffEditor, on connection: PostgresConnection, logger: Logger) async throws {
        let json = String(decoding: try JSONEncoder().encode(changes), as: UTF8.self)
        try await connection.query("""
            INSERT INTO staff_events (staff_id, actor, actor_role, action, changes) VALUES (\(id), \(editor.subject), \(editor.role), \(action), \(json)::jsonb)
            """, logger: logger)
        Counter(label: "redress_staff_changes_total", dimensions: [("action", action)]).increment()
    }

    /// 工作量: each agent's open-case count recounted from the cases, so it cannot drift. The agents
    /// are locked first (as routing locks them to assign), so the count is consistent with assignments.
    static func recountWorkload(on postgres: PostgresClient, logger: Logger) async throws -> Int {
        try await postgres.withTransaction(logger: logger) { connection in
            for try await _ in try await connection.query("SELECT id FROM staff WHERE role = 'agent' ORDER BY id FOR NO KEY UPDATE", logger: logger)
                .decode(String.self) {}
            var fixed = 0
            for try await _ in try await connection.query("""
                UPDATE staff s SET open_cases = n.count
                FROM (SELECT s2.id, (SELECT count(*) FROM complaints c WHERE c.assignee = s2.id AND c.status <> 'closed') AS count
                      FROM staff s2 WHERE s2.role = 'agent') n
                WHERE s.id = n.id AND s.open_cases <> n.count
                RETURNING s.id
                """, logger: logger).decode(String.self) { fixed += 1 }
            return fixed
        }
    }
}

/// `redressctl staff`: the same directory, as an operator of the whole organisation.
public enum StaffCommands {
    static let operator_ = StaffEditor(subject: "redressctl", role: "operator", unitPath: nil)
    static let directory = StaffDirectory(workflow: CaseWorkflow(taxonomy: ClosureTaxonomy(responsibleLinks: [], causes: [])))

    /// A refusal as the message an operator reads.
    public struct Refused: Error, CustomStringConvertible {
        public var description: String
    }

    static func run<T: Sendable>(_ postgres: PostgresClient, logger: Logger, _ body: @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await postgres.withTransaction(logger: logger) { try await body($0) }
        } catch let error as PostgresTransactionError {
            if let refusal = error.closureError as? CaseRefusal { throw Refused(description: refusal.reason) }
            throw error
        }
    }

    static func line(_ s: StaffView) -> String {
        "\(s.id)\t\(s.name)\t\(s.unit)\t\(s.role)\t\(s.skills.joined(separator: ","))\t\(s.openCases)/\(s.capacity)\t"
            + (s.active ? (s.available ? "active" : "away") : "deactivated")
    }

    public static func list(unit: String?, on postgres: PostgresClient, logger: Logger) async throws -> [String] {
        try await run(postgres, logger: logger) { try await directory.list(by: operator_, unit: unit, on: $0, logger: logger).map(line) }
    }

    public static func add(id: String, name: String, unit: String, role: String, skills: [String], capacity: Int,
                           on postgres: PostgresClient, logger: Logger) async throws -> String {
        let request = StaffRequest(id: id, name: name, unit: unit, role: role, skills: skills, capacity: capacity)
        return try await run(postgres, logger: logger) { line(try await directory.add(request, by: operator_, on: $0, logger: logger)) }
    }

    /// Deactivates `id`; their open cases go to new owners. Returns the staff line and how many cases moved.
    public static func deactivate(id: String, on postgres: PostgresClient, logger: Logger) async throws -> String {
        let request = StaffRequest(active: false)
        return try await run(postgres, logger: logger) { line(try await directory.change(id, request, by: operator_, on: $0, logger: logger)) }
    }
}
