import Foundation
import PostgresNIO
import RedressContracts
import RedressDomain
@testable import RedressServiceKit
import Testing

/// `redressctl` as an operator runs it, a real process against a real database: every verb that
/// needs no broker (`dlq replay` is exercised with one in the outbox tests' relay path).
@Suite(.serialized) struct RedressctlTests {
    @Test func theOperatorsVerbsDoWhatTheySay() async throws {
        try await TestDatabase.withFresh(seed: false) { db, database in
            let stack = try EndToEndTests.Stack()
            func ctl(_ arguments: String...) async throws -> (Int32, String) { try await stack.redressctl(database: database, arguments) }
            var (code, out) = try await ctl("migrate")
            #expect(code == 0 && out.contains("schema up to date"), "\(out)")
            (code, out) = try await ctl("seed", "--file", TestDatabase.repo.appendingPathComponent("deploy/seed/org.json").path)
            #expect(code == 0, "\(out)")
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM org_units") == 9)
            (code, out) = try await ctl("token", "--role", "agent", "--unit", "GD-SZ", "--subject", "GD-SZ-AGE01")
            #expect(code == 0)
            let identity = try await TokenAuthority(secret: stack.secret).verify(out.trimmingCharacters(in: .whitespacesAndNewlines))
            #expect(identity.subject == "GD-SZ-AGE01" && identity.role == .agent && identity.unit == "GD-SZ")
            (code, out) = try await ctl("token", "--role", "wizard", "--unit", "GD")
            #expect(code != 0 && out.contains("wizard"), "\(out)")
            (code, out) = try await ctl("token", "--role", "channel", "--unit", "HQ")
            #expect(code != 0 && out.contains("--subject"), "a channel token names its channel: \(out)")
            // Console passwords: set for two, refused when too short.
            (code, out) = try await ctl("staff", "set-password", "GD-SZ-AGE01", "GD-SZ-AGE02", "--password", "a good long password")
            #expect(code == 0 && out.contains("2 staff member"), "\(out)")
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM staff_credentials WHERE password_hash LIKE '$2%'") == 2)
            (code, out) = try await ctl("staff", "set-password", "GD-SUP01", "--password", "a good long password", "--totp")
            #expect(code == 0 && out.contains("GD-SUP01 otpauth://totp/"), "\(out)")
            (code, out) = try await ctl("staff", "set-password", "GD-SZ-AGE01", "--password", "short")
            #expect(code != 0 && out.contains("at least 10"), "\(out)")
            (code, out) = try await ctl("rules", "check")
            #expect(code == 0, "\(out)")
            (code, out) = try await ctl("sla", "check", "--offline", "--at", "2026-06-01T09:00:00+08:00")
            #expect(code == 0 && out.contains("valid"), "\(out)")
            // Staff: add, list, refuse a duplicate, deactivate (their open case moves on).
            (code, out) = try await ctl("staff", "add", "--id", "GD-SZ-AGE08", "--name", "钱进", "--unit", "GD-SZ", "--role", "agent", "--skills", "service,claims")
            #expect(code == 0 && out.contains("GD-SZ-AGE08"), "\(out)")
            (code, out) = try await ctl("staff", "add", "--id", "GD-SZ-AGE08", "--name", "钱进", "--unit", "GD-SZ", "--role", "agent")
            #expect(code != 0 && out.contains("taken"), "\(out)")
            (code, out) = try await ctl("staff", "add", "--id", "GD-SZ-AGE07", "--name", "x", "--unit", "NOWHERE", "--role", "agent")
            #expect(code != 0 && out.contains("NOWHERE"), "\(out)")
            (code, out) = try await ctl("staff", "list", "--unit", "GD-SZ")
            #expect(code == 0 && out.contains("GD-SZ-AGE08\t钱进\tGD-SZ\tagent"), "\(out)")
            let id = try await CaseFixture.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE08", status: "investigating", number: "GD-SZ-20261122-000801",
                                                  category: "service")
            (code, out) = try await ctl("staff", "deactivate", "GD-SZ-AGE08")
            #expect(code == 0 && out.contains("deactivated"), "\(out)")
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM complaints WHERE id = \(id) AND assignee <> 'GD-SZ-AGE08' AND status = 'investigating'") == 1)
            (code, out) = try await ctl("case", "history", "GD-SZ-20261122-000801")
            #expect(code == 0 && out.contains("reassign") && out.contains("GD-SZ-AGE08 was deactivated"), "\(out)")
            (code, out) = try await ctl("case", "history", "GD-SZ-19990101-000001")
            #expect(code != 0, "\(out)")
            // 定期分析报告: the rollup rebuilt, a report printed as Excel's CSV and in the regulator's classes.
            (code, out) = try await ctl("report", "rebuild", "--from", "2026-01-01", "--to", "2027-12-31")
            #expect(code == 0 && out.contains("rebuilt"), "\(out)")
            (code, out) = try await ctl("report", "show", "--unit", "GD", "--period", "2026-Q4", "--format", "csv")
            #expect(code == 0 && out.contains("section,measure,key,value\r\nreport,unit,,GD"), "\(out)")
            (code, out) = try await ctl("report", "show", "--unit", "GD", "--period", "2026-Q4", "--format", "regulator-csv")
            #expect(code == 0 && out.contains("理赔纠纷"), "\(out)")
            (code, out) = try await ctl("report", "show", "--unit", "GD", "--period", "2026-Q9")
            #expect(code != 0 && out.contains("--period"), "\(out)")
            _ = await stack.stop()
        }
    }

    /// `redressctl topics apply` against the development broker: with every topic as defined it
    /// creates nothing, twice over; against a broker where one topic has too few partitions it
    /// names the topic and exits 1.
    @Test func topicsApplyIsIdempotentAndReportsPartitionDrift() async throws {
        let stack = try EndToEndTests.Stack()
        try await stack.startBroker()
        for _ in 0..<2 {
            let (code, out) = try await stack.redressctl(database: "redress", ["topics", "apply"])
            #expect(code == 0 && out.contains("\(Topics.specs.count) present, 0 created, 0 problem(s)"), "\(out)")
        }
        let drifted = try EndToEndTests.Stack()
        let file = drifted.directory.appendingPathComponent("kafka.bootstrap").path
        _ = try drifted.launch("redress-devbroker", arguments: ["--bootstrap-file", file, "--partitions-override", "redress.case.closed=2"], log: "devbroker.log")
        try await eventually("the drifted broker writes its address") { FileManager.default.fileExists(atPath: file) }
        let (code, out) = try await drifted.redressctl(database: "redress", ["topics", "apply"])
        #expect(code == 1, "\(out)")
        #expect(out.contains("drift redress.case.closed: 2 partitions, 16 defined"), "\(out)")
        // A service on that broker does not say it is ready, and says why.
        try await TestDatabase.withFresh { _, database in
            try await drifted.run { http in
                _ = try drifted.launch("redress-routing", environment: drifted.environment(service: "routing", database: database, port: drifted.port("routing")),
                                       log: "routing.log")
                try await eventually("routing answers /ready", timeout: .seconds(60)) {
                    let answer = try? await EndToEndTests.call(http, .GET, "http://127.0.0.1:\(drifted.port("routing"))/ready")
                    return answer?.status == 503 && answer?.text.contains("redress.case.closed") == true
                }
            }
        }
        _ = await stack.stop()
    }
}

