import Foundation
import PostgresNIO
@testable import RedressContracts
@testable import RedressServiceKit
@testable import RedressSupervisor
import Testing

/// Due clocks fire once — whoever scans, however often — and stopped or paused clocks never fire.
@Suite struct DeadlineScannerTests {
    @Test func dueClocksFireExactlyOnceAcrossTwoScanners() async throws {
        try await TestDatabase.withFresh { db, database in
            for i in 0..<30 {
                let id = UUID()
                try await db.query("""
                    INSERT INTO complaints (id, number, channel, external_ref, received_at, promised_reply_by, branch, customer_name, customer_phone,
                        customer_key, subject, content, handling_unit, assignee, status)
                    VALUES (\(id), \("GD-SZ-20261122-" + String(format: "%06d", i)), 'online', \("S-\(i)"), now() - interval '2 days',
                        now() + interval '13 days', 'GD-SZ', '张三', '13812345678', 'k', 's', 'c', 'GD-SZ', 'GD-SZ-AGE01', 'assigned')
                    """, logger: TestDatabase.logger)
                // Every clock is past its warning; the first ten are past their deadline too; every third is stopped or paused.
                let stopped = i % 3 == 1 ? "now()" : "NULL"
                let paused = i % 3 == 2 ? "now()" : "NULL"
                try await db.query(PostgresQuery(unsafeSQL: """
                    INSERT INTO sla_clocks (complaint_id, kind, started_at, warn_at, due_at, stopped_at, paused_at)
                    VALUES ('\(id)', 'acknowledge', now() - interval '2 days', now() - interval '1 hour',
                            now() + \(i < 10 ? "interval '-1 minute'" : "interval '1 day'"), \(stopped), \(paused))
                    """), logger: TestDatabase.logger)
            }
            let gate = StartupGate()
            gate.open()
            try await TestDatabase.withClient(database: database) { other in
                let scanners = [db, other].map { DeadlineScanner(postgres: $0, gate: gate, interval: .seconds(1), logger: TestDatabase.logger) }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for (scanner, client) in zip(scanners, [db, other]) {
                        group.addTask {
                            for _ in 0..<3 {
                                try await client.withConnection { connection in
                                    _ = try await scanner.scan(on: connection, limit: 4)
                                    _ = try await scanner.scan(on: connection, limit: 4)
                                }
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                // A later scan finds nothing left to fire.
                let again = try await other.withConnection { try await scanners[1].scan(on: $0) }
                #expect(again == 0)
            }
            // 10 running clocks (i % 3 == 0): all warned; those of them past due (i = 0, 3, 6, 9) breached.
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM outbox WHERE event_type = 'sla.warning'") == 10)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM outbox WHERE event_type = 'sla.breached'") == 4)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM sla_clocks WHERE (stopped_at IS NOT NULL OR paused_at IS NOT NULL) AND (warned_at IS NOT NULL OR breached_at IS NOT NULL)") == 0)
        }
    }

    static func dueClock(_ db: PostgresClient, _ i: Int) async throws {
        let id = UUID()
        try await db.query("""
            INSERT INTO complaints (id, number, channel, external_ref, received_at, promised_reply_by, branch, customer_name, customer_phone,
                customer_key, subject, content, handling_unit, status)
            VALUES (\(id), \("GD-SZ-20261122-9" + String(format: "%05d", i)), 'online', \("T-\(i)"), now(), now() + interval '15 days',
                'GD-SZ', '张三', '13812345678', 'k', 's', 'c', 'GD-SZ', 'assigned')
            """, logger: TestDatabase.logger)
        try await db.query("""
            INSERT INTO sla_clocks (complaint_id, kind, started_at, warn_at, due_at)
            VALUES (\(id), 'decision', now() - interval '1 day', now() - interval '1 second', now() + interval '1 day')
            """, logger: TestDatabase.logger)
    }

    @Test func aStandbyTakesOverWhenTheLeaderStops() async throws {
        try await TestDatabase.withFresh { db, database in
            let gate = StartupGate()
            gate.open()
            try await TestDatabase.withClient(database: database) { first in
                try await TestDatabase.withClient(database: database) { second in
                    let leader = Task { try await DeadlineScanner(postgres: first, gate: gate, interval: .milliseconds(200), logger: TestDatabase.logger).run() }
                    try await Self.dueClock(db, 1)
                    try await eventually("the first scanner fires") {
                        try await TestDatabase.count(db, "SELECT count(*) FROM sla_clocks WHERE warned_at IS NOT NULL") == 1
                    }
                    let standby = Task { try await DeadlineScanner(postgres: second, gate: gate, interval: .milliseconds(200), logger: TestDatabase.logger).run() }
                    try await Task.sleep(for: .milliseconds(500))
                    // The leader stops; the lock it held is free again, and the standby picks it up.
                    leader.cancel()
                    _ = await leader.result
                    try await Self.dueClock(db, 2)
                    // A condition awaited, not a stopwatch: the suite shares two cores with process tests and benchmarks.
                    try await eventually("the standby fires") {
                        try await TestDatabase.count(db, "SELECT count(*) FROM sla_clocks WHERE warned_at IS NOT NULL") == 2
                    }
                    standby.cancel()
                    _ = await standby.result
                    #expect(try await TestDatabase.count(db, "SELECT count(*) FROM outbox WHERE event_type = 'sla.warning'") == 2)
                }
            }
        }
    }
}

/// The SLA gauges count what their help says: open cases' clocks by state, the misses not yet acted
/// on, and the breach rate of one quarter's closures — never a closed case's clock, never all time.
@Suite struct SLAGaugeTests {
    /// A complaint in `unit` with one clock per entry; `closedDaysAgo` closes it that many days back.
    static func complaint(_ db: PostgresClient, _ n: Int, unit: String, closedDaysAgo: Int? = nil,
                          clocks: [(kind: String, warned: Bool, breached: Bool, paused: Bool, stopped: Bool)]) async throws {
        let id = UUID()
        let status = closedDaysAgo == nil ? "assigned" : "closed"
        let closedAt = closedDaysAgo.map { "now() - interval '\($0) days'" } ?? "NULL"
        try await db.query(PostgresQuery(unsafeSQL: """
            INSERT INTO complaints (id, number, channel, external_ref, received_at, promised_reply_by, branch, customer_name, customer_phone,
                customer_key, subject, content, handling_unit, status, closed_at)
            VALUES ('\(id)', 'GD-SZ-20261122-7\(String(format: "%05d", n))', 'online', 'G-\(n)', now() - interval '200 days',
                now() + interval '13 days', 'GD-SZ', '张三', '13812345678', 'k', 's', 'c', '\(unit)', '\(status)', \(closedAt))
            """), logger: TestDatabase.logger)
        for clock in clocks {
            func at(_ set: Bool) -> String { set ? "now() - interval '1 hour'" : "NULL" }
            try await db.query(PostgresQuery(unsafeSQL: """
                INSERT INTO sla_clocks (complaint_id, kind, started_at, warn_at, due_at, warned_at, breached_at, paused_at, stopped_at)
                VALUES ('\(id)', '\(clock.kind)', now() - interval '2 days', now() - interval '1 day', now() + interval '1 day',
                        \(at(clock.warned)), \(at(clock.breached)), \(at(clock.paused)), \(at(clock.stopped)))
                """), logger: TestDatabase.logger)
        }
    }

    @Test func theGaugesCountOpenCasesAndOneQuartersClosures() async throws {
        try await TestDatabase.withFresh { db, _ in
            // Open, in GD-SZ: acknowledged (stopped), first contact warned, decision paused, the daily update missed.
            try await Self.complaint(db, 1, unit: "GD-SZ", clocks: [
                ("acknowledge", false, false, false, true), ("first_contact", true, false, false, false),
                ("decision", false, false, true, false), ("update", true, true, false, false)])
            // Open, in GD: one decision running untouched.
            try await Self.complaint(db, 2, unit: "GD", clocks: [("decision", false, false, false, false)])
            // Closed a moment ago, its clocks not yet rebuilt (the supervisor lags): not open any more.
            try await Self.complaint(db, 3, unit: "GD-SZ", closedDaysAgo: 0, clocks: [
                ("decision", false, false, false, false), ("first_contact", true, true, false, false)])
            // Closed ten days ago: the decision missed, first contact met.
            try await Self.complaint(db, 4, unit: "GD-SZ", closedDaysAgo: 10, clocks: [
                ("decision", true, true, false, true), ("first_contact", false, false, false, true)])
            // Closed 100 days ago, outside the quarter: its met decision must not dilute the rate.
            try await Self.complaint(db, 5, unit: "GD-SZ", closedDaysAgo: 100, clocks: [("decision", false, false, false, true)])

            let open = try await SLAGauges.readOpen(on: db, logger: TestDatabase.logger)
            #expect(open.open == [["first_contact", "GD-SZ"]: 1, ["decision", "GD-SZ"]: 1, ["update", "GD-SZ"]: 0, ["decision", "GD"]: 1])
            #expect(open.paused == [["first_contact", "GD-SZ"]: 0, ["decision", "GD-SZ"]: 1, ["update", "GD-SZ"]: 0, ["decision", "GD"]: 0])
            #expect(open.atRisk == [["first_contact", "GD-SZ"]: 1, ["decision", "GD-SZ"]: 0, ["update", "GD-SZ"]: 0, ["decision", "GD"]: 0])
            #expect(open.breached == [["first_contact", "GD-SZ"]: 0, ["decision", "GD-SZ"]: 0, ["update", "GD-SZ"]: 1, ["decision", "GD"]: 0])

            // Complaint 3's clocks count here too: closed today, inside the quarter (its decision not breached, first contact breached).
            let ratio = try await SLAGauges.readBreachRatio(on: db, logger: TestDatabase.logger)
            #expect(ratio == [["decision", "GD-SZ"]: 0.5, ["first_contact", "GD-SZ"]: 0.5])
        }
    }
}
