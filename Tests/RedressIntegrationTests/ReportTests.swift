import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import PostgresNIO
@testable import RedressCases
import RedressDomain
import RedressServiceKit
@testable import RedressStore
import Testing

/// 定期分析报告, known answers: a generated organisation-wide history (complaints received, closed,
/// escalated, transferred, breached, visited), the expected figures computed here straight from the
/// generated rows, compared with the API's report for several units and periods — including a
/// complaint at 23:30 on the last day of a quarter, Shanghai time, which belongs to that quarter.
@Suite struct ReportTests {
    typealias F = CaseFixture

    struct Row {
        var id = UUID()
        var unit: String
        var path: String
        var branch: String
        var channel: String
        var category: String?
        var received: Date
        var closed: Date?
        var decisionDays = 15
        var liability: String?
        var link: String?
        var cause: String?
        var assignee: String?
        var regulatorDeadline: Date?
        var repeatOf: UUID?
        var reopenedFrom: UUID?
        var firstContact: Date?
        var acknowledged: Date?
        var escalatedAt: [Date] = []
        var breach: (kind: String, at: Date)?
        var survey: (answered: Date, score: Int, resolved: Bool)?
        var promised: Date { received.addingTimeInterval(Double(decisionDays) * 86_400) }
    }

    struct Seeded: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state ^ (state >> 29)
        }
    }

    static let zone = TimeZone(identifier: "Asia/Shanghai")!
    static func local(_ text: String) -> Date { Timestamp.parse(text)! }
    static func day(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        let p = calendar.dateComponents([.year, .month, .day], from: date)
        return String(format: "%04d-%02d-%02d", p.year!, p.month!, p.day!)
    }

    static func generate(paths: [String: String]) -> [Row] {
        var rng = Seeded(state: 20_261_130)
        let units = ["GD-SZ", "GD-GZ", "GD", "ZJ-HZ", "GD-SZ-NS", "HQ"]
        let agents = ["GD-SZ": ["GD-SZ-AGE01", "GD-SZ-AGE02"], "GD-GZ": ["GD-GZ-AGE01"], "GD": ["GD-AGE01"], "ZJ-HZ": ["ZJ-HZ-AGE01"],
                      "GD-SZ-NS": ["GD-SZ-NS-AGE01"], "HQ": ["HQ-AGE01"]]
        let channels = ["online", "call_center", "wechat", "branch_counter", "regulator"]
        let categories: [String?] = ["claims", "service", "sales", nil]
        let start = local("2025-10-01T00:00:00+08:00").timeIntervalSince1970, end = local("2027-03-31T00:00:00+08:00").timeIntervalSince1970
        var rows: [Row] = []
        for n in 0..<260 {
            let unit = units[Int.random(in: 0..<units.count, using: &rng)]
            var row = Row(unit: unit, path: paths[unit]!, branch: unit, channel: channels[Int.random(in: 0..<channels.count, using: &rng)],
                          category: categories[Int.random(in: 0..<categories.count, using: &rng)],
                          received: Date(timeIntervalSince1970: Double.random(in: start..<end, using: &rng).rounded(.down)))
            // The period boundary in the customer's time: 23:30 on the quarter's last day, and 00:30 after it.
            if n == 0 { row.received = local("2026-12-31T23:30:00+08:00") }
            if n == 1 { row.received = local("2027-01-01T00:30:00+08:00") }
            if n == 2 { row.received = local("2026-09-30T23:59:00+08:00") }
            row.decisionDays = [15, 15, 15, 30, 60][Int.random(in: 0..<5, using: &rng)]
            if Int.random(in: 0..<10, using: &rng) < 7 {
                row.closed = row.received.addingTimeInterval(Double(Int.random(in: 3_600...(50 * 86_400), using: &rng)))
                row.liability = Bool.random(using: &rng) ? "liable" : "not_liable"
                row.link = ["claims", "service", "sales", "product"][Int.random(in: 0..<4, using: &rng)]
                row.cause = ["claim_delay", "poor_attitude", "mis_selling"][Int.random(in: 0..<3, using: &rng)]
                row.assignee = agents[unit]![Int.random(in: 0..<agents[unit]!.count, using: &rng)]
                if Int.random(in: 0..<3, using: &rng) == 0 {
                    row.survey = (row.closed!.addingTimeInterval(Double(Int.random(in: 3_600...(10 * 86_400), using: &rng))),
                                  Int.random(in: 1...5, using: &rng), Bool.random(using: &rng))
                }
            }
            if n == 0 { row.closed = local("2026-12-31T23:50:00+08:00"); row.liability = "liable"; row.link = "claims"; row.cause = "claim_delay" }
            if Int.random(in: 0..<10, using: &rng) == 0 { row.regulatorDeadline = row.received.addingTimeInterval(10 * 86_400) }
            if Int.random(in: 0..<2, using: &rng) == 0 { row.firstContact = row.received.addingTimeInterval(Double(Int.random(in: 600...(48 * 3_600), using: &rng))) }
            if Int.random(in: 0..<2, using: &rng) == 0 { row.acknowledged = row.received.addingTimeInterval(Double(Int.random(in: 60...(30 * 3_600), using: &rng))) }
            if Int.random(in: 0..<8, using: &rng) == 0 { row.escalatedAt = [row.received.addingTimeInterval(Double(Int.random(in: 3_600...(20 * 86_400), using: &rng)))] }
            if Int.random(in: 0..<6, using: &rng) == 0 {
                row.breach = (["decision", "acknowledgement", "update"][Int.random(in: 0..<3, using: &rng)],
                              row.received.addingTimeInterval(Double(Int.random(in: 86_400...(30 * 86_400), using: &rng))))
            }
            if !rows.isEmpty, Int.random(in: 0..<10, using: &rng) == 0 { row.repeatOf = rows[Int.random(in: 0..<rows.count, using: &rng)].id }
            if !rows.isEmpty, Int.random(in: 0..<12, using: &rng) == 0 { row.reopenedFrom = rows[Int.random(in: 0..<rows.count, using: &rng)].id }
            rows.append(row)
        }
        return rows
    }

    static func insert(_ rows: [Row], _ db: PostgresClient) async throws {
        for (n, row) in rows.enumerated() {
            try await db.query("""
                INSERT INTO complaints (id, number, channel, external_ref, received_at, promised_reply_by, branch, customer_name, customer_phone,
                    customer_key, subject, content, category, handling_unit, unit_path, assignee, status, liability, responsible_link, cause_code,
                    closed_at, decision_days, regulator_case_number, regulator_deadline, repeat_of, reopened_from, first_contact_at)
                VALUES (\(row.id), \("RPT-\(n)"), \(row.channel), \("REF-\(n)"), \(row.received), \(row.promised), \(row.branch), '测试', '13800000000',
                    \("key-\(n % 37)"), '报表', '报表', \(row.category), \(row.unit), \(row.path), \(row.assignee), \(row.closed == nil ? "investigating" : "closed"),
                    \(row.liability), \(row.link), \(row.cause), \(row.closed), \(row.decisionDays), \(row.regulatorDeadline == nil ? nil : "REG-\(n)"),
                    \(row.regulatorDeadline), \(row.repeatOf), \(row.reopenedFrom), \(row.firstContact))
                """, logger: TestDatabase.logger)
            if let at = row.acknowledged {
                try await db.query("""
                    INSERT INTO notifications (id, complaint_id, event_id, recipient, channel, template, status, delivered_at)
                    VALUES (\(UUID()), \(row.id), \(UUID()), 'customer', 'sms', 'complaint.registered.acknowledgement', 'delivered', \(at))
                    """, logger: TestDatabase.logger)
            }
            for at in row.escalatedAt {
                try await db.query("""
                    INSERT INTO case_events (complaint_id, event_id, at, actor, action, from_status, to_status)
                    VALUES (\(row.id), \(UUID()), \(at), 'test', 'escalate', 'investigating', 'escalated')
                    """, logger: TestDatabase.logger)
            }
            if let breach = row.breach {
                try await db.query("""
                    INSERT INTO sla_clocks (complaint_id, kind, started_at, warn_at, due_at, breached_at)
                    VALUES (\(row.id), \(breach.kind), \(row.received), \(breach.at), \(breach.at), \(breach.at))
                    """, logger: TestDatabase.logger)
            }
            if let survey = row.survey {
                try await db.query("""
                    INSERT INTO surveys (id, complaint_id, visit, due_at, status, invited_at, answered_at, score, resolved, handler)
                    VALUES (\(UUID()), \(row.id), 'day0', \(row.closed!), 'answered', \(row.closed!), \(survey.answered), \(survey.score), \(survey.resolved), \(row.assignee))
                    """, logger: TestDatabase.logger)
            }
        }
    }

    /// The figures straight from the rows, for a subtree and local days.
    struct Expected {
        var received = 0, regulator = 0, closed = 0, liable = 0, inTime = 0, extended30 = 0, extended60 = 0, escalations = 0
        var second = 0, repeats = 0, firstContact = 0, acknowledged = 0, regulatorClosed = 0, regulatorMet = 0
        var invited = 0, answered = 0, satisfied = 0, dissatisfied = 0
        var byChannel: [String: Int] = [:], links: [String: Int] = [:], breaches: [String: Int] = [:]
        var handlingSeconds: Int64 = 0, handlingDays: [Int] = []
        var handlerClosed: [String: Int] = [:]

        init(_ rows: [Row], path: String, from: String, to: String) {
            func inPeriod(_ date: Date?) -> Bool { date.map { (from...to).contains(ReportTests.day($0)) } ?? false }
            for row in rows where row.path == path || row.path.hasPrefix(path + "/") {
                if inPeriod(row.received) {
                    received += 1
                    byChannel[row.channel, default: 0] += 1
                    if row.regulatorDeadline != nil { regulator += 1 }
                    if row.reopenedFrom != nil { second += 1 }
                    if row.repeatOf != nil { repeats += 1 }
                    if let at = row.firstContact, at <= row.received.addingTimeInterval(86_400) { firstContact += 1 }
                    if let at = row.acknowledged, at <= row.received.addingTimeInterval(86_400) { acknowledged += 1 }
                }
                if let closedAt = row.closed, inPeriod(closedAt) {
                    closed += 1
                    if row.liability == "liable" { liable += 1 }
                    if closedAt <= row.promised { inTime += 1 }
                    if row.decisionDays == 30 { extended30 += 1 }
                    if row.decisionDays == 60 { extended60 += 1 }
                    if let deadline = row.regulatorDeadline { regulatorClosed += 1; if closedAt <= deadline { regulatorMet += 1 } }
                    links[row.link ?? "", default: 0] += 1
                    let seconds = Int64(closedAt.timeIntervalSince(row.received).rounded(.down))
                    handlingSeconds += seconds
                    handlingDays.append(min(60, Int(seconds / 86_400)))
                    handlerClosed[row.assignee ?? "", default: 0] += 1
                    if inPeriod(row.closed) { invited += row.survey == nil ? 0 : 1 }
                }
                escalations += row.escalatedAt.filter { inPeriod($0) }.count
                if let breach = row.breach, inPeriod(breach.at) { breaches[breach.kind, default: 0] += 1 }
                if let survey = row.survey, inPeriod(survey.answered) {
                    answered += 1
                    if survey.score >= 4 { satisfied += 1 }
                    if survey.score <= 2 || !survey.resolved { dissatisfied += 1 }
                }
            }
            handlingDays.sort()
        }

        func percentile(_ p: Double) -> Int? {
            guard !handlingDays.isEmpty else { return nil }
            return handlingDays[Int((Double(handlingDays.count) * p).rounded(.up)) - 1]
        }
    }

    @Test func aReportsFiguresAreTheRawRowsFiguresForEveryUnitAndPeriod() async throws {
        try await F.withApp { db, _, client in
            var paths: [String: String] = [:]
            for try await (code, path) in try await db.query("SELECT code, path FROM org_units", logger: TestDatabase.logger).decode((String, String).self) {
                paths[code] = path
            }
            let rows = Self.generate(paths: paths)
            try await Self.insert(rows, db)
            try await db.withConnection { connection in
                try await ReportRollup.rebuild(from: Self.local("2025-01-01T00:00:00+08:00"), to: Self.local("2027-12-31T00:00:00+08:00"),
                                               on: connection, logger: TestDatabase.logger)
            }
            let supervisors = ["HQ": "HQ-SUP01", "GD": "GD-SUP01", "GD-SZ": "GD-SZ-SUP01"]
            for (unit, supervisor) in supervisors.sorted(by: { $0.key < $1.key }) {
                for (period, from, to) in [("2026-Q4", "2026-10-01", "2026-12-31"), ("2026-12", "2026-12-01", "2026-12-31"),
                                           ("2027-Q1", "2027-01-01", "2027-03-31"), ("2026", "2026-01-01", "2026-12-31"),
                                           ("2026-11-15..2027-01-15", "2026-11-15", "2027-01-15")] {
                    let expected = Expected(rows, path: paths[unit]!, from: from, to: to)
                    let (status, json) = try await F.get(client, "/v1/reports?unit=\(unit)&period=\(period)", as: await F.token(supervisor, .supervisor, unit))
                    #expect(status == .ok, "\(unit) \(period): \(json)")
                    let report = try JSONDecoder().decode(PeriodicReport.self, from: JSONSerialization.data(withJSONObject: json))
                    let label = "\(unit) \(period)"
                    #expect(report.from == from && report.to == to, "\(label)")
                    #expect(report.volume.received == Int64(expected.received), "\(label) received")
                    #expect(report.volume.byChannel == expected.byChannel.mapValues(Int64.init), "\(label) by channel")
                    #expect(report.volume.regulatorTransfers == Int64(expected.regulator), "\(label) regulator")
                    #expect(report.outcomes.closed == Int64(expected.closed), "\(label) closed")
                    #expect(report.outcomes.liable == Int64(expected.liable), "\(label) liable")
                    #expect(report.outcomes.extendedTo30 == Int64(expected.extended30) && report.outcomes.extendedTo60 == Int64(expected.extended60), "\(label) extended")
                    #expect(report.outcomes.escalations == Int64(expected.escalations), "\(label) escalations")
                    #expect(report.outcomes.secondComplaints == Int64(expected.second) && report.outcomes.repeatComplaints == Int64(expected.repeats), "\(label) second/repeat")
                    #expect(Dictionary(uniqueKeysWithValues: report.outcomes.responsibleLinks.map { ($0.code, Int($0.count)) }) == expected.links, "\(label) links")
                    #expect(report.outcomes.responsibleLinks.map(\.count) == report.outcomes.responsibleLinks.map(\.count).sorted(by: >), "\(label) ranked")
                    #expect(report.timeliness.decidedInTime == Int64(expected.inTime), "\(label) in time")
                    #expect(report.timeliness.firstContactWithin24h == Int64(expected.firstContact), "\(label) first contact")
                    #expect(report.timeliness.acknowledgedWithin24h == Int64(expected.acknowledged), "\(label) acknowledged")
                    #expect(report.timeliness.regulatorClosed == Int64(expected.regulatorClosed) && report.timeliness.regulatorDeadlinesMet == Int64(expected.regulatorMet),
                            "\(label) regulator deadlines")
                    #expect(report.timeliness.breachesByClock == expected.breaches.mapValues(Int64.init), "\(label) breaches")
                    #expect(report.timeliness.handlingDays.median == expected.percentile(0.5) && report.timeliness.handlingDays.p90 == expected.percentile(0.9),
                            "\(label) handling days")
                    if expected.closed > 0 {
                        let mean = Double(expected.handlingSeconds) / Double(expected.closed) / 86_400
                        #expect(abs((report.timeliness.handlingDays.mean ?? -1) - mean) < 1e-9, "\(label) mean")
                    }
                    #expect(report.customers.invited == Int64(expected.invited), "\(label) invited")
                    #expect(report.customers.answered == Int64(expected.answered) && report.customers.satisfied == Int64(expected.satisfied), "\(label) visits")
                    #expect(report.customers.targets.csat == 0.9 && report.customers.targets.returnVisitCompletion == 1.0)
                    let handlers = Dictionary(uniqueKeysWithValues: (report.handlers ?? []).map { ($0.id, Int($0.closed)) })
                    #expect(handlers == expected.handlerClosed.filter { !$0.key.isEmpty }, "\(label) handlers")
                }
            }
            // The boundary: 23:30 on 31 December (Shanghai) is Q4; 00:30 on 1 January is Q1.
            let boundary = rows[0].received
            #expect(Self.day(boundary) == "2026-12-31" && Self.day(rows[1].received) == "2027-01-01")

            // A city cannot read its sibling's report; an auditor reads figures but no handlers.
            let (sibling, _) = try await F.get(client, "/v1/reports?unit=GD-SZ&period=2026-Q4", as: await F.token("GD-GZ-SUP01", .supervisor, "GD-GZ"))
            #expect(sibling == .notFound)
            let (upward, _) = try await F.get(client, "/v1/reports?unit=GD&period=2026-Q4", as: await F.token("GD-SZ-SUP01", .supervisor, "GD-SZ"))
            #expect(upward == .notFound, "a city does not read its province's report")
            let (auditorStatus, auditorJSON) = try await F.get(client, "/v1/reports?unit=HQ&period=2026-Q4", as: await F.token("HQ-AUD01", .auditor, "HQ"))
            #expect(auditorStatus == .ok && (auditorJSON["handlers"] == nil || auditorJSON["handlers"] is NSNull), "\(auditorJSON)")
            let (agentStatus, _) = try await F.get(client, "/v1/reports?unit=GD-SZ&period=2026-Q4", as: await F.token("GD-SZ-AGE01", .agent, "GD-SZ"))
            #expect(agentStatus == .forbidden)
            let (bad, badJSON) = try await F.get(client, "/v1/reports?unit=HQ&period=2026-Q5", as: await F.token("HQ-SUP01", .supervisor, "HQ"))
            #expect(bad == .badRequest && (badJSON["errors"] as? [[String: Any]])?.first?["field"] as? String == "period")

            // The CSV opens in Excel: a byte-order mark, then the rows, Chinese and all, parsed back.
            let csv = try await client.execute(uri: "/v1/reports?unit=GD&period=2026-Q4&format=csv", method: .get,
                                               headers: [.authorization: await F.token("GD-SUP01", .supervisor, "GD")], body: nil)
            #expect(csv.status == .ok && csv.headers[.contentType] == "text/csv; charset=utf-8")
            let bytes = Array(csv.body.readableBytesView)
            #expect(bytes.starts(with: [0xEF, 0xBB, 0xBF]), "UTF-8 with a byte-order mark")
            let lines = String(decoding: bytes.dropFirst(3), as: UTF8.self).components(separatedBy: "\r\n").filter { !$0.isEmpty }
            #expect(lines.first == "section,measure,key,value")
            let cells = lines.map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
            #expect(cells.allSatisfy { $0.count == 4 }, "four columns on every row")
            let received = cells.first { $0[0] == "volume" && $0[1] == "received" }?[3]
            let gdQ4 = Expected(rows, path: paths["GD"]!, from: "2026-10-01", to: "2026-12-31")
            #expect(received == String(gdQ4.received))

            // The regulator's shape: one row per class, every complaint counted once, in Chinese.
            let regulator = try await client.execute(uri: "/v1/reports?unit=GD&period=2026-Q4&format=regulator-csv", method: .get,
                                                     headers: [.authorization: await F.token("GD-SUP01", .supervisor, "GD")], body: nil)
            #expect(regulator.status == .ok)
            let regulatorBytes = Array(regulator.body.readableBytesView)
            #expect(regulatorBytes.starts(with: [0xEF, 0xBB, 0xBF]))
            let classRows = String(decoding: regulatorBytes.dropFirst(3), as: UTF8.self).components(separatedBy: "\r\n").filter { !$0.isEmpty }
            #expect(classRows.first == "class,name,name_en,received,closed")
            let classes = try RegulatorClasses.load(TestDatabase.repo.appendingPathComponent(RegulatorClasses.defaultPath).path)
            #expect(classRows.count == classes.classes.count + 1)
            let fields = classRows.dropFirst().map { $0.split(separator: ",").map(String.init) }
            #expect(fields.reduce(0) { $0 + (Int($1[$1.count - 2]) ?? 0) } == gdQ4.received, "every received complaint in one class")
            #expect(fields.reduce(0) { $0 + (Int($1[$1.count - 1]) ?? 0) } == gdQ4.closed, "every closed complaint in one class")
            #expect(fields.contains { $0[0] == "claims_dispute" && $0[1] == "理赔纠纷" })
        }
    }

    /// When a month or quarter has ended, HQ's and each province's report is kept as an immutable
    /// snapshot, once; generating again adds a version and keeps both; the unit's supervisors are
    /// told in their inbox; a unit reads its subtree's snapshots only.
    @Test func endedPeriodsAreSnapshottedOnceImmutablyAndAnnounced() async throws {
        try await F.withApp { db, _, client in
            let december = Self.local("2026-12-02T09:00:00+08:00"), january = Self.local("2027-01-05T09:00:00+08:00")
            func take(_ now: Date) async throws -> [ReportSnapshots.Snapshot] {
                try await db.withTransaction(logger: TestDatabase.logger) { try await ReportSnapshots.takeDue(now: now, on: $0, logger: TestDatabase.logger) }
            }
            #expect(try await take(december).map { "\($0.unit) \($0.period)" }.sorted() == ["GD 2026-11", "HQ 2026-11", "ZJ 2026-11"])
            #expect(try await take(december).isEmpty, "taken once")
            #expect(try await take(january).map { "\($0.unit) \($0.period)" }.sorted()
                    == ["GD 2026-12", "GD 2026-Q4", "HQ 2026-12", "HQ 2026-Q4", "ZJ 2026-12", "ZJ 2026-Q4"])
            let again = try await db.withTransaction(logger: TestDatabase.logger) {
                try await ReportSnapshots.generate(unit: "GD", period: ReportPeriod.parse("2026-Q4")!, by: "GD-SUP01", on: $0, logger: TestDatabase.logger)
            }
            #expect(again.version == 2)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM report_snapshots WHERE unit = 'GD' AND period = '2026-Q4'") == 2, "both versions kept")
            await #expect(throws: (any Error).self, "immutable") {
                try await db.query("UPDATE report_snapshots SET body = '{}' WHERE id = \(again.id)", logger: TestDatabase.logger)
            }
            let gd = await F.token("GD-SUP01", .supervisor, "GD")
            var (status, json) = try await F.get(client, "/v1/inbox", as: gd)
            let references = (json["items"] as? [[String: Any]] ?? []).compactMap { $0["reference"] as? String }
            #expect(status == .ok && references.contains("report:GD:2026-Q4:2") && references.contains("report:GD:2026-11:1"), "\(json)")
            #expect(!references.contains { $0.hasPrefix("report:ZJ:") }, "another province's announcement is not GD's")
            (status, json) = try await F.get(client, "/v1/report-snapshots?unit=GD&period=2026-Q4", as: gd)
            #expect((json["items"] as? [[String: Any]])?.map { $0["version"] as? Int } == [2, 1], "\(json)")
            (status, json) = try await F.get(client, "/v1/report-snapshots/\(again.id)", as: gd)
            #expect(status == .ok && json["unit"] as? String == "GD" && json["period"] as? String == "2026-Q4")
            // A city reads neither its province's snapshots nor a sibling's.
            let city = await F.token("GD-SZ-SUP01", .supervisor, "GD-SZ")
            (status, json) = try await F.get(client, "/v1/report-snapshots", as: city)
            #expect(status == .ok && (json["items"] as? [Any])?.isEmpty == true, "\(json)")
            (status, _) = try await F.get(client, "/v1/report-snapshots/\(again.id)", as: city)
            #expect(status == .notFound)
        }
    }

    @Test func periodsParseAndStepBack() {
        #expect(ReportPeriod.parse("2026-Q4")?.firstDay == "2026-10-01" && ReportPeriod.parse("2026-Q4")?.lastDay == "2026-12-31")
        #expect(ReportPeriod.parse("2026-Q4")?.previous.firstDay == "2026-07-01" && ReportPeriod.parse("2026-Q4")?.previous.lastDay == "2026-09-30")
        #expect(ReportPeriod.parse("2026-Q4")?.yearBefore.firstDay == "2025-10-01")
        #expect(ReportPeriod.parse("2028-02")?.lastDay == "2028-02-29", "a leap year's February")
        #expect(ReportPeriod.parse("2026-03")?.previous.firstDay == "2026-02-01" && ReportPeriod.parse("2026-03")?.previous.lastDay == "2026-02-28")
        #expect(ReportPeriod.parse("2026-10-01..2026-10-10")?.previous.firstDay == "2026-09-21")
        for bad in ["2026-Q5", "2026-13", "26", "2026-12-31..2026-01-01", "0000", "2026-02-30..2026-03-01"] {
            #expect(ReportPeriod.parse(bad) == nil, "\(bad)")
        }
    }
}
