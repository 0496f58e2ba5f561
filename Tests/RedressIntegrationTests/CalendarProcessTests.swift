import AsyncHTTPClient
import Foundation
import PostgresNIO
import RedressDomain
import Testing

/// A real supervisor with only CN-2026.json and a working-time clock that runs into next year:
/// the gap is logged, exported as `redress_sla_calendar_missing`, and `redressctl sla check`
/// refuses, naming region and year. Years are relative to the real date, so this holds in any year.
@Suite(.serialized) struct CalendarProcessTests {
    static func shanghaiYear(_ date: Date) -> Int {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Asia/Shanghai")!
        return calendar.component(.year, from: date)
    }

    @Test func aClockRunningIntoAYearWithoutACalendarIsReported() async throws {
        try await TestDatabase.withFresh { db, database in
            let stack = try EndToEndTests.Stack()
            try await stack.run { http in
                // Only the 2026 calendar, and a policy whose first-contact clock counts working time.
                let calendars = stack.directory.appendingPathComponent("calendars")
                try FileManager.default.createDirectory(at: calendars, withIntermediateDirectories: true)
                try FileManager.default.copyItem(at: TestDatabase.repo.appendingPathComponent("deploy/calendars/CN-2026.json"),
                                                 to: calendars.appendingPathComponent("CN-2026.json"))
                var policy = try JSONSerialization.jsonObject(with: Data(contentsOf: TestDatabase.repo.appendingPathComponent("deploy/sla/policy.json"))) as! [String: Any]
                policy["clocks"] = (policy["clocks"] as! [[String: Any]]).map { clock in
                    var clock = clock
                    if clock["kind"] as? String == "first_contact" { clock["time"] = "working" }
                    return clock
                }
                let policyFile = stack.directory.appendingPathComponent("policy.json")
                try JSONSerialization.data(withJSONObject: policy).write(to: policyFile)
                let files = ["REDRESS_CALENDARS": calendars.path, "REDRESS_SLA_POLICY": policyFile.path]

                // A running working-time clock, due in the middle of January of next year.
                let now = Date()
                let next = Self.shanghaiYear(now) + 1
                let due = Timestamp.parse("\(next)-01-15T18:00:00+08:00")!
                let id = try await CaseFixture.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", number: "GD-SZ-20261122-000901")
                try await db.query("""
                    INSERT INTO sla_clocks (complaint_id, kind, started_at, warn_at, due_at)
                    VALUES (\(id), 'first_contact', \(now), \(due.addingTimeInterval(-86_400)), \(due))
                    """, logger: TestDatabase.logger)

                try await stack.startBroker()
                let port = stack.basePort + 6
                let supervisor = try stack.launch("redress-supervisor", environment: stack.environment(service: "supervisor", database: database, port: port).merging(files) { $1 },
                                     log: "supervisor.log")
                func missing(_ value: Double) async -> Bool {
                    guard let metrics = try? await EndToEndTests.call(http, .GET, "http://127.0.0.1:\(port)/metrics").text else { return false }
                    return metrics.split(separator: "\n").contains { line in
                        line.hasPrefix("redress_sla_calendar_missing{") && line.contains(#"region="CN""#) && line.contains(#"year="\#(next)""#)
                            && line.split(separator: " ").last.flatMap { Double($0) } == value
                    }
                }
                try await eventually("the gauge reports CN \(next) missing", timeout: .seconds(90)) { await missing(1) }
                let log = try String(contentsOf: stack.directory.appendingPathComponent("supervisor.log"), encoding: .utf8)
                #expect(log.contains("no working calendar for") && log.contains("CN \(next)"), "the gap is in the supervisor's log")

                // The check refuses, naming region and year: as of today, and — because of the running clock —
                // even as of a day long before the new year's 60-day warning.
                let (code, output) = try await stack.redressctl(database: database, ["sla", "check"], environment: files)
                #expect(code == 1, "\(output)")
                #expect(output.contains("CN \(next)"), "\(output)")
                let (early, earlyOutput) = try await stack.redressctl(database: database, ["sla", "check", "--at", "2026-06-01T09:00:00+08:00"], environment: files)
                #expect(early == 1 && earlyOutput.contains("CN \(next)"), "\(earlyOutput)")
                // The files alone, as of that June day, are complete.
                let (offline, offlineOutput) = try await stack.redressctl(database: database,
                                                                         ["sla", "check", "--offline", "--at", "2026-06-01T09:00:00+08:00"], environment: files)
                #expect(offline == 0 && offlineOutput.contains("valid"), "\(offlineOutput)")

                // The operator adds the year and tells the supervisors (NOTIFY redress_sla, as `redressctl sla recompute` does):
                // the gauge falls to 0. Taken away again, a SIGHUP reloads and the gap is back.
                let added = calendars.appendingPathComponent("CN-\(next).json")
                try Data(#"""
                    {"region": "CN", "year": \#(next), "timeZone": "Asia/Shanghai", "source": "test fixture",
                     "workingHours": [{"from": "09:00", "to": "12:00"}, {"from": "13:30", "to": "18:00"}],
                     "weekend": ["saturday", "sunday"], "holidays": [], "makeUpWorkingDays": []}
                    """#.utf8).write(to: added)
                try await db.query("SELECT pg_notify('redress_sla', 'test')", logger: TestDatabase.logger)
                try await eventually("the gauge clears after the reload", timeout: .seconds(90)) { await missing(0) }
                try FileManager.default.removeItem(at: added)
                kill(supervisor.processIdentifier, SIGHUP)
                try await eventually("SIGHUP reloads and the gap is reported again", timeout: .seconds(90)) { await missing(1) }
                let reloads = try String(contentsOf: stack.directory.appendingPathComponent("supervisor.log"), encoding: .utf8)
                    .components(separatedBy: "SLA policy and calendars reloaded").count - 1
                #expect(reloads == 2, "one reload for the NOTIFY, one for the SIGHUP")
            }
        }
    }
}
