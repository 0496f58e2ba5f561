import Foundation
import PostgresNIO
@testable import RedressContracts
@testable import RedressDomain
@testable import RedressRouting
import RedressStore
import Testing

/// Two routing instances at once against one unit's agents: nobody past capacity, nobody
/// unavailable, nobody with a conflict of interest.
@Suite struct RoutingConcurrencyTests {
    static func event(_ i: Int, conflict: String?) -> EventEnvelope<ComplaintRegistered> {
        let payload = ComplaintRegistered(
            number: "GD-SZ-20261122-\(String(format: "%06d", i))", channel: .online, externalRef: "R-\(i)", receivedAt: Date(), registeredAt: Date(),
            promisedReplyBy: Date(), branch: "GD-SZ", customer: MaskedCustomer(name: "张*", key: "k\(i)", flags: []),
            policyNumber: nil, claimNumber: nil, claimStage: nil, subject: "咨询", content: "一般问题", regulatorCaseNumber: nil, regulatorDeadline: nil,
            policyAgent: conflict)
        return EventEnvelope(complaintId: UUID(), orgUnit: "GD-SZ", actor: .service("test"), payload: payload)
    }

    @Test func twoInstancesNeverOverloadAnAgent() async throws {
        try await TestDatabase.withFresh { db, database in
            try await db.query("UPDATE staff SET capacity = 10 WHERE org_unit = 'GD-SZ'", logger: TestDatabase.logger)
            try await db.query("UPDATE staff SET available = false WHERE id = 'GD-SZ-AGE03'", logger: TestDatabase.logger)
            try await TestDatabase.withClient(database: database) { other in
                let engines = [db, other].map { RoutingEngine(rules: .fallback, postgres: $0, logger: TestDatabase.logger) }
                let pools = [db, other]
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for batch in 0..<8 {
                        group.addTask {
                            let events = (0..<5).map { Self.event(batch * 5 + $0, conflict: $0 % 2 == 0 ? "GD-SZ-AGE02" : nil) }
                            try await pools[batch % 2].withTransaction(logger: TestDatabase.logger) { connection in
                                try await engines[batch % 2].route(events, on: connection, logger: TestDatabase.logger)
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
            var assigned: [String: Int] = [:]
            var unassignable = 0
            for try await payload in try await db.query("SELECT convert_from(payload, 'UTF8') FROM outbox", logger: TestDatabase.logger).decode(String.self) {
                if payload.contains("\"type\":\"complaint.unassignable\"") { unassignable += 1; continue }
                let event = try EventCoding.decoder().decode(EventEnvelope<ComplaintAssigned>.self, from: Data(payload.utf8))
                if let assignee = event.payload.assignee { assigned[assignee, default: 0] += 1 }
                #expect(event.payload.handlingUnit == "GD-SZ")
                #expect(event.payload.rulesVersion == RoutingRules.fallback.version)
            }
            // Two agents of capacity 10 are available: at most 10 each, the rest wait in the supervisor queue with an alert.
            #expect(Set(assigned.keys).isSubset(of: ["GD-SZ-AGE01", "GD-SZ-AGE02"]))
            #expect(assigned.values.allSatisfy { $0 <= 10 })
            #expect(assigned["GD-SZ-AGE01"] == 10)
            #expect(assigned.values.reduce(0, +) + unassignable == 40)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM staff WHERE open_cases > capacity") == 0)
            #expect(try await TestDatabase.count(db, "SELECT open_cases::bigint FROM staff WHERE id = 'GD-SZ-AGE03'") == 0)
            // No complaint went to the agent who sold its policy.
            var conflicted = 0
            for try await payload in try await db.query("SELECT convert_from(payload, 'UTF8') FROM outbox WHERE event_type = 'complaint.assigned'", logger: TestDatabase.logger).decode(String.self) {
                let event = try EventCoding.decoder().decode(EventEnvelope<ComplaintAssigned>.self, from: Data(payload.utf8))
                let number = Int(event.payload.number.suffix(6))!
                if number % 5 % 2 == 0, event.payload.assignee == "GD-SZ-AGE02" { conflicted += 1 }
            }
            #expect(conflicted == 0)
        }
    }
}

/// 无理缠访备案: a registered customer's complaint is routed but not given to an agent; it waits in
/// the unit's supervisor queue, and the supervisors are told why.
@Suite struct RegisteredCustomerRoutingTests {
    @Test func aRegisteredCustomersComplaintGoesToTheSupervisorQueue() async throws {
        try await TestDatabase.withFresh { db, _ in
            var flagged = RoutingConcurrencyTests.event(1, conflict: nil)
            flagged.payload.customer.flags = [.vexatiousRegister]
            let plain = RoutingConcurrencyTests.event(2, conflict: nil)
            let engine = RoutingEngine(rules: .fallback, postgres: db, logger: TestDatabase.logger)
            try await db.withTransaction(logger: TestDatabase.logger) { try await engine.route([flagged, plain], on: $0, logger: TestDatabase.logger) }
            var assignees: [String: String] = [:]
            var reasons: [String] = []
            for try await payload in try await db.query("SELECT convert_from(payload, 'UTF8') FROM outbox ORDER BY id", logger: TestDatabase.logger).decode(String.self) {
                if payload.contains("\"type\":\"complaint.unassignable\"") {
                    reasons.append(try EventCoding.decoder().decode(EventEnvelope<ComplaintUnassignable>.self, from: Data(payload.utf8)).payload.reason)
                } else {
                    let event = try EventCoding.decoder().decode(EventEnvelope<ComplaintAssigned>.self, from: Data(payload.utf8))
                    assignees[event.payload.number] = event.payload.assignee ?? "-"
                }
            }
            #expect(assignees[flagged.payload.number] == "-", "no agent for the registered customer")
            #expect(assignees[plain.payload.number]?.hasPrefix("GD-SZ-AGE") == true)
            #expect(reasons.count == 1 && reasons[0].contains("vexatious-complainant register"), "\(reasons)")
        }
    }
}

/// In a surge every agent is full: assigners then lock no agent at all, so routing's lanes do not
/// queue behind each other; an agent with room is locked, and only that one.
@Suite struct AgentPoolLockTests {
    static func lockable(_ other: PostgresClient, _ id: String) async -> Bool {
        do {
            try await other.withTransaction(logger: TestDatabase.logger) {
                _ = try await $0.query("SELECT id FROM staff WHERE id = \(id) FOR NO KEY UPDATE NOWAIT", logger: TestDatabase.logger).collect()
            }
            return true
        } catch {
            return false
        }
    }

    @Test func onlyAgentsWithRoomAreLocked() async throws {
        try await TestDatabase.withFresh { db, database in
            try await db.query("UPDATE staff SET capacity = 3, open_cases = 3 WHERE org_unit = 'GD-SZ' AND role = 'agent'", logger: TestDatabase.logger)
            try await TestDatabase.withClient(database: database) { other in
                try await db.withTransaction(logger: TestDatabase.logger) { connection in
                    let pools = try await AgentPool.lock(units: ["GD-SZ"], on: connection, logger: TestDatabase.logger)
                    let agents = pools["GD-SZ"] ?? []
                    #expect(agents.count >= 2 && agents.allSatisfy { $0.openCases == $0.capacity }, "every full agent is read, for the reason: \(agents)")
                    #expect(agents.map(\.id) == agents.map(\.id).sorted())
                    #expect(RoutingEngine.whyUnassignable(pool: agents, skill: nil, excluded: []) == "every eligible agent of the unit is at capacity")
                    #expect(await Self.lockable(other, "GD-SZ-AGE01"), "a full unit holds no lock")
                }
                try await db.query("UPDATE staff SET open_cases = 1 WHERE id = 'GD-SZ-AGE01'", logger: TestDatabase.logger)
                try await db.withTransaction(logger: TestDatabase.logger) { connection in
                    let agents = try await AgentPool.lock(units: ["GD-SZ"], on: connection, logger: TestDatabase.logger)["GD-SZ"] ?? []
                    #expect(agents.first { $0.id == "GD-SZ-AGE01" }?.openCases == 1)
                    #expect(!(await Self.lockable(other, "GD-SZ-AGE01")), "the agent with room is locked until the transaction ends")
                    #expect(await Self.lockable(other, "GD-SZ-AGE02"), "a full one is not")
                }
                // Room, but not the skill the batch needs: read, not locked.
                try await db.query("UPDATE staff SET open_cases = 1 WHERE id = 'GD-SZ-AGE02'", logger: TestDatabase.logger)
                try await db.withTransaction(logger: TestDatabase.logger) { connection in
                    let agents = try await AgentPool.lock(units: ["GD-SZ"], eligible: { _, agent in agent.skills.contains("claims") },
                                                          on: connection, logger: TestDatabase.logger)["GD-SZ"] ?? []
                    #expect(agents.first { $0.id == "GD-SZ-AGE02" }?.openCases == 1)
                    #expect(!(await Self.lockable(other, "GD-SZ-AGE01")), "the claims agent with room is locked")
                    #expect(await Self.lockable(other, "GD-SZ-AGE02"), "the service agent is not: no complaint of the batch needs service")
                }
            }
        }
    }
}
