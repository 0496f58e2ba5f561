import Foundation
import HTTPTypes
import PostgresNIO
@testable import RedressCases
import RedressServiceKit
import RedressStore
import Testing

/// Branch isolation: every role at every unit of the tree (HQ → province → city → county), against
/// every unit's case, through every read and a write. A token sees its unit and below, never a
/// sibling's or a parent's; the database enforces it, not only the handlers.
@Suite struct CaseIsolationTests {
    typealias F = CaseFixture
    static let units = ["HQ", "GD", "ZJ", "GD-SZ", "GD-GZ", "ZJ-HZ", "ZJ-NB", "GD-SZ-NS", "ZJ-HZ-XH"]
    static let paths = [
        "HQ": "HQ", "GD": "HQ/GD", "ZJ": "HQ/ZJ", "GD-SZ": "HQ/GD/GD-SZ", "GD-GZ": "HQ/GD/GD-GZ", "ZJ-HZ": "HQ/ZJ/ZJ-HZ",
        "ZJ-NB": "HQ/ZJ/ZJ-NB", "GD-SZ-NS": "HQ/GD/GD-SZ/GD-SZ-NS", "ZJ-HZ-XH": "HQ/ZJ/ZJ-HZ/ZJ-HZ-XH",
    ]

    static func sees(_ viewer: String, _ owner: String) -> Bool {
        let (v, o) = (paths[viewer]!, paths[owner]!)
        return o == v || o.hasPrefix(v + "/")
    }

    @Test func noRoleAtAnyUnitSeesOrChangesAnotherBranchsCases() async throws {
        try await F.withApp { db, _, client in
            var cases: [String: (id: UUID, number: String)] = [:]
            for (n, unit) in Self.units.enumerated() {
                let number = "\(unit)-20261122-\(String(format: "%06d", n + 1))"
                cases[unit] = (try await F.insert(db, unit: unit, assignee: "\(unit)-AGE01", status: "investigating", number: number, policy: "POL-\(unit)"), number)
            }
            // Every (unit, role) has its staff member: a token names someone active in that role at that unit.
            try await db.query("""
                INSERT INTO staff (id, name, org_unit, role)
                SELECT u || '-' || r, u || ' ' || r, u, r FROM unnest(\(Self.units)::text[]) AS u, unnest(ARRAY['supervisor', 'committee', 'auditor', 'admin']) AS r
                ON CONFLICT (id) DO NOTHING
                """, logger: TestDatabase.logger)
            var checked = 0
            for viewer in Self.units {
                for role in [Role.agent, .supervisor, .committee, .auditor, .admin] {
                    // The agent owns their own unit's case: the strongest claim to write it.
                    let token = (await F.token(role == .agent ? "\(viewer)-AGE01" : "\(viewer)-\(role.rawValue)", role, viewer))
                    let (status, page) = try await F.get(client, "/v1/cases?limit=200&includeClosed=true", as: token)
                    #expect(status == .ok)
                    let listed = Set((page["items"] as? [[String: Any]] ?? []).compactMap { $0["handlingUnit"] as? String })
                    #expect(listed == Set(Self.units.filter { Self.sees(viewer, $0) }), "\(role)@\(viewer) lists exactly its subtree")
                    for owner in Self.units {
                        let visible = Self.sees(viewer, owner)
                        let target = cases[owner]!
                        let (got, _) = try await F.get(client, "/v1/cases/\(target.id)", as: token)
                        #expect(got == (visible ? .ok : .notFound), "\(role)@\(viewer) get \(owner)")
                        let (byNumber, _) = try await F.get(client, "/v1/complaints/\(target.number)", as: token)
                        #expect(byNumber == (visible ? .ok : .notFound), "\(role)@\(viewer) get complaint \(owner)")
                        let (_, found) = try await F.get(client, "/v1/cases?q=POL-\(owner)", as: token)
                        #expect((found["items"] as? [[String: Any]] ?? []).count == (visible ? 1 : 0), "\(role)@\(viewer) search \(owner)")
                        let (unitQueue, _) = try await F.get(client, "/v1/cases?unit=\(owner)", as: token)
                        #expect(unitQueue == (visible ? .ok : .forbidden), "\(role)@\(viewer) queue of \(owner)")
                        let (wrote, _) = try await F.act(client, target.id, "add_note", ["version": 1, "text": "probe"], as: token)
                        // Out of sight: 404. In sight: auditors never write, an agent writes only their own case; the rest may note.
                        let expected: HTTPResponse.Status = !visible ? .notFound
                            : (role == .auditor || (role == .agent && viewer != owner)) ? .forbidden : .ok
                        #expect(wrote == expected, "\(role)@\(viewer) write \(owner)")
                        checked += 1
                    }
                    // Put back what a permitted write changed, so every probe meets version 1.
                    try await db.query("UPDATE complaints SET version = 1", logger: TestDatabase.logger)
                }
            }
            #expect(checked == Self.units.count * 5 * Self.units.count)
        }
    }

    /// The policy itself, without the API: as `redress_staff`, the rows are the subtree's whatever the query asks.
    @Test func rowLevelSecurityLimitsTheStaffRoleWhateverTheQuery() async throws {
        try await TestDatabase.withFresh { db, _ in
            for (n, unit) in Self.units.enumerated() {
                try await F.insert(db, unit: unit, assignee: nil, number: "\(unit)-20261122-\(String(format: "%06d", n + 1))")
            }
            for viewer in Self.units {
                let count = try await db.withTransaction(logger: TestDatabase.logger) { connection in
                    try await connection.query("SELECT set_config('role', 'redress_staff', true), set_config('redress.unit_path', \(Self.paths[viewer]!), true)",
                                               logger: TestDatabase.logger)
                    var n = 0
                    for try await c in try await connection.query("SELECT count(*) FROM complaints", logger: TestDatabase.logger).decode(Int.self) { n = c }
                    var updated = 0
                    for try await _ in try await connection.query("UPDATE complaints SET subject = subject RETURNING id", logger: TestDatabase.logger).decode(UUID.self) {
                        updated += 1
                    }
                    return (n, updated)
                }
                let subtree = Self.units.filter { Self.sees(viewer, $0) }.count
                #expect(count.0 == subtree && count.1 == subtree, "\(viewer) reads and updates only its subtree")
            }
            let unscoped = try await db.withTransaction(logger: TestDatabase.logger) { connection in
                try await connection.query("SELECT set_config('role', 'redress_staff', true)", logger: TestDatabase.logger)
                var n = -1
                for try await c in try await connection.query("SELECT count(*) FROM complaints", logger: TestDatabase.logger).decode(Int.self) { n = c }
                return n
            }
            #expect(unscoped == 0, "without a scope the staff role sees nothing")
        }
    }

    /// The audit trail cannot be altered through the role the services log in as — not by update,
    /// delete or truncate, and not by switching the guard off.
    @Test func theAuditTrailCannotBeAlteredThroughTheServiceRole() async throws {
        try await TestDatabase.withFresh { db, database in
            let id = try await F.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", number: "GD-SZ-20261122-000001")
            try await db.query("""
                INSERT INTO case_events (complaint_id, event_id, actor, action, from_status, to_status) VALUES (\(id), \(UUID()), 'a', 'add_note', 'assigned', 'assigned')
                """, logger: TestDatabase.logger)
            var settings = try TestDatabase.settings(database: database)
            settings.user = Migrations.serviceRole
            let service = PostgresClient(configuration: try settings.clientConfiguration(), backgroundLogger: TestDatabase.logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await service.run() }
                defer { group.cancelAll() }
                // What services do, they can do.
                try await service.query("""
                    INSERT INTO case_events (complaint_id, event_id, actor, action, from_status, to_status) VALUES (\(id), \(UUID()), 'b', 'add_note', 'assigned', 'assigned')
                    """, logger: TestDatabase.logger)
                try await service.query("UPDATE complaints SET subject = 'still writable' WHERE id = \(id)", logger: TestDatabase.logger)
                for statement: PostgresQuery in [
                    "UPDATE case_events SET reason = 'rewritten'",
                    "DELETE FROM case_events",
                    "TRUNCATE case_events",
                    "ALTER TABLE case_events DISABLE TRIGGER case_events_no_update",
                    "DROP TRIGGER case_events_no_update ON case_events",
                    "UPDATE personal_data_reads SET purpose = 'x'",
                    "DELETE FROM personal_data_reads",
                    "ALTER TABLE complaints DISABLE ROW LEVEL SECURITY",
                ] {
                    await #expect(throws: PSQLError.self, "\(statement.sql)") {
                        try await service.query(statement, logger: TestDatabase.logger)
                    }
                }
            }
            // Even the owner's updates are refused by the trigger.
            await #expect(throws: PSQLError.self) {
                try await db.query("UPDATE case_events SET reason = 'rewritten'", logger: TestDatabase.logger)
            }
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM case_events WHERE reason IS NULL") == 2)
        }
    }
}
