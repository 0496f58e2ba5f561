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
            let http = HTTPClient(eventLoopGroupProvider: .singleton)
            do {
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
                let killedAt = ContinuousClock.now
                // PostgreSQL ends the dead session, frees its advisory lock, and the standby's next attempt wins.
                try await eventually("the standby leads", timeout: .seconds(20)) { await Self.isLeader(http, port: standby) }
                let takeover = ContinuousClock.now - killedAt
                #expect(takeover < .seconds(10), "took over after \(takeover)")
                // A clock comes due: the new leader fires it, once.
                let id = try await CaseFixture.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", number: "GD-SZ-20261122-000777")
                try await db.query("""
                    INSERT INTO sla_clocks (complaint_id, kind, started_at, warn_at, due_at) VALUES (\(id), 'decision', now() - interval '15 days',
                        now() - interval '3 days', now() - interval '1 second')
                    """, logger: TestDatabase.logger)
                try await eventually("the new leader fires the due clock") {
                    try await TestDatabase.count(db, "SELECT count(*) FROM sla_clocks WHERE complaint_id = \(id) AND breached_at IS NOT NULL") == 1
                }
                try await Task.sleep(for: .seconds(2))
                let metrics = try await EndToEndTests.call(http, .GET, "http://127.0.0.1:\(standby)/metrics").text
                let breaches = metrics.split(separator: "\n").filter { $0.hasPrefix("redress_sla_breaches_total") && $0.contains("decision") }
                #expect(breaches.count == 1 && breaches.first?.split(separator: " ").last.flatMap { Double($0) } == 1, "one breach fired: \(breaches)")
            } catch {
                print(try stack.logs())
                _ = await stack.stop()
                try await http.shutdown()
                throw error
            }
            _ = await stack.stop()
            try await http.shutdown()
        }
    }
}
