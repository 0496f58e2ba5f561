import Foundation
import Hummingbird
import Logging
import Metrics
import NIOCore
import PostgresNIO
import RedressContracts
import RedressDomain
import RedressServiceKit
import RedressStore

/// A row of a queue: what staff scan, personal data masked.
struct CaseSummary: Codable, Sendable {
    struct Customer: Codable, Sendable {
        var name: String
        var phone: String
    }

    var id: UUID
    var number: String
    var status: String
    var channel: String
    var category: String?
    var priority: String?
    var handlingUnit: String?
    var assignee: String?
    var receivedAt: String
    var promisedReplyBy: String
    var subject: String
    var policyNumber: String?
    var claimNumber: String?
    var customer: Customer
    var version: Int

    /// Every field, `null` when unset: the schema lists them all as required (nullable), and a
    /// client reads "no owner" from `assignee: null`, not from a missing key.
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(number, forKey: .number)
        try c.encode(status, forKey: .status)
        try c.encode(channel, forKey: .channel)
        try c.encode(category, forKey: .category)
        try c.encode(priority, forKey: .priority)
        try c.encode(handlingUnit, forKey: .handlingUnit)
        try c.encode(assignee, forKey: .assignee)
        try c.encode(receivedAt, forKey: .receivedAt)
        try c.encode(promisedReplyBy, forKey: .promisedReplyBy)
        try c.encode(subject, forKey: .subject)
        try c.encode(policyNumber, forKey: .policyNumber)
        try c.encode(claimNumber, forKey: .claimNumber)
        try c.encode(customer, forKey: .customer)
        try c.encode(version, forKey: .version)
    }
}

struct TypicalRequest: Codable, Sendable {
    var summary: String?
}

struct TypicalCase: ResponseEncodable, Codable, Sendable {
    var number: String
    var category: String?
    var handlingUnit: String
    var closedAt: String?
    var summary: String
    var markedBy: String
    var markedAt: String

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(number, forKey: .number)
        try c.encode(category, forKey: .category)
        try c.encode(handlingUnit, forKey: .handlingUnit)
        try c.encode(closedAt, forKey: .closedAt)
        try c.encode(summary, forKey: .summary)
        try c.encode(markedBy, forKey: .markedBy)
        try c.encode(markedAt, forKey: .markedAt)
    }
}

struct TypicalCases: ResponseEncodable, Sendable {
    var items: [TypicalCase]
}

struct UnitCount: Codable, Sendable {
    var unit: String
    var open: Int
    var breached: Int
    var unassigned: Int
}

struct UnitCounts: ResponseEncodable, Sendable {
    var items: [UnitCount]
}

struct CasePage: ResponseEncodable, Sendable {
    var items: [CaseSummary]
    /// `null` on the last page.
    var nextCursor: String?

    enum CodingKeys: String, CodingKey { case items, nextCursor }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(items, forKey: .items)
        try c.encode(nextCursor, forKey: .nextCursor)
    }
}

struct CaseHistoryEntry: Codable, Sendable {
    var at: String
    var actor: String
    var actorRole: String?
    var actorUnit: String?
    var action: String
    var fromStatus: String?
    var toStatus: String
    var reason: String?
    var payload: [String: AuditValue]

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(at, forKey: .at)
        try c.encode(actor, forKey: .actor)
        try c.encode(actorRole, forKey: .actorRole)
        try c.encode(actorUnit, forKey: .actorUnit)
        try c.encode(action, forKey: .action)
        try c.encode(fromStatus, forKey: .fromStatus)
        try c.encode(toStatus, forKey: .toStatus)
        try c.encode(reason, forKey: .reason)
        try c.encode(payload, forKey: .payload)
    }
}

/// What an audit payload (`case_events.payload`) holds: strings, and arrays of strings (committee members).
enum AuditValue: Codable, Sendable {
    case string(String)
    case array([String])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let array = try? container.decode([String].self) { self = .array(array) } else { self = .string(try container.decode(String.self)) }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .array(let values): try container.encode(values)
        }
    }
}

struct CaseDetail: ResponseEncodable, Sendable {
    var summary: CaseSummary
    var branch: String
    var registeredAt: String
    var decisionDays: Int
    var liability: String?
    var responsibleLink: String?
    var causeCode: String?
    var spotCheck: Bool
    var committeeStatus: String?
    var nextContactAt: String?
    var reopenedFrom: ComplaintReference?
    var repeatOf: ComplaintReference?
    var allowedActions: [String]
    var history: [CaseHistoryEntry]
    var content: String
    var attachments: [AttachmentReference]
    var externalRef: String
    var claimStage: String?
    var customerFlags: [String]
    var regulator: RegulatorReference?
    var outcome: String?
    var linked: LinkedCases
    var clocks: [ClockView]
    var surveys: [VisitView]
    var notices: [NoticeView]

    func encode(to encoder: any Encoder) throws {
        try summary.encode(to: encoder)
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(branch, forKey: .branch)
        try container.encode(registeredAt, forKey: .registeredAt)
        try container.encode(decisionDays, forKey: .decisionDays)
        try container.encode(liability, forKey: .liability)
        try container.encode(responsibleLink, forKey: .responsibleLink)
        try container.encode(causeCode, forKey: .causeCode)
        try container.encode(spotCheck, forKey: .spotCheck)
        try container.encode(committeeStatus, forKey: .committeeStatus)
        try container.encode(nextContactAt, forKey: .nextContactAt)
        try container.encode(reopenedFrom, forKey: .reopenedFrom)
        try container.encode(repeatOf, forKey: .repeatOf)
        try container.encode(allowedActions, forKey: .allowedActions)
        try container.encode(history, forKey: .history)
        try container.encode(content, forKey: .content)
        try container.encode(attachments, forKey: .attachments)
        try container.encode(externalRef, forKey: .externalRef)
        try container.encode(claimStage, forKey: .claimStage)
        try container.encode(customerFlags, forKey: .customerFlags)
        try container.encode(regulator, forKey: .regulator)
        try container.encode(outcome, forKey: .outcome)
        try container.encode(linked, forKey: .linked)
        try container.encode(clocks, forKey: .clocks)
        try container.encode(surveys, forKey: .surveys)
        try container.encode(notices, forKey: .notices)
    }

    enum Keys: String, CodingKey {
        case branch, registeredAt, decisionDays, liability, responsibleLink, causeCode, spotCheck, committeeStatus, nextContactAt,
             reopenedFrom, repeatOf, allowedActions, history, content, attachments, externalRef, claimStage, customerFlags, regulator,
             outcome, linked, clocks, surveys, notices
    }
}

struct ReopenedCase: ResponseEncodable, Sendable {
    var id: UUID
    var number: String
    var reopenedFrom: ComplaintReference
}

struct PersonalDataView: ResponseEncodable, Sendable {
    var name: String
    var phone: String
    var idNumber: String?
}

struct InboxItem: Codable, Sendable {
    var id: UUID
    /// Nil for a note about no complaint (a report snapshot announced to the unit's supervisors).
    var complaintId: UUID?
    var number: String?
    var template: String
    var createdAt: String
    var status: String
    /// What a note about no complaint is about: `report:<unit>:<period>:<version>`.
    var reference: String?
}

struct Inbox: ResponseEncodable, Sendable {
    var items: [InboxItem]
}

struct TaxonomyView: ResponseEncodable, Sendable {
    var taxonomy: ClosureTaxonomy
    func encode(to encoder: any Encoder) throws { try taxonomy.encode(to: encoder) }
}

/// The staff API. Every request runs in a transaction as `redress_staff` with the caller's unit path
/// set, so row-level security limits it to the caller's subtree whatever the query says; the
/// queries filter by the path as well, which is what lets them use the indexes.
struct CaseAPI: Sendable {
    let postgres: PostgresClient
    let workflow: CaseWorkflow
    /// Hashes a searched phone or ID number the way intake keyed the customer.
    let personalData: PersonalDataKey
    let cases = CaseReadModel()
    /// The share and minimum of spot-check draws on demand (the supervisor's monthly draws read the same settings).
    var spotCheckPolicy = SpotCheckPolicy.fromEnvironment()

    func add(to router: Router<RedressRequestContext>, tokens: TokenAuthority) {
        let standing = StaffCheck(postgres: postgres)
        let staff = RequireRoles([.agent, .supervisor, .committee, .auditor, .admin, .coordinator], authority: tokens, staff: standing)
        let cases = router.group("v1/cases").add(middleware: staff)
        cases.get("mine") { request, context in try await queue(request, context, mine: true) }
        cases.get("counts") { request, context in try await counts(request, context) }
        cases.get("") { request, context in try await queue(request, context, mine: false) }
        cases.get(":key") { _, context in try await detail(key: context.parameters.require("key"), context) }
        cases.get(":key/customer-history") { _, context in
            let key = try context.parameters.require("key")
            return try await scoped(context) { connection, _ in
                CustomerHistory(items: try await self.cases.customerHistory(key: key, on: connection, logger: context.logger))
            }
        }
        cases.get(":key/personal-data") { request, context in
            // Full personal data must not linger in caches along the way.
            var response = try await personalData(request, context).response(from: request, context: context)
            response.headers[.cacheControl] = "no-store"
            return response
        }
        cases.post(":key/actions/:action") { request, context in try await act(request, context) }
        // The complaint as a case, by id or number: the first read the foundation offered, kept for its clients.
        router.group("v1/complaints").add(middleware: staff).get(":key") { _, context in
            try await detail(key: context.parameters.require("key"), context)
        }
        router.group("v1/closure-taxonomy").add(middleware: staff).get("") { _, _ in TaxonomyView(taxonomy: workflow.taxonomy) }
        // 典型案例: supervisors mark closed cases for training; every staff member lists their subtree's.
        cases.post(":key/typical") { request, context in try await markTypical(request, context) }
        router.group("v1/typical-cases").add(middleware: staff).get("") { request, context in try await typicalCases(request, context) }
        router.group("v1/inbox").add(middleware: staff).get("") { request, context in try await inbox(request, context) }
        // 定期分析报告: supervisors, admins and auditors, for their own subtree.
        router.group("v1/reports").add(middleware: RequireRoles([.supervisor, .admin, .auditor], authority: tokens, staff: standing))
            .get("") { request, context in try await report(request, context) }
        let snapshots = router.group("v1/report-snapshots").add(middleware: RequireRoles([.supervisor, .admin, .auditor], authority: tokens, staff: standing))
        snapshots.get("") { request, context in try await snapshotList(request, context) }
        snapshots.get(":id") { request, context in try await snapshotBody(request, context) }
        addOversight(to: router, tokens: tokens, standing: standing)
        // 人员管理: admins everywhere, supervisors within their subtree.
        let people = router.group("v1/staff").add(middleware: RequireRoles([.supervisor, .admin], authority: tokens, staff: standing))
        people.get("") { request, context in
            let unit = request.uri.queryParameters.get("unit")
            try NULCharacter.refuse(parameter: "unit", unit)
            if unit?.isEmpty == true {
                throw Problem(status: .badRequest, title: "Invalid request", detail: "unit: is empty; leave it out for the whole subtree, or name a unit",
                              errors: [FieldError("unit", "is empty; leave it out for the whole subtree, or name a unit")])
            }
            return try await scoped(context) { connection, path in
                StaffList(items: try await directory.list(by: try Self.editor(context, path), unit: unit, on: connection, logger: context.logger))
            }
        }
        people.post("") { request, context in
            let body = try await Self.decode(StaffRequest.self, request, context)
            let added = try await scoped(context) { connection, path in
                try await directory.add(body, by: try Self.editor(context, path), on: connection, logger: context.logger)
            }
            return try added.response(from: request, context: context).withStatus(.created)
        }
        people.patch(":id") { request, context in
            let id = try context.parameters.require("id")
            let body = try await Self.decode(StaffRequest.self, request, context)
            return try await scoped(context) { connection, path in
                try await directory.change(id, body, by: try Self.editor(context, path), on: connection, logger: context.logger)
            }
        }
    }

    var directory: StaffDirectory { StaffDirectory(workflow: workflow) }

    static func editor(_ context: RedressRequestContext, _ path: String) throws -> StaffEditor {
        let caller = try context.caller()
        return StaffEditor(subject: caller.subject, role: caller.role.rawValue, unitPath: path)
    }

    static func decode<T: Codable>(_ type: T.Type, _ request: Request, _ context: RedressRequestContext) async throws -> T {
        let bytes = try await request.utf8Body(context: context)
        let value: T
        do {
            value = try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch {
            throw Problem(status: .badRequest, title: "Body is not valid JSON", detail: "send a JSON object whose fields have the documented types: \(EventCoding.describe(error))")
        }
        try NULCharacter.refuse(in: value)
        return value
    }

    /// Runs `body` as `redress_staff`, scoped to the caller's subtree, in one transaction.
    func scoped<T: Sendable>(_ context: RedressRequestContext, _ body: @Sendable (PostgresConnection, _ unitPath: String) async throws -> T) async throws -> T {
        let caller = try context.caller()
        do {
            return try await postgres.withTransaction(logger: context.logger) { connection in
                var path: String?
                for try await value in try await connection.query("SELECT path FROM org_units WHERE code = \(caller.unit)", logger: context.logger).decode(String.self) {
                    path = value
                }
                guard let path else {
                    throw CaseRefusal.forbidden("your token's unit '\(caller.unit)' is not a unit of the organisation; mint a token for an existing unit")
                }
                // A staff request never runs longer than this: a pathological search cannot hold a connection.
                try await connection.query("""
                    SELECT set_config('role', 'redress_staff', true), set_config('redress.unit_path', \(path), true),
                           set_config('redress.subject', \(caller.subject), true),
                           set_config('statement_timeout', '5000', true)
                    """, logger: context.logger)
                return try await body(connection, path)
            }
        } catch let refusal as CaseRefusal {
            throw refusal.problem
        } catch let error as PostgresTransactionError {
            if let refusal = error.closureError as? CaseRefusal { throw refusal.problem }
            if let problem = error.closureError as? Problem { throw problem }
            throw error
        }
    }

    // MARK: Queues

    func queue(_ request: Request, _ context: RedressRequestContext, mine: Bool) async throws -> CasePage {
        let caller = try context.caller()
        let query = request.uri.queryParameters
        var errors: [FieldError] = []
        func values(_ name: String) -> [String] {
            // Empty values are kept, so that `status=` is named as an error rather than read as no filter.
            query.getAll(name).flatMap { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        }
        func check<T: RawRepresentable & CaseIterable>(_ name: String, _ type: T.Type) -> [String] where T.RawValue == String {
            let given = values(name)
            for value in given where T(rawValue: value) == nil {
                errors.append(FieldError(name, "'\(value)' is not one of \(T.allCases.map(\.rawValue).joined(separator: ", "))"))
            }
            return given
        }
        let statuses = check("status", CaseStatus.self)
        let categories = check("category", RedressDomain.Category.self)
        let priorities = check("priority", Priority.self)
        let channels = check("channel", Channel.self)
        var limit = 50
        if let text = query.get("limit") {
            if let n = Int(text), (1...200).contains(n) { limit = n } else { errors.append(FieldError("limit", "must be 1 to 200")) }
        }
        var dueBefore: Date?
        if let text = query.get("dueBefore") {
            dueBefore = Timestamp.parseStorable(text)
            if dueBefore == nil { errors.append(FieldError("dueBefore", "is not an RFC 3339 date-time between 1970 and 9999")) }
        }
        var cursor: (Int64, UUID)?
        if let text = query.get("cursor") {
            cursor = Self.decodeCursor(text)
            if cursor == nil { errors.append(FieldError("cursor", "is not a cursor this API returned (<microseconds>.<case id>); start again without it")) }
        }
        try NULCharacter.refuse(parameter: "q", query.get("q"))
        try NULCharacter.refuse(parameter: "unit", query.get("unit"))
        let search = query.get("q").map { $0.trimmingCharacters(in: .whitespaces) }.flatMap { $0.isEmpty ? nil : $0 }
        if let raw = query.get("q"), raw.count > 64 { errors.append(FieldError("q", "is longer than 64 characters")) }
        // A filter switch is `true` or `false`; anything else is named rather than read as false.
        func flag(_ name: String) -> Bool {
            guard let text = query.get(name) else { return false }
            if text == "true" { return true }
            if text != "false" { errors.append(FieldError(name, "must be true or false")) }
            return false
        }
        // 抽查: the province's list of "not liable" rulings from below to spot-check.
        let spotCheck = flag("spotCheck")
        // The supervisor queue: open cases nobody owns (routing found no eligible agent).
        let unassigned = flag("unassigned")
        // 二次投诉: cases that came back from a closed one (a dissatisfied return visit, a review request).
        let secondComplaint = flag("secondComplaint")
        let committee = query.get("committee")
        if let committee, !["referred", "ruled"].contains(committee) { errors.append(FieldError("committee", "must be referred or ruled")) }
        // A phone or ID number is searched by its keyed hash, never as clear text in SQL, and the search is on record.
        let searchKey: (column: String, hash: String, purpose: String)? = search.flatMap { text in
            if text.utf8.count == 11, text.hasPrefix("1"), text.allSatisfy(\.isASCII), text.allSatisfy(\.isNumber) {
                return ("customer_key", personalData.customerKey(phone: text), "queue search by the customer's phone number")
            }
            if text.utf8.count == 18, text.dropLast().allSatisfy({ $0.isASCII && $0.isNumber }), let last = text.last, last.isNumber || last == "X" || last == "x" {
                return ("customer_id_key", personalData.idNumberKey(text), "queue search by the customer's ID number")
            }
            return nil
        }
        let includeClosed = flag("includeClosed") || statuses.contains(CaseStatus.closed.rawValue) || spotCheck
        let unit = mine ? nil : (query.get("unit") ?? caller.unit)
        if !errors.isEmpty { throw CaseRefusal.invalid(errors).problem }
        let (pageSize, due, after) = (limit, dueBefore, cursor)

        return try await scoped(context) { connection, callerPath in
            // The cursor holds the due time in whole microseconds, as PostgreSQL stores it: a Date
            // round trip can land a microsecond off and repeat or skip a row at the page boundary.
            var sql = "SELECT \(CaseReadModel.summaryColumns), (extract(epoch FROM c.promised_reply_by) * 1000000)::int8 AS position FROM complaints c WHERE "
            var binds = PostgresBindings()
            func bind(_ value: some PostgresThrowingDynamicTypeEncodable) throws -> String {
                try binds.append(value)
                return "$\(binds.count)"
            }
            var conditions: [String] = []
            if mine {
                conditions.append("c.assignee = \(try bind(caller.subject))")
            } else {
                var unitPath: String?
                for try await value in try await connection.query("SELECT path FROM org_units WHERE code = \(unit!)", logger: context.logger).decode(String.self) {
                    unitPath = value
                }
                guard let unitPath, unitPath == callerPath || unitPath.hasPrefix(callerPath + "/") else {
                    throw CaseRefusal.forbidden("unit '\(unit!)' is outside your part of the organisation (\(caller.unit) and below)")
                }
                let p = try bind(unitPath)
                conditions.append("(c.unit_path = \(p) OR c.unit_path LIKE \(p) || '/%')")
            }
            // The literal predicate matches the partial indexes' WHERE clause.
            if !includeClosed { conditions.append("c.status <> 'closed'") }
            if !statuses.isEmpty { conditions.append("c.status = ANY(\(try bind(statuses))::text[])") }
            if spotCheck { conditions.append("c.spot_check") }
            if unassigned { conditions.append("c.assignee IS NULL") }
            if secondComplaint { conditions.append("c.reopened_from IS NOT NULL") }
            if let committee { conditions.append("c.committee_status = \(try bind(committee))") }
            if !categories.isEmpty { conditions.append("c.category = ANY(\(try bind(categories))::text[])") }
            if !priorities.isEmpty { conditions.append("c.priority = ANY(\(try bind(priorities))::text[])") }
            if !channels.isEmpty { conditions.append("c.channel = ANY(\(try bind(channels))::text[])") }
            if let due { conditions.append("c.promised_reply_by < \(try bind(due))") }
            if let searchKey {
                // The column name is one of this code's two constants; the hash is bound.
                conditions.append("c.\(searchKey.column) = \(try bind(searchKey.hash))")
            } else if let search {
                let q = try bind(search)
                // starts_with, not LIKE: a % or _ in the search is a character, not a wildcard.
                conditions.append("(starts_with(c.number, \(q)) OR c.policy_number = \(q) OR c.claim_number = \(q))")
            }
            if let after {
                conditions.append("(c.promised_reply_by, c.id) > ('epoch'::timestamptz + \(try bind(after.0)) * interval '1 microsecond', \(try bind(after.1)))")
            }
            sql += conditions.joined(separator: " AND ") + " ORDER BY c.promised_reply_by, c.id LIMIT \(pageSize + 1)"
            var items: [CaseSummary] = []
            var last: (Int64, UUID)?
            var more = false
            let rows = try await connection.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: context.logger)
            for try await row in rows {
                if items.count == pageSize { more = true; break }
                let c = row.makeRandomAccess()
                let item = try CaseReadModel.summary(c)
                items.append(item)
                last = (try c["position"].decode(Int64.self), item.id)
            }
            if let searchKey, !items.isEmpty {
                try await connection.query("""
                    INSERT INTO personal_data_reads (complaint_id, reader, reader_role, reader_unit, purpose)
                    SELECT id, \(caller.subject), \(caller.role.rawValue), \(caller.unit), \(searchKey.purpose) FROM unnest(\(items.map(\.id))::uuid[]) AS id
                    """, logger: context.logger)
                Counter(label: "redress_personal_data_reads_total", dimensions: [("role", caller.role.rawValue)]).increment(by: items.count)
            }
            Counter(label: "redress_case_queue_reads_total", dimensions: [("queue", mine ? "mine" : "unit")]).increment()
            return CasePage(items: items, nextCursor: more ? last.map(Self.encodeCursor) : nil)
        }
    }

    /// Open cases per handling unit in the caller's subtree (or a unit of it): how many, how many
    /// past their promised reply, how many nobody owns. The supervisor board's table.
    func counts(_ request: Request, _ context: RedressRequestContext) async throws -> UnitCounts {
        let caller = try context.caller()
        try NULCharacter.refuse(parameter: "unit", request.uri.queryParameters.get("unit"))
        let unit = request.uri.queryParameters.get("unit") ?? caller.unit
        return try await scoped(context) { connection, callerPath in
            var unitPath: String?
            for try await value in try await connection.query("SELECT path FROM org_units WHERE code = \(unit)", logger: context.logger).decode(String.self) {
                unitPath = value
            }
            guard let unitPath, unitPath == callerPath || unitPath.hasPrefix(callerPath + "/") else {
                throw CaseRefusal.forbidden("unit '\(unit)' is outside your part of the organisation (\(caller.unit) and below)")
            }
            let rows = try await connection.query("""
                SELECT COALESCE(c.handling_unit, c.branch), count(*)::int8, (count(*) FILTER (WHERE c.promised_reply_by < now()))::int8,
                       (count(*) FILTER (WHERE c.assignee IS NULL))::int8
                FROM complaints c WHERE c.status <> 'closed' AND (c.unit_path = \(unitPath) OR c.unit_path LIKE \(unitPath) || '/%')
                GROUP BY 1 ORDER BY 1
                """, logger: context.logger)
            var items: [UnitCount] = []
            for try await (code, open, breached, unassigned) in rows.decode((String, Int64, Int64, Int64).self) {
                items.append(UnitCount(unit: code, open: Int(open), breached: Int(breached), unassigned: Int(unassigned)))
            }
            return UnitCounts(items: items)
        }
    }

    func markTypical(_ request: Request, _ context: RedressRequestContext) async throws -> Response {
        let caller = try context.caller()
        let key = try context.parameters.require("key")
        guard [.supervisor, .admin].contains(caller.role) else {
            throw Problem(status: .forbidden, title: "Role not allowed", detail: "supervisors and admins mark typical cases")
        }
        let body = try await Self.decode(TypicalRequest.self, request, context)
        let summary = PersonalData.scrub(body.summary?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "")
        guard (1...2000).contains(summary.count) else {
            throw CaseRefusal.invalid([FieldError("summary", "required: what the case teaches, 1 to 2000 characters")]).problem
        }
        let item = try await scoped(context) { connection, _ -> TypicalCase in
            let rows = try await connection.query(CaseWorkflow.query("SELECT c.id, c.status FROM complaints c WHERE", byKey: key), logger: context.logger)
            var found: (UUID, String)?
            for try await row in rows.decode((UUID, String).self) { found = row }
            guard let (id, status) = found else { throw CaseRefusal.notFound(key) }
            guard status == CaseStatus.closed.rawValue else {
                throw CaseRefusal.conflict("only a closed case is a typical case; this one is \(status)")
            }
            try await connection.query("""
                INSERT INTO typical_cases (complaint_id, summary, marked_by) VALUES (\(id), \(summary), \(caller.subject))
                ON CONFLICT (complaint_id) DO UPDATE SET summary = EXCLUDED.summary, marked_by = EXCLUDED.marked_by, marked_at = now()
                """, logger: context.logger)
            return try await typical(where: "t.complaint_id = $1", bind: id, on: connection, logger: context.logger).first!
        }
        return try item.response(from: request, context: context).withStatus(.created)
    }

    /// `GET /v1/reports?unit=GD&period=2026-Q4[&format=csv]`: the report of a unit of the caller's
    /// subtree (the caller's own unit when `unit` is left out), summed from the rollup under the
    /// caller's row-level security. A unit outside the caller's subtree is 404, as a case would be.
    func report(_ request: Request, _ context: RedressRequestContext) async throws -> Response {
        let caller = try context.caller()
        let query = request.uri.queryParameters
        let unitCode = query.get("unit") ?? caller.unit
        try NULCharacter.refuse(parameter: "unit", unitCode)
        var errors: [FieldError] = []
        let periodText = query.get("period") ?? ""
        let period = ReportPeriod.parse(periodText)
        if period == nil, ReportPeriod.isShaped(periodText) {
            // The right shape, but no period: a 30 February, a year before 1970, a range backwards or too long.
            throw Problem(status: .unprocessableContent, title: "No such period",
                          detail: "period: '\(periodText)' names no period of real days between 1970 and 9999, ten years at most",
                          errors: [FieldError("period", "names no period of real days between 1970 and 9999, ten years at most")])
        }
        if period == nil {
            errors.append(FieldError("period", "give a year (2026), a quarter (2026-Q4), a month (2026-11) or days (2026-10-01..2026-12-31, at most ten years)"))
        }
        let format = query.get("format") ?? "json"
        if !["json", "csv", "regulator-csv"].contains(format) { errors.append(FieldError("format", "must be json, csv or regulator-csv")) }
        if !errors.isEmpty { throw CaseRefusal.invalid(errors).problem }
        let report = try await scoped(context) { connection, callerPath -> PeriodicReport in
            let unitPath = try await PeriodicReport.unitPath(of: unitCode, on: connection, logger: context.logger)
            guard let unitPath, unitPath == callerPath || unitPath.hasPrefix(callerPath + "/") else {
                throw Problem(status: .notFound, title: "No such unit", detail: "no unit '\(unitCode)' in your part of the organisation; a unit reads the reports of its own subtree")
            }
            return try await PeriodicReport.read(unit: unitCode, unitPath: unitPath, period: period!,
                                                 withHandlers: caller.role == .supervisor || caller.role == .admin, on: connection, logger: context.logger)
        }
        if format == "csv" || format == "regulator-csv" {
            var headers: HTTPFields = [.contentType: "text/csv; charset=utf-8"]
            let regulator = format == "regulator-csv"
            headers[.contentDisposition] = "attachment; filename=\"redress-\(regulator ? "regulator-" : "")report-\(unitCode)-\(report.period).csv\""
            let bytes = regulator ? try regulatorClasses().csv(for: report) : report.csv()
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
        return try report.response(from: request, context: context)
    }

    /// The regulator's classes, read when asked for (`REDRESS_REGULATOR_CLASSES`, by default the
    /// deploy kit's file), so a corrected mapping applies without a restart.
    func regulatorClasses() throws -> RegulatorClasses {
        let path = ProcessInfo.processInfo.environment["REDRESS_REGULATOR_CLASSES"] ?? RegulatorClasses.defaultPath
        do {
            return try RegulatorClasses.load(path)
        } catch {
            throw Problem(status: .serviceUnavailable, title: "Regulator classes unavailable",
                          detail: "the regulator's reporting classes (\(path), REDRESS_REGULATOR_CLASSES) cannot be read: \(error)")
        }
    }

    /// The stored snapshots of the caller's subtree, newest first; `unit` and `period` narrow them.
    func snapshotList(_ request: Request, _ context: RedressRequestContext) async throws -> SnapshotList {
        let query = request.uri.queryParameters
        let unit = query.get("unit"), period = query.get("period")
        var errors: [FieldError] = []
        if let unit, unit.count > 32 { errors.append(FieldError("unit", "is longer than 32 characters")) }
        if let period, period.count > 40 { errors.append(FieldError("period", "is longer than 40 characters")) }
        if !errors.isEmpty { throw CaseRefusal.invalid(errors).problem }
        try NULCharacter.refuse(parameter: "unit", unit)
        try NULCharacter.refuse(parameter: "period", period)
        return try await scoped(context) { connection, _ in
            let rows = try await connection.query("""
                SELECT id, unit, period, version, generated_at, generated_by FROM report_snapshots
                WHERE (\(unit)::text IS NULL OR unit = \(unit)) AND (\(period)::text IS NULL OR period = \(period))
                ORDER BY unit, period DESC, version DESC LIMIT 200
                """, logger: context.logger)
            var items: [ReportSnapshots.Snapshot] = []
            for try await (id, unit, period, version, at, by) in rows.decode((UUID, String, String, Int, Date, String).self) {
                items.append(ReportSnapshots.Snapshot(id: id, unit: unit, period: period, version: version, generatedAt: at, generatedBy: by))
            }
            return SnapshotList(items: items)
        }
    }

    /// One snapshot's report, exactly as it was stored.
    func snapshotBody(_ request: Request, _ context: RedressRequestContext) async throws -> Response {
        let key = try context.parameters.require("id")
        guard let id = UUID(uuidString: key) else {
            throw Problem(status: .notFound, title: "No such snapshot", detail: "no report snapshot '\(key)' in your part of the organisation")
        }
        let body = try await scoped(context) { connection, _ -> String? in
            for try await text in try await connection.query("SELECT body::text FROM report_snapshots WHERE id = \(id)", logger: context.logger).decode(String.self) {
                return text
            }
            return nil
        }
        guard let body else { throw Problem(status: .notFound, title: "No such snapshot", detail: "no report snapshot '\(key)' in your part of the organisation") }
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    func typicalCases(_ request: Request, _ context: RedressRequestContext) async throws -> TypicalCases {
        TypicalCases(items: try await scoped(context) { connection, path in
            try await typical(where: "(c.unit_path = $1 OR c.unit_path LIKE $1 || '/%')", bind: path, on: connection, logger: context.logger)
        })
    }

    func typical(where condition: String, bind: some PostgresThrowingDynamicTypeEncodable, on connection: PostgresConnection, logger: Logger) async throws -> [TypicalCase] {
        var binds = PostgresBindings()
        try binds.append(bind)
        let rows = try await connection.query(PostgresQuery(unsafeSQL: """
            SELECT c.number, c.category, COALESCE(c.handling_unit, c.branch), c.closed_at, t.summary, t.marked_by, t.marked_at
            FROM typical_cases t JOIN complaints c ON c.id = t.complaint_id WHERE \(condition) ORDER BY t.marked_at DESC LIMIT 200
            """, binds: binds), logger: logger)
        var items: [TypicalCase] = []
        for try await (number, category, unit, closed, summary, by, at) in rows.decode((String, String?, String, Date?, String, String, Date).self) {
            items.append(TypicalCase(number: number, category: category, handlingUnit: unit, closedAt: closed.map(Timestamp.format), summary: summary,
                                     markedBy: by, markedAt: Timestamp.format(at)))
        }
        return items
    }

    /// `<due time in microseconds>.<case id>`: the keyset position after which the next page starts.
    /// Its shape is `cursorPattern` (also in the OpenAPI document), and every string of that shape is
    /// a position: one earlier or later than any stored instant is held at the bounds PostgreSQL can
    /// store, which orders the same way.
    static func encodeCursor(_ position: (Int64, UUID)) -> String {
        "\(position.0).\(position.1.uuidString.lowercased())"
    }

    nonisolated(unsafe) static let cursorPattern = #/^(-?[0-9]{1,17})\.([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/#

    static func decodeCursor(_ text: String) -> (Int64, UUID)? {
        guard let match = text.wholeMatch(of: cursorPattern), let micros = Int64(match.1), let id = UUID(uuidString: String(match.2)) else { return nil }
        let storable = Timestamp.storable
        let lower = Int64(storable.lowerBound.timeIntervalSince1970) * 1_000_000
        let upper = Int64(storable.upperBound.timeIntervalSince1970) * 1_000_000 - 1
        return (min(max(micros, lower), upper), id)
    }

    // MARK: One case

    /// The case with the actions this caller may take on it now: its state allows them and the
    /// caller's role (and, for an agent, ownership) does too.
    func detail(key: String, _ context: RedressRequestContext) async throws -> CaseDetail {
        let caller = try context.caller()
        var detail = try await scoped(context) { connection, _ in
            try await cases.detail(key: key, history: true, on: connection, logger: context.logger)
        }
        detail.allowedActions = detail.allowedActions.filter { name in
            CaseAction(rawValue: name).map { CaseAccess.refusal(of: $0, by: .staff(caller), assignee: detail.summary.assignee) == nil } ?? false
        }
        return detail
    }

    /// Full personal data, to those who handle the case; every read is on record with its purpose.
    func personalData(_ request: Request, _ context: RedressRequestContext) async throws -> PersonalDataView {
        let caller = try context.caller()
        let key = try context.parameters.require("key")
        guard let purpose = request.uri.queryParameters.get("purpose"), !purpose.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, purpose.count <= 200 else {
            throw CaseRefusal.invalid([FieldError("purpose", "say why you need the customer's full details (1 to 200 characters)")]).problem
        }
        return try await scoped(context) { connection, _ in
            let query = CaseWorkflow.query("SELECT c.id, c.assignee, c.customer_name, c.customer_phone, c.customer_id_number FROM complaints c WHERE",
                                           byKey: key)
            for try await row in try await connection.query(query, logger: context.logger).decode((UUID, String?, String, String, String?).self) {
                guard CaseAccess.mayReadPersonalData(.staff(caller), assignee: row.1) else {
                    throw CaseRefusal.forbidden("full personal data is for the case's handler (its agent, or a supervisor above it); the masked case is at GET /v1/cases/\(key)")
                }
                try await connection.query("""
                    INSERT INTO personal_data_reads (complaint_id, reader, reader_role, reader_unit, purpose)
                    VALUES (\(row.0), \(caller.subject), \(caller.role.rawValue), \(caller.unit), \(PersonalData.scrub(purpose)))
                    """, logger: context.logger)
                Counter(label: "redress_personal_data_reads_total", dimensions: [("role", caller.role.rawValue)]).increment()
                return PersonalDataView(name: row.2, phone: row.3, idNumber: row.4)
            }
            throw CaseRefusal.notFound(key)
        }
    }

    // MARK: Actions

    func act(_ request: Request, _ context: RedressRequestContext) async throws -> Response {
        let caller = try context.caller()
        let key = try context.parameters.require("key")
        let name = try context.parameters.require("action")
        guard let action = CaseAction(rawValue: name), CaseAccess.staffActions.contains(action) else {
            throw Problem(status: .notFound, title: "No such action",
                          detail: "'\(name)' is not an action; use one of \(CaseAccess.staffActions.map(\.rawValue).sorted().joined(separator: ", "))")
        }
        let bytes = try await request.utf8Body(context: context)
        let body: ActionRequest
        do {
            body = try JSONDecoder().decode(ActionRequest.self, from: Data(bytes))
        } catch {
            throw Problem(status: .badRequest, title: "Body is not valid JSON",
                          detail: "send a JSON object with at least the case's \"version\"; fields must have the documented types")
        }
        try NULCharacter.refuse(in: body)
        // The answer is read in the action's own transaction: the case as this change left it, before
        // routing (for an escalation or transfer) can move it out of the caller's part of the tree.
        let (outcome, detail) = try await scoped(context) { connection, _ in
            let outcome = try await workflow.apply(action, key: key, request: body, by: .staff(caller), on: connection, logger: context.logger)
            let detail = outcome.reopened == nil ? try await cases.detail(key: outcome.id.uuidString, history: false, on: connection, logger: context.logger) : nil
            return (outcome, detail)
        }
        if let reopened = outcome.reopened {
            return try ReopenedCase(id: reopened.id, number: reopened.number, reopenedFrom: ComplaintReference(id: outcome.id, number: outcome.number))
                .response(from: request, context: context).withStatus(.created)
        }
        return try detail!.response(from: request, context: context)
    }

    // MARK: Inbox

    func inbox(_ request: Request, _ context: RedressRequestContext) async throws -> Inbox {
        let caller = try context.caller()
        var limit = 50
        if let text = request.uri.queryParameters.get("limit") {
            guard let n = Int(text), (1...200).contains(n) else { throw CaseRefusal.invalid([FieldError("limit", "must be 1 to 200")]).problem }
            limit = n
        }
        let pageSize = limit
        // The names notify addresses staff by: "staff:<id>", and "supervisors:<unit>" for a unit's supervisors.
        let recipients = ["staff:" + caller.subject] + (caller.role == .supervisor ? ["supervisors:\(caller.unit)"] : [])
        return try await scoped(context) { connection, _ in
            // A note about a complaint is listed while the complaint is the caller's to see; a note
            // about no complaint (a report snapshot) while it is addressed to the caller's unit.
            let rows = try await connection.query("""
                SELECT n.id, n.complaint_id, c.number, n.template, n.created_at, n.status, n.reference
                FROM notifications n LEFT JOIN complaints c ON c.id = n.complaint_id
                WHERE n.channel = 'staff_inbox' AND n.recipient = ANY(\(recipients)::text[]) AND (n.complaint_id IS NULL OR c.id IS NOT NULL)
                ORDER BY n.created_at DESC LIMIT \(pageSize)
                """, logger: context.logger)
            var items: [InboxItem] = []
            for try await row in rows.decode((UUID, UUID?, String?, String, Date, String, String?).self) {
                items.append(InboxItem(id: row.0, complaintId: row.1, number: row.2, template: row.3, createdAt: Timestamp.format(row.4), status: row.5,
                                       reference: row.6))
            }
            return Inbox(items: items)
        }
    }
}

extension PeriodicReport: ResponseEncodable {}

struct SnapshotList: ResponseEncodable, Sendable {
    var items: [ReportSnapshots.Snapshot]
}
