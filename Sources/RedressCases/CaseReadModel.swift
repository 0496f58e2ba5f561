import Foundation
import Hummingbird
import Logging
import PostgresNIO
import RedressContracts
import RedressDomain

/// The case read model: every read of a case and of a queue row, in one place, for the staff API and
/// the console alike. Rows are read by column name into named types; the columns are listed once.
/// Each method runs on the caller's connection, so under the staff role row-level security decides
/// what it sees.
struct CaseReadModel: Sendable {
    /// The columns of a queue row (`CaseSummary`), alias `c` for complaints.
    static let summaryColumns = """
        c.id, c.number, c.status, c.channel, c.category, c.priority, c.handling_unit, c.assignee, c.received_at, c.promised_reply_by,
        c.subject, c.policy_number, c.claim_number, c.customer_name, c.customer_phone, c.version
        """

    static func summary(_ c: PostgresRandomAccessRow) throws -> CaseSummary {
        CaseSummary(
            id: try c["id"].decode(UUID.self), number: try c["number"].decode(String.self), status: try c["status"].decode(String.self),
            channel: try c["channel"].decode(String.self), category: try c["category"].decode(String?.self),
            priority: try c["priority"].decode(String?.self), handlingUnit: try c["handling_unit"].decode(String?.self),
            assignee: try c["assignee"].decode(String?.self), receivedAt: Timestamp.format(try c["received_at"].decode(Date.self)),
            promisedReplyBy: Timestamp.format(try c["promised_reply_by"].decode(Date.self)), subject: try c["subject"].decode(String.self),
            policyNumber: try c["policy_number"].decode(String?.self), claimNumber: try c["claim_number"].decode(String?.self),
            customer: .init(name: PersonalData.maskName(try c["customer_name"].decode(String.self)),
                            phone: PersonalData.maskPhone(try c["customer_phone"].decode(String.self))),
            version: try c["version"].decode(Int.self))
    }

    /// The case `key` (id or number) with what a handler needs to investigate it; `history: false`
    /// leaves out the history, clocks, visits and notices (an action's answer).
    func detail(key: String, history: Bool, on connection: PostgresConnection, logger: Logger, now: Date = Date()) async throws -> CaseDetail {
        let query = CaseWorkflow.query("""
            SELECT \(Self.summaryColumns), c.branch, c.registered_at, c.decision_days, c.liability, c.responsible_link, c.cause_code,
                   c.spot_check, c.committee_status, c.next_contact_at, c.reopened_from, f.number AS reopened_from_number,
                   c.repeat_of, r.number AS repeat_of_number, c.content, c.attachments::text AS attachments, c.external_ref, c.claim_stage,
                   c.customer_flags, c.regulator_case_number, c.regulator_deadline, c.outcome,
                   c.possible_second_of, p.number AS possible_second_of_number
            FROM complaints c LEFT JOIN complaints f ON f.id = c.reopened_from LEFT JOIN complaints r ON r.id = c.repeat_of
                 LEFT JOIN complaints p ON p.id = c.possible_second_of
            WHERE
            """, byKey: key)
        var found: CaseDetail?
        for try await row in try await connection.query(query, logger: logger) {
            let c = row.makeRandomAccess()
            let summary = try Self.summary(c)
            let status = CaseStatus(rawValue: summary.status) ?? .registered
            func reference(_ id: String, _ number: String) throws -> ComplaintReference? {
                guard let id = try c[id].decode(UUID?.self), let number = try c[number].decode(String?.self) else { return nil }
                return ComplaintReference(id: id, number: number)
            }
            let reopenedFrom = try reference("reopened_from", "reopened_from_number")
            let repeatOf = try reference("repeat_of", "repeat_of_number")
            let attachments = (try? JSONDecoder().decode([AttachmentReference].self, from: Data(try c["attachments"].decode(String.self).utf8))) ?? []
            let regulatorCase = try c["regulator_case_number"].decode(String?.self)
            let regulatorDeadline = try c["regulator_deadline"].decode(Date?.self)
            found = CaseDetail(
                summary: summary, branch: try c["branch"].decode(String.self), registeredAt: Timestamp.format(try c["registered_at"].decode(Date.self)),
                decisionDays: try c["decision_days"].decode(Int.self), liability: try c["liability"].decode(String?.self),
                responsibleLink: try c["responsible_link"].decode(String?.self), causeCode: try c["cause_code"].decode(String?.self),
                spotCheck: try c["spot_check"].decode(Bool.self), committeeStatus: try c["committee_status"].decode(String?.self),
                nextContactAt: try c["next_contact_at"].decode(Date?.self).map(Timestamp.format),
                reopenedFrom: reopenedFrom, repeatOf: repeatOf,
                allowedActions: CaseStateMachine.allowedActions(from: status).filter(CaseAccess.staffActions.contains).map(\.rawValue),
                history: [],
                // The complaint as the customer wrote it, with personal data scrubbed as in events; the
                // clear text comes only through the audited personal-data read.
                content: PersonalData.scrub(try c["content"].decode(String.self)), attachments: attachments,
                externalRef: try c["external_ref"].decode(String.self), claimStage: try c["claim_stage"].decode(String?.self),
                customerFlags: try c["customer_flags"].decode([String].self),
                regulator: regulatorCase == nil && regulatorDeadline == nil ? nil
                    : RegulatorReference(caseNumber: regulatorCase, deadline: regulatorDeadline.map(Timestamp.format)),
                outcome: try c["outcome"].decode(String?.self),
                linked: LinkedCases(repeatOf: repeatOf, reopenedFrom: reopenedFrom, secondComplaints: [],
                                    possibleSecondOf: try reference("possible_second_of", "possible_second_of_number")),
                clocks: [], surveys: [], notices: [])
        }
        guard var detail = found else { throw CaseRefusal.notFound(key) }
        let id = detail.summary.id
        for try await (second, number) in try await connection.query("""
            SELECT id, number FROM complaints WHERE reopened_from = \(id) ORDER BY registered_at
            """, logger: logger).decode((UUID, String).self) {
            detail.linked.secondComplaints.append(ComplaintReference(id: second, number: number))
        }
        guard history else { return detail }
        detail.history = try await self.history(id, on: connection, logger: logger)
        detail.clocks = try await clocks(id, on: connection, logger: logger, now: now)
        for try await row in try await connection.query("""
            SELECT visit, status, score, resolved, comment, answered_at FROM surveys WHERE complaint_id = \(id) ORDER BY due_at
            """, logger: logger) {
            let s = row.makeRandomAccess()
            detail.surveys.append(VisitView(wave: try s["visit"].decode(String.self), status: try s["status"].decode(String.self),
                                            score: try s["score"].decode(Int?.self), resolved: try s["resolved"].decode(Bool?.self),
                                            comment: try s["comment"].decode(String?.self),
                                            answeredAt: try s["answered_at"].decode(Date?.self).map(Timestamp.format)))
        }
        // What the customer was sent: never the address.
        for try await row in try await connection.query("""
            SELECT template, channel, status, COALESCE(delivered_at, created_at) AS at FROM notifications
            WHERE complaint_id = \(id) AND channel <> 'staff_inbox' ORDER BY created_at
            """, logger: logger) {
            let n = row.makeRandomAccess()
            detail.notices.append(NoticeView(template: try n["template"].decode(String.self), channel: try n["channel"].decode(String.self),
                                             status: try n["status"].decode(String.self), at: Timestamp.format(try n["at"].decode(Date.self))))
        }
        return detail
    }

    func history(_ id: UUID, on connection: PostgresConnection, logger: Logger) async throws -> [CaseHistoryEntry] {
        var entries: [CaseHistoryEntry] = []
        let decoder = JSONDecoder()
        for try await row in try await connection.query("""
            SELECT at, actor, actor_role, actor_unit, action, from_status, to_status, reason, payload::text AS payload
            FROM case_events WHERE complaint_id = \(id) ORDER BY id
            """, logger: logger) {
            let e = row.makeRandomAccess()
            // Notes, contacts and proposals are free text: whatever personal data was typed into them is
            // masked for every reader, as in events (the clear values come only through the audited read).
            let payload = ((try? decoder.decode([String: AuditValue].self, from: Data(try e["payload"].decode(String.self).utf8))) ?? [:]).mapValues { value in
                switch value {
                case .string(let text): AuditValue.string(PersonalData.scrub(text))
                case .array(let items): AuditValue.array(items.map(PersonalData.scrub))
                }
            }
            entries.append(CaseHistoryEntry(at: Timestamp.format(try e["at"].decode(Date.self)), actor: try e["actor"].decode(String.self),
                                            actorRole: try e["actor_role"].decode(String?.self), actorUnit: try e["actor_unit"].decode(String?.self),
                                            action: try e["action"].decode(String.self), fromStatus: try e["from_status"].decode(String?.self),
                                            toStatus: try e["to_status"].decode(String.self), reason: try e["reason"].decode(String?.self),
                                            payload: payload))
        }
        return entries
    }

    /// The case's SLA clocks as the supervisor keeps them, with what is left of each.
    func clocks(_ id: UUID, on connection: PostgresConnection, logger: Logger, now: Date) async throws -> [ClockView] {
        var clocks: [ClockView] = []
        for try await row in try await connection.query("""
            SELECT kind, started_at, warn_at, due_at, paused_at, breached_at, stopped_at FROM sla_clocks WHERE complaint_id = \(id) ORDER BY due_at
            """, logger: logger) {
            let k = row.makeRandomAccess()
            clocks.append(ClockView(kind: try k["kind"].decode(String.self), startedAt: try k["started_at"].decode(Date.self),
                                    warnAt: try k["warn_at"].decode(Date.self), dueAt: try k["due_at"].decode(Date.self),
                                    pausedAt: try k["paused_at"].decode(Date?.self), breachedAt: try k["breached_at"].decode(Date?.self),
                                    stoppedAt: try k["stopped_at"].decode(Date?.self), now: now))
        }
        return clocks
    }

    /// The same customer's other complaints the caller may see (matched by the keyed hashes of phone
    /// and ID number, never by clear values), newest first.
    func customerHistory(key: String, on connection: PostgresConnection, logger: Logger) async throws -> [CaseSummary] {
        var subject: (id: UUID, phoneKey: String, idKey: String?)?
        for try await row in try await connection.query(CaseWorkflow.query("SELECT c.id, c.customer_key, c.customer_id_key FROM complaints c WHERE", byKey: key),
                                                        logger: logger).decode((UUID, String, String?).self) {
            subject = row
        }
        guard let subject else { throw CaseRefusal.notFound(key) }
        var items: [CaseSummary] = []
        for try await row in try await connection.query("""
            SELECT \(unescaped: Self.summaryColumns) FROM complaints c
            WHERE (c.customer_key = \(subject.phoneKey) OR c.customer_id_key = \(subject.idKey)) AND c.id <> \(subject.id)
            ORDER BY c.registered_at DESC, c.id LIMIT 100
            """, logger: logger) {
            items.append(try Self.summary(row.makeRandomAccess()))
        }
        return items
    }
}

/// A regulator's transfer (监管转办): its case number and the deadline it set.
struct RegulatorReference: Codable, Sendable {
    var caseNumber: String?
    var deadline: String?
}

/// The cases this one is linked to.
struct LinkedCases: Codable, Sendable {
    /// The open complaint of the same customer and policy this one repeats (重复投诉).
    var repeatOf: ComplaintReference?
    /// The closed case this second complaint reopens (二次投诉).
    var reopenedFrom: ComplaintReference?
    /// Second complaints opened from this case.
    var secondComplaints: [ComplaintReference]
    /// 可能的二次投诉: the customer's recently closed complaint this one may be a second complaint about.
    var possibleSecondOf: ComplaintReference?
}

/// One SLA clock as a handler reads it.
struct ClockView: Codable, Sendable {
    var kind: String
    /// `running`, `paused`, `met` (stopped in time), `breached` (its deadline passed and was fired), or
    /// `stopped` (stopped late without firing, e.g. with the case closed).
    var state: String
    var startedAt: String
    var warnAt: String
    var dueAt: String
    /// Until the deadline: from now while running (negative once overdue), from the pause while paused; null once over.
    var remainingSeconds: Int?

    init(kind: String, startedAt: Date, warnAt: Date, dueAt: Date, pausedAt: Date?, breachedAt: Date?, stoppedAt: Date?, now: Date) {
        self.kind = kind
        self.startedAt = Timestamp.format(startedAt)
        self.warnAt = Timestamp.format(warnAt)
        self.dueAt = Timestamp.format(dueAt)
        if breachedAt != nil {
            state = "breached"
            remainingSeconds = nil
        } else if let stoppedAt {
            state = stoppedAt <= dueAt ? "met" : "stopped"
            remainingSeconds = nil
        } else if let pausedAt {
            state = "paused"
            remainingSeconds = Int(dueAt.timeIntervalSince(pausedAt).rounded(.down))
        } else {
            state = "running"
            remainingSeconds = Int(dueAt.timeIntervalSince(now).rounded(.down))
        }
    }
}

/// One return-visit wave (回访) and its answer.
struct VisitView: Codable, Sendable {
    var wave: String
    var status: String
    var score: Int?
    var resolved: Bool?
    var comment: String?
    var answeredAt: String?
}

/// What the customer was sent, never to which address.
struct NoticeView: Codable, Sendable {
    var template: String
    var channel: String
    var status: String
    var at: String
}

struct CustomerHistory: ResponseEncodable, Sendable {
    var items: [CaseSummary]
}
