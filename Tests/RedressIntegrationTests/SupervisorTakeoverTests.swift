import AsyncHTTPClient
import Foundation
import PostgresNIO
import Testing

/// Two real supervisor processes: one leads, the other stands by. After `kill -9` of the leader,
/// the standby takes over within seconds and fires what comes due, once.
@Suite(.serialized) struct SupervisorTakeoverTests {
    static func isLeader(_ http: HTTPClient, port: Int) async -> Bool {
        guard let answer = try? await EndToEndTests.call(http, .GET, "http://127.0.0.1:\(port)/metrics") else { return false }
        return answer.text.split(separator: "\n").contains { line in
            line.hasPrefix("redress_sla_leader") && line.split(separator: " ").last.flatMap { Double($0) } == 1
        }
    }

    @Test func aStandbyTakesOverAfterTheLeaderIsKilled() async throws {
        try await TestDatabase.withFresh { db, database in
            let stack = try EndToEndTests.Stack()
            try await stack.run { http in
                try await stack.startBroker()
                let ports = [stack.basePort + 6, stack.basePort + 7]
                var processes: [Int: Process] = [:]
                for port in ports {
                    processes[port] = try stack.launch("redress-supervisor", environment: stack.environment(service: "supervisor", database: database, port: port),
                                                       log: "supervisor-\(port).log")
                }
                var leaders: [Int] = []
                try await eventually("one supervisor leads", timeout: .seconds(60)) {
                    leaders = []
                    for port in ports where await Self.isLeader(http, port: port) { leaders.append(port) }
                    return leaders.count == 1
                }
                let leader = leaders[0]
                let standby = ports.first { $0 != leader }!
                kill(processes[leader]!.processIdentifier, SIGKILL)
                // PostgreSQL ends the dead session, frees its advisory lock, and the standby's next attempt wins.
                // Awaited as a condition with a generous ceiling: the suite may share the cores with a benchmark.
                try await eventually("the standby leads", timeout: .seconds(60)) { await Self.isLeader(http, port: standby) }
                // The killed one comes back as a standby: from here two live scanners compete for every due clock.
                processes[leader] = try stack.launch("redress-supervisor", environment: stack.environment(service: "supervisor", database: database, port: leader),
                                                     log: "supervisor-\(leader)-restarted.log")
                try await eventually("the restarted supervisor is up", timeout: .seconds(60)) {
                    (try? await EndToEndTests.call(http, .GET, "http://127.0.0.1:\(leader)/ready"))?.status == 200
                }
                // Two clocks come due one after the other. The second is a sentinel: once it has fired, every
                // scan that could have fired the first a second time has run.
                func dueClock(_ number: String) async throws -> UUID {
                    let id = try await CaseFixture.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", number: number)
                    try await db.query("""
                        INSERT INTO sla_clocks (complaint_id, kind, started_at, warn_at, due_at) VALUES (\(id), 'decision', now() - interval '15 days',
                            now() - interval '3 days', now() - interval '1 second')
                        """, logger: TestDatabase.logger)
                    return id
                }
                let first = try await dueClock("GD-SZ-20261122-000777")
                try await eventually("the new leader fires the due clock") {
                    try await TestDatabase.count(db, "SELECT count(*) FROM sla_clocks WHERE complaint_id = \(first) AND breached_at IS NOT NULL") == 1
                }
                let sentinel = try await dueClock("GD-SZ-20261122-000778")
                func fired() async throws -> Double {
                    var total = 0.0
                    for port in ports {
                        let metrics = try await EndToEndTests.call(http, .GET, "http://127.0.0.1:\(port)/metrics").text
                        total += metrics.split(separator: "\n").filter { $0.hasPrefix("redress_sla_breaches_total") && $0.contains("decision") }
                            .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
                    }
                    return total
                }
                try await eventually("the sentinel fires too") {
                    try await TestDatabase.count(db, "SELECT count(*) FROM sla_clocks WHERE complaint_id = \(sentinel) AND breached_at IS NOT NULL") == 1
                }
                try await eventually("both breaches are counted") { try await fired() >= 2 }
                #expect(try await fired() == 2, "each due clock fired once across two live supervisors")
            }
        }
    }
}
