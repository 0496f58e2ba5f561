import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import PostgresNIO
@testable import RedressCases
@testable import RedressContracts
import RedressDomain
@testable import RedressIntake
@testable import RedressServiceKit
@testable import RedressStore
import Synchronization
import Testing

/// The oversight duties of the rules (第五条–第七条) through the staff API against a real PostgreSQL:
/// department inquiries, the committee's ruling, spot-checks with verdicts, corrective actions, the
/// vexatious-complainant register and staff changes reported up. Each duty's happy path and its
/// refusals (wrong role, wrong level, sibling unit, stale version), then isolation and the whole way.
@Suite struct OversightTests {
    typealias F = CaseFixture

    static func post(_ client: some TestClientProtocol, _ uri: String, _ body: [String: Any], as token: String) async throws -> (HTTPResponse.Status, [String: Any]) {
        let data = try JSONSerialization.data(withJSONObject: body)
        let response = try await client.execute(uri: uri, method: .post, headers: [.authorization: token, .contentType: "application/json"],
                                                 body: ByteBuffer(bytes: data))
        return (response.status, (try? JSONSerialization.jsonObject(with: Data(buffer: response.body))) as? [String: Any] ?? [:])
    }

    static func items(_ json: [String: Any]) -> [[String: Any]] { json["items"] as? [[String: Any]] ?? [] }

    static func inbox(_ db: PostgresClient, _ recipient: String, _ template: String) async throws -> Int {
        try await TestDatabase.count(db, "SELECT count(*) FROM notifications WHERE recipient = \(recipient) AND template = \(template) AND channel = 'staff_inbox'")
    }

    /// A case closed "not liable" at `unit`, flagged for the province's spot-check, closed at `closedAt`.
    static func closedNotLiable(_ db: PostgresClient, id: UUID = UUID(), unit: String, number: String, closedAt: String, key: String? = nil) async throws -> UUID {
        try await F.insert(db, unit: unit, assignee: "\(unit)-AGE01", status: "closed", number: number)
        try await db.query("""
            UPDATE complaints SET id = \(id), liability = 'not_liable', responsible_link = 'claims', cause_code = 'customer_misunderstanding',
                spot_check = true, closed_at = \(closedAt)::timestamptz, customer_key = COALESCE(\(key), customer_key) WHERE number = \(number)
            """, logger: TestDatabase.logger)
        return id
    }

    // MARK: 转相关部门调查

    @Test func anInquiryGoesToTheDepartmentAndItsAnswerToTheOwner() async throws {
        try await F.withApp { db, _, client in
            let id = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "investigating", number: "GD-SZ-20261130-000101")
            let owner = await F.token("GD-SZ-AGE01", .agent, "GD-SZ")
            let ask: [String: Any] = ["department": "claims", "question": "请核实理赔时效，客户电话13812345678",
                                      "attachments": [["name": "理赔单.pdf", "uri": "https://docs.example/c/1.pdf"]]]
            // Refusals first: nothing is stored by any of them.
            var (status, json) = try await Self.post(client, "/v1/cases/\(id)/inquiries", ask, as: await F.token("GD-SZ-AGE02", .agent, "GD-SZ"))
            #expect(status == .forbidden && (json["detail"] as? String ?? "").contains("owner"), "another agent: \(json)")
            (status, _) = try await Self.post(client, "/v1/cases/\(id)/inquiries", ask, as: await F.token("HQ-AUD01", .auditor, "HQ"))
            #expect(status == .forbidden)
            (status, json) = try await Self.post(client, "/v1/cases/\(id)/inquiries", ["question": " "], as: owner)
            #expect(status == .badRequest && Set(StaffAdminTests.fields(json)) == ["department", "question"], "\(json)")
            (status, json) = try await Self.post(client, "/v1/cases/\(id)/inquiries", ["department": "astrology", "question": "q"], as: owner)
            #expect(status == .unprocessableContent && StaffAdminTests.fields(json) == ["department"])
            (status, json) = try await Self.post(client, "/v1/cases/\(id)/inquiries", ["unit": "GD-GZ", "department": "claims", "question": "q"], as: owner)
            #expect(status == .unprocessableContent && StaffAdminTests.fields(json) == ["unit"], "a sibling city's department is not above the case")
            (status, _) = try await Self.post(client, "/v1/cases/\(id)/inquiries", ask, as: await F.token("GD-GZ-SUP01", .supervisor, "GD-GZ"))
            #expect(status == .notFound, "a sibling city does not see the case")
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM inquiries") == 0)

            (status, json) = try await Self.post(client, "/v1/cases/\(id)/inquiries", ask, as: owner)
            #expect(status == .created, "\(json)")
            let inquiry = try #require(json["id"] as? String)
            #expect(json["question"] as? String == "请核实理赔时效，客户电话138****5678", "personal data in the question is masked")
            #expect(json["status"] as? String == "open" && json["unit"] as? String == "GD-SZ" && json["version"] as? Int == 1)
            // Due in three working days (22.5 working hours of the CN calendar): never sooner than 3 calendar days less a weekend.
            let asked = try #require(Timestamp.parse(json["askedAt"] as? String ?? "")), due = try #require(Timestamp.parse(json["dueAt"] as? String ?? ""))
            #expect(due.timeIntervalSince(asked) > 2 * 86_400 && due.timeIntervalSince(asked) < 12 * 86_400, "\(asked) → \(due)")
            #expect(try await Self.inbox(db, "staff:GD-SZ-CLM01", "inquiry.opened.coordinator") == 1, "the department's coordinator hears of it")
            #expect(try await F.outboxTypes(db, id) == ["inquiry.opened"])

            // The coordinator sees it; a coordinator of another department does not, nor answers it.
            let coordinator = await F.token("GD-SZ-CLM01", .coordinator, "GD-SZ")
            (status, json) = try await F.get(client, "/v1/inquiries?status=open", as: coordinator)
            #expect(status == .ok && Self.items(json).compactMap { $0["id"] as? String } == [inquiry])
            let legal = await F.token("GD-SZ-LEG01", .coordinator, "GD-SZ")
            (_, json) = try await F.get(client, "/v1/inquiries", as: legal)
            #expect(Self.items(json).isEmpty, "legal's coordinator sees only what is addressed to legal")
            let answer: [String: Any] = ["version": 1, "findings": "理赔材料于11月3日齐全，11月20日结案，未超时。", "evidence": [["name": "系统日志", "uri": "https://docs.example/l/2"]]]
            (status, _) = try await Self.post(client, "/v1/inquiries/\(inquiry)/answer", answer, as: legal)
            #expect(status == .forbidden)
            (status, _) = try await Self.post(client, "/v1/inquiries/\(inquiry)/answer", answer, as: owner)
            #expect(status == .forbidden, "the owner does not answer their own inquiry")
            (status, _) = try await Self.post(client, "/v1/inquiries/\(inquiry)/answer", ["version": 7, "findings": "x"], as: coordinator)
            #expect(status == .conflict, "a stale version")
            (status, _) = try await Self.post(client, "/v1/inquiries/\(UUID())/answer", answer, as: coordinator)
            #expect(status == .notFound)
            (status, json) = try await Self.post(client, "/v1/inquiries/\(inquiry)/answer", answer, as: coordinator)
            #expect(status == .ok && json["status"] as? String == "answered" && json["answeredBy"] as? String == "GD-SZ-CLM01", "\(json)")
            (status, _) = try await Self.post(client, "/v1/inquiries/\(inquiry)/answer", ["version": 2, "findings": "again"], as: coordinator)
            #expect(status == .conflict, "answered once")
            // The answer joins the history and the owner's inbox.
            let (_, detail) = try await F.get(client, "/v1/cases/\(id)", as: owner)
            let actions = (detail["history"] as? [[String: Any]] ?? []).compactMap { $0["action"] as? String }
            #expect(actions == ["open_inquiry", "answer_inquiry"])
            #expect(try await Self.inbox(db, "staff:GD-SZ-AGE01", "inquiry.answered.owner") == 1)
            #expect(try await F.outboxTypes(db, id) == ["inquiry.opened", "inquiry.answered"])
            // The province sees the case's inquiries; a sibling city does not.
            (_, json) = try await F.get(client, "/v1/inquiries?case=GD-SZ-20261130-000101", as: await F.token("GD-SUP01", .supervisor, "GD"))
            #expect(Self.items(json).count == 1)
            (status, _) = try await F.get(client, "/v1/inquiries/\(inquiry)", as: await F.token("GD-GZ-SUP01", .supervisor, "GD-GZ"))
            #expect(status == .notFound)
        }
    }

    @Test func overdueInquiriesWarnTheCoordinatorAndAlertTheOwnerOnce() async throws {
        try await F.withApp { db, _, client in
            let id = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "investigating", number: "GD-SZ-20261130-000102")
            let (status, json) = try await Self.post(client, "/v1/cases/\(id)/inquiries", ["department": "legal", "question": "诉讼风险？"],
                                                     as: await F.token("GD-SZ-AGE01", .agent, "GD-SZ"))
            #expect(status == .created)
            let due = try #require(Timestamp.parse(json["dueAt"] as? String ?? ""))
            let actor = Actor.service("redress-supervisor")
            func scan(_ at: Date) async throws -> OversightDeadlines.Fired {
                try await db.withTransaction(logger: TestDatabase.logger) { try await OversightDeadlines.scan(now: at, actor: actor, on: $0, logger: TestDatabase.logger) }
            }
            #expect(try await scan(Date()).inquiryWarnings == 0, "nothing is due yet")
            let warned = try await scan(due.addingTimeInterval(-1))
            #expect(warned.inquiryWarnings == 1 && warned.inquiriesOverdue == 0)
            let overdue = try await scan(due.addingTimeInterval(1))
            #expect(overdue.inquiryWarnings == 0 && overdue.inquiriesOverdue == 1)
            #expect(try await scan(due.addingTimeInterval(60)) == OversightDeadlines.Fired(), "each fires once")
            #expect(try await Self.inbox(db, "staff:GD-SZ-LEG01", "inquiry.warning.coordinator") == 1)
            #expect(try await Self.inbox(db, "staff:GD-SZ-LEG01", "inquiry.overdue.coordinator") == 1)
            #expect(try await Self.inbox(db, "staff:GD-SZ-AGE01", "inquiry.overdue.owner") == 1)
        }
    }

    /// 法律风险评估: litigation or media risk at routing opens an inquiry to legal by itself, once; a county
    /// without a legal department asks the nearest unit above that has one.
    @Test func litigationOrMediaRiskAsksLegalByItself() async throws {
        try await F.withApp { db, _, _ in
            let city = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", number: "GD-SZ-20261130-000103")
            let county = try await F.insert(db, unit: "GD-SZ-NS", assignee: "GD-SZ-NS-AGE01", number: "GD-SZ-NS-20261130-000001")
            let quiet = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE02", number: "GD-SZ-20261130-000104")
            func assigned(_ id: UUID, _ number: String, _ unit: String, _ rules: [String]) -> EventEnvelope<ComplaintAssigned> {
                EventEnvelope(complaintId: id, orgUnit: unit, actor: .service("redress-routing"), payload: ComplaintAssigned(
                    number: number, category: .claims, priority: .high, handlingUnit: unit, assignee: nil, ruleIds: rules, rulesVersion: "t", reason: .initial))
            }
            let events = [assigned(city, "GD-SZ-20261130-000103", "GD-SZ", ["kw.claims", "priority.litigation"]),
                          assigned(county, "GD-SZ-NS-20261130-000001", "GD-SZ-NS", ["kw.claims", "priority.media"]),
                          assigned(quiet, "GD-SZ-20261130-000104", "GD-SZ", ["kw.claims"])]
            for _ in 0..<2 {
                try await db.withTransaction(logger: TestDatabase.logger) { connection in
                    try await CaseAPI.openLegalReviews(events, workflow: CaseWorkflow(taxonomy: F.taxonomy), on: connection, logger: TestDatabase.logger)
                }
            }
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM inquiries WHERE automatic") == 2, "once each, and none without risk")
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM inquiries WHERE complaint_id = \(city) AND unit = 'GD-SZ' AND department = 'legal'") == 1)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM inquiries WHERE complaint_id = \(county) AND unit = 'GD-SZ' AND department = 'legal'") == 1,
                    "the county has no legal department: its city's answers")
            #expect(try await Self.inbox(db, "staff:GD-SZ-LEG01", "inquiry.opened.coordinator") == 2)
        }
    }

    // MARK: 协调委员会

    @Test func theCommitteesRulingBindsTheClosureAndItsClockWarns() async throws {
        try await F.withApp { db, _, client in
            let id = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "investigating", number: "GD-SZ-20261130-000201")
            let owner = await F.token("GD-SZ-AGE01", .agent, "GD-SZ"), member = await F.token("GD-SZ-COM01", .committee, "GD-SZ")
            var (status, json) = try await F.act(client, id, "refer_to_committee", ["version": 1, "reason": "责任认定分歧"], as: owner)
            #expect(status == .ok)
            #expect(try await F.outboxTypes(db, id) == ["committee.referred", "case.updated"])
            (status, _) = try await F.act(client, id, "refer_to_committee", ["version": 2, "reason": "again"], as: owner)
            #expect(status == .conflict, "not twice at once")
            (_, json) = try await F.get(client, "/v1/cases?committee=referred", as: member)
            #expect(Self.items(json).compactMap { $0["number"] as? String } == ["GD-SZ-20261130-000201"], "the committee's queue")
            // The ruling clock.
            let due = try #require(try await db.query("SELECT due_at FROM committee_referrals WHERE complaint_id = \(id)", logger: TestDatabase.logger)
                .decode(Date.self).first { _ in true })
            let fired = try await db.withTransaction(logger: TestDatabase.logger) {
                try await OversightDeadlines.scan(now: due.addingTimeInterval(1), actor: .service("redress-supervisor"), on: $0, logger: TestDatabase.logger)
            }
            #expect(fired.rulingWarnings == 1 && fired.rulingsOverdue == 1)
            #expect(try await Self.inbox(db, "staff:GD-SZ-COM01", "committee.ruling.overdue") == 1)
            // Closing before the ruling is refused (even once resolved); a ruling needs its fields and real members.
            func set(_ status: String) async throws { try await db.query("UPDATE complaints SET status = \(status) WHERE id = \(id)", logger: TestDatabase.logger) }
            try await set("resolved")
            (status, json) = try await F.act(client, id, "close", ["version": 2, "liability": "liable", "responsibleLink": "claims", "causeCode": "claim_delay",
                                                                  "outcome": "o"], as: owner)
            #expect(status == .conflict && (json["detail"] as? String ?? "").contains("committee"), "\(json)")
            try await set("investigating")
            (status, json) = try await F.act(client, id, "record_committee_ruling", ["version": 2, "text": "t", "members": ["GD-SZ-COM01"]], as: member)
            #expect(status == .badRequest && Set(StaffAdminTests.fields(json)) == ["liability", "responsibleLink", "causeCode"], "\(json)")
            let ruling: [String: Any] = ["version": 2, "text": "理赔延误属实，公司有责", "members": ["GD-SZ-COM01", "NOBODY-9"], "liability": "liable",
                                         "responsibleLink": "claims", "causeCode": "claim_delay"]
            (status, json) = try await F.act(client, id, "record_committee_ruling", ruling, as: member)
            #expect(status == .unprocessableContent && StaffAdminTests.fields(json) == ["members"])
            var good = ruling
            good["members"] = ["GD-SZ-COM01", "GD-SZ-SUP01"]
            (status, _) = try await F.act(client, id, "record_committee_ruling", good, as: member)
            #expect(status == .ok)
            // The closure must use the ruling.
            try await set("resolved")
            (status, json) = try await F.act(client, id, "close", ["version": 3, "liability": "not_liable", "responsibleLink": "customer_service",
                                                                  "causeCode": "claim_delay", "outcome": "o"], as: owner)
            #expect(status == .unprocessableContent && Set(StaffAdminTests.fields(json)) == ["liability", "responsibleLink"], "\(json)")
            // A ruled case may go back to the committee (new facts).
            try await set("investigating")
            (status, _) = try await F.act(client, id, "refer_to_committee", ["version": 3, "reason": "客户提交新证据"], as: owner)
            #expect(status == .ok)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM committee_referrals WHERE complaint_id = \(id)") == 2)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM committee_referrals WHERE complaint_id = \(id) AND ruled_at IS NOT NULL AND liability = 'liable'") == 1)
        }
    }

    // MARK: 抽查

    @Test func aDrawIsReproducibleAndTakesItsShareWithAMinimum() async throws {
        // The same candidates in two databases: the same sample, whoever draws and whenever.
        let samples = Mutex<[[String]]>([])
        let ids = (1...40).map { UUID(uuidString: String(format: "00000000-0000-4000-8000-%012d", $0))! }
        for _ in 0..<2 {
            try await F.withApp { db, _, client in
                for (n, id) in ids.enumerated() {
                    try await Self.closedNotLiable(db, id: id, unit: n % 2 == 0 ? "GD-SZ" : "GD-GZ", number: "GD-X-20261015-\(String(format: "%06d", n))",
                                                   closedAt: "2026-10-15T12:00:00+08:00")
                }
                // Out of the period (Beijing time) and out of the subtree: never candidates.
                try await Self.closedNotLiable(db, unit: "GD-SZ", number: "GD-SZ-20261101-000001", closedAt: "2026-10-31T16:30:00Z")
                try await Self.closedNotLiable(db, unit: "ZJ-HZ", number: "ZJ-HZ-20261015-000001", closedAt: "2026-10-15T12:00:00+08:00")
                let province = await F.token("GD-SUP01", .supervisor, "GD")
                var (status, json) = try await Self.post(client, "/v1/spot-checks/draw", ["kind": "not_liable", "period": "2026-10"], as: province)
                #expect(status == .created, "\(json)")
                let draw = json["draw"] as? [String: Any] ?? [:]
                #expect(draw["population"] as? Int == 40 && draw["drawn"] as? Int == 5, "a tenth of 40 is 4, the minimum is 5: \(draw)")
                let numbers = Self.items(json).compactMap { $0["number"] as? String }.sorted()
                samples.withLock { $0.append(numbers) }
                (status, json) = try await Self.post(client, "/v1/spot-checks/draw", ["kind": "not_liable", "period": "2026-10"], as: province)
                #expect(status == .ok && Self.items(json).compactMap { $0["number"] as? String }.sorted() == numbers, "drawing again gives the stored draw")
                #expect(try await TestDatabase.count(db, "SELECT count(*) FROM spot_checks") == 5)
                #expect(try await TestDatabase.count(db, "SELECT count(*) FROM outbox WHERE event_type = 'spotcheck.drawn'") == 5)
                #expect(try await Self.inbox(db, "supervisors:GD", "spotcheck.drawn.supervisors") == 1)
                // Wrong level and kind, and bad input.
                (status, json) = try await Self.post(client, "/v1/spot-checks/draw", ["kind": "not_liable", "period": "2026-10"],
                                                     as: await F.token("GD-SZ-SUP01", .supervisor, "GD-SZ"))
                #expect(status == .forbidden && (json["detail"] as? String ?? "").contains("province"))
                (status, _) = try await Self.post(client, "/v1/spot-checks/draw", ["kind": "satisfaction", "period": "2026-10"], as: province)
                #expect(status == .forbidden, "satisfaction is HQ's")
                (status, json) = try await Self.post(client, "/v1/spot-checks/draw", ["kind": "everything", "period": "2026-13"], as: province)
                #expect(status == .badRequest && Set(StaffAdminTests.fields(json)) == ["kind", "period"])
                (status, json) = try await Self.post(client, "/v1/spot-checks/draw", ["kind": "not_liable", "period": "2026-02-30..2026-03-01"], as: province)
                #expect(status == .unprocessableContent && StaffAdminTests.fields(json) == ["period"], "the right shape, no such day")
                (status, _) = try await Self.post(client, "/v1/spot-checks/draw", ["kind": "not_liable", "period": "2026-10"], as: await F.token("GD-SZ-AGE01", .agent, "GD-SZ"))
                #expect(status == .forbidden)
                // HQ's satisfaction draw takes its minimum of every closed case of the tree.
                (status, json) = try await Self.post(client, "/v1/spot-checks/draw", ["kind": "satisfaction", "period": "2026-10"], as: await F.token("HQ-SUP01", .supervisor, "HQ"))
                #expect(status == .created && (json["draw"] as? [String: Any])?["population"] as? Int == 41 && Self.items(json).count == 10, "\(json)")
            }
        }
        let drawn = samples.withLock { $0 }
        #expect(drawn.count == 2 && drawn[0] == drawn[1], "\(drawn)")
    }

    @Test func verdictsUpholdReviseOrReinvestigate() async throws {
        try await F.withApp { db, _, client in
            for n in 1...3 {
                try await Self.closedNotLiable(db, unit: "GD-SZ", number: "GD-SZ-20261015-00000\(n)", closedAt: "2026-10-15T12:00:00+08:00")
            }
            let province = await F.token("GD-SUP01", .supervisor, "GD")
            var (status, json) = try await Self.post(client, "/v1/spot-checks/draw", ["kind": "not_liable", "period": "2026-10"], as: province)
            #expect(status == .created && Self.items(json).count == 3)
            (_, json) = try await F.get(client, "/v1/spot-checks?status=pending", as: province)
            let checks = Dictionary(uniqueKeysWithValues: Self.items(json).map { ($0["number"] as! String, $0["id"] as! String) })
            #expect(checks.count == 3)
            let (a, b, c) = (checks["GD-SZ-20261015-000001"]!, checks["GD-SZ-20261015-000002"]!, checks["GD-SZ-20261015-000003"]!)
            // Who may not: the city under check, an agent, a sibling province; nor with a stale version or missing fields.
            (status, _) = try await Self.post(client, "/v1/spot-checks/\(a)/verdict", ["version": 1, "verdict": "upheld"], as: await F.token("GD-SZ-SUP01", .supervisor, "GD-SZ"))
            #expect(status == .notFound, "the spot-check is the province's, not the city's")
            (status, _) = try await Self.post(client, "/v1/spot-checks/\(a)/verdict", ["version": 1, "verdict": "upheld"], as: await F.token("ZJ-SUP01", .supervisor, "ZJ"))
            #expect(status == .notFound)
            (status, _) = try await F.get(client, "/v1/spot-checks", as: await F.token("GD-SZ-AGE01", .agent, "GD-SZ"))
            #expect(status == .forbidden)
            (status, _) = try await Self.post(client, "/v1/spot-checks/\(a)/verdict", ["version": 9, "verdict": "upheld"], as: province)
            #expect(status == .conflict)
            (status, json) = try await Self.post(client, "/v1/spot-checks/\(b)/verdict", ["version": 1, "verdict": "revised"], as: province)
            #expect(status == .badRequest && Set(StaffAdminTests.fields(json)) == ["liability", "responsibleLink", "causeCode"])
            (status, _) = try await Self.post(client, "/v1/spot-checks/\(b)/verdict", ["version": 1, "verdict": "revised", "liability": "liable",
                                                                                         "responsibleLink": "nowhere", "causeCode": "claim_delay"], as: province)
            #expect(status == .unprocessableContent)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM spot_checks WHERE status <> 'pending'") == 0, "nothing decided by a refusal")

            (status, json) = try await Self.post(client, "/v1/spot-checks/\(a)/verdict", ["version": 1, "verdict": "upheld", "note": "结论正确"], as: province)
            #expect(status == .ok && json["status"] as? String == "upheld")
            (status, _) = try await Self.post(client, "/v1/spot-checks/\(a)/verdict", ["version": 2, "verdict": "revised"], as: province)
            #expect(status == .conflict || status == .badRequest, "decided once")
            (status, json) = try await Self.post(client, "/v1/spot-checks/\(b)/verdict", ["version": 1, "verdict": "revised", "liability": "liable",
                                                                                            "responsibleLink": "claims", "causeCode": "claim_delay",
                                                                                            "note": "理赔时效超期，应认定有责"], as: province)
            #expect(status == .ok && json["liability"] as? String == "liable", "\(json)")
            #expect(try await TestDatabase.count(db, """
                SELECT count(*) FROM complaints WHERE number = 'GD-SZ-20261015-000002' AND liability = 'liable' AND cause_code = 'claim_delay' AND status = 'closed'
                """) == 1, "the revision replaces the case's ruling")
            let (_, revised) = try await F.get(client, "/v1/cases/GD-SZ-20261015-000002", as: province)
            let last = (revised["history"] as? [[String: Any]] ?? []).last ?? [:]
            #expect(last["action"] as? String == "revise_closure" && (last["payload"] as? [String: Any])?["previousLiability"] as? String == "not_liable")
            (status, json) = try await Self.post(client, "/v1/spot-checks/\(c)/verdict", ["version": 1, "verdict": "reinvestigate"], as: province)
            #expect(status == .badRequest && StaffAdminTests.fields(json) == ["note"], "what to look at again")
            (status, json) = try await Self.post(client, "/v1/spot-checks/\(c)/verdict", ["version": 1, "verdict": "reinvestigate", "note": "未核实客户提供的新证据"],
                                                 as: province)
            let review = json["reviewCase"] as? [String: Any] ?? [:]
            #expect(status == .ok && review["number"] as? String == "GD-SZ-20261015-000003-S1", "\(json)")
            let reviewID = try #require(UUID(uuidString: review["id"] as? String ?? ""))
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM complaints WHERE id = \(reviewID) AND status = 'reopened' AND handling_unit = 'GD-SZ'") == 1)
            #expect(try await F.outboxTypes(db, reviewID) == ["case.transferred"], "routing names its owner at the original unit")
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM outbox WHERE event_type = 'spotcheck.decided'") == 3)
            #expect(try await Self.inbox(db, "staff:GD-SZ-AGE01", "spotcheck.decided.owner") == 3)
        }
    }

    /// The supervisor's monthly draws: each province's "not liable" sample and HQ's satisfaction sample
    /// of the month before, once.
    @Test func theMonthlyDrawIsTakenOncePerProvinceAndHQ() async throws {
        try await F.withApp { db, _, _ in
            try await Self.closedNotLiable(db, unit: "GD-SZ", number: "GD-SZ-20261015-000001", closedAt: "2026-10-15T12:00:00+08:00")
            try await Self.closedNotLiable(db, unit: "ZJ-HZ", number: "ZJ-HZ-20261015-000001", closedAt: "2026-10-31T23:30:00+08:00")
            let now = try #require(Timestamp.parse("2026-11-01T00:30:00+08:00"))
            func monthly() async throws -> [SpotChecks.Draw] {
                try await db.withTransaction(logger: TestDatabase.logger) {
                    try await SpotChecks.drawMonthly(now: now, policy: .standard, actor: .service("redress-supervisor"), on: $0, logger: TestDatabase.logger)
                }
            }
            let first = try await monthly()
            #expect(Set(first.map { "\($0.kind.rawValue) \($0.unit) \($0.period) \($0.drawn)" }) == [
                "satisfaction HQ 2026-10 2", "not_liable GD 2026-10 1", "not_liable ZJ 2026-10 1",
            ], "the Beijing-time month before 00:30 on 1 November is October")
            #expect(try await monthly().isEmpty, "drawn once")
        }
    }

    // MARK: 整改

    @Test func aCorrectiveActionIsOpenedDoneAndVerifiedByTheRightPeople() async throws {
        try await F.withApp { db, _, client in
            let id = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "closed", number: "GD-SZ-20261130-000301")
            let province = await F.token("GD-SUP01", .supervisor, "GD"), city = await F.token("GD-SZ-SUP01", .supervisor, "GD-SZ")
            let due = Timestamp.format(Date().addingTimeInterval(10 * 86_400))
            let body: [String: Any] = ["source": "case", "caseKey": "GD-SZ-20261130-000301", "ownerUnit": "GD-SZ", "responsible": "GD-SZ-SUP01",
                                       "action": "理赔时效培训，修订结案审核流程", "dueAt": due]
            var (status, json) = try await Self.post(client, "/v1/corrective-actions", body, as: await F.token("GD-SZ-AGE01", .agent, "GD-SZ"))
            #expect(status == .forbidden)
            (status, _) = try await Self.post(client, "/v1/corrective-actions", body.merging(["ownerUnit": "ZJ-HZ", "responsible": "ZJ-HZ-SUP01"]) { $1 }, as: province)
            #expect(status == .forbidden, "outside the province's subtree")
            (status, json) = try await Self.post(client, "/v1/corrective-actions", body.merging(["responsible": "GD-GZ-SUP01"]) { $1 }, as: province)
            #expect(status == .unprocessableContent && StaffAdminTests.fields(json) == ["responsible"], "the responsible person belongs to the owner unit")
            (status, json) = try await Self.post(client, "/v1/corrective-actions", body.merging(["dueAt": "soon", "source": "x"]) { $1 }, as: province)
            #expect(status == .badRequest && Set(StaffAdminTests.fields(json)) == ["source", "dueAt"])
            (status, json) = try await Self.post(client, "/v1/corrective-actions", body.merging(["dueAt": "2020-01-01T00:00:00Z"]) { $1 }, as: province)
            #expect(status == .unprocessableContent && StaffAdminTests.fields(json) == ["dueAt"], "a deadline already passed")
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM corrective_actions") == 0)
            (status, json) = try await Self.post(client, "/v1/corrective-actions", body, as: province)
            #expect(status == .created && json["status"] as? String == "open", "\(json)")
            let action = try #require(json["id"] as? String)
            #expect(try await Self.inbox(db, "staff:GD-SZ-SUP01", "corrective.opened.responsible") == 1)
            // Verified only once done, by the level above (not by the unit that made the change).
            (status, _) = try await Self.post(client, "/v1/corrective-actions/\(action)/verify", ["version": 1], as: province)
            #expect(status == .conflict, "not done yet")
            (status, _) = try await Self.post(client, "/v1/corrective-actions/\(action)/done", ["version": 1, "note": "已完成培训"], as: await F.token("GD-SZ-AGE01", .agent, "GD-SZ"))
            #expect(status == .forbidden)
            (status, _) = try await Self.post(client, "/v1/corrective-actions/\(action)/done", ["version": 1, "note": "已完成培训"], as: await F.token("GD-GZ-SUP01", .supervisor, "GD-GZ"))
            #expect(status == .notFound, "a sibling city does not see it")
            (status, json) = try await Self.post(client, "/v1/corrective-actions/\(action)/done", ["version": 1, "note": "已完成培训，流程已修订"], as: city)
            #expect(status == .ok && json["status"] as? String == "done")
            (status, _) = try await Self.post(client, "/v1/corrective-actions/\(action)/verify", ["version": 2], as: city)
            #expect(status == .forbidden, "the unit does not verify its own change")
            (status, _) = try await Self.post(client, "/v1/corrective-actions/\(action)/verify", ["version": 1], as: province)
            #expect(status == .conflict, "stale")
            (status, json) = try await Self.post(client, "/v1/corrective-actions/\(action)/verify", ["version": 2, "note": "抽查三件，流程执行到位"], as: province)
            #expect(status == .ok && json["status"] as? String == "verified" && json["verifiedBy"] as? String == "GD-SUP01")
            let (_, detail) = try await F.get(client, "/v1/cases/\(id)", as: city)
            #expect((detail["history"] as? [[String: Any]] ?? []).compactMap { $0["action"] as? String } ==
                    ["open_corrective_action", "corrective_action_done", "corrective_action_verified"])
        }
    }

    @Test func correctiveDeadlinesRemindBeforeAndAlertAfter() async throws {
        try await F.withApp { db, _, client in
            try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "closed", number: "GD-SZ-20261130-000302")
            let due = Date().addingTimeInterval(5 * 86_400)
            let (status, _) = try await Self.post(client, "/v1/corrective-actions", [
                "source": "case", "caseKey": "GD-SZ-20261130-000302", "ownerUnit": "GD-SZ", "responsible": "GD-SZ-SUP01", "action": "整改",
                "dueAt": Timestamp.format(due)], as: await F.token("GD-SUP01", .supervisor, "GD"))
            #expect(status == .created)
            func scan(_ at: Date) async throws -> OversightDeadlines.Fired {
                try await db.withTransaction(logger: TestDatabase.logger) { try await OversightDeadlines.scan(now: at, actor: .service("redress-supervisor"), on: $0, logger: TestDatabase.logger) }
            }
            #expect(try await scan(due.addingTimeInterval(-3 * 86_400)).correctiveReminders == 0)
            #expect(try await scan(due.addingTimeInterval(-86_400)).correctiveReminders == 1, "two days before")
            let after = try await scan(due.addingTimeInterval(1))
            #expect(after.correctiveReminders == 0 && after.correctiveOverdue == 1)
            #expect(try await scan(due.addingTimeInterval(100)) == OversightDeadlines.Fired())
            #expect(try await Self.inbox(db, "staff:GD-SZ-SUP01", "corrective.reminder.responsible") == 1)
            #expect(try await Self.inbox(db, "supervisors:GD-SZ", "corrective.overdue") == 1)
        }
    }

    // MARK: 无理缠访备案

    @Test func theRegisterIsProposedDecidedSharedWithSalesAuditedAndFlagsNewComplaints() async throws {
        try await F.withApp { db, host, client in
            let key = host.personalData.customerKey(phone: "13912345678")
            for n in 1...2 {
                try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "closed", number: "GD-SZ-20261130-00040\(n)")
                try await db.query("UPDATE complaints SET customer_key = \(key), customer_phone = '13912345678' WHERE number = \("GD-SZ-20261130-00040\(n)")",
                                   logger: TestDatabase.logger)
            }
            try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "closed", number: "GD-SZ-20261130-000409")
            let city = await F.token("GD-SZ-SUP01", .supervisor, "GD-SZ"), province = await F.token("GD-SUP01", .supervisor, "GD")
            let proposal: [String: Any] = ["caseNumbers": ["GD-SZ-20261130-000401", "GD-SZ-20261130-000402"], "reasons": "同一事项已处理完毕，仍每日多次来电辱骂坐席"]
            var (status, json) = try await Self.post(client, "/v1/register", proposal, as: await F.token("GD-SZ-AGE01", .agent, "GD-SZ"))
            #expect(status == .forbidden)
            (status, json) = try await Self.post(client, "/v1/register", ["caseNumbers": ["GD-SZ-20261130-000401", "GD-SZ-20261130-000409"], "reasons": "r"], as: city)
            #expect(status == .unprocessableContent && StaffAdminTests.fields(json) == ["caseNumbers"], "one customer's cases")
            (status, json) = try await Self.post(client, "/v1/register", ["caseNumbers": ["GD-GZ-20261130-000001"], "reasons": "r"], as: city)
            #expect(status == .unprocessableContent && StaffAdminTests.fields(json) == ["caseNumbers"])
            (status, json) = try await Self.post(client, "/v1/register", proposal, as: city)
            #expect(status == .created && json["status"] as? String == "proposed", "\(json)")
            let entry = try #require(json["id"] as? String)
            #expect((json["customer"] as? [String: Any])?["phone"] as? String == "139****5678", "masked")
            (status, _) = try await Self.post(client, "/v1/register", proposal, as: city)
            #expect(status == .conflict, "one live entry per customer")
            #expect(try await Self.inbox(db, "supervisors:GD", "register.proposed.supervisors") == 1)
            // The city proposes; the province decides.
            (status, json) = try await Self.post(client, "/v1/register/\(entry)/decision", ["version": 1, "decision": "approve"], as: city)
            #expect(status == .forbidden && (json["detail"] as? String ?? "").contains("province"))
            (status, _) = try await Self.post(client, "/v1/register/\(entry)/decision", ["version": 1, "decision": "approve"], as: await F.token("ZJ-SUP01", .supervisor, "ZJ"))
            #expect(status == .notFound, "another province does not see it")
            (status, json) = try await Self.post(client, "/v1/register/\(entry)/decision", ["version": 1, "decision": "reject"], as: province)
            #expect(status == .badRequest && StaffAdminTests.fields(json) == ["note"], "a rejection says why")
            (status, _) = try await Self.post(client, "/v1/register/\(entry)/decision", ["version": 5, "decision": "approve"], as: province)
            #expect(status == .conflict)
            (status, json) = try await Self.post(client, "/v1/register/\(entry)/decision", ["version": 1, "decision": "approve"], as: province)
            #expect(status == .ok && json["status"] as? String == "approved")
            let review = try #require(Timestamp.parse(json["reviewAt"] as? String ?? ""))
            #expect(review.timeIntervalSinceNow > 360 * 86_400 && review.timeIntervalSinceNow < 370 * 86_400, "12 months")
            #expect(try await Self.inbox(db, "staff:GD-SZ-SUP01", "register.approve.proposer") == 1)
            // Renewed by the province only, with the version seen.
            (status, _) = try await Self.post(client, "/v1/register/\(entry)/renew", ["version": 2], as: city)
            #expect(status == .forbidden)
            (status, _) = try await Self.post(client, "/v1/register/\(entry)/renew", ["version": 1], as: province)
            #expect(status == .conflict)
            (status, json) = try await Self.post(client, "/v1/register/\(entry)/renew", ["version": 2, "note": "仍持续来电"], as: province)
            #expect(status == .ok && json["status"] as? String == "approved" && json["version"] as? Int == 3, "\(json)")
            // A renewal counts its twelve months from the renewal: the entry's review date is this one now.
            let renewedReview = try #require(Timestamp.parse(json["reviewAt"] as? String ?? ""))
            #expect(renewedReview >= review, "a renewal never brings the review forward")
            // Sales sees masked identities and reasons, read-only; every read is on record.
            let sales = await F.token("GD-SAL01", .salesLiaison, "GD")
            (status, json) = try await F.get(client, "/v1/register", as: sales)
            let listed = Self.items(json).first ?? [:]
            #expect(status == .ok && (listed["customer"] as? [String: Any])?["name"] as? String == "张*" && (listed["reasons"] as? String ?? "").contains("辱骂"))
            (status, _) = try await Self.post(client, "/v1/register", proposal, as: sales)
            #expect(status == .forbidden)
            (status, _) = try await F.get(client, "/v1/cases", as: sales)
            #expect(status == .forbidden, "sales reads the register, not cases")
            (_, json) = try await F.get(client, "/v1/register", as: await F.token("GD-GZ-SUP01", .supervisor, "GD-GZ"))
            #expect(Self.items(json).isEmpty, "a sibling city does not see GD-SZ's entry")
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM register_reads WHERE actor = 'GD-SAL01' AND action = 'read' AND actor_role = 'sales_liaison'") == 1)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM register_reads WHERE action IN ('propose', 'approve', 'renew')") == 3)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM outbox WHERE event_type = 'register.changed'") == 3, "proposed, approved, renewed")

            // The customer's next complaint is registered (never refused) and flagged.
            let registrar = Registrar(personalData: host.personalData, numbers: host.postgres)
            let submission = try SubmissionValidator.validate(ComplaintSubmission(
                channel: "call_center", externalRef: "CC-REG-1", receivedAt: Date(), customer: .init(name: "张三", phone: "13912345678"),
                branch: "GD-SZ", subject: "又来投诉", content: "同一事项"), now: Date()).get()
            let registered = try await db.withTransaction(logger: TestDatabase.logger) { try await registrar.register([submission], on: $0, logger: TestDatabase.logger) }
            #expect(registered.count == 1 && !registered[0].duplicate)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM complaints WHERE external_ref = 'CC-REG-1' AND 'vexatious_register' = ANY(customer_flags)") == 1)
            #expect(try await TestDatabase.count(db, """
                SELECT count(*) FROM outbox WHERE event_type = 'complaint.registered' AND convert_from(payload, 'UTF8') LIKE '%vexatious_register%'
                """) == 1, "routing reads the flag from the event")

            // Past its review date the entry lapses, on record; not before.
            let early = try await db.withTransaction(logger: TestDatabase.logger) {
                try await OversightDeadlines.scan(now: renewedReview.addingTimeInterval(-1), actor: .service("redress-supervisor"), on: $0, logger: TestDatabase.logger)
            }
            #expect(early.registerExpired == 0, "a second before its review date the entry holds")
            let fired = try await db.withTransaction(logger: TestDatabase.logger) {
                try await OversightDeadlines.scan(now: renewedReview.addingTimeInterval(1), actor: .service("redress-supervisor"), on: $0, logger: TestDatabase.logger)
            }
            #expect(fired.registerExpired == 1)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM register_reads WHERE action = 'expire' AND actor = 'redress-supervisor'") == 1)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM vexatious_register WHERE status = 'expired'") == 1)
        }
    }

    // MARK: 人员变动报告

    @Test func staffChangesAreReportedToTheLevelAbove() async throws {
        try await F.withApp { db, _, client in
            let city = await F.token("GD-SZ-SUP01", .supervisor, "GD-SZ")
            var (status, json) = try await Self.post(client, "/v1/staff", ["id": "GD-SZ-AGE09", "name": "新坐席", "unit": "GD-SZ", "role": "agent"], as: city)
            #expect(status == .created, "\(json)")
            #expect(try await TestDatabase.count(db, """
                SELECT count(*) FROM notifications WHERE recipient = 'supervisors:GD' AND template = 'staff.changed.supervisors' AND reference = 'staff:GD-SZ-AGE09:joined'
                """) == 1)
            let response = try await client.execute(uri: "/v1/staff/GD-SZ-AGE09", method: .patch, headers: [.authorization: city, .contentType: "application/json"],
                                                     body: ByteBuffer(string: #"{"active": false}"#))
            #expect(response.status == .ok)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM notifications WHERE reference = 'staff:GD-SZ-AGE09:left'") == 1)
            // The province's supervisors read it in their inbox; the city's own do not get it.
            (_, json) = try await F.get(client, "/v1/inbox", as: await F.token("GD-SUP01", .supervisor, "GD"))
            #expect(Set(Self.items(json).compactMap { $0["reference"] as? String }).isSuperset(of: ["staff:GD-SZ-AGE09:joined", "staff:GD-SZ-AGE09:left"]))
            (_, json) = try await F.get(client, "/v1/inbox", as: city)
            #expect(!Self.items(json).contains { ($0["reference"] as? String ?? "").hasPrefix("staff:") })
            // A coordinator needs a department of the unit.
            let admin = await F.token("HQ-ADM01", .admin, "HQ")
            (status, json) = try await Self.post(client, "/v1/staff", ["id": "GD-SZ-FIN01", "name": "财务协调", "unit": "GD-SZ", "role": "coordinator"], as: admin)
            #expect(status == .badRequest && StaffAdminTests.fields(json) == ["department"])
            (status, json) = try await Self.post(client, "/v1/staff", ["id": "GD-SZ-FIN01", "name": "财务协调", "unit": "GD-SZ", "role": "coordinator",
                                                                        "department": "astrology"], as: admin)
            #expect(status == .unprocessableContent && StaffAdminTests.fields(json) == ["department"])
            (status, json) = try await Self.post(client, "/v1/staff", ["id": "GD-SZ-FIN01", "name": "财务协调", "unit": "GD-SZ", "role": "coordinator",
                                                                        "department": "finance"], as: admin)
            #expect(status == .created && json["department"] as? String == "finance")
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM notifications WHERE reference = 'staff:GD-SZ-FIN01:joined'") == 1)
        }
    }

    // MARK: Isolation

    /// Every new list at every unit: a unit sees its subtree's inquiries, spot-checks, corrective
    /// actions and register entries, never a sibling's or a parent's.
    @Test func theNewListsShowEachUnitItsSubtreeOnly() async throws {
        try await F.withApp { db, _, client in
            let units = CaseIsolationTests.units
            try await db.query("""
                INSERT INTO staff (id, name, org_unit, role) SELECT u || '-supervisor', u || ' supervisor', u, 'supervisor' FROM unnest(\(units)::text[]) AS u
                ON CONFLICT (id) DO NOTHING
                """, logger: TestDatabase.logger)
            for (n, unit) in units.enumerated() {
                let number = "\(unit)-20261015-\(String(format: "%06d", n + 1))"
                let id = try await Self.closedNotLiable(db, unit: unit, number: number, closedAt: "2026-10-15T12:00:00+08:00", key: "isolation-\(unit)")
                try await db.query("""
                    INSERT INTO inquiries (id, complaint_id, unit, department, question, asked_by, warn_at, due_at)
                    SELECT gen_random_uuid(), \(id), \(unit), code, 'q', 'x', now(), now() + interval '1 day' FROM departments WHERE unit = \(unit) LIMIT 1
                    """, logger: TestDatabase.logger)
                try await db.query("""
                    INSERT INTO corrective_actions (id, source, complaint_id, owner_unit, unit_path, responsible, action, due_at, created_by)
                    VALUES (gen_random_uuid(), 'case', \(id), \(unit), \(CaseIsolationTests.paths[unit]!), \("\(unit)-supervisor"), 'a', now() + interval '9 days', 'x')
                    """, logger: TestDatabase.logger)
                try await db.query("""
                    INSERT INTO vexatious_register (id, customer_key, unit, unit_path, reasons, case_numbers, proposed_by)
                    VALUES (gen_random_uuid(), \("isolation-\(unit)"), \(unit), \(CaseIsolationTests.paths[unit]!), 'r', \([number]), 'x')
                    """, logger: TestDatabase.logger)
            }
            for province in ["GD", "ZJ"] {
                let (status, _) = try await Self.post(client, "/v1/spot-checks/draw", ["kind": "not_liable", "period": "2026-10"],
                                                      as: await F.token("\(province)-supervisor", .supervisor, province))
                #expect(status == .created)
            }
            for viewer in units {
                let token = await F.token("\(viewer)-supervisor", .supervisor, viewer)
                let expected = Set(units.filter { CaseIsolationTests.sees(viewer, $0) })
                let (_, inquiries) = try await F.get(client, "/v1/inquiries", as: token)
                #expect(Set(Self.items(inquiries).compactMap { ($0["number"] as? String)?.components(separatedBy: "-2026")[0] }) == expected, "inquiries@\(viewer)")
                let (_, actions) = try await F.get(client, "/v1/corrective-actions", as: token)
                #expect(Set(Self.items(actions).compactMap { $0["ownerUnit"] as? String }) == expected, "corrective@\(viewer)")
                let (_, register) = try await F.get(client, "/v1/register", as: token)
                #expect(Set(Self.items(register).compactMap { $0["unit"] as? String }) == expected, "register@\(viewer)")
                let (_, checks) = try await F.get(client, "/v1/spot-checks", as: token)
                // A province's draw is its own and HQ's to read; a city does not read its province's check of it.
                let drawers = Set(Self.items(checks).compactMap { $0["unit"] as? String })
                #expect(drawers == Set(["GD", "ZJ"].filter { CaseIsolationTests.sees(viewer, $0) }), "spot-checks@\(viewer)")
            }
        }
    }

    // MARK: The whole way

    /// A city closes a case "not liable"; the province's draw picks it; the verdict revises it; a
    /// corrective action is opened from the spot-check and closed (done, then verified).
    @Test func aNotLiableClosureIsDrawnRevisedAndCorrected() async throws {
        try await F.withApp { db, _, client in
            let id = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "resolved", number: "GD-SZ-20261130-000501")
            let owner = await F.token("GD-SZ-AGE01", .agent, "GD-SZ"), province = await F.token("GD-SUP01", .supervisor, "GD")
            var (status, json) = try await F.act(client, id, "close", ["version": 1, "liability": "not_liable", "responsibleLink": "claims",
                                                                      "causeCode": "customer_misunderstanding", "outcome": "经核实，理赔符合合同约定。"], as: owner)
            #expect(status == .ok && json["spotCheck"] as? Bool == true, "\(json)")
            // The period is the month the case closed in, Beijing time (read back, so the test holds on any date).
            let closedAt = try #require(try await db.query("SELECT closed_at FROM complaints WHERE id = \(id)", logger: TestDatabase.logger).decode(Date.self).first { _ in true })
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: "Asia/Shanghai")!
            let month = calendar.dateComponents([.year, .month], from: closedAt)
            let period = String(format: "%04d-%02d", month.year!, month.month!)
            (status, json) = try await Self.post(client, "/v1/spot-checks/draw", ["kind": "not_liable", "period": period], as: province)
            #expect(status == .created && Self.items(json).compactMap { $0["number"] as? String } == ["GD-SZ-20261130-000501"], "\(json)")
            let check = try #require(Self.items(json).first?["id"] as? String)
            (status, json) = try await Self.post(client, "/v1/spot-checks/\(check)/verdict", [
                "version": 1, "verdict": "revised", "liability": "liable", "responsibleLink": "claims", "causeCode": "claim_delay", "note": "理赔超时，应有责"],
                as: province)
            #expect(status == .ok && json["status"] as? String == "revised")
            let (_, detail) = try await F.get(client, "/v1/cases/\(id)", as: owner)
            #expect(detail["liability"] as? String == "liable" && detail["causeCode"] as? String == "claim_delay" && detail["status"] as? String == "closed")
            (status, json) = try await Self.post(client, "/v1/corrective-actions", [
                "source": "spot_check", "spotCheck": check, "ownerUnit": "GD-SZ", "responsible": "GD-SZ-SUP01", "action": "理赔时效专项整改",
                "dueAt": Timestamp.format(Date().addingTimeInterval(30 * 86_400))], as: province)
            #expect(status == .created && json["caseNumber"] as? String == "GD-SZ-20261130-000501", "\(json)")
            let action = try #require(json["id"] as? String)
            (status, _) = try await Self.post(client, "/v1/corrective-actions/\(action)/done", ["version": 1, "note": "已培训并修订流程"],
                                              as: await F.token("GD-SZ-SUP01", .supervisor, "GD-SZ"))
            #expect(status == .ok)
            (status, json) = try await Self.post(client, "/v1/corrective-actions/\(action)/verify", ["version": 2], as: province)
            #expect(status == .ok && json["status"] as? String == "verified")
            let history = (try await F.get(client, "/v1/cases/\(id)", as: owner).1["history"] as? [[String: Any]] ?? []).compactMap { $0["action"] as? String }
            #expect(history == ["close", "revise_closure", "open_corrective_action", "corrective_action_done", "corrective_action_verified"], "\(history)")
            #expect(try await F.outboxTypes(db, id) == ["case.closed", "spotcheck.drawn", "spotcheck.decided"])
            // The verdict is kept for the assessment (考核): the province's report of the period counts it against the city.
            var report: [String: Any]
            (status, report) = try await F.get(client, "/v1/reports?unit=GD&period=\(period)", as: province)
            let oversight = report["oversight"] as? [String: Any] ?? [:]
            let city = (oversight["spotChecks"] as? [String: Any])?["GD-SZ"] as? [String: Any] ?? [:]
            #expect(status == .ok && city["drawn"] as? Int == 1 && city["revised"] as? Int == 1 && city["upheld"] as? Int == 0, "\(oversight)")
            #expect(oversight["correctiveOpened"] as? Int == 1 && oversight["correctiveVerified"] as? Int == 1 && oversight["correctiveOverdue"] as? Int == 0)
            (_, report) = try await F.get(client, "/v1/reports?unit=GD-SZ&period=\(period)", as: await F.token("GD-SZ-SUP01", .supervisor, "GD-SZ"))
            #expect(((report["oversight"] as? [String: Any])?["spotChecks"] as? [String: Any])?.isEmpty == true, "the province's spot-check is not in the city's report")
        }
    }
}
