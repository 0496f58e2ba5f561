import Foundation
import PostgresNIO
import RedressKafka
@testable import RedressContracts
@testable import RedressDomain
@testable import RedressRouting
@testable import RedressServiceKit
import Testing

/// Escalation, transfer and reopening through routing against the demo organisation.
@Suite struct ReroutingTests {
    /// A complaint already handled by `unit` and owned by `owner`, as the cases service leaves it.
    static func complaint(_ db: PostgresClient, unit: String, owner: String, category: String = "service", conflict: String? = nil) async throws -> UUID {
        let id = UUID()
        try await db.query("""
            INSERT INTO complaints (id, number, channel, external_ref, received_at, promised_reply_by, branch, customer_name, customer_phone,
                customer_key, subject, content, category, priority, handling_unit, assignee, status, policy_agent)
            VALUES (\(id), \("GD-SZ-20261122-" + String(id.uuidString.prefix(6))), 'online', \(id.uuidString), now(), now() + interval '15 days',
                'GD-SZ', '张三', '13812345678', 'k', 's', 'c', \(category), 'normal', \(unit), \(owner), 'escalated', \(conflict))
            """, logger: TestDatabase.logger)
        try await db.query("UPDATE staff SET open_cases = open_cases + 1 WHERE id = \(owner)", logger: TestDatabase.logger)
        return id
    }

    static func transition(_ unit: String, _ owner: String) -> CaseTransition {
        CaseTransition(number: "n", fromStatus: .investigating, toStatus: .escalated, handlingUnit: unit, assignee: owner, reason: "test", caseVersion: 3)
    }

    static func assignments(_ db: PostgresClient) async throws -> [UUID: ComplaintAssigned] {
        var result: [UUID: ComplaintAssigned] = [:]
        for try await text in try await db.query("SELECT convert_from(payload, 'UTF8') FROM outbox WHERE event_type = 'complaint.assigned'", logger: TestDatabase.logger).decode(String.self) {
            let event = try EventCoding.decoder().decode(EventEnvelope<ComplaintAssigned>.self, from: Data(text.utf8))
            result[event.complaintId] = event.payload
        }
        return result
    }

    @Test func escalationTransferAndReopeningGoToTheRightUnit() async throws {
        try await TestDatabase.withFresh { db, _ in
            let engine = RoutingEngine(rules: .fallback, postgres: db, logger: TestDatabase.logger)
            let handler = RerouteHandler(engine: engine)
            let escalated = try await Self.complaint(db, unit: "GD-SZ", owner: "GD-SZ-AGE01")
            let transferred = try await Self.complaint(db, unit: "GD-SZ", owner: "GD-SZ-AGE02")
            let reopened = try await Self.complaint(db, unit: "GD-SZ", owner: "GD-SZ-AGE03", conflict: "GD-AGE01")
            let messages = try [
                (EventType.caseEscalated.topic, EventCoding.encoder().encode(EventEnvelope(complaintId: escalated, orgUnit: "GD-SZ", actor: .service("t"),
                    payload: CaseEscalated(transition: Self.transition("GD-SZ", "GD-SZ-AGE01"))))),
                (EventType.caseTransferred.topic, EventCoding.encoder().encode(EventEnvelope(complaintId: transferred, orgUnit: "GD-SZ", actor: .service("t"),
                    payload: CaseTransferred(transition: Self.transition("GD-SZ", "GD-SZ-AGE02"), targetUnit: "ZJ-HZ")))),
                (EventType.caseReopened.topic, EventCoding.encoder().encode(EventEnvelope(complaintId: reopened, orgUnit: "GD-SZ", actor: .service("t"),
                    payload: CaseReopened(transition: Self.transition("GD-SZ", "GD-SZ-AGE03"), reopenedFrom: ComplaintReference(id: UUID(), number: "GD-SZ-20261101-000001"),
                                          firstHandlingUnit: "GD-SZ")))),
            ].enumerated().map { index, pair in
                KafkaMessage(topic: pair.0, partition: 0, offset: Int64(index), key: nil, value: Array(pair.1), headers: [])
            }
            let items = try messages.map { try handler.decode($0).get() }
            try await db.withTransaction(logger: TestDatabase.logger) { connection in
                try await handler.handle(items, on: connection, logger: TestDatabase.logger)
            }
            let decided = try await Self.assignments(db)
            #expect(decided[escalated]?.handlingUnit == "GD")
            #expect(decided[escalated]?.reason == .escalated)
            #expect(decided[escalated]?.assignee?.hasPrefix("GD-AGE") == true)
            #expect(decided[transferred]?.handlingUnit == "ZJ-HZ")
            #expect(decided[transferred]?.assignee?.hasPrefix("ZJ-HZ-AGE") == true)
            #expect(decided[reopened]?.handlingUnit == "GD")
            #expect(decided[reopened]?.priority == .high)
            #expect(decided[reopened]?.assignee != nil && decided[reopened]?.assignee != "GD-AGE01", "an owner, not the agent with a conflict of interest")
            // The owners they left carry one case less.
            #expect(try await TestDatabase.count(db, "SELECT sum(open_cases)::bigint FROM staff WHERE id IN ('GD-SZ-AGE01', 'GD-SZ-AGE02')") == 0)
        }
    }

    @Test func aTransferToAnUnknownUnitIsRefusedAlone() async throws {
        try await TestDatabase.withFresh { db, _ in
            let handler = RerouteHandler(engine: RoutingEngine(rules: .fallback, postgres: db, logger: TestDatabase.logger))
            let id = try await Self.complaint(db, unit: "GD-SZ", owner: "GD-SZ-AGE01")
            let item = Reroute(eventID: UUID(), complaintID: id, move: .transfer(to: "MARS"), previousAssignee: "GD-SZ-AGE01")
            var reason: String?
            do {
                try await db.withTransaction(logger: TestDatabase.logger) { connection in
                    try await handler.handle([item], on: connection, logger: TestDatabase.logger)
                }
            } catch let error as PostgresTransactionError {
                reason = (error.closureError as? Rejection)?.reason
            }
            #expect(reason == "transfer target 'MARS' is not a unit of the organisation", "refused with the reason, not by any error")
        }
    }
}
