import Foundation
import PostgresNIO
@testable import RedressContracts
@testable import RedressNotify
import Testing

@Suite struct NotifyTests {
    @Test func unassignableComplaintsReachTheUnitsSupervisorsOnce() async throws {
        try await TestDatabase.withFresh { db, _ in
            let id = UUID()
            try await db.query("""
                INSERT INTO complaints (id, number, channel, external_ref, received_at, promised_reply_by, branch, customer_name, customer_phone,
                    customer_key, subject, content)
                VALUES (\(id), 'GD-SZ-20261122-000001', 'online', 'N-1', now(), now() + interval '15 days', 'GD-SZ', '张三', '13812345678', 'k', 's', 'c')
                """, logger: TestDatabase.logger)
            let event = EventEnvelope(complaintId: id, orgUnit: "GD-SZ", actor: .service("redress-routing"),
                                      payload: ComplaintUnassignable(number: "GD-SZ-20261122-000001", handlingUnit: "GD-SZ", category: .claims,
                                                                     priority: .high, reason: "every eligible agent of the unit is at capacity"))
            for _ in 0..<2 {
                try await db.withTransaction(logger: TestDatabase.logger) { connection in
                    try await NotifyService.alertSupervisors([event], on: connection, logger: TestDatabase.logger)
                }
            }
            #expect(try await TestDatabase.count(db, """
                SELECT count(*) FROM notifications
                WHERE recipient = 'supervisors:GD-SZ' AND channel = 'staff_inbox' AND template = 'complaint.unassignable.supervisors'
                """) == 1)
        }
    }
}
