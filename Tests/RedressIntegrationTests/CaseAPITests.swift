import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import PostgresNIO
@testable import RedressCases
@testable import RedressContracts
import RedressDomain
@testable import RedressServiceKit
import Testing

/// Test fixtures for the case service: cases inserted straight into a real PostgreSQL, the router
/// through Hummingbird's test client.
enum CaseFixture {
    static let taxonomy: ClosureTaxonomy = {
        try! CasesService.loadTaxonomy(file: TestDatabase.repo.appendingPathComponent("deploy/cases/closure-taxonomy.json").path)
    }()

    static func app(_ host: ServiceHost) -> some ApplicationProtocol {
        let (router, _) = CasesService.build(host: host, taxonomy: taxonomy)
        host.routeMethods.load(router)   // as ServiceHost.run does, for 405 with Allow
        return Application(router: router)
    }

    static func withApp(_ body: @Sendable @escaping (PostgresClient, ServiceHost, any TestClientProtocol) async throws -> Void) async throws {
        try await TestDatabase.withFresh { db, database in
            try await TestHost.withHost(service: CasesService.name, database: database) { host in
                try await app(host).test(.router) { client in try await body(db, host, client) }
            }
        }
    }

    /// A case handled at `unit`, owned by `assignee`, in `status`.
    @discardableResult
    static func insert(_ db: PostgresClient, unit: String, assignee: String?, status: String = "assigned", number: String,
                       policy: String? = nil, claim: String? = nil, dueInHours: Double = 360, category: String = "claims",
                       priority: String = "normal", channel: String = "online") async throws -> UUID {
        let id = UUID()
        let due = Date().addingTimeInterval(dueInHours * 3600)
        try await db.query("""
            INSERT INTO complaints (id, number, channel, external_ref, received_at, promised_reply_by, branch, customer_name, customer_phone,
                customer_id_number, customer_key, subject, content, policy_number, claim_number, category, priority, handling_unit, assignee, status)
            VALUES (\(id), \(number), \(channel), \(number), now(), \(due), \(unit), '张三', '13812345678', '11010519491231002X', 'k-' || \(number),
                    '理赔太慢', '理赔拖了两个月', \(policy), \(claim), \(category), \(priority), \(unit), \(assignee), \(status))
            """, logger: TestDatabase.logger)
        // A closed case is off its owner's workload, as the workflow leaves it.
        if let assignee, status != "closed" {
            try await db.query("UPDATE staff SET open_cases = open_cases + 1 WHERE id = \(assignee)", logger: TestDatabase.logger)
        }
        return id
    }

    static func token(_ subject: String, _ role: Role, _ unit: String) async -> String {
        "Bearer " + (await TestHost.tokens.mint(subject: subject, role: role, unit: unit))
    }

    static func get(_ client: some TestClientProtocol, _ uri: String, as token: String) async throws -> (HTTPResponse.Status, [String: Any]) {
        let response = try await client.execute(uri: uri, method: .get, headers: [.authorization: token], body: nil)
        return (response.status, (try? JSONSerialization.jsonObject(with: Data(buffer: response.body))) as? [String: Any] ?? [:])
    }

    static func act(_ client: some TestClientProtocol, _ key: Any, _ action: String, _ body: [String: Any], as token: String) async throws -> (HTTPResponse.Status, [String: Any]) {
        let data = try JSONSerialization.data(withJSONObject: body)
        let response = try await client.execute(uri: "/v1/cases/\(key)/actions/\(action)", method: .post,
                                                 headers: [.authorization: token, .contentType: "application/json"], body: ByteBuffer(bytes: data))
        return (response.status, (try? JSONSerialization.jsonObject(with: Data(buffer: response.body))) as? [String: Any] ?? [:])
    }

    static func outboxTypes(_ db: PostgresClient, _ id: UUID) async throws -> [String] {
        var types: [String] = []
        for try await type in try await db.query("SELECT event_type FROM outbox WHERE key = \(id.uuidString.lowercased()) ORDER BY id", logger: TestDatabase.logger).decode(String.self) {
            types.append(type)
        }
        return types
    }
}

@Suite struct CaseAPITests {
    /// 典型案例: a supervisor marks a closed case, its summary scrubbed; each unit lists its subtree's.
    @Test func typicalCasesAreMarkedOnClosedCasesAndListedBySubtree() async throws {
        try await CaseFixture.withApp { db, _, client in
            typealias F = CaseFixture
            let closed = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "closed", number: "GD-SZ-20261130-000011")
            let open = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", number: "GD-SZ-20261130-000012")
            func mark(_ id: UUID, _ summary: String?, as token: String) async throws -> (HTTPResponse.Status, [String: Any]) {
                let body = try JSONSerialization.data(withJSONObject: summary.map { ["summary": $0] } ?? [:])
                let response = try await client.execute(uri: "/v1/cases/\(id)/typical", method: .post,
                                                         headers: [.authorization: token, .contentType: "application/json"], body: ByteBuffer(bytes: body))
                return (response.status, (try? JSONSerialization.jsonObject(with: Data(buffer: response.body))) as? [String: Any] ?? [:])
            }
            let supervisor = (await F.token("GD-SZ-SUP01", .supervisor, "GD-SZ"))
            #expect(try await mark(closed, "销售误导典型：客户电话13812345678", as: (await F.token("GD-SZ-AGE01", .agent, "GD-SZ"))).0 == .forbidden)
            #expect(try await mark(open, "未结案", as: supervisor).0 == .conflict, "only closed cases")
            #expect(try await mark(closed, nil, as: supervisor).0 == .badRequest)
            let (status, marked) = try await mark(closed, "销售误导典型：客户电话13812345678", as: supervisor)
            #expect(status == .created && marked["summary"] as? String == "销售误导典型：客户电话138****5678", "\(marked)")
            let (_, province) = try await F.get(client, "/v1/typical-cases", as: (await F.token("GD-SUP01", .supervisor, "GD")))
            #expect((province["items"] as? [[String: Any]])?.compactMap { $0["number"] as? String } == ["GD-SZ-20261130-000011"])
            let (_, sibling) = try await F.get(client, "/v1/typical-cases", as: (await F.token("GD-GZ-SUP01", .supervisor, "GD-GZ")))
            #expect((sibling["items"] as? [[String: Any]])?.isEmpty == true, "a sibling city sees none")
            #expect(try await mark(closed, "x", as: (await F.token("GD-GZ-SUP01", .supervisor, "GD-GZ"))).0 == .notFound, "nor marks one")
        }
    }

    /// 返回重新调查: a supervisor of a level above returns the case to its owner with guidance.
    @Test func aLevelAboveSendsACaseBackWithGuidance() async throws {
        try await CaseFixture.withApp { db, _, client in
            typealias F = CaseFixture
            let id = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "resolution_proposed", number: "GD-SZ-20261130-000007")
            let guidance = ["version": 1, "reason": "补充核实理赔时效，联系客户确认到账日期"] as [String: Any]
            var (status, json) = try await F.act(client, id, "send_back", guidance, as: (await F.token("GD-SZ-AGE01", .agent, "GD-SZ")))
            #expect(status == .forbidden, "the owner does not send their own case back")
            (status, json) = try await F.act(client, id, "send_back", guidance, as: (await F.token("GD-SZ-SUP01", .supervisor, "GD-SZ")))
            #expect(status == .forbidden && (json["detail"] as? String)?.contains("level above") == true, "the handling unit's own supervisor is not above it: \(json)")
            (status, json) = try await F.act(client, id, "send_back", ["version": 1], as: (await F.token("GD-SUP01", .supervisor, "GD")))
            #expect(status == .badRequest && StaffAdminTests.fields(json) == ["reason"], "the guidance is required")
            (status, json) = try await F.act(client, id, "send_back", guidance, as: (await F.token("GD-SUP01", .supervisor, "GD")))
            #expect(status == .ok, "\(json)")
            #expect(json["status"] as? String == "investigating" && json["assignee"] as? String == "GD-SZ-AGE01", "back to investigating, same owner")
            let (_, detail) = try await F.get(client, "/v1/cases/\(id)", as: (await F.token("GD-SZ-AGE01", .agent, "GD-SZ")))
            let last = (detail["history"] as? [[String: Any]])?.last ?? [:]
            #expect(last["action"] as? String == "send_back" && last["actor"] as? String == "GD-SUP01")
            #expect((last["reason"] as? String)?.contains("补充核实理赔时效") == true)
            #expect(try await F.outboxTypes(db, id) == ["case.updated"])
            // From investigating it may be sent back again; a closed case cannot be.
            (status, _) = try await F.act(client, id, "send_back", ["version": 2, "reason": "再核实一次"], as: (await F.token("HQ-SUP01", .supervisor, "HQ")))
            #expect(status == .ok)
            let closed = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "closed", number: "GD-SZ-20261130-000008")
            (status, _) = try await F.act(client, closed, "send_back", guidance, as: (await F.token("GD-SUP01", .supervisor, "GD")))
            #expect(status == .conflict)
        }
    }

    /// What the console offers as forms: the actions this caller may take now, and the board's lists and counts.
    @Test func allowedActionsAreTheCallersAndTheBoardHasItsListsAndCounts() async throws {
        try await CaseFixture.withApp { db, _, client in
            typealias F = CaseFixture
            let first = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "closed", number: "GD-SZ-20261130-000001")
            try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "investigating", number: "GD-SZ-20261130-000002", dueInHours: -2)
            let second = try await F.insert(db, unit: "GD", assignee: nil, status: "assigned", number: "GD-SZ-20261130-000001-R1")
            try await db.query("UPDATE complaints SET reopened_from = \(first) WHERE id = \(second)", logger: TestDatabase.logger)
            func actions(_ token: String) async throws -> [String] {
                try await F.get(client, "/v1/cases/GD-SZ-20261130-000002", as: token).1["allowedActions"] as? [String] ?? ["?"]
            }
            let owner = try await actions((await F.token("GD-SZ-AGE01", .agent, "GD-SZ")))
            #expect(owner.contains("propose_resolution") && !owner.contains("reassign") && !owner.contains("exclude_time"), "\(owner)")
            #expect(try await actions((await F.token("GD-SZ-AGE02", .agent, "GD-SZ"))) == [], "another agent may do nothing on a case not theirs")
            #expect(try await actions((await F.token("HQ-AUD01", .auditor, "HQ"))) == [], "auditors read")
            #expect(try await actions((await F.token("GD-COM01", .committee, "GD"))) == ["record_committee_ruling", "add_note"])
            let supervisor = try await actions((await F.token("GD-SZ-SUP01", .supervisor, "GD-SZ")))
            #expect(supervisor.contains("reassign") && supervisor.contains("exclude_time"))

            let province = (await F.token("GD-SUP01", .supervisor, "GD"))
            var (status, json) = try await F.get(client, "/v1/cases?secondComplaint=true", as: province)
            #expect(status == .ok && (json["items"] as? [[String: Any]])?.compactMap { $0["number"] as? String } == ["GD-SZ-20261130-000001-R1"])
            // The schema's required fields are there, null when unset.
            #expect(json["nextCursor"] is NSNull, "the last page says nextCursor: null")
            let item = (json["items"] as? [[String: Any]])?.first ?? [:]
            #expect(item["assignee"] is NSNull && item["claimNumber"] is NSNull && item.keys.contains("policyNumber"))
            (status, json) = try await F.get(client, "/v1/cases/counts", as: province)
            let counts = (json["items"] as? [[String: Any]] ?? []).map { "\($0["unit"]!) \($0["open"]!) \($0["breached"]!) \($0["unassigned"]!)" }
            #expect(status == .ok && counts == ["GD 1 0 1", "GD-SZ 1 1 0"], "\(json)")
            (status, _) = try await F.get(client, "/v1/cases/counts?unit=ZJ", as: province)
            #expect(status == .forbidden, "a sibling province's counts are not theirs")
        }
    }

    typealias F = CaseFixture

    @Test func aCaseGoesTheWholeWayWithEveryChangeOnRecordAndAnnounced() async throws {
        try await F.withApp { db, _, client in
            let id = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", number: "GD-SZ-20261122-000001")
            let agent = (await F.token("GD-SZ-AGE01", .agent, "GD-SZ"))
            var version = 1
            func step(_ action: String, _ body: [String: Any] = [:], as token: String? = nil, expect: HTTPResponse.Status = .ok) async throws -> [String: Any] {
                var body = body
                body["version"] = version
                let (status, json) = try await F.act(client, id, action, body, as: token ?? agent)
                #expect(status == expect, "\(action): \(json)")
                if status == .ok { version = json["version"] as? Int ?? -1 }
                return json
            }
            _ = try await step("start_investigation")
            _ = try await step("record_contact", ["text": "电话联系客户，说明理赔进度", "contactChannel": "phone", "nextContactAt": "2026-11-25T10:00:00+08:00"])
            _ = try await step("add_evidence", ["name": "理赔单据", "uri": "docs://claims/123.pdf", "contentType": "application/pdf"])
            _ = try await step("await_customer", ["reason": "等待客户补充材料"])
            _ = try await step("customer_responded")
            _ = try await step("extend", ["days": 30, "reason": "需要医院出具鉴定报告"])
            // Sixty days needs a supervisor of the level above (GD for GD-SZ).
            _ = try await step("extend", ["days": 60, "reason": "鉴定未完成", "approvedBy": "GD-SZ-SUP01"], expect: .unprocessableContent)
            // …and it is that supervisor who takes the action; naming them is not enough.
            _ = try await step("extend", ["days": 60, "reason": "鉴定未完成", "approvedBy": "GD-SUP01"], expect: .unprocessableContent)
            let extended = try await step("extend", ["days": 60, "reason": "鉴定未完成", "approvedBy": "GD-SUP01"], as: (await F.token("GD-SUP01", .supervisor, "GD")))
            #expect(extended["decisionDays"] as? Int == 60)
            _ = try await step("refer_to_committee", ["reason": "重大疑难"])
            _ = try await step("record_committee_ruling", ["text": "维持原理赔结论", "members": ["GD-COM01", "GD-SUP01"], "liability": "not_liable",
                                                           "responsibleLink": "claims", "causeCode": "customer_misunderstanding"],
                               as: (await F.token("GD-COM01", .committee, "GD")))
            _ = try await step("propose_resolution", ["text": "补偿利息损失"])
            _ = try await step("customer_accepts")
            _ = try await step("close", ["liability": "not_liable", "responsibleLink": "claims", "causeCode": "customer_misunderstanding",
                                         "outcome": "经核实，理赔结论符合合同约定；已向您说明免责条款。"])
            let (_, detail) = try await F.get(client, "/v1/cases/\(id)", as: agent)
            #expect(detail["status"] as? String == "closed")
            #expect(detail["spotCheck"] as? Bool == true, "not liable at city level goes to the province for spot-check")
            #expect(detail["committeeStatus"] as? String == "ruled")
            #expect(detail["allowedActions"] as? [String] == ["reopen"])
            let history = detail["history"] as? [[String: Any]] ?? []
            #expect(history.map { $0["action"] as? String ?? "" } == [
                "start_investigation", "record_contact", "add_evidence", "await_customer", "customer_responded", "extend", "extend",
                "refer_to_committee", "record_committee_ruling", "propose_resolution", "customer_accepts", "close",
            ])
            #expect((history[8]["payload"] as? [String: Any])?["members"] as? [String] == ["GD-COM01", "GD-SUP01"])
            #expect(history[8]["actor"] as? String == "GD-COM01" && history[8]["actorRole"] as? String == "committee")
            #expect(try await F.outboxTypes(db, id) == [
                "case.updated", "case.updated", "case.updated", "case.updated", "case.updated", "case.extended", "case.extended",
                "committee.referred", "case.updated", "committee.ruled", "case.updated", "case.updated", "case.updated", "case.closed",
            ])
            // Closing takes the case off its owner's workload.
            #expect(try await TestDatabase.count(db, "SELECT open_cases::bigint FROM staff WHERE id = 'GD-SZ-AGE01'") == 0)

            // A channel's own reference that looks like the one a reopening generates does not stand in its way.
            try await F.insert(db, unit: "GD-SZ", assignee: nil, status: "registered", number: "GD-SZ-20261122-000001#R1")
            // 复核: the customer asks for a review; a linked case opens, to be routed one level up.
            let (status, reopened) = try await F.act(client, id, "reopen", ["version": version, "reason": "客户不接受结论，申请复核"],
                                                     as: (await F.token("GD-SZ-SUP01", .supervisor, "GD-SZ")))
            #expect(status == .created)
            #expect(reopened["number"] as? String == "GD-SZ-20261122-000001-R1")
            let newID = try #require(UUID(uuidString: reopened["id"] as? String ?? ""))
            let (again, _) = try await F.act(client, id, "reopen", ["version": version, "reason": "再次申请"], as: (await F.token("GD-SZ-SUP01", .supervisor, "GD-SZ")))
            #expect(again == .conflict, "one second complaint per case")
            #expect(try await F.outboxTypes(db, newID) == ["case.reopened"])
            // The province sees the ruling in its spot-check list; the taxonomy is served to staff.
            let (_, spot) = try await F.get(client, "/v1/cases?spotCheck=true", as: (await F.token("GD-SUP01", .supervisor, "GD")))
            #expect((spot["items"] as? [[String: Any]])?.compactMap { $0["number"] as? String } == ["GD-SZ-20261122-000001"])
            let (_, taxonomy) = try await F.get(client, "/v1/closure-taxonomy", as: agent)
            #expect((taxonomy["causes"] as? [[String: Any]])?.contains { $0["code"] as? String == "customer_misunderstanding" } == true)
            let (_, linked) = try await F.get(client, "/v1/cases/GD-SZ-20261122-000001-R1", as: agent)
            #expect(linked["status"] as? String == "reopened")
            #expect((linked["reopenedFrom"] as? [String: Any])?["number"] as? String == "GD-SZ-20261122-000001")
            // The second complaint, closed in its turn, may itself come back once.
            try await db.query("UPDATE complaints SET status = 'closed' WHERE id = \(newID)", logger: TestDatabase.logger)
            let (third, thirdCase) = try await F.act(client, newID, "reopen", ["version": 1, "reason": "仍不满意"], as: (await F.token("GD-SZ-SUP01", .supervisor, "GD-SZ")))
            #expect(third == .created)
            #expect(thirdCase["number"] as? String == "GD-SZ-20261122-000001-R1-R1")
        }
    }

    /// The contract's edges, as the contract test (schemathesis) found them: a method a path does
    /// not declare is 405 with `Allow`; U+0000 in a stored field is named (422) and changes nothing,
    /// while one in an ignored field is ignored; a filter switch that is not true/false is named; a
    /// cursor of the documented shape always reads, however far it points.
    @Test func undeclaredMethodsNULsSwitchesAndCursorsAnswerAsDocumented() async throws {
        try await F.withApp { db, _, client in
            let id = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "investigating", number: "GD-SZ-20261122-000031")
            let agent = (await F.token("GD-SZ-AGE01", .agent, "GD-SZ"))
            let admin = (await F.token("HQ-ADM01", .admin, "HQ"))
            for (method, uri, allow) in [(HTTPRequest.Method.trace, "/v1/inbox", "GET, HEAD"),
                                         (.put, "/v1/cases/\(id)/actions/add_note", "POST"),
                                         (.delete, "/v1/staff", "GET, HEAD, POST"),
                                         (.post, "/v1/cases/\(id)", "GET, HEAD")] {
                let response = try await client.execute(uri: uri, method: method, headers: [.authorization: admin], body: nil)
                #expect(response.status == .methodNotAllowed, "\(method) \(uri)")
                #expect(response.headers[.allow] == allow, "\(method) \(uri)")
            }
            #expect(try await client.execute(uri: "/v1/nowhere", method: .get, headers: [.authorization: admin], body: nil).status == .notFound)

            var (status, json) = try await F.act(client, id, "add_note", ["version": 1, "text": "客户\u{0}来电"], as: agent)
            #expect(status == .unprocessableContent, "\(json)")
            (status, json) = try await F.act(client, id, "add_note", ["version": 1, "text": "客户来电", "ignored\u{0}": "\u{0}"], as: agent)
            #expect(status == .ok, "\(json)")
            #expect(json["version"] as? Int == 2)
            (status, json) = try await F.get(client, "/v1/staff?unit=GD%00SZ", as: admin)
            #expect(status == .unprocessableContent && (json["errors"] as? [[String: Any]])?.first?["field"] as? String == "unit", "\(json)")
            let path = try await client.execute(uri: "/v1/cases/abc%00/history", method: .get, headers: [.authorization: admin], body: nil)
            #expect(path.status == .notFound)

            (status, json) = try await F.get(client, "/v1/cases?unassigned=yes", as: admin)
            #expect(status == .badRequest && (json["errors"] as? [[String: Any]])?.first?["field"] as? String == "unassigned", "\(json)")
            (status, _) = try await F.get(client, "/v1/cases?q=", as: admin)
            #expect(status == .ok)
            (status, json) = try await F.get(client, "/v1/cases?cursor=99999999999999999.\(id.uuidString.lowercased())", as: admin)
            #expect(status == .ok && (json["items"] as? [Any])?.isEmpty == true, "\(json)")
            (status, json) = try await F.get(client, "/v1/cases?cursor=-99999999999999999.\(id.uuidString.lowercased())", as: admin)
            #expect(status == .ok && (json["items"] as? [Any])?.count == 1, "\(json)")
            (status, json) = try await F.get(client, "/v1/cases?cursor=9000000000000000000.\(id.uuidString.lowercased())", as: admin)
            #expect(status == .badRequest && (json["errors"] as? [[String: Any]])?.first?["field"] as? String == "cursor", "\(json)")
        }
    }

    @Test func refusalsSayWhatWasWrongAndChangeNothing() async throws {
        try await F.withApp { db, _, client in
            let id = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "investigating", number: "GD-SZ-20261122-000002")
            let agent = (await F.token("GD-SZ-AGE01", .agent, "GD-SZ"))
            // Illegal transition: 409 naming the state and the moves allowed.
            var (status, json) = try await F.act(client, id, "close", ["version": 1, "liability": "liable", "responsibleLink": "claims", "causeCode": "claim_delay", "outcome": "补发赔款"], as: agent)
            #expect(status == .conflict)
            #expect((json["detail"] as? String ?? "").hasPrefix("cannot close a case that is investigating; allowed from investigating: reassign,"))
            // Stale version.
            (status, json) = try await F.act(client, id, "add_note", ["version": 7, "text": "x"], as: agent)
            #expect(status == .conflict)
            #expect(json["detail"] as? String == "the case is at version 1, you sent 7: reload it and apply your change again")
            // Missing fields, all at once.
            (status, json) = try await F.act(client, id, "transfer", [:], as: agent)
            #expect(status == .badRequest)
            #expect(Set(((json["errors"] as? [[String: Any]]) ?? []).compactMap { $0["field"] as? String }) == ["version", "targetUnit", "reason"])
            // Not JSON.
            let response = try await client.execute(uri: "/v1/cases/\(id)/actions/add_note", method: .post,
                                                    headers: [.authorization: agent, .contentType: "application/json"], body: ByteBuffer(string: "{nope"))
            #expect(response.status == .badRequest)
            // Unknown action, and routing's own.
            (status, _) = try await F.act(client, id, "teleport", ["version": 1], as: agent)
            #expect(status == .notFound)
            (status, _) = try await F.act(client, id, "assign", ["version": 1], as: agent)
            #expect(status == .notFound)
            // Roles: auditors never write; an agent only on their own cases; only supervisors reassign.
            (status, _) = try await F.act(client, id, "add_note", ["version": 1, "text": "x"], as: (await F.token("HQ-AUD01", .auditor, "HQ")))
            #expect(status == .forbidden)
            (status, json) = try await F.act(client, id, "add_note", ["version": 1, "text": "x"], as: (await F.token("GD-SZ-AGE02", .agent, "GD-SZ")))
            #expect(status == .forbidden)
            #expect((json["detail"] as? String ?? "").contains("assigned to GD-SZ-AGE01"))
            (status, _) = try await F.act(client, id, "reassign", ["version": 1, "assignee": "GD-SZ-AGE02"], as: agent)
            #expect(status == .forbidden)
            // Business rules: 422.
            (status, json) = try await F.act(client, id, "transfer", ["version": 1, "targetUnit": "XX-NOPE", "reason": "r"], as: agent)
            #expect(status == .unprocessableContent)
            (status, _) = try await F.act(client, id, "extend", ["version": 1, "days": 60, "reason": "r"], as: agent)
            #expect(status == .unprocessableContent)
            (status, _) = try await F.act(client, id, "reassign", ["version": 1, "assignee": "ZJ-HZ-AGE01"], as: (await F.token("GD-SUP01", .supervisor, "GD")))
            #expect(status == .unprocessableContent, "a supervisor reassigns only within the case's subtree")
            (status, _) = try await F.act(client, id, "record_committee_ruling", ["version": 1, "text": "t", "members": ["GD-COM01"], "liability": "liable",
                                                                           "responsibleLink": "claims", "causeCode": "claim_delay"],
                                    as: (await F.token("GD-COM01", .committee, "GD")))
            #expect(status == .conflict, "a ruling needs a referral first")
            // Nothing changed.
            #expect(try await TestDatabase.count(db, "SELECT version::bigint FROM complaints WHERE id = \(id)") == 1)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM case_events") == 0)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM outbox") == 0)
            // No token, bad token.
            let anonymous = try await client.execute(uri: "/v1/cases/mine", method: .get, headers: [:], body: nil)
            #expect(anonymous.status == .unauthorized)
            let forged = (await TokenAuthority(secret: "not-the-deployment-secret-at-all").mint(subject: "GD-SZ-AGE01", role: .agent, unit: "GD-SZ"))
            for token in ["Bearer " + forged, "Bearer not.a.token", "Basic Zm9vOmJhcg=="] {
                let refused = try await client.execute(uri: "/v1/cases/mine", method: .get, headers: [.authorization: token], body: nil)
                #expect(refused.status == .unauthorized, "\(token.prefix(12))…")
            }
        }
    }

    @Test func anExtensionNeverPromisesPastTheRegulatorsDeadline() async throws {
        try await F.withApp { db, _, client in
            let id = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "investigating", number: "GD-SZ-20261122-000030")
            try await db.query("UPDATE complaints SET regulator_deadline = received_at + interval '20 days' WHERE id = \(id)", logger: TestDatabase.logger)
            let (status, json) = try await F.act(client, id, "extend", ["version": 1, "days": 30, "reason": "等待鉴定"], as: (await F.token("GD-SZ-AGE01", .agent, "GD-SZ")))
            #expect(status == .ok)
            #expect(json["decisionDays"] as? Int == 30)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM complaints WHERE id = \(id) AND promised_reply_by = regulator_deadline") == 1)
        }
    }

    @Test func theStaffInboxShowsOwnAndUnitNoticesOnly() async throws {
        try await F.withApp { db, _, client in
            let id = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", number: "GD-SZ-20261122-000020")
            for (recipient, template) in [("staff:GD-SZ-AGE01", "case.assigned.owner"), ("supervisors:GD-SZ", "sla.warning.staff"), ("staff:GD-SZ-AGE02", "case.assigned.owner")] {
                try await db.query("""
                    INSERT INTO notifications (id, complaint_id, event_id, recipient, channel, template, status, body)
                    VALUES (\(UUID()), \(id), \(UUID()), \(recipient), 'staff_inbox', \(template), 'delivered', 'x')
                    """, logger: TestDatabase.logger)
            }
            let (_, mine) = try await F.get(client, "/v1/inbox", as: (await F.token("GD-SZ-AGE01", .agent, "GD-SZ")))
            #expect((mine["items"] as? [[String: Any]])?.compactMap { $0["template"] as? String } == ["case.assigned.owner"])
            let (_, supervisor) = try await F.get(client, "/v1/inbox", as: (await F.token("GD-SZ-SUP01", .supervisor, "GD-SZ")))
            #expect((supervisor["items"] as? [[String: Any]])?.compactMap { $0["template"] as? String } == ["sla.warning.staff"])
            let (outsiderStatus, _) = try await F.get(client, "/v1/inbox", as: (await F.token("GD-SZ-AGE01", .agent, "ZJ")))
            #expect(outsiderStatus == .forbidden, "a token naming another unit than the staff member's is refused")
        }
    }

    @Test func aSupervisorReassignsWithinTheSubtreeAndTheWorkloadFollows() async throws {
        try await F.withApp { db, _, client in
            let id = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "investigating", number: "GD-SZ-20261122-000003", category: "service")
            let (status, json) = try await F.act(client, id, "reassign", ["version": 1, "assignee": "GD-SZ-AGE02", "reason": "休假"], as: (await F.token("GD-SUP01", .supervisor, "GD")))
            #expect(status == .ok)
            #expect(json["assignee"] as? String == "GD-SZ-AGE02")
            #expect(json["status"] as? String == "investigating")
            #expect(try await TestDatabase.count(db, "SELECT open_cases::bigint FROM staff WHERE id = 'GD-SZ-AGE01'") == 0)
            #expect(try await TestDatabase.count(db, "SELECT open_cases::bigint FROM staff WHERE id = 'GD-SZ-AGE02'") == 1)
        }
    }

    @Test func concurrentUpdatesOfOneVersionLoseNoWrite() async throws {
        try await F.withApp { db, _, client in
            let id = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "investigating", number: "GD-SZ-20261122-000004")
            let agent = (await F.token("GD-SZ-AGE01", .agent, "GD-SZ"))
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for n in 0..<20 {
                    group.addTask { try await F.act(client, id, "add_note", ["version": 1, "text": "note \(n)"], as: agent).0 }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == .ok }.count == 1)
            #expect(statuses.filter { $0 == .conflict }.count == 19)
            #expect(try await TestDatabase.count(db, "SELECT version::bigint FROM complaints WHERE id = \(id)") == 2)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM case_events WHERE complaint_id = \(id)") == 1)
            // Twenty writers who each reload before writing all get through.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for n in 0..<20 {
                    group.addTask {
                        while true {
                            let (_, current) = try await F.get(client, "/v1/cases/\(id)", as: agent)
                            let (status, _) = try await F.act(client, id, "add_note", ["version": current["version"] as? Int ?? 0, "text": "retry \(n)"], as: agent)
                            if status == .ok { return }
                            #expect(status == .conflict)
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM case_events WHERE complaint_id = \(id)") == 21)
            #expect(try await TestDatabase.count(db, "SELECT version::bigint FROM complaints WHERE id = \(id)") == 22)
        }
    }

    @Test func queuesFilterSearchAndPageWithoutGapsOrRepeats() async throws {
        try await F.withApp { db, _, client in
            for n in 0..<120 {
                try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: n % 3 == 0 ? "investigating" : "assigned",
                                   number: String(format: "GD-SZ-20261122-%06d", 100 + n), policy: "P-\(n)", dueInHours: Double(n % 40),
                                   priority: n % 10 == 0 ? "urgent" : "normal")
            }
            try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "closed", number: "GD-SZ-20261122-000999")
            try await F.insert(db, unit: "GD-SZ-NS", assignee: "GD-SZ-NS-AGE01", number: "GD-SZ-NS-20261122-000001", claim: "CLM-7")
            let agent = (await F.token("GD-SZ-AGE01", .agent, "GD-SZ"))
            var seen: [String] = []
            var cursor: String?
            var pages = 0
            repeat {
                let uri = "/v1/cases/mine?limit=50" + (cursor.map { "&cursor=\($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)" } ?? "")
                let (status, page) = try await F.get(client, uri, as: agent)
                #expect(status == .ok)
                let items = page["items"] as? [[String: Any]] ?? []
                seen += items.compactMap { $0["number"] as? String }
                let dues = items.compactMap { $0["promisedReplyBy"] as? String }
                #expect(dues == dues.sorted(), "soonest due first")
                cursor = page["nextCursor"] as? String
                pages += 1
            } while cursor != nil && pages < 10
            #expect(pages == 3)
            #expect(seen.count == 120 && Set(seen).count == 120, "closed cases stay out of the queue; no page repeats or skips")
            let supervisor = (await F.token("GD-SZ-SUP01", .supervisor, "GD-SZ"))
            var (status, page) = try await F.get(client, "/v1/cases?status=investigating&priority=urgent&limit=200", as: supervisor)
            #expect(status == .ok)
            #expect((page["items"] as? [[String: Any]])?.count == 4) // n = 0, 30, 60, 90
            (_, page) = try await F.get(client, "/v1/cases?q=P-17", as: supervisor)
            #expect((page["items"] as? [[String: Any]])?.compactMap { $0["number"] as? String } == ["GD-SZ-20261122-000117"])
            (_, page) = try await F.get(client, "/v1/cases?q=CLM-7", as: supervisor)
            #expect((page["items"] as? [[String: Any]])?.count == 1, "the county below is in the city's queue")
            (_, page) = try await F.get(client, "/v1/cases?q=GD-SZ-20261122-00099&includeClosed=true", as: supervisor)
            #expect((page["items"] as? [[String: Any]])?.count == 1)
            (status, page) = try await F.get(client, "/v1/cases?status=lost&limit=0&dueBefore=soon", as: supervisor)
            #expect(status == .badRequest)
            #expect(Set(((page["errors"] as? [[String: Any]]) ?? []).compactMap { $0["field"] as? String }) == ["status", "limit", "dueBefore"])
            (status, _) = try await F.get(client, "/v1/cases?unit=GD", as: supervisor)
            #expect(status == .forbidden, "a parent's queue is outside the caller's subtree")
        }
    }

    @Test func fullPersonalDataGoesOnlyToHandlersAndEveryReadIsRecorded() async throws {
        try await F.withApp { db, _, client in
            let id = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", number: "GD-SZ-20261122-000005")
            var (status, json) = try await F.get(client, "/v1/cases/\(id)", as: (await F.token("HQ-AUD01", .auditor, "HQ")))
            #expect(status == .ok)
            #expect((json["customer"] as? [String: Any])?["phone"] as? String == "138****5678")
            (status, json) = try await F.get(client, "/v1/cases/\(id)/personal-data?purpose=%E5%9B%9E%E8%AE%BF", as: (await F.token("GD-SZ-AGE01", .agent, "GD-SZ")))
            #expect(status == .ok)
            #expect(json["phone"] as? String == "13812345678")
            #expect(json["idNumber"] as? String == "11010519491231002X")
            (status, _) = try await F.get(client, "/v1/cases/\(id)/personal-data?purpose=x", as: (await F.token("GD-SUP01", .supervisor, "GD")))
            #expect(status == .ok)
            for (subject, role, unit) in [("HQ-AUD01", Role.auditor, "HQ"), ("GD-SZ-AGE02", .agent, "GD-SZ"), ("GD-COM01", .committee, "GD")] {
                (status, _) = try await F.get(client, "/v1/cases/\(id)/personal-data?purpose=x", as: (await F.token(subject, role, unit)))
                #expect(status == .forbidden, "\(subject)")
            }
            (status, _) = try await F.get(client, "/v1/cases/\(id)/personal-data?purpose=x", as: (await F.token("ZJ-SUP01", .supervisor, "ZJ")))
            #expect(status == .notFound)
            (status, _) = try await F.get(client, "/v1/cases/\(id)/personal-data", as: (await F.token("GD-SZ-AGE01", .agent, "GD-SZ")))
            #expect(status == .badRequest)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM personal_data_reads WHERE complaint_id = \(id)") == 2)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM personal_data_reads WHERE reader = 'GD-SZ-AGE01' AND purpose = '回访'") == 1)
        }
    }

    @Test func aBreachEscalatesAndADissatisfiedCustomerReopens() async throws {
        try await F.withApp { db, _, _ in
            let late = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "investigating", number: "GD-SZ-20261122-000006")
            let done = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "resolved", number: "GD-SZ-20261122-000007")
            let closed = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "closed", number: "GD-SZ-20261122-000008")
            let workflow = CaseWorkflow(taxonomy: F.taxonomy)
            func breach(_ id: UUID) -> EventEnvelope<SLABreached> {
                EventEnvelope(complaintId: id, orgUnit: "GD-SZ", actor: .service("redress-supervisor"), payload: SLABreached(clock: SLAClockEvent(
                    number: "n", clock: .decision, startedAt: Date(), dueAt: Date(), handlingUnit: "GD-SZ", assignee: "GD-SZ-AGE01")))
            }
            try await db.withTransaction(logger: TestDatabase.logger) { connection in
                try await CasesService.escalateBreaches([breach(late), breach(done)], workflow: workflow, on: connection, logger: TestDatabase.logger)
            }
            #expect(try await F.outboxTypes(db, late) == ["case.escalated"])
            #expect(try await F.outboxTypes(db, done) == [], "a resolved case cannot escalate: it is left as it is")
            let answer = SurveyDissatisfied(surveyId: UUID(), number: "GD-SZ-20261122-000008", wave: "day0", score: 2, resolved: false, comment: nil, answeredAt: Date())
            for _ in 0..<2 {
                try await db.withTransaction(logger: TestDatabase.logger) { connection in
                    try await CasesService.reopenDissatisfied([EventEnvelope(complaintId: closed, orgUnit: "GD-SZ", actor: .service("redress-surveys"), payload: answer)],
                                                              workflow: workflow, on: connection, logger: TestDatabase.logger)
                }
            }
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM complaints WHERE reopened_from = \(closed) AND status = 'reopened'") == 1,
                    "a second dissatisfied answer does not open a third complaint")
        }
    }
}

@Suite struct ExcludedTimeAPITests {
    typealias F = CaseFixture

    @Test func excludedTimeOpensAndClosesOnceAtATime() async throws {
        try await F.withApp { db, _, client in
            let id = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "investigating", number: "GD-SZ-20261122-000010")
            let agent = (await F.token("GD-SZ-SUP01", .supervisor, "GD-SZ"))
            var (status, _) = try await F.act(client, id, "exclude_time", ["version": 1], as: agent)
            #expect(status == .badRequest, "the regulation's ground is the reason")
            (status, _) = try await F.act(client, id, "exclude_time", ["version": 1, "reason": "外部医疗鉴定"], as: (await F.token("GD-SZ-AGE01", .agent, "GD-SZ")))
            #expect(status == .forbidden, "an agent does not stop their own clocks")
            (status, _) = try await F.act(client, id, "exclude_time", ["version": 1, "reason": "外部医疗鉴定"], as: agent)
            #expect(status == .ok)
            (status, _) = try await F.act(client, id, "exclude_time", ["version": 2, "reason": "again"], as: agent)
            #expect(status == .conflict)
            (status, _) = try await F.act(client, id, "include_time", ["version": 2], as: agent)
            #expect(status == .ok)
            (status, _) = try await F.act(client, id, "include_time", ["version": 3], as: agent)
            #expect(status == .conflict)
            #expect(try await F.outboxTypes(db, id) == ["case.updated", "case.updated"])
        }
    }
}
