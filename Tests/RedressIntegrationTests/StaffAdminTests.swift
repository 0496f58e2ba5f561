import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import PostgresNIO
@testable import RedressCases
@testable import RedressServiceKit
import Testing

/// 人员管理 through the staff API: who may change whom, every change on record, and a deactivated
/// agent's open cases handed on in their state.
@Suite struct StaffAdminTests {
    typealias F = CaseFixture

    static func send(_ client: some TestClientProtocol, _ method: HTTPRequest.Method, _ uri: String, _ body: [String: Any], as token: String)
        async throws -> (HTTPResponse.Status, [String: Any]) {
        let response = try await client.execute(uri: uri, method: method, headers: [.authorization: token, .contentType: "application/json"],
                                                 body: ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
        return (response.status, (try? JSONSerialization.jsonObject(with: Data(buffer: response.body))) as? [String: Any] ?? [:])
    }

    static func fields(_ json: [String: Any]) -> [String] { ((json["errors"] as? [[String: Any]]) ?? []).compactMap { $0["field"] as? String } }

    @Test func supervisorsManageAgentsOfTheirSubtreeAndAdminsEveryone() async throws {
        try await F.withApp { db, _, client in
            let supervisor = (await F.token("GD-SZ-SUP01", .supervisor, "GD-SZ"))
            var (status, json) = try await F.get(client, "/v1/staff", as: supervisor)
            #expect(status == .ok)
            let units = Set((json["items"] as? [[String: Any]] ?? []).compactMap { $0["unit"] as? String })
            #expect(units == ["GD-SZ", "GD-SZ-NS"], "their unit and below, no sibling")
            (status, _) = try await F.get(client, "/v1/staff", as: (await F.token("GD-SZ-AGE01", .agent, "GD-SZ")))
            #expect(status == .forbidden)
            let agent: [String: Any] = ["id": "GD-SZ-AGE09", "name": "周敏", "unit": "GD-SZ", "role": "agent", "skills": ["claims", "service"], "capacity": 30]
            (status, json) = try await Self.send(client, .post, "/v1/staff", agent, as: supervisor)
            #expect(status == .created, "\(json)")
            #expect(json["openCases"] as? Int == 0 && json["active"] as? Bool == true)
            (status, _) = try await Self.send(client, .post, "/v1/staff", agent, as: supervisor)
            #expect(status == .conflict, "ids are never reused")
            (status, _) = try await Self.send(client, .post, "/v1/staff", agent.merging(["id": "GD-SZ-SUP09", "role": "supervisor"]) { $1 }, as: supervisor)
            #expect(status == .forbidden, "a supervisor does not make supervisors")
            (status, _) = try await Self.send(client, .post, "/v1/staff", agent.merging(["id": "GD-GZ-AGE09", "unit": "GD-GZ"]) { $1 }, as: supervisor)
            #expect(status == .forbidden, "nor staff a sibling city")
            (status, json) = try await Self.send(client, .post, "/v1/staff", agent.merging(["id": "GD-SZ-AGE10", "unit": "XX", "skills": ["pets"]]) { $1 }, as: supervisor)
            #expect(status == .unprocessableContent)
            #expect(Set(Self.fields(json)) == ["unit", "skills"])
            (status, json) = try await Self.send(client, .post, "/v1/staff", ["id": "bad id", "capacity": 0], as: supervisor)
            #expect(status == .badRequest)
            #expect(Set(Self.fields(json)) == ["id", "name", "unit", "role", "capacity"])
            (status, json) = try await Self.send(client, .patch, "/v1/staff/GD-SZ-AGE09", ["leaveFrom": "2026-12-01T00:00:00+08:00", "leaveTo": "2026-12-08T00:00:00+08:00"],
                                                 as: supervisor)
            #expect(status == .ok && json["leaveTo"] as? String == "2026-12-07T16:00:00.000Z", "\(json)")
            (status, json) = try await Self.send(client, .patch, "/v1/staff/GD-SZ-NOBODY", ["capacity": 10], as: supervisor)
            #expect(status == .notFound && json["title"] as? String == "No such staff member", "\(json)")
            (status, _) = try await Self.send(client, .patch, "/v1/staff/GD-SZ-AGE09", ["role": "admin"], as: supervisor)
            #expect(status == .forbidden)
            (status, _) = try await Self.send(client, .patch, "/v1/staff/GD-SZ-AGE09", ["role": "supervisor"], as: (await F.token("HQ-ADM01", .admin, "HQ")))
            #expect(status == .ok)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM staff_events WHERE staff_id = 'GD-SZ-AGE09'") == 3)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM staff_events WHERE staff_id = 'GD-SZ-AGE09' AND actor = 'HQ-ADM01' AND changes->>'role' = 'supervisor'") == 1)
        }
    }

    @Test func aDeactivatedAgentsOpenCasesGoToNewOwnersInTheirState() async throws {
        try await F.withApp { db, _, client in
            let investigating = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "investigating", number: "GD-SZ-20261122-000701", category: "service")
            let waiting = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "awaiting_customer", number: "GD-SZ-20261122-000702", category: "service")
            // Nobody else in GD-SZ has the sales skill: that one goes to the supervisors' queue.
            let sales = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "investigating", number: "GD-SZ-20261122-000703", category: "sales")
            try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "closed", number: "GD-SZ-20261122-000704")
            let (status, json) = try await Self.send(client, .patch, "/v1/staff/GD-SZ-AGE01", ["active": false], as: (await F.token("GD-SZ-SUP01", .supervisor, "GD-SZ")))
            #expect(status == .ok && json["active"] as? Bool == false, "\(json)")
            func owner(_ id: UUID) async throws -> (String?, String) {
                for try await row in try await db.query("SELECT assignee, status FROM complaints WHERE id = \(id)", logger: TestDatabase.logger).decode((String?, String).self) { return row }
                return (nil, "")
            }
            let (first, firstStatus) = try await owner(investigating)
            let (second, secondStatus) = try await owner(waiting)
            #expect(["GD-SZ-AGE02", "GD-SZ-AGE03"].contains(first ?? "") && firstStatus == "investigating")
            #expect(["GD-SZ-AGE02", "GD-SZ-AGE03"].contains(second ?? "") && secondStatus == "awaiting_customer")
            #expect(first != second, "the least loaded first: the two cases are spread")
            #expect(try await owner(sales) == (nil, "investigating"))
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM outbox WHERE event_type = 'complaint.unassignable'") == 1)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM case_events WHERE action = 'reassign' AND reason = 'GD-SZ-AGE01 was deactivated'") == 3)
            #expect(try await TestDatabase.count(db, "SELECT open_cases::bigint FROM staff WHERE id = 'GD-SZ-AGE01'") == 0)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM staff_events WHERE staff_id = 'GD-SZ-AGE01' AND action = 'deactivated'") == 1)
            // A drifted counter is put right from the cases.
            try await db.query("UPDATE staff SET open_cases = 17 WHERE id = 'GD-SZ-AGE02'", logger: TestDatabase.logger)
            #expect(try await StaffDirectory.recountWorkload(on: db, logger: TestDatabase.logger) >= 1)
            #expect(try await TestDatabase.count(db, "SELECT open_cases::bigint FROM staff WHERE id = 'GD-SZ-AGE02'")
                    == TestDatabase.count(db, "SELECT count(*) FROM complaints WHERE assignee = 'GD-SZ-AGE02' AND status <> 'closed'"))
        }
    }
}
