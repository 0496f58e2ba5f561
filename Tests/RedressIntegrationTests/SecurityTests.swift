import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import PostgresNIO
@testable import RedressCases
@testable import RedressServiceKit
import Testing

/// A token is only as good as its holder's standing now; staff read notifications of their own
/// subtree only; refusals are counted like every other answer.
@Suite struct SecurityTests {
    typealias F = CaseFixture

    @Test func aDeactivatedOrMovedStaffMembersTokenIsRefusedAtTheNextRequest() async throws {
        try await F.withApp { db, _, client in
            try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", number: "GD-SZ-20261130-000001")
            let agent = (await F.token("GD-SZ-AGE01", .agent, "GD-SZ"))
            #expect(try await F.get(client, "/v1/cases/mine", as: agent).0 == .ok)
            try await db.query("UPDATE staff SET org_unit = 'GD-GZ' WHERE id = 'GD-SZ-AGE01'", logger: TestDatabase.logger)
            let (moved, detail) = try await F.get(client, "/v1/cases/mine", as: agent)
            #expect(moved == .forbidden && (detail["detail"] as? String)?.contains("GD-GZ") == true, "\(detail)")
            try await db.query("UPDATE staff SET org_unit = 'GD-SZ', active = false WHERE id = 'GD-SZ-AGE01'", logger: TestDatabase.logger)
            #expect(try await F.get(client, "/v1/cases/mine", as: agent).0 == .unauthorized, "deactivated: out at once")
            #expect(try await F.get(client, "/v1/cases/GD-SZ-20261130-000001/personal-data?purpose=x", as: agent).0 == .unauthorized)
            #expect(try await F.get(client, "/v1/cases/mine", as: (await F.token("NOBODY-01", .agent, "GD-SZ"))).0 == .unauthorized, "unknown subject")
            // Refusals are in the request metrics like any answer.
            let metrics = try await client.execute(uri: "/metrics", method: .get, headers: [:], body: nil)
            let text = String(buffer: metrics.body)
            #expect(text.split(separator: "\n").contains { $0.hasPrefix("redress_http_requests_total") && $0.contains("status=\"401\"") }, "401s are counted")
        }
    }

    @Test func staffReadOnlyTheirSubtreesNotificationsAndNoOutbox() async throws {
        try await F.withApp { db, _, _ in
            let shenzhen = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", number: "GD-SZ-20261130-000001")
            try await db.query("""
                INSERT INTO notifications (id, complaint_id, event_id, recipient, channel, template, status, body)
                VALUES (gen_random_uuid(), \(shenzhen), gen_random_uuid(), 'customer:k', 'sms', 'case.assigned.customer', 'delivered', '您的投诉已分配')
                """, logger: TestDatabase.logger)
            func visible(as path: String) async throws -> Int {
                try await db.withTransaction(logger: TestDatabase.logger) { connection in
                    try await connection.query("SELECT set_config('role', 'redress_staff', true), set_config('redress.unit_path', \(path), true)",
                                               logger: TestDatabase.logger)
                    var n = 0
                    for try await count in try await connection.query("SELECT count(*)::int8 FROM notifications", logger: TestDatabase.logger).decode(Int64.self) {
                        n = Int(count)
                    }
                    return n
                }
            }
            #expect(try await visible(as: "HQ/GD/GD-SZ") == 1)
            #expect(try await visible(as: "HQ/GD/GD-GZ") == 0, "a sibling city reads none of Shenzhen's notifications")
            await #expect(throws: (any Error).self, "the staff role cannot read the outbox") {
                try await db.withTransaction(logger: TestDatabase.logger) { connection in
                    try await connection.query("SELECT set_config('role', 'redress_staff', true)", logger: TestDatabase.logger)
                    try await connection.query("SELECT count(*) FROM outbox", logger: TestDatabase.logger)
                }
            }
        }
    }

    @Test func personalDataTypedIntoANoteIsMaskedForEveryReaderAndInEvents() async throws {
        try await F.withApp { db, _, client in
            let id = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "investigating", number: "GD-SZ-20261130-000001")
            let note = "客户留了新号码 +86 138-1234-5678，邮箱 zhang.san@example.com，卡号 6222 0212 3456 7894"
            let (status, _) = try await F.act(client, id, "add_note", ["version": 1, "text": note, "reason": "联系方式 138 1234 5678"],
                                              as: (await F.token("GD-SZ-AGE01", .agent, "GD-SZ")))
            #expect(status == .ok)
            let (_, detail) = try await F.get(client, "/v1/cases/\(id)", as: (await F.token("HQ-AUD01", .auditor, "HQ")))
            let history = detail["history"] as? [[String: Any]] ?? []
            let shown = String(describing: history)
            #expect(shown.contains("138-****-5678") && !shown.contains("1234-5678") && !shown.contains("1234 5678"), "\(shown)")
            #expect(!shown.contains("zhang.san@") && shown.contains("@example.com"))
            #expect(!shown.contains("6222 0212 3456") && shown.contains("**** **** **** 7894"), "a card number keeps its last four: \(shown)")
            #expect(try await TestDatabase.count(db, """
                SELECT count(*) FROM outbox WHERE convert_from(payload, 'UTF8') LIKE '%1234%5678%' OR convert_from(payload, 'UTF8') LIKE '%zhang.san%'
                """) == 0, "no event carries the number")
        }
    }
}
