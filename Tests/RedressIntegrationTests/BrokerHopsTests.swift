import AsyncHTTPClient
import Foundation
import PostgresNIO
import RedressContracts
import RedressDomain
import RedressKafka
@testable import RedressServiceKit
import Testing

/// The hops the end-to-end flow does not take, through the real processes and the development broker:
/// a breach escalating the case (supervisor → cases → routing → notify), nobody to assign (routing →
/// notify), a dead letter replayed by `redressctl dlq replay` once its cause is fixed, and the label sets
/// every service exports.
@Suite(.serialized) struct BrokerHopsTests {
    @Test func breachesUnassignableComplaintsAndDeadLettersTakeTheirHopsThroughTheBroker() async throws {
        try await TestDatabase.withFresh { db, database in
            let stack = try EndToEndTests.Stack()
            try await stack.run { http in
                try await stack.start(database: database)
                for service in EndToEndTests.services {
                    try await eventually("redress-\(service.name) is ready", timeout: .seconds(60)) {
                        (try? await EndToEndTests.call(http, .GET, "http://127.0.0.1:\(stack.port(service.name))/ready").status) == 200
                    }
                }
                let tokens = TokenAuthority(secret: stack.secret)

                // 1. A missed decision deadline: the supervisor fires, cases escalates, routing assigns at the province,
                //    notify alerts the owner and the city's supervisors and tells the customer who has it now.
                let late = try await CaseFixture.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "investigating",
                                                        number: "GD-SZ-20261101-000901", category: "service")
                try await db.query("""
                    INSERT INTO sla_clocks (complaint_id, kind, started_at, warn_at, due_at)
                    VALUES (\(late), 'decision', now() - interval '16 days', now() - interval '4 days', now() - interval '1 day')
                    """, logger: TestDatabase.logger)
                try await eventually("the breach escalates the case to GD and routing assigns it there", timeout: .seconds(60)) {
                    try await TestDatabase.count(db, """
                        SELECT count(*) FROM complaints WHERE id = \(late) AND handling_unit = 'GD' AND status = 'assigned' AND assignee LIKE 'GD-AGE%'
                        """) == 1
                }
                #expect(try await TestDatabase.count(db, "SELECT count(*) FROM case_events WHERE complaint_id = \(late) AND action = 'escalate' AND actor = 'redress-cases'") == 1)
                try await eventually("the owner and the city's supervisors are alerted, the customer told") {
                    let alerts = try await TestDatabase.count(db, """
                        SELECT count(*) FROM notifications WHERE complaint_id = \(late) AND template = 'sla.breached.staff'
                          AND recipient IN ('staff:GD-SZ-AGE01', 'supervisors:GD-SZ')
                        """)
                    let moved = try await TestDatabase.count(db, "SELECT count(*) FROM notifications WHERE complaint_id = \(late) AND template = 'case.moved.customer'")
                    return alerts == 2 && moved == 1
                }

                // 2. Nobody to take a claims complaint at the province: the province's supervisors hear of it.
                try await db.query("UPDATE staff SET available = false WHERE org_unit = 'GD' AND role = 'agent'", logger: TestDatabase.logger)
                let intake = "http://127.0.0.1:\(stack.port("intake"))/v1/complaints"
                let channel = (await tokens.mint(subject: "online", role: .channel, unit: "HQ"))
                let posted = try await EndToEndTests.call(http, .POST, intake, token: channel, body: EndToEndTests.submission(ref: "WEB-HOPS-1", phone: "13700000001"))
                #expect(posted.status == 201, "\(posted.text)")
                try await eventually("the province's supervisors are told nobody could take it", timeout: .seconds(60)) {
                    try await TestDatabase.count(db, """
                        SELECT count(*) FROM notifications n JOIN complaints c ON c.id = n.complaint_id
                        WHERE c.external_ref = 'WEB-HOPS-1' AND n.template = 'complaint.unassignable.supervisors' AND n.recipient = 'supervisors:GD'
                        """) == 1
                }
                #expect(try await TestDatabase.count(db, "SELECT count(*) FROM complaints WHERE external_ref = 'WEB-HOPS-1' AND assignee IS NULL") == 1)

                // 3. A complaint for a branch that does not exist yet is dead-lettered; once the branch is added,
                //    `redressctl dlq replay` puts it back and it is registered.
                let producer = try KafkaProducer(configuration: .init(client: .init(bootstrapServers: stack.bootstrap, clientID: "hops")), logger: TestDatabase.logger)
                let early = String(decoding: EndToEndTests.submission(ref: "CC-HOPS-2", phone: "13700000002"), as: UTF8.self)
                    .replacingOccurrences(of: "\"online\"", with: "\"call_center\"").replacingOccurrences(of: "GD-SZ", with: "GD-ZH")
                try await producer.send(KafkaOutgoingMessage(topic: Topics.inbound, key: "CC-HOPS-2", value: Array(early.utf8)))
                await producer.shutdown()
                try await eventually("intake dead-letters the unknown branch", timeout: .seconds(60)) {
                    let metrics = (try? await EndToEndTests.call(http, .GET, "http://127.0.0.1:\(stack.port("intake"))/metrics").text) ?? ""
                    return metrics.split(separator: "\n").contains { $0.hasPrefix("redress_complaints_rejected_total") && $0.contains("branch") }
                }
                try await db.query("""
                    INSERT INTO org_units (code, parent_code, level, name, path, region) VALUES ('GD-ZH', 'GD', 'city', '珠海中心支公司', 'HQ/GD/GD-ZH', 'CN')
                    """, logger: TestDatabase.logger)
                let (code, replayed) = try await stack.redressctl(database: database, ["dlq", "replay", Topics.inbound, "--idle-seconds", "8"])
                #expect(code == 0 && replayed.contains("replayed 1 message"), "\(replayed)")
                try await eventually("the replayed complaint is registered at its new branch", timeout: .seconds(60)) {
                    try await TestDatabase.count(db, "SELECT count(*) FROM complaints WHERE external_ref = 'CC-HOPS-2' AND branch = 'GD-ZH'") == 1
                }

                // 4. Every service's metrics: the label sets each family is documented with, and no personal data in any label.
                let expected: [String: Set<String>] = [
                    "redress_sla_breaches_total": ["kind", "unit"],
                    "redress_sla_warnings_total": ["kind"],
                    "redress_notifications_recorded_total": ["template", "channel", "status"],
                    "redress_case_transitions_total": ["action"],
                    "redress_complaints_received_total": ["channel", "branch"],
                    "redress_complaints_rejected_total": ["reason"],
                    "redress_sla_calendar_missing": ["region", "year"],
                    "redress_cases_open": ["unit", "status", "priority"],
                ]
                var seen = Set<String>()
                for service in EndToEndTests.services {
                    let text = try await EndToEndTests.call(http, .GET, "http://127.0.0.1:\(stack.port(service.name))/metrics").text
                    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
                        #expect(line.range(of: #"1[3-9][0-9]{9}|[0-9]{17}[0-9Xx]"#, options: .regularExpression) == nil, "personal data in \(service.name): \(line)")
                        guard let brace = line.firstIndex(of: "{") else { continue }
                        let name = String(line[..<brace])
                        guard let labels = expected[name] else { continue }
                        let inside = line[line.index(after: brace)..<(line.lastIndex(of: "}") ?? line.endIndex)]
                        let names = Set(inside.split(separator: ",").compactMap { $0.split(separator: "=").first.map(String.init) })
                        #expect(names == labels, "\(service.name): \(name) has labels \(names.sorted())")
                        seen.insert(name)
                    }
                }
                #expect(seen.isSuperset(of: ["redress_sla_breaches_total", "redress_notifications_recorded_total", "redress_case_transitions_total",
                                             "redress_complaints_received_total", "redress_complaints_rejected_total"]), "\(seen.sorted())")
            }
        }
    }
}
