import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import PostgresNIO
@testable import RedressCases
@testable import RedressContracts
import RedressDomain
import RedressKafka
@testable import RedressNotify
@testable import RedressServiceKit
import Testing

/// The case workbench through the staff API on a real PostgreSQL: the complaint as submitted, its
/// clocks, visits and notices; the customer's other complaints; the supervisor's corrections; the
/// refusals of a reassignment; the closure's outcome and the customer notices it and the other turns send.
@Suite struct CaseWorkbenchTests {
    typealias F = CaseFixture

    static func items(_ json: [String: Any]) -> [String] {
        (json["items"] as? [[String: Any]])?.compactMap { $0["number"] as? String } ?? []
    }

    @Test func theCaseCarriesTheComplaintAsSubmittedWithItsClocksVisitsAndNotices() async throws {
        try await F.withApp { db, _, client in
            let id = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "investigating", number: "GD-SZ-20261122-000101")
            try await db.query("""
                UPDATE complaints SET content = '理赔申请一个月没有结果，保单号P123，理赔员一直不接电话，请打13912345678',
                    attachments = '[{"name":"病历.pdf","uri":"docs://claims/77.pdf","contentType":"application/pdf","size":1024}]',
                    claim_stage = 'post_claim', customer_flags = '{elderly}', regulator_case_number = 'GDJG-2026-0042',
                    regulator_deadline = now() + interval '10 days'
                WHERE id = \(id)
                """, logger: TestDatabase.logger)
            // One clock of each state.
            try await db.query("""
                INSERT INTO sla_clocks (complaint_id, kind, started_at, warn_at, due_at, paused_at, breached_at, stopped_at) VALUES
                    (\(id), 'decision', now() - interval '1 day', now() + interval '10 days', now() + interval '14 days', NULL, NULL, NULL),
                    (\(id), 'post_claim', now() - interval '1 day', now() + interval '1 hour', now() + interval '3 hours', now() - interval '1 hour', NULL, NULL),
                    (\(id), 'acknowledge', now() - interval '1 day', now() - interval '5 hours', now(), NULL, NULL, now() - interval '20 hours'),
                    (\(id), 'first_contact', now() - interval '1 day', now() - interval '5 hours', now() - interval '1 hour', NULL, now() - interval '1 hour', NULL)
                """, logger: TestDatabase.logger)
            try await db.query("""
                INSERT INTO surveys (id, complaint_id, visit, due_at, status, score, resolved, comment, answered_at)
                VALUES (\(UUID()), \(id), 'day0', now(), 'answered', 2, false, '还是没解决', now())
                """, logger: TestDatabase.logger)
            try await db.query("""
                INSERT INTO notifications (id, complaint_id, event_id, recipient, channel, template, status, body) VALUES
                    (\(UUID()), \(id), \(UUID()), 'customer:k', 'sms', 'complaint.registered.acknowledgement', 'delivered', 'x'),
                    (\(UUID()), \(id), \(UUID()), 'staff:GD-SZ-AGE01', 'staff_inbox', 'case.assigned.owner', 'delivered', 'x')
                """, logger: TestDatabase.logger)
            let second = try await F.insert(db, unit: "GD", assignee: "GD-AGE01", status: "reopened", number: "GD-SZ-20261122-000101-R1")
            try await db.query("UPDATE complaints SET reopened_from = \(id) WHERE id = \(second)", logger: TestDatabase.logger)

            let (status, json) = try await F.get(client, "/v1/cases/GD-SZ-20261122-000101", as: (await F.token("GD-SZ-AGE01", .agent, "GD-SZ")))
            #expect(status == .ok)
            let content = try #require(json["content"] as? String)
            #expect(content.hasPrefix("理赔申请一个月没有结果，保单号P123"))
            #expect(!content.contains("13912345678") && content.contains("139****5678"), "the content as in events: personal data scrubbed")
            let attachments = try #require(json["attachments"] as? [[String: Any]])
            #expect(attachments.first?["uri"] as? String == "docs://claims/77.pdf" && attachments.first?["name"] as? String == "病历.pdf")
            #expect(json["externalRef"] as? String == "GD-SZ-20261122-000101")
            #expect(json["claimStage"] as? String == "post_claim")
            #expect(json["customerFlags"] as? [String] == ["elderly"])
            let regulator = try #require(json["regulator"] as? [String: Any])
            #expect(regulator["caseNumber"] as? String == "GDJG-2026-0042" && regulator["deadline"] is String)
            #expect((json["linked"] as? [String: Any])?["secondComplaints"] as? [Any] != nil)
            // The second complaint is handled one level up: the province sees it linked, the city's agent does not see it at all.
            let (_, above) = try await F.get(client, "/v1/cases/GD-SZ-20261122-000101", as: (await F.token("GD-SUP01", .supervisor, "GD")))
            let linked = try #require(above["linked"] as? [String: Any])
            #expect((linked["secondComplaints"] as? [[String: Any]])?.compactMap { $0["number"] as? String } == ["GD-SZ-20261122-000101-R1"])
            let clocks = Dictionary(uniqueKeysWithValues: (json["clocks"] as? [[String: Any]] ?? []).map { ($0["kind"] as? String ?? "", $0) })
            #expect(clocks["decision"]?["state"] as? String == "running")
            let remaining = try #require(clocks["decision"]?["remainingSeconds"] as? Int)
            #expect(abs(remaining - 14 * 86_400) < 120, "about 14 days left: \(remaining)")
            #expect(clocks["post_claim"]?["state"] as? String == "paused")
            #expect((clocks["post_claim"]?["remainingSeconds"] as? Int).map { abs($0 - 4 * 3600) < 120 } == true, "4 h were left when it paused")
            #expect(clocks["acknowledge"]?["state"] as? String == "met")
            #expect(clocks["first_contact"]?["state"] as? String == "breached")
            #expect(clocks["first_contact"]?["remainingSeconds"] == nil, "nothing is left of a breached clock")
            let visit = try #require((json["surveys"] as? [[String: Any]])?.first)
            #expect(visit["wave"] as? String == "day0" && visit["score"] as? Int == 2 && visit["resolved"] as? Bool == false && visit["comment"] as? String == "还是没解决")
            let notices = try #require(json["notices"] as? [[String: Any]])
            #expect(notices.count == 1, "staff inbox notes are not customer notices")
            #expect(notices.first?["template"] as? String == "complaint.registered.acknowledgement" && notices.first?["channel"] as? String == "sms")
            #expect(notices.first?["recipient"] == nil, "never the address")
            // The clear text comes only through the audited read.
            let (_, full) = try await F.get(client, "/v1/cases/\(id)/personal-data?purpose=%E6%A0%B8%E5%AE%9E", as: (await F.token("GD-SZ-AGE01", .agent, "GD-SZ")))
            #expect(full["phone"] as? String == "13812345678")
        }
    }

    @Test func theCustomersOtherComplaintsAreFoundByKeyedHashOnlyWithinTheCallersSubtree() async throws {
        try await F.withApp { db, host, client in
            let first = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", number: "GD-SZ-20261120-000001")
            let samePhone = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "closed", number: "GD-SZ-20261001-000009")
            let sameID = try await F.insert(db, unit: "GD-SZ-NS", assignee: "GD-SZ-NS-AGE01", number: "GD-SZ-NS-20261110-000003")
            let sibling = try await F.insert(db, unit: "GD-GZ", assignee: "GD-GZ-AGE01", number: "GD-GZ-20261115-000004")
            let stranger = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", number: "GD-SZ-20261121-000002")
            let phoneKey = host.personalData.customerKey(phone: "13812345678")
            let idKey = host.personalData.idNumberKey("11010519491231002X")
            for (id, phone, idn) in [(first, phoneKey, idKey), (samePhone, phoneKey, nil), (sameID, "other-phone", idKey), (sibling, phoneKey, idKey)] {
                try await db.query("UPDATE complaints SET customer_key = \(phone), customer_id_key = \(idn) WHERE id = \(id)", logger: TestDatabase.logger)
            }
            try await db.query("UPDATE complaints SET customer_key = 'someone-else' WHERE id = \(stranger)", logger: TestDatabase.logger)
            let agent = (await F.token("GD-SZ-AGE01", .agent, "GD-SZ"))
            var (status, json) = try await F.get(client, "/v1/cases/\(first)/customer-history", as: agent)
            #expect(status == .ok)
            #expect(Set(Self.items(json)) == ["GD-SZ-20261001-000009", "GD-SZ-NS-20261110-000003"], "the sibling city's complaint stays out of sight")
            (_, json) = try await F.get(client, "/v1/cases/\(first)/customer-history", as: (await F.token("GD-SUP01", .supervisor, "GD")))
            #expect(Self.items(json).first == "GD-GZ-20261115-000004", "newest first; the province sees both cities")
            #expect(Self.items(json).count == 3)
            (status, _) = try await F.get(client, "/v1/cases/\(sibling)/customer-history", as: agent)
            #expect(status == .notFound)
            // A queue search by phone or ID number hashes it on the server and is on record, per case found.
            (status, json) = try await F.get(client, "/v1/cases?q=13812345678&includeClosed=true", as: agent)
            #expect(status == .ok)
            #expect(Set(Self.items(json)) == ["GD-SZ-20261120-000001", "GD-SZ-20261001-000009"])
            (_, json) = try await F.get(client, "/v1/cases?q=11010519491231002x", as: agent)
            #expect(Set(Self.items(json)) == ["GD-SZ-20261120-000001", "GD-SZ-NS-20261110-000003"])
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM personal_data_reads WHERE purpose LIKE 'queue search by%' AND reader = 'GD-SZ-AGE01'") == 4)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM personal_data_reads WHERE purpose LIKE '%13812345678%'") == 0)
        }
    }

    @Test func aSupervisorCorrectsCategoryAndPriorityWithAReasonOnRecord() async throws {
        try await F.withApp { db, _, client in
            let id = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "investigating", number: "GD-SZ-20261122-000201")
            let supervisor = (await F.token("GD-SZ-SUP01", .supervisor, "GD-SZ"))
            var (status, json) = try await F.act(client, id, "reclassify", ["version": 1, "category": "sales", "reason": "销售误导"], as: (await F.token("GD-SZ-AGE01", .agent, "GD-SZ")))
            #expect(status == .forbidden, "agents do not correct the category")
            (status, json) = try await F.act(client, id, "reclassify", ["version": 1, "category": "pets", "reason": "r"], as: supervisor)
            #expect(status == .unprocessableContent)
            #expect(((json["errors"] as? [[String: Any]]) ?? []).compactMap { $0["field"] as? String } == ["category"])
            (status, json) = try await F.act(client, id, "reprioritise", ["version": 1, "priority": "critical", "reason": "r"], as: supervisor)
            #expect(status == .unprocessableContent)
            #expect(((json["errors"] as? [[String: Any]]) ?? []).compactMap { $0["field"] as? String } == ["priority"])
            (status, json) = try await F.act(client, id, "reclassify", ["version": 1, "category": "sales"], as: supervisor)
            #expect(status == .badRequest, "the reason is required")
            (status, _) = try await F.act(client, id, "reclassify", ["version": 1, "category": "claims", "reason": "r"], as: supervisor)
            #expect(status == .unprocessableContent, "already claims")
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM case_events") == 0, "nothing written by a refusal")
            (status, json) = try await F.act(client, id, "reclassify", ["version": 1, "category": "sales", "reason": "实为销售误导"], as: supervisor)
            #expect(status == .ok)
            #expect(json["category"] as? String == "sales" && json["version"] as? Int == 2)
            (status, json) = try await F.act(client, id, "reprioritise", ["version": 2, "priority": "urgent", "reason": "客户扬言投诉至媒体"], as: supervisor)
            #expect(status == .ok)
            #expect(json["priority"] as? String == "urgent" && json["status"] as? String == "investigating")
            #expect(try await F.outboxTypes(db, id) == ["case.updated", "case.updated"], "each announced: the supervisor re-clocks on case.updated")
            let (_, detail) = try await F.get(client, "/v1/cases/\(id)", as: supervisor)
            let history = detail["history"] as? [[String: Any]] ?? []
            #expect(history.map { $0["action"] as? String ?? "" } == ["reclassify", "reprioritise"])
            #expect((history[0]["payload"] as? [String: Any])?["previousCategory"] as? String == "claims")
            #expect(history[1]["reason"] as? String == "客户扬言投诉至媒体")
        }
    }

    @Test func aReassignmentRefusesWhoCannotTakeTheCaseAndSaysWhy() async throws {
        try await F.withApp { db, _, client in
            let id = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "investigating", number: "GD-SZ-20261122-000301", category: "service")
            try await db.query("UPDATE complaints SET policy_agent = 'GD-SZ-AGE03' WHERE id = \(id)", logger: TestDatabase.logger)
            let supervisor = (await F.token("GD-SUP01", .supervisor, "GD"))
            func reassign(_ to: String) async throws -> (HTTPResponse.Status, String) {
                let (status, json) = try await F.act(client, id, "reassign", ["version": 1, "assignee": to, "reason": "调整"], as: supervisor)
                return (status, json["detail"] as? String ?? "")
            }
            var (status, detail) = try await reassign("GD-SZ-AGE03")
            #expect(status == .conflict && detail.contains("sold the policy"), "\(detail)")
            try await db.query("UPDATE staff SET active = false WHERE id = 'GD-SZ-NS-AGE02'", logger: TestDatabase.logger)
            (status, detail) = try await reassign("GD-SZ-NS-AGE02")
            #expect(status == .conflict && detail.contains("deactivated"), "\(detail)")
            try await db.query("UPDATE staff SET leave_from = now() - interval '1 day', leave_to = now() + interval '1 day' WHERE id = 'GD-SZ-AGE02'", logger: TestDatabase.logger)
            (status, detail) = try await reassign("GD-SZ-AGE02")
            #expect(status == .conflict && detail.contains("unavailable"), "\(detail)")
            try await db.query("UPDATE staff SET leave_to = now() - interval '1 hour' WHERE id = 'GD-SZ-AGE02'", logger: TestDatabase.logger)
            try await db.query("UPDATE staff SET open_cases = capacity WHERE id = 'GD-SZ-AGE02'", logger: TestDatabase.logger)
            (status, detail) = try await reassign("GD-SZ-AGE02")
            #expect(status == .conflict && detail.contains("capacity"), "\(detail)")
            try await db.query("UPDATE staff SET open_cases = 0, skills = '{claims}' WHERE id = 'GD-SZ-AGE02'", logger: TestDatabase.logger)
            (status, detail) = try await reassign("GD-SZ-AGE02")
            #expect(status == .conflict && detail.contains("lacks the service skill"), "\(detail)")
            (status, _) = try await reassign("NOBODY")
            #expect(status == .unprocessableContent)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM case_events") == 0)
            try await db.query("UPDATE staff SET skills = '{service}' WHERE id = 'GD-SZ-AGE02'", logger: TestDatabase.logger)
            (status, detail) = try await reassign("GD-SZ-AGE02")
            #expect(status == .ok, "\(detail)")
        }
    }

    @Test func theSupervisorQueueFiltersUnassignedAndCommitteeCases() async throws {
        try await F.withApp { db, _, client in
            try await F.insert(db, unit: "GD-SZ", assignee: nil, status: "registered", number: "GD-SZ-20261122-000401")
            let referred = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "investigating", number: "GD-SZ-20261122-000402")
            try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "investigating", number: "GD-SZ-20261122-000403")
            try await db.query("UPDATE complaints SET committee_status = 'referred' WHERE id = \(referred)", logger: TestDatabase.logger)
            let supervisor = (await F.token("GD-SZ-SUP01", .supervisor, "GD-SZ"))
            var (_, json) = try await F.get(client, "/v1/cases?unassigned=true", as: supervisor)
            #expect(Self.items(json) == ["GD-SZ-20261122-000401"])
            (_, json) = try await F.get(client, "/v1/cases?committee=referred", as: supervisor)
            #expect(Self.items(json) == ["GD-SZ-20261122-000402"])
            let (status, error) = try await F.get(client, "/v1/cases?committee=maybe", as: supervisor)
            #expect(status == .badRequest)
            #expect(((error["errors"] as? [[String: Any]]) ?? []).compactMap { $0["field"] as? String } == ["committee"])
        }
    }

    @Test func closingNeedsAnOutcomeForTheCustomerWhichTheEventCarriesScrubbed() async throws {
        try await F.withApp { db, _, client in
            let id = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "resolved", number: "GD-SZ-20261122-000501")
            let agent = (await F.token("GD-SZ-AGE01", .agent, "GD-SZ"))
            let closure: [String: Any] = ["version": 1, "liability": "liable", "responsibleLink": "claims", "causeCode": "claim_delay"]
            var (status, json) = try await F.act(client, id, "close", closure, as: agent)
            #expect(status == .badRequest)
            #expect(((json["errors"] as? [[String: Any]]) ?? []).compactMap { $0["field"] as? String } == ["outcome"])
            (status, json) = try await F.act(client, id, "close", closure.merging(["outcome": "赔款已补发；如有疑问请联系理赔员13900001111"]) { $1 }, as: agent)
            #expect(status == .ok)
            #expect(json["outcome"] as? String == "赔款已补发；如有疑问请联系理赔员139****1111")
            let payload = try #require(try await Self.outboxPayload(db, "case.closed"))
            let event = try EventCoding.decoder().decode(EventEnvelope<CaseClosed>.self, from: Data(payload.utf8))
            #expect(event.payload.outcome == "赔款已补发；如有疑问请联系理赔员139****1111")
        }
    }

    static func outboxPayload(_ db: PostgresClient, _ type: String) async throws -> String? {
        for try await text in try await db.query("SELECT convert_from(payload, 'UTF8') FROM outbox WHERE event_type = \(type) ORDER BY id DESC LIMIT 1",
                                                 logger: TestDatabase.logger).decode(String.self) { return text }
        return nil
    }

    /// What the customer is told at each turn: the events the staff API emits, decoded by notify's
    /// consumer as it would read them off the topic, and composed into the customer's language.
    @Test func theCustomerIsToldOfEveryTurnWithTheOutcomeAtClosure() async throws {
        try await F.withApp { db, _, client in
            let id = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "investigating", number: "GD-SZ-20261122-000601")
            let agent = (await F.token("GD-SZ-AGE01", .agent, "GD-SZ"))
            var version = 1
            for (action, body) in [("await_customer", ["reason": "请补充提供住院病历及费用清单", "respondBy": Timestamp.format(Date().addingTimeInterval(5 * 86_400))]),
                                   ("customer_responded", [:]), ("propose_resolution", ["text": "补发赔款并支付利息"]), ("customer_accepts", [:]),
                                   ("close", ["liability": "liable", "responsibleLink": "claims", "causeCode": "claim_delay", "outcome": "赔款及利息已于今日补发"])] {
                let (status, json) = try await F.act(client, id, action, (body as [String: Any]).merging(["version": version]) { $1 }, as: agent)
                #expect(status == .ok, "\(action): \(json)")
                version = json["version"] as? Int ?? 0
            }
            // An escalated case assigned again at the province: the customer hears who has it now.
            let moved = EventEnvelope(complaintId: id, orgUnit: "GD", actor: .service("redress-cases"), payload: CaseAssigned(
                transition: CaseTransition(number: "GD-SZ-20261122-000601", fromStatus: .escalated, toStatus: .assigned, handlingUnit: "GD",
                                           assignee: "GD-AGE01", reason: nil, caseVersion: 9, action: .assign)))
            var messages: [KafkaMessage] = []
            for try await (type, text) in try await db.query("SELECT event_type, convert_from(payload, 'UTF8') FROM outbox ORDER BY id",
                                                             logger: TestDatabase.logger).decode((String, String).self) {
                messages.append(KafkaMessage(topic: EventType(rawValue: type)!.topic, partition: 0, offset: 0, key: nil, value: Array(text.utf8), headers: []))
            }
            messages.append(KafkaMessage(topic: EventType.caseAssigned.topic, partition: 0, offset: 0, key: nil,
                                         value: Array(try EventCoding.encoder().encode(moved)), headers: []))
            let settings = NotifyFixture.settings(["sms": LogChannel(logger: TestDatabase.logger)])
            let handler = CustomerNoticeHandler(composer: Composer(settings: settings))
            let notices = try messages.compactMap { try handler.decode($0).get() }
            #expect(notices.map(\.template) == ["case.awaiting_customer.customer", "case.resolution_proposed.customer", "case.closed.customer", "case.moved.customer"])
            try await db.withTransaction(logger: TestDatabase.logger) { connection in
                try await handler.handle(notices, on: connection, logger: TestDatabase.logger)
            }
            var bodies: [String: String] = [:]
            for try await (template, body) in try await db.query("SELECT template, body FROM notifications WHERE complaint_id = \(id)",
                                                                 logger: TestDatabase.logger).decode((String, String).self) { bodies[template] = body }
            #expect(bodies["case.awaiting_customer.customer"]?.contains("请补充提供住院病历及费用清单") == true, "\(bodies)")
            #expect(bodies["case.resolution_proposed.customer"]?.contains("补发赔款并支付利息") == true)
            #expect(bodies["case.closed.customer"]?.contains("赔款及利息已于今日补发") == true)
            #expect(bodies["case.moved.customer"]?.contains("广东") == true, "the office by name: \(bodies["case.moved.customer"] ?? "")")
            #expect(bodies.values.allSatisfy { $0.contains("GD-SZ-20261122-000601") && !$0.contains("{{") })
        }
    }
}
