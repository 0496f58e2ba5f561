import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import PostgresNIO
import RedressDomain
@testable import RedressContracts
@testable import RedressIntake
import RedressKafka
@testable import RedressServiceKit
import Testing

/// Intake in-process against a real PostgreSQL: the router through Hummingbird's test client,
/// the inbound path through the same handler the consumer runs.
@Suite struct IntakeTests {
    static let secret = TestHost.secret
    /// An hour before the run, on whole seconds; the same for every body, so two posts of it compare equal.
    static let receivedAt = Timestamp.format(Date(timeIntervalSince1970: (Date().timeIntervalSince1970 - 3600).rounded(.down)))

    static func withHost<T: Sendable>(database: String, _ body: @Sendable (ServiceHost) async throws -> T) async throws -> T {
        try await TestHost.withHost(service: IntakeService.name, database: database, body)
    }

    static func body(ref: String?, phone: String = "13812345678", policy: String = "P-1", branch: String = "GD-SZ", idNumber: String = "11010519491231002X",
                     claim: String? = nil) -> ByteBuffer {
        let refField = (ref.map { #""externalRef":"\#($0)","# } ?? "") + (claim.map { #""claimNumber":"\#($0)","# } ?? "")
        return ByteBuffer(string: #"""
            {"channel":"online",\#(refField)"receivedAt":"\#(Self.receivedAt)",
             "customer":{"name":"李四","phone":"\#(phone)","idNumber":"\#(idNumber)"},"policyNumber":"\#(policy)",
             "branch":"\#(branch)","subject":"保单条款不清楚","content":"销售时没有说明免责条款，联系电话\#(phone)"}
            """#)
    }

    static func post(_ client: some TestClientProtocol, _ body: ByteBuffer, idempotencyKey: String? = nil) async throws -> (HTTPResponse.Status, [String: Any]) {
        var headers: HTTPFields = [.authorization: "Bearer " + (await TokenAuthority(secret: secret).mint(subject: "online", role: .channel, unit: "HQ")),
                                   .contentType: "application/json"]
        if let idempotencyKey { headers[HTTPField.Name("Idempotency-Key")!] = idempotencyKey }
        let response = try await client.execute(uri: "/v1/complaints", method: .post, headers: headers, body: body)
        let json = (try? JSONSerialization.jsonObject(with: Data(buffer: response.body))) as? [String: Any] ?? [:]
        return (response.status, json)
    }

    static func app(_ host: ServiceHost) -> some ApplicationProtocol {
        let (router, _) = IntakeService.build(host: host)
        return Application(router: router)
    }

    @Test func fiftyConcurrentSubmissionsOfOneReferenceMakeOneComplaint() async throws {
        try await TestDatabase.withFresh { db, database in
            try await Self.withHost(database: database) { host in
                try await Self.app(host).test(.router) { client in
                    let answers = try await withThrowingTaskGroup(of: (HTTPResponse.Status, String?).self) { group in
                        for _ in 0..<50 {
                            group.addTask {
                                let (status, json) = try await Self.post(client, Self.body(ref: "WEB-SAME"))
                                return (status, json["number"] as? String)
                            }
                        }
                        return try await group.reduce(into: []) { $0.append($1) }
                    }
                    #expect(answers.filter { $0.0 == .created }.count == 1)
                    #expect(answers.filter { $0.0 == .ok }.count == 49)
                    #expect(Set(answers.compactMap(\.1)).count == 1)
                }
                #expect(try await TestDatabase.count(db, "SELECT count(*) FROM complaints") == 1)
                #expect(try await TestDatabase.count(db, "SELECT count(*) FROM outbox WHERE event_type = 'complaint.registered'") == 1)
            }
        }
    }

    @Test func numbersStayUniqueAndDenseAcrossTwoInstances() async throws {
        try await TestDatabase.withFresh { db, database in
            try await Self.withHost(database: database) { first in
                try await Self.withHost(database: database) { second in
                    let registrars = [first, second].map { Registrar(personalData: $0.personalData, numbers: $0.postgres) }
                    let pools = [first.postgres, second.postgres]
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for batch in 0..<12 {
                            group.addTask {
                                let submissions = (0..<40).map { i in
                                    try! SubmissionValidator.validate(ComplaintSubmission(
                                        channel: "call_center", externalRef: "CC-\(batch)-\(i)", receivedAt: Date(),
                                        customer: .init(name: "王五", phone: "139\(String(format: "%08d", batch * 100 + i))"),
                                        branch: ["GD-SZ", "GD-GZ", "ZJ-HZ"][i % 3], subject: "s", content: "c"), now: Date()).get()
                                }
                                _ = try await pools[batch % 2].withTransaction(logger: TestDatabase.logger) { connection in
                                    try await registrars[batch % 2].register(submissions, on: connection, logger: TestDatabase.logger)
                                }
                            }
                        }
                        try await group.waitForAll()
                    }
                    #expect(try await TestDatabase.count(db, "SELECT count(DISTINCT number) FROM complaints") == 480)
                    // Per branch and day the sequence runs from 1 without gaps when nothing failed (14, 13 and 13 of
                    // every 40). Grouped by the number's day, so a run across Shanghai midnight holds too.
                    for branch in ["GD-SZ", "GD-GZ", "ZJ-HZ"] {
                        let count = try await TestDatabase.count(db, "SELECT count(*) FROM complaints WHERE branch = \(branch)")
                        #expect(count == (branch == "GD-SZ" ? 168 : 156), "\(branch): \(count) complaints")
                        let gaps = try await TestDatabase.count(db, """
                            SELECT count(*) FROM (
                                SELECT left(number, length(number) - 7) AS day, max(right(number, 6)::int) AS highest, count(*) AS n
                                FROM complaints WHERE branch = \(branch) GROUP BY 1) d
                            WHERE highest <> n
                            """)
                        #expect(gaps == 0, "\(branch): every day's numbers run from 1 without a gap")
                    }
                }
            }
        }
    }

    /// Dates PostgreSQL would refuse are field errors on both paths, a channel token submits for its
    /// own channel only, and rejection metrics carry no array positions.
    @Test func datesTheDatabaseRefusesAreFieldErrorsAndChannelTokensAreBound() async throws {
        try await TestDatabase.withFresh { db, database in
            try await Self.withHost(database: database) { host in
                let handler = InboundHandler(registrar: Registrar(personalData: host.personalData, numbers: host.postgres))
                let transfer = String(buffer: Self.body(ref: "REG-0000")).replacingOccurrences(of: #""channel":"online""#, with: #""channel":"regulator""#)
                    .replacingOccurrences(of: #""branch""#, with: #""regulator":{"caseNumber":"YJ-1","deadline":"0000-01-01T00:00:00Z"},"branch""#)
                try await Self.app(host).test(.router) { client in
                    let headers: HTTPFields = [.authorization: "Bearer " + (await TokenAuthority(secret: Self.secret).mint(subject: "regulator", role: .channel, unit: "HQ")),
                                               .contentType: "application/json"]
                    var response = try await client.execute(uri: "/v1/complaints", method: .post, headers: headers, body: ByteBuffer(string: transfer))
                    let json = (try? JSONSerialization.jsonObject(with: Data(buffer: response.body))) as? [String: Any] ?? [:]
                    #expect(response.status == .unprocessableContent, "\(json)")
                    #expect((json["errors"] as? [[String: String]])?.map { $0["field"] } == ["regulator.deadline"])
                    let message = KafkaMessage(topic: Topics.inbound, partition: 0, offset: 0, key: nil, value: Array(transfer.utf8), headers: [])
                    guard case .failure(let rejection) = handler.decode(message) else {
                        Issue.record("the topic path dead-letters it rather than failing the batch")
                        return
                    }
                    #expect(rejection.reason.contains("regulator.deadline"))
                    // The online channel's token cannot submit as WeChat.
                    let wechat = String(buffer: Self.body(ref: "WX-1")).replacingOccurrences(of: #""channel":"online""#, with: #""channel":"wechat""#)
                    let (status, refused) = try await Self.post(client, ByteBuffer(string: wechat))
                    #expect(status == .forbidden && (refused["detail"] as? String)?.contains("'online'") == true, "\(refused)")
                    response = try await client.execute(uri: "/v1/complaints", method: .post, headers: [
                        .authorization: "Bearer " + (await TokenAuthority(secret: Self.secret).mint(subject: "web", role: .channel, unit: "HQ")), .contentType: "application/json",
                    ], body: Self.body(ref: "WEB-2"))
                    #expect(response.status == .forbidden, "a channel token must name a channel")
                }
                #expect(try await TestDatabase.count(db, "SELECT count(*) FROM complaints") == 0, "nothing stored")
            }
        }
        #expect(IntakeService.metricField("customer.flags[12345]") == "customer.flags[]")
        #expect(IntakeService.metricField("attachments[3].uri") == "attachments[].uri")
    }

    @Test func httpAndTopicGiveTheSameAnswersForTheSameInput() async throws {
        try await TestDatabase.withFresh { db, database in
            try await Self.withHost(database: database) { host in
                let handler = InboundHandler(registrar: Registrar(personalData: host.personalData, numbers: host.postgres))
                let bad = ByteBuffer(string: #"{"channel":"fax","externalRef":"X 1","customer":{"phone":"123"},"branch":"gd"}"#)
                try await Self.app(host).test(.router) { client in
                    // Invalid: the same field errors, as a 422 over HTTP and as the dead-letter reason on the topic.
                    let (status, json) = try await Self.post(client, bad)
                    #expect(status == .unprocessableContent)
                    let httpErrors = ((json["errors"] as? [[String: String]]) ?? []).map { "\($0["field"]!): \($0["message"]!)" }
                    let message = KafkaMessage(topic: Topics.inbound, partition: 0, offset: 0, key: nil, value: Array(buffer: bad), headers: [])
                    guard case .failure(let rejection) = handler.decode(message) else {
                        Issue.record("the topic path must refuse what HTTP refuses")
                        return
                    }
                    #expect(rejection.reason == httpErrors.joined(separator: "; "))

                    // Valid: the same stored complaint either way.
                    #expect(try await Self.post(client, Self.body(ref: "SAME-HTTP")).0 == .created)
                    let topicMessage = KafkaMessage(topic: Topics.inbound, partition: 0, offset: 1, key: nil,
                                                    value: Array(buffer: Self.body(ref: "SAME-TOPIC", policy: "P-2")), headers: [])
                    let item = try handler.decode(topicMessage).get()
                    try await db.withTransaction(logger: TestDatabase.logger) { connection in
                        try await handler.handle([item], on: connection, logger: TestDatabase.logger)
                    }
                }
                let rows = try await db.query("""
                    SELECT channel, branch, customer_name, customer_phone, customer_id_number, customer_key, subject, content,
                           status, promised_reply_by::text FROM complaints ORDER BY external_ref
                    """, logger: TestDatabase.logger)
                var stored: [[String?]] = []
                for try await row in rows.decode((String, String, String, String, String?, String, String, String, String, String).self) {
                    stored.append([row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9])
                }
                #expect(stored.count == 2)
                #expect(stored.first == stored.last)
            }
        }
    }

    @Test func aRepeatIsLinkedToTheOpenComplaintAndAnIdempotencyKeyIsHonoured() async throws {
        try await TestDatabase.withFresh { db, database in
            try await Self.withHost(database: database) { host in
                try await Self.app(host).test(.router) { client in
                    let (_, first) = try await Self.post(client, Self.body(ref: "R-1"))
                    let (status, second) = try await Self.post(client, Self.body(ref: "R-2"))
                    #expect(status == .created)
                    #expect((second["repeatOf"] as? [String: Any])?["number"] as? String == first["number"] as? String)
                    // Another policy is not a repeat.
                    #expect(try await Self.post(client, Self.body(ref: "R-3", policy: "P-OTHER")).1["repeatOf"] == nil)
                    // Once the first is closed, a new complaint is not a repeat of it.
                    try await db.query("UPDATE complaints SET status = 'closed'", logger: TestDatabase.logger)
                    #expect(try await Self.post(client, Self.body(ref: "R-4")).1["repeatOf"] == nil)

                    // Idempotency-Key in place of an external reference: a retry answers with the first complaint.
                    let (created, once) = try await Self.post(client, Self.body(ref: nil), idempotencyKey: "KEY-1")
                    let (retried, twice) = try await Self.post(client, Self.body(ref: nil), idempotencyKey: "KEY-1")
                    #expect(created == .created && retried == .ok)
                    #expect(once["number"] as? String == twice["number"] as? String)
                    #expect(try await Self.post(client, Self.body(ref: "OTHER"), idempotencyKey: "KEY-2").0 == .unprocessableContent)
                }
                // R-2 repeats R-1, and KEY-1 repeats R-4 (open, same customer and policy).
                #expect(try await TestDatabase.count(db, "SELECT count(*) FROM complaints WHERE repeat_of IS NOT NULL") == 2)
            }
        }
    }

    @Test func eventsCarryOnlyMaskedPersonalData() async throws {
        try await TestDatabase.withFresh { db, database in
            try await Self.withHost(database: database) { host in
                try await Self.app(host).test(.router) { client in
                    let (status, _) = try await Self.post(client, Self.body(ref: "M-1", phone: "13755556666", idNumber: "440524188001010014"))
                    #expect(status == .created)
                }
                var payloads: [String] = []
                for try await payload in try await db.query("SELECT convert_from(payload, 'UTF8') FROM outbox", logger: TestDatabase.logger).decode(String.self) {
                    payloads.append(payload)
                }
                #expect(payloads.count == 1)
                let event = try #require(payloads.first)
                #expect(!event.contains("13755556666"))
                #expect(!event.contains("440524188001010014"))
                #expect(!event.contains("李四"))
                // Not even masked: beside the keyed hash, a masked number's hidden digits could be found
                // by trying the candidates. The event carries the hash alone.
                #expect(!event.contains("137****6666") && !event.contains("440524********0014"), "\(event)")
                #expect(!event.contains("\"phone\"") && !event.contains("idNumber"), "\(event)")
                #expect(event.contains("\"key\""))
                // The full values are in the system of record.
                #expect(try await TestDatabase.count(db, "SELECT count(*) FROM complaints WHERE customer_phone = '13755556666' AND customer_name = '李四'") == 1)
            }
        }
    }
}

extension IntakeTests {
    /// 重复投诉 by claim number or ID number, and 可能的二次投诉 after a recent closure.
    @Test func repeatsAreLinkedByPolicyClaimOrIDNumberAndARecentClosureFlagsASecondComplaint() async throws {
        try await TestDatabase.withFresh { db, database in
            try await Self.withHost(database: database) { host in
                try await Self.app(host).test(.router) { client in
                    func registered(_ body: ByteBuffer) async throws -> [String: Any] {
                        let (status, json) = try await Self.post(client, body)
                        #expect(status == .created, "\(json)")
                        return json
                    }
                    func links(_ number: Any?) async throws -> (repeatOf: String?, second: String?) {
                        for try await row in try await db.query("""
                            SELECT r.number, p.number FROM complaints c LEFT JOIN complaints r ON r.id = c.repeat_of LEFT JOIN complaints p ON p.id = c.possible_second_of
                            WHERE c.number = \(number as? String ?? "")
                            """, logger: TestDatabase.logger).decode((String?, String?).self) { return row }
                        return (nil, nil)
                    }
                    let first = try await registered(Self.body(ref: "R-1", phone: "13800000001", policy: "P-100", idNumber: "11010519491231002X", claim: "CLM-9"))
                    // Another phone, the same claim: a repeat.
                    let byClaim = try await registered(Self.body(ref: "R-2", phone: "13800000002", policy: "P-200", idNumber: "440106198001010019", claim: "CLM-9"))
                    #expect(try await links(byClaim["number"]).repeatOf == first["number"] as? String)
                    // Another phone, the same ID number and policy: a repeat.
                    let byID = try await registered(Self.body(ref: "R-3", phone: "13800000003", policy: "P-100", idNumber: "11010519491231002X"))
                    #expect(try await links(byID["number"]).repeatOf == first["number"] as? String)
                    // Unrelated: no link.
                    let other = try await registered(Self.body(ref: "R-4", phone: "13800000004", policy: "P-400", idNumber: "440106198001010019"))
                    #expect(try await links(other["number"]) == (nil, nil))
                    // Closed a week ago: the same customer's next complaint may be a second complaint about it.
                    try await db.query("UPDATE complaints SET status = 'closed', closed_at = now() - interval '7 days' WHERE number = \(other["number"] as? String ?? "")",
                                       logger: TestDatabase.logger)
                    let again = try await registered(Self.body(ref: "R-5", phone: "13800000004", policy: "P-500", idNumber: "110101199003070011"))
                    #expect(try await links(again["number"]) == (nil, other["number"] as? String))
                    // Closed long ago: not flagged.
                    try await db.query("UPDATE complaints SET closed_at = now() - interval '45 days' WHERE number = \(other["number"] as? String ?? "")",
                                       logger: TestDatabase.logger)
                    let later = try await registered(Self.body(ref: "R-6", phone: "13800000004", policy: "P-600", idNumber: "110101199003070011"))
                    #expect(try await links(later["number"]) == (nil, nil))
                    let event = try #require(try await db.query("""
                        SELECT convert_from(payload, 'UTF8') FROM outbox WHERE event_type = 'complaint.registered' AND convert_from(payload, 'UTF8') LIKE '%possibleSecondOf%' LIMIT 1
                        """, logger: TestDatabase.logger).decode(String.self).first(where: { _ in true }))
                    #expect(event.contains(other["number"] as? String ?? "?"))
                }
            }
        }
    }
}
