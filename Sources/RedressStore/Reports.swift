import Foundation
import Logging
import PostgresNIO

/// 定期分析报告: the figures of a unit's subtree over a period, from the `report_daily` rollup.
///
/// The rollup holds, per local day (Asia/Shanghai, the customer's time) and per handling unit,
/// branch, channel and category, one row per measure: what was received that day, what was
/// closed, escalated, transferred, breached, invited and answered, and the handling-time histogram.
/// A report sums the days of its period and the units of the subtree, so it costs what the period's
/// rollup rows cost, not a scan of every complaint. `ReportRollup.rebuild` recomputes a range of
/// days from the system of record (nightly and on demand); it is idempotent.
public enum ReportRollup {
    /// The zone the rules' days are counted in: a complaint at 23:30 on 31 December belongs to that year.
    public static let zone = "Asia/Shanghai"

    /// Recomputes `report_daily` for the local days `from...to`, in one transaction.
    public static func rebuild(from: Date, to: Date, on connection: PostgresConnection, logger: Logger) async throws {
        let first = day(from), last = day(to)
        try await connection.query("SELECT pg_advisory_xact_lock(\(Int64(0x7265_706F_7274)))", logger: logger)
        try await connection.query("DELETE FROM report_daily WHERE day BETWEEN \(first)::date AND \(last)::date", logger: logger)
        try await connection.query(PostgresQuery(unsafeSQL: rebuildSQL, binds: {
            var binds = PostgresBindings()
            binds.append(first)
            binds.append(last)
            return binds
        }()), logger: logger)
    }

    /// `yyyy-MM-dd` of an instant in the rules' zone.
    public static func day(_ instant: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: zone)!
        let parts = calendar.dateComponents([.year, .month, .day], from: instant)
        return String(format: "%04d-%02d-%02d", parts.year!, parts.month!, parts.day!)
    }

    /// Every measure by its day. `$1`/`$2` are the first and last local day. Closure-day measures
    /// belong to the day a case closed; receipt-day measures to the day it was received.
    static let rebuildSQL = """
        WITH c AS (
            SELECT c.*, COALESCE(c.category, '') AS cat,
                   (c.received_at AT TIME ZONE 'Asia/Shanghai')::date AS received_day,
                   (c.closed_at AT TIME ZONE 'Asia/Shanghai')::date AS closed_day
            FROM complaints c
        ),
        facts(day, unit_path, branch, channel, category, measure, value) AS (
            SELECT received_day, unit_path, branch, channel, cat, 'received', count(*) FROM c
                WHERE received_day BETWEEN $1::date AND $2::date GROUP BY 1, 2, 3, 4, 5
            UNION ALL
            SELECT received_day, unit_path, branch, channel, cat, m.measure, count(*) FROM c
                CROSS JOIN LATERAL (VALUES
                    ('regulator', c.regulator_case_number IS NOT NULL),
                    ('repeat', c.repeat_of IS NOT NULL),
                    ('second', c.reopened_from IS NOT NULL),
                    ('first_contact_24h', c.first_contact_at IS NOT NULL AND c.first_contact_at <= c.received_at + interval '24 hours'),
                    ('acknowledged_24h', EXISTS (SELECT 1 FROM notifications n WHERE n.complaint_id = c.id
                        AND n.template = 'complaint.registered.acknowledgement' AND n.delivered_at <= c.received_at + interval '24 hours'))
                ) AS m(measure, holds)
                WHERE received_day BETWEEN $1::date AND $2::date AND m.holds GROUP BY 1, 2, 3, 4, 5, 6
            UNION ALL
            SELECT closed_day, unit_path, branch, channel, cat, m.measure, sum(m.value)::bigint FROM c
                CROSS JOIN LATERAL (VALUES
                    ('closed', 1),
                    ('liable', CASE WHEN c.liability = 'liable' THEN 1 ELSE 0 END),
                    ('decided_in_time', CASE WHEN c.closed_at <= c.promised_reply_by THEN 1 ELSE 0 END),
                    ('extended_30', CASE WHEN c.decision_days = 30 THEN 1 ELSE 0 END),
                    ('extended_60', CASE WHEN c.decision_days = 60 THEN 1 ELSE 0 END),
                    ('regulator_closed', CASE WHEN c.regulator_deadline IS NOT NULL THEN 1 ELSE 0 END),
                    ('regulator_met', CASE WHEN c.regulator_deadline IS NOT NULL AND c.closed_at <= c.regulator_deadline THEN 1 ELSE 0 END),
                    ('handling_seconds', floor(extract(epoch FROM c.closed_at - c.received_at))::bigint),
                    ('handling_day:' || least(60, floor(extract(epoch FROM c.closed_at - c.received_at) / 86400))::int, 1),
                    ('link:' || COALESCE(c.responsible_link, ''), 1),
                    ('cause:' || COALESCE(c.cause_code, ''), 1),
                    ('handler_closed:' || COALESCE(c.assignee, ''), 1),
                    ('handler_on_time:' || COALESCE(c.assignee, ''), CASE WHEN c.closed_at <= c.promised_reply_by THEN 1 ELSE 0 END)
                ) AS m(measure, value)
                WHERE c.closed_at IS NOT NULL AND closed_day BETWEEN $1::date AND $2::date GROUP BY 1, 2, 3, 4, 5, 6
            UNION ALL
            SELECT (e.at AT TIME ZONE 'Asia/Shanghai')::date, c.unit_path, c.branch, c.channel, c.cat,
                   CASE e.action WHEN 'escalate' THEN 'escalated' ELSE 'transferred' END, count(*)
                FROM case_events e JOIN c ON c.id = e.complaint_id
                WHERE e.action IN ('escalate', 'transfer') AND (e.at AT TIME ZONE 'Asia/Shanghai')::date BETWEEN $1::date AND $2::date
                GROUP BY 1, 2, 3, 4, 5, 6
            UNION ALL
            SELECT (k.breached_at AT TIME ZONE 'Asia/Shanghai')::date, c.unit_path, c.branch, c.channel, c.cat, 'breach:' || k.kind, count(*)
                FROM sla_clocks k JOIN c ON c.id = k.complaint_id
                WHERE k.breached_at IS NOT NULL AND (k.breached_at AT TIME ZONE 'Asia/Shanghai')::date BETWEEN $1::date AND $2::date
                GROUP BY 1, 2, 3, 4, 5, 6
            UNION ALL
            SELECT (s.invited_at AT TIME ZONE 'Asia/Shanghai')::date, c.unit_path, c.branch, c.channel, c.cat, 'survey_invited', count(*)
                FROM surveys s JOIN c ON c.id = s.complaint_id
                WHERE s.invited_at IS NOT NULL AND (s.invited_at AT TIME ZONE 'Asia/Shanghai')::date BETWEEN $1::date AND $2::date
                GROUP BY 1, 2, 3, 4, 5
            UNION ALL
            SELECT (s.answered_at AT TIME ZONE 'Asia/Shanghai')::date, c.unit_path, c.branch, c.channel, c.cat, m.measure, count(*)
                FROM surveys s JOIN c ON c.id = s.complaint_id
                CROSS JOIN LATERAL (VALUES
                    ('survey_answered', true),
                    ('survey_satisfied', s.score >= 4),
                    ('survey_dissatisfied', s.score <= 2 OR s.resolved = false),
                    ('handler_answered:' || COALESCE(s.handler, ''), true),
                    ('handler_satisfied:' || COALESCE(s.handler, ''), s.score >= 4)
                ) AS m(measure, holds)
                WHERE s.answered_at IS NOT NULL AND m.holds AND (s.answered_at AT TIME ZONE 'Asia/Shanghai')::date BETWEEN $1::date AND $2::date
                GROUP BY 1, 2, 3, 4, 5, 6
        )
        INSERT INTO report_daily (day, unit_path, branch, channel, category, measure, value)
        SELECT day, unit_path, branch, channel, category, measure, sum(value)::bigint FROM facts
        GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(value) <> 0
        """
}

/// A period a report covers: whole local days, `from` and `to` included.
public struct ReportPeriod: Sendable, Equatable, CustomStringConvertible {
    public var label: String
    public var first: DateComponents
    public var last: DateComponents

    public var description: String { label }
    public var firstDay: String { Self.text(first) }
    public var lastDay: String { Self.text(last) }

    static func text(_ day: DateComponents) -> String { String(format: "%04d-%02d-%02d", day.year!, day.month!, day.day!) }

    static var calendar: Calendar {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: ReportRollup.zone)!
        return calendar
    }

    /// `2026` (a year), `2026-Q4` (a quarter), `2026-11` (a month), or `2026-10-01..2026-12-31`.
    /// Whether `text` has a period's shape (what the API's document states as the pattern); one of
    /// that shape that `parse` refuses names no real period (a 30 February, a year before 1970).
    public static func isShaped(_ text: String) -> Bool {
        text.wholeMatch(of: /[0-9]{4}(-Q[1-4]|-(0[1-9]|1[0-2])|-[0-9]{2}-[0-9]{2}\.\.[0-9]{4}-[0-9]{2}-[0-9]{2})?/) != nil
    }

    public static func parse(_ text: String) -> ReportPeriod? {
        let calendar = calendar
        func day(_ y: Int, _ m: Int, _ d: Int) -> DateComponents? {
            guard (1970...9999).contains(y), (1...12).contains(m) else { return nil }
            let components = DateComponents(year: y, month: m, day: d)
            guard let date = calendar.date(from: components), calendar.dateComponents([.year, .month, .day], from: date) == components else { return nil }
            return components
        }
        func lastDay(_ y: Int, _ m: Int) -> DateComponents? {
            guard let start = calendar.date(from: DateComponents(year: y, month: m, day: 1)),
                  let range = calendar.range(of: .day, in: .month, for: start) else { return nil }
            return day(y, m, range.count)
        }
        if let match = text.wholeMatch(of: /([0-9]{4})/), let y = Int(match.1), let a = day(y, 1, 1), let b = day(y, 12, 31) {
            return ReportPeriod(label: text, first: a, last: b)
        }
        if let match = text.wholeMatch(of: /([0-9]{4})-Q([1-4])/), let y = Int(match.1), let q = Int(match.2),
           let a = day(y, q * 3 - 2, 1), let b = lastDay(y, q * 3) {
            return ReportPeriod(label: text, first: a, last: b)
        }
        if let match = text.wholeMatch(of: /([0-9]{4})-([0-9]{2})/), let y = Int(match.1), let m = Int(match.2), let a = day(y, m, 1), let b = lastDay(y, m) {
            return ReportPeriod(label: text, first: a, last: b)
        }
        if let match = text.wholeMatch(of: /([0-9]{4})-([0-9]{2})-([0-9]{2})\.\.([0-9]{4})-([0-9]{2})-([0-9]{2})/),
           let a = day(Int(match.1)!, Int(match.2)!, Int(match.3)!), let b = day(Int(match.4)!, Int(match.5)!, Int(match.6)!),
           calendar.date(from: a)! <= calendar.date(from: b)!,
           calendar.dateComponents([.day], from: calendar.date(from: a)!, to: calendar.date(from: b)!).day! <= 3660 {
            return ReportPeriod(label: text, first: a, last: b)
        }
        return nil
    }

    /// The period of the same length just before.
    public var previous: ReportPeriod {
        let calendar = Self.calendar
        let start = calendar.date(from: first)!, end = calendar.date(from: last)!
        let days = calendar.dateComponents([.day], from: start, to: end).day! + 1
        let newLast = calendar.date(byAdding: .day, value: -1, to: start)!
        // Calendar periods step back by their own unit, so a quarter's previous is the quarter before.
        let newFirst: Date
        if label.contains("-Q") {
            newFirst = calendar.date(byAdding: .month, value: -3, to: start)!
        } else if label.count == 7 {
            newFirst = calendar.date(byAdding: .month, value: -1, to: start)!
        } else if label.count == 4 {
            newFirst = calendar.date(byAdding: .year, value: -1, to: start)!
        } else {
            newFirst = calendar.date(byAdding: .day, value: -days, to: start)!
        }
        return ReportPeriod(label: "previous", first: calendar.dateComponents([.year, .month, .day], from: newFirst),
                            last: calendar.dateComponents([.year, .month, .day], from: newLast))
    }

    /// The same days a year before.
    public var yearBefore: ReportPeriod {
        let calendar = Self.calendar
        let start = calendar.date(byAdding: .year, value: -1, to: calendar.date(from: first)!)!
        let end = calendar.date(byAdding: .year, value: -1, to: calendar.date(from: last)!)!
        return ReportPeriod(label: "year before", first: calendar.dateComponents([.year, .month, .day], from: start),
                            last: calendar.dateComponents([.year, .month, .day], from: end))
    }
}

/// The rollup's sums for a subtree and a period, by measure and by the dimensions a report breaks down.
public struct ReportTotals: Sendable {
    /// measure → total.
    public var measures: [String: Int64] = [:]
    /// dimension ("channel", "category", "branch", "unit") → value → received.
    public var received: [String: [String: Int64]] = [:]

    public subscript(_ measure: String) -> Int64 { measures[measure] ?? 0 }

    public static func read(unitPath: String, period: ReportPeriod, on connection: PostgresConnection, logger: Logger) async throws -> ReportTotals {
        var totals = ReportTotals()
        let rows = try await connection.query("""
            SELECT measure, sum(value)::bigint FROM report_daily
            WHERE day BETWEEN \(period.firstDay)::date AND \(period.lastDay)::date
              AND (unit_path = \(unitPath) OR unit_path LIKE \(unitPath) || '/%')
            GROUP BY measure
            """, logger: logger)
        for try await (measure, value) in rows.decode((String, Int64).self) { totals.measures[measure] = value }
        let breakdown = try await connection.query("""
            SELECT channel, category, branch, unit_path, sum(value)::bigint FROM report_daily
            WHERE day BETWEEN \(period.firstDay)::date AND \(period.lastDay)::date AND measure = 'received'
              AND (unit_path = \(unitPath) OR unit_path LIKE \(unitPath) || '/%')
            GROUP BY 1, 2, 3, 4
            """, logger: logger)
        for try await (channel, category, branch, path, value) in breakdown.decode((String, String, String, String, Int64).self) {
            totals.received["channel", default: [:]][channel, default: 0] += value
            totals.received["category", default: [:]][category.isEmpty ? "unclassified" : category, default: 0] += value
            totals.received["branch", default: [:]][branch, default: 0] += value
            let unit = String(path.split(separator: "/").last ?? "")
            totals.received["unit", default: [:]][unit, default: 0] += value
        }
        return totals
    }
}

/// The report as it is read and sent on: the API's JSON, and the rows of its CSV.
public struct PeriodicReport: Codable, Sendable, Equatable {
    /// The path of a unit (nil when there is no such unit), under whatever row-level security the
    /// connection is under.
    public static func unitPath(of unit: String, on connection: PostgresConnection, logger: Logger) async throws -> String? {
        for try await path in try await connection.query("SELECT path FROM org_units WHERE code = \(unit)", logger: logger).decode(String.self) {
            return path
        }
        return nil
    }

    /// `unit`'s report for `period`: the rollup summed for the period, the one before and the same
    /// days a year before (the API, `redressctl report` and the snapshots all read it so).
    public static func read(unit: String, unitPath: String, period: ReportPeriod, withHandlers: Bool,
                            on connection: PostgresConnection, logger: Logger) async throws -> PeriodicReport {
        var report = PeriodicReport(unit: unit, period: period,
                                    current: try await ReportTotals.read(unitPath: unitPath, period: period, on: connection, logger: logger),
                                    previous: try await ReportTotals.read(unitPath: unitPath, period: period.previous, on: connection, logger: logger),
                                    yearBefore: try await ReportTotals.read(unitPath: unitPath, period: period.yearBefore, on: connection, logger: logger),
                                    withHandlers: withHandlers)
        report.oversight = try await Oversight.read(unitPath: unitPath, period: period, on: connection, logger: logger)
        return report
    }

    /// 监督与考核: the oversight duties' figures for the period, read from their own tables (they are
    /// few): spot-check verdicts per handling unit (the assessment, 考核), department inquiries,
    /// committee referrals, corrective actions and the register. Under the reader's row-level
    /// security: a spot-check is its drawing unit's, so a city's report shows none of its province's.
    public struct Oversight: Codable, Sendable, Equatable {
        public struct Verdicts: Codable, Sendable, Equatable {
            public var drawn: Int64
            public var upheld: Int64
            public var revised: Int64
            public var reinvestigate: Int64
        }
        public var spotChecks: [String: Verdicts]
        public var inquiriesOpened: Int64
        public var inquiriesAnswered: Int64
        public var inquiriesAnsweredLate: Int64
        public var committeeReferrals: Int64
        public var committeeRulings: Int64
        public var correctiveOpened: Int64
        public var correctiveVerified: Int64
        /// Open past their deadline when the report was read.
        public var correctiveOverdue: Int64
        public var registerApproved: Int64

        static func read(unitPath path: String, period: ReportPeriod, on connection: PostgresConnection, logger: Logger) async throws -> Oversight {
            let zone = ReportRollup.zone, first = period.firstDay, last = period.lastDay
            var verdicts: [String: Verdicts] = [:]
            for try await (unit, drawn, upheld, revised, again) in try await connection.query("""
                SELECT s.handling_unit,
                    count(*) FILTER (WHERE (d.drawn_at AT TIME ZONE \(zone))::date BETWEEN \(first)::date AND \(last)::date),
                    count(*) FILTER (WHERE s.status = 'upheld' AND (s.decided_at AT TIME ZONE \(zone))::date BETWEEN \(first)::date AND \(last)::date),
                    count(*) FILTER (WHERE s.status = 'revised' AND (s.decided_at AT TIME ZONE \(zone))::date BETWEEN \(first)::date AND \(last)::date),
                    count(*) FILTER (WHERE s.status = 'reinvestigate' AND (s.decided_at AT TIME ZONE \(zone))::date BETWEEN \(first)::date AND \(last)::date)
                FROM spot_checks s JOIN spot_check_draws d USING (kind, unit, period) JOIN org_units u ON u.code = s.handling_unit
                WHERE u.path = \(path) OR u.path LIKE \(path) || '/%'
                GROUP BY 1
                """, logger: logger).decode((String, Int64, Int64, Int64, Int64).self) where drawn + upheld + revised + again > 0 {
                verdicts[unit] = Verdicts(drawn: drawn, upheld: upheld, revised: revised, reinvestigate: again)
            }
            func one(_ query: PostgresQuery) async throws -> Int64 {
                for try await n in try await connection.query(query, logger: logger).decode(Int64.self) { return n }
                return 0
            }
            let inquiries = try await connection.query("""
                SELECT count(*) FILTER (WHERE (i.asked_at AT TIME ZONE \(zone))::date BETWEEN \(first)::date AND \(last)::date),
                       count(*) FILTER (WHERE (i.answered_at AT TIME ZONE \(zone))::date BETWEEN \(first)::date AND \(last)::date),
                       count(*) FILTER (WHERE (i.answered_at AT TIME ZONE \(zone))::date BETWEEN \(first)::date AND \(last)::date AND i.answered_at > i.due_at)
                FROM inquiries i JOIN complaints c ON c.id = i.complaint_id WHERE c.unit_path = \(path) OR c.unit_path LIKE \(path) || '/%'
                """, logger: logger)
            var asked: Int64 = 0, answered: Int64 = 0, late: Int64 = 0
            for try await row in inquiries.decode((Int64, Int64, Int64).self) { (asked, answered, late) = row }
            let committee = try await connection.query("""
                SELECT count(*) FILTER (WHERE (r.referred_at AT TIME ZONE \(zone))::date BETWEEN \(first)::date AND \(last)::date),
                       count(*) FILTER (WHERE (r.ruled_at AT TIME ZONE \(zone))::date BETWEEN \(first)::date AND \(last)::date)
                FROM committee_referrals r JOIN complaints c ON c.id = r.complaint_id WHERE c.unit_path = \(path) OR c.unit_path LIKE \(path) || '/%'
                """, logger: logger)
            var referred: Int64 = 0, ruled: Int64 = 0
            for try await row in committee.decode((Int64, Int64).self) { (referred, ruled) = row }
            let corrective = try await connection.query("""
                SELECT count(*) FILTER (WHERE (created_at AT TIME ZONE \(zone))::date BETWEEN \(first)::date AND \(last)::date),
                       count(*) FILTER (WHERE (verified_at AT TIME ZONE \(zone))::date BETWEEN \(first)::date AND \(last)::date),
                       count(*) FILTER (WHERE status = 'open' AND due_at < now())
                FROM corrective_actions WHERE unit_path = \(path) OR unit_path LIKE \(path) || '/%'
                """, logger: logger)
            var opened: Int64 = 0, verified: Int64 = 0, overdue: Int64 = 0
            for try await row in corrective.decode((Int64, Int64, Int64).self) { (opened, verified, overdue) = row }
            let approved = try await one("""
                SELECT count(*) FROM vexatious_register WHERE status = 'approved' AND (unit_path = \(path) OR unit_path LIKE \(path) || '/%')
                """)
            return Oversight(spotChecks: verdicts, inquiriesOpened: asked, inquiriesAnswered: answered, inquiriesAnsweredLate: late,
                             committeeReferrals: referred, committeeRulings: ruled, correctiveOpened: opened, correctiveVerified: verified,
                             correctiveOverdue: overdue, registerApproved: approved)
        }
    }

    public struct Change: Codable, Sendable, Equatable {
        public var count: Int64
        /// (this − that) / that; nil when that was 0.
        public var change: Double?
    }
    public struct Ranked: Codable, Sendable, Equatable {
        public var code: String
        public var count: Int64
    }
    public struct Volume: Codable, Sendable, Equatable {
        public var received: Int64
        public var previousPeriod: Change
        public var yearBefore: Change
        public var regulatorTransfers: Int64
        public var byChannel: [String: Int64]
        public var byCategory: [String: Int64]
        public var byBranch: [String: Int64]
        public var byHandlingUnit: [String: Int64]
    }
    public struct Outcomes: Codable, Sendable, Equatable {
        public var closed: Int64
        public var liable: Int64
        public var liableRate: Double?
        public var responsibleLinks: [Ranked]
        public var causes: [Ranked]
        public var extendedTo30: Int64
        public var extendedTo60: Int64
        public var escalations: Int64
        public var transfers: Int64
        public var secondComplaints: Int64
        public var repeatComplaints: Int64
    }
    public struct HandlingDays: Codable, Sendable, Equatable {
        public var mean: Double?
        public var median: Int?
        public var p90: Int?
    }
    public struct Timeliness: Codable, Sendable, Equatable {
        public var acknowledgedWithin24h: Int64
        public var firstContactWithin24h: Int64
        public var decidedInTime: Int64
        public var decidedInTimeShare: Double?
        public var regulatorClosed: Int64
        public var regulatorDeadlinesMet: Int64
        public var handlingDays: HandlingDays
        public var breachesByClock: [String: Int64]
    }
    public struct Customers: Codable, Sendable, Equatable {
        public var invited: Int64
        public var answered: Int64
        public var responseRate: Double?
        public var returnVisitCompletion: Double?
        public var satisfied: Int64
        public var csat: Double?
        public var dissatisfiedShare: Double?
        public var targets: Targets
    }
    public struct Targets: Codable, Sendable, Equatable {
        /// The seeds' KPIs: every closed complaint visited, satisfaction at least 90 %.
        public var returnVisitCompletion = 1.0
        public var csat = 0.9
        public init() {}
    }
    public struct Handler: Codable, Sendable, Equatable {
        public var id: String
        public var closed: Int64
        public var onTime: Int64
        public var onTimeShare: Double?
        public var answered: Int64
        public var satisfied: Int64
        public var csat: Double?
    }

    public var unit: String
    public var period: String
    public var from: String
    public var to: String
    public var volume: Volume
    public var outcomes: Outcomes
    public var timeliness: Timeliness
    public var customers: Customers
    /// Per handler: only for supervisors and admins (of the handlers' units or above, which a
    /// report of one's own subtree always is); nil for other readers.
    public var handlers: [Handler]?
    /// The oversight duties' figures (nil in snapshots taken before they were reported).
    public var oversight: Oversight?

    static func ratio(_ part: Int64, _ whole: Int64) -> Double? { whole == 0 ? nil : Double(part) / Double(whole) }

    static func ranked(_ totals: ReportTotals, prefix: String) -> [Ranked] {
        totals.measures.filter { $0.key.hasPrefix(prefix) && $0.value > 0 }
            .map { Ranked(code: String($0.key.dropFirst(prefix.count)), count: $0.value) }
            .sorted { $0.count != $1.count ? $0.count > $1.count : $0.code < $1.code }
    }

    public init(unit: String, period: ReportPeriod, current t: ReportTotals, previous: ReportTotals, yearBefore: ReportTotals,
                targets: Targets = Targets(), withHandlers: Bool) {
        self.unit = unit
        self.period = period.label
        from = period.firstDay
        to = period.lastDay
        let received = t["received"]
        func change(_ other: Int64) -> Change { Change(count: other, change: other == 0 ? nil : Double(received - other) / Double(other)) }
        volume = Volume(received: received, previousPeriod: change(previous["received"]), yearBefore: change(yearBefore["received"]),
                        regulatorTransfers: t["regulator"], byChannel: t.received["channel"] ?? [:], byCategory: t.received["category"] ?? [:],
                        byBranch: t.received["branch"] ?? [:], byHandlingUnit: t.received["unit"] ?? [:])
        outcomes = Outcomes(closed: t["closed"], liable: t["liable"], liableRate: Self.ratio(t["liable"], t["closed"]),
                            responsibleLinks: Self.ranked(t, prefix: "link:"), causes: Self.ranked(t, prefix: "cause:"),
                            extendedTo30: t["extended_30"], extendedTo60: t["extended_60"], escalations: t["escalated"],
                            transfers: t["transferred"], secondComplaints: t["second"], repeatComplaints: t["repeat"])
        // Handling days from the whole-day histogram: the median and 90th percentile are the
        // smallest day counts that half and nine in ten of the closures did not exceed.
        var histogram: [(Int, Int64)] = t.measures.compactMap { key, value in
            key.hasPrefix("handling_day:") ? Int(key.dropFirst("handling_day:".count)).map { ($0, value) } : nil
        }
        histogram.sort { $0.0 < $1.0 }
        let closures = histogram.reduce(0) { $0 + $1.1 }
        func percentile(_ p: Double) -> Int? {
            guard closures > 0 else { return nil }
            let rank = Int64((Double(closures) * p).rounded(.up))
            var seen: Int64 = 0
            for (day, count) in histogram {
                seen += count
                if seen >= rank { return day }
            }
            return histogram.last?.0
        }
        timeliness = Timeliness(
            acknowledgedWithin24h: t["acknowledged_24h"], firstContactWithin24h: t["first_contact_24h"], decidedInTime: t["decided_in_time"],
            decidedInTimeShare: Self.ratio(t["decided_in_time"], t["closed"]), regulatorClosed: t["regulator_closed"], regulatorDeadlinesMet: t["regulator_met"],
            handlingDays: HandlingDays(mean: t["closed"] == 0 ? nil : Double(t["handling_seconds"]) / Double(t["closed"]) / 86_400,
                                       median: percentile(0.5), p90: percentile(0.9)),
            breachesByClock: Dictionary(uniqueKeysWithValues: t.measures.filter { $0.key.hasPrefix("breach:") }.map { (String($0.key.dropFirst(7)), $0.value) }))
        customers = Customers(invited: t["survey_invited"], answered: t["survey_answered"],
                              responseRate: Self.ratio(t["survey_answered"], t["survey_invited"]),
                              returnVisitCompletion: Self.ratio(t["survey_answered"], t["closed"]),
                              satisfied: t["survey_satisfied"], csat: Self.ratio(t["survey_satisfied"], t["survey_answered"]),
                              dissatisfiedShare: Self.ratio(t["survey_dissatisfied"], t["survey_answered"]), targets: targets)
        if withHandlers {
            let ids = Set(t.measures.keys.compactMap { key -> String? in
                for prefix in ["handler_closed:", "handler_answered:"] where key.hasPrefix(prefix) { return String(key.dropFirst(prefix.count)) }
                return nil
            }).filter { !$0.isEmpty }
            handlers = ids.sorted().map { id in
                Handler(id: id, closed: t["handler_closed:" + id], onTime: t["handler_on_time:" + id],
                        onTimeShare: Self.ratio(t["handler_on_time:" + id], t["handler_closed:" + id]),
                        answered: t["handler_answered:" + id], satisfied: t["handler_satisfied:" + id],
                        csat: Self.ratio(t["handler_satisfied:" + id], t["handler_answered:" + id]))
            }
        } else {
            handlers = nil
        }
    }

    /// The report as CSV for Excel: UTF-8 with a byte-order mark (so Excel reads the Chinese text),
    /// CRLF line ends, one figure per row: section, measure, key, value.
    public func csv() -> [UInt8] {
        var rows: [[String]] = [["section", "measure", "key", "value"]]
        func add(_ section: String, _ measure: String, _ key: String = "", _ value: (any CustomStringConvertible)?) {
            rows.append([section, measure, key, value.map { "\($0)" } ?? ""])
        }
        add("report", "unit", "", unit)
        add("report", "period", "", period)
        add("report", "from", "", from)
        add("report", "to", "", to)
        add("volume", "received", "", volume.received)
        add("volume", "previous_period", "", volume.previousPeriod.count)
        add("volume", "year_before", "", volume.yearBefore.count)
        add("volume", "regulator_transfers", "", volume.regulatorTransfers)
        for (key, value) in volume.byChannel.sorted(by: { $0.key < $1.key }) { add("volume", "by_channel", key, value) }
        for (key, value) in volume.byCategory.sorted(by: { $0.key < $1.key }) { add("volume", "by_category", key, value) }
        for (key, value) in volume.byBranch.sorted(by: { $0.key < $1.key }) { add("volume", "by_branch", key, value) }
        for (key, value) in volume.byHandlingUnit.sorted(by: { $0.key < $1.key }) { add("volume", "by_handling_unit", key, value) }
        add("outcomes", "closed", "", outcomes.closed)
        add("outcomes", "liable", "", outcomes.liable)
        add("outcomes", "liable_rate", "", outcomes.liableRate)
        for item in outcomes.responsibleLinks { add("outcomes", "responsible_link", item.code, item.count) }
        for item in outcomes.causes { add("outcomes", "cause", item.code, item.count) }
        add("outcomes", "extended_to_30", "", outcomes.extendedTo30)
        add("outcomes", "extended_to_60", "", outcomes.extendedTo60)
        add("outcomes", "escalations", "", outcomes.escalations)
        add("outcomes", "transfers", "", outcomes.transfers)
        add("outcomes", "second_complaints", "", outcomes.secondComplaints)
        add("outcomes", "repeat_complaints", "", outcomes.repeatComplaints)
        add("timeliness", "acknowledged_within_24h", "", timeliness.acknowledgedWithin24h)
        add("timeliness", "first_contact_within_24h", "", timeliness.firstContactWithin24h)
        add("timeliness", "decided_in_time", "", timeliness.decidedInTime)
        add("timeliness", "regulator_closed", "", timeliness.regulatorClosed)
        add("timeliness", "regulator_deadlines_met", "", timeliness.regulatorDeadlinesMet)
        add("timeliness", "handling_days_mean", "", timeliness.handlingDays.mean)
        add("timeliness", "handling_days_median", "", timeliness.handlingDays.median)
        add("timeliness", "handling_days_p90", "", timeliness.handlingDays.p90)
        for (key, value) in timeliness.breachesByClock.sorted(by: { $0.key < $1.key }) { add("timeliness", "breaches", key, value) }
        add("customers", "invited", "", customers.invited)
        add("customers", "answered", "", customers.answered)
        add("customers", "response_rate", "", customers.responseRate)
        add("customers", "return_visit_completion", "", customers.returnVisitCompletion)
        add("customers", "csat", "", customers.csat)
        add("customers", "dissatisfied_share", "", customers.dissatisfiedShare)
        add("customers", "target_return_visit_completion", "", customers.targets.returnVisitCompletion)
        add("customers", "target_csat", "", customers.targets.csat)
        if let oversight {
            for (unit, v) in oversight.spotChecks.sorted(by: { $0.key < $1.key }) {
                add("oversight", "spot_checks_drawn", unit, v.drawn)
                add("oversight", "spot_checks_upheld", unit, v.upheld)
                add("oversight", "spot_checks_revised", unit, v.revised)
                add("oversight", "spot_checks_reinvestigate", unit, v.reinvestigate)
            }
            add("oversight", "inquiries_opened", "", oversight.inquiriesOpened)
            add("oversight", "inquiries_answered", "", oversight.inquiriesAnswered)
            add("oversight", "inquiries_answered_late", "", oversight.inquiriesAnsweredLate)
            add("oversight", "committee_referrals", "", oversight.committeeReferrals)
            add("oversight", "committee_rulings", "", oversight.committeeRulings)
            add("oversight", "corrective_opened", "", oversight.correctiveOpened)
            add("oversight", "corrective_verified", "", oversight.correctiveVerified)
            add("oversight", "corrective_overdue", "", oversight.correctiveOverdue)
            add("oversight", "register_approved", "", oversight.registerApproved)
        }
        for handler in handlers ?? [] {
            add("handlers", "closed", handler.id, handler.closed)
            add("handlers", "on_time", handler.id, handler.onTime)
            add("handlers", "csat", handler.id, handler.csat)
        }
        func field(_ text: String) -> String {
            text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
                ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
        }
        let body = rows.map { $0.map(field).joined(separator: ",") }.joined(separator: "\r\n") + "\r\n"
        return [0xEF, 0xBB, 0xBF] + Array(body.utf8)
    }
}

/// The regulator's complaint reporting classes (`deploy/reports/regulator-classes.json`): received
/// complaints are classed by category, closed ones by cause code. A report in that shape is the
/// second CSV (`format=regulator-csv`).
public struct RegulatorClasses: Codable, Sendable, Equatable {
    public struct Class: Codable, Sendable, Equatable {
        public var code: String
        public var name: String
        public var nameEn: String
        public var categories: [String]
        public var causes: [String]
    }
    public var description: String
    public var classes: [Class]
    public var fallback: String

    public static let defaultPath = "deploy/reports/regulator-classes.json"

    /// Reads and checks the file: the fallback is a class, and no category or cause is in two classes.
    public static func load(_ path: String) throws -> RegulatorClasses {
        let file = try JSONDecoder().decode(RegulatorClasses.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        guard file.classes.contains(where: { $0.code == file.fallback }) else {
            throw RegulatorClassesError(detail: "\(path): fallback '\(file.fallback)' is not one of the classes")
        }
        for key in [\Class.categories, \Class.causes] {
            let all = file.classes.flatMap { $0[keyPath: key] }
            if Set(all).count != all.count { throw RegulatorClassesError(detail: "\(path): a category or cause is mapped to two classes") }
        }
        return file
    }

    func classOf(category: String) -> String { classes.first { $0.categories.contains(category) }?.code ?? fallback }
    func classOf(cause: String) -> String { classes.first { $0.causes.contains(cause) }?.code ?? fallback }

    /// class, name, English name, received, closed — UTF-8 with a byte-order mark, CRLF.
    public func csv(for report: PeriodicReport) -> [UInt8] {
        var received: [String: Int64] = [:], closed: [String: Int64] = [:]
        for (category, count) in report.volume.byCategory { received[classOf(category: category), default: 0] += count }
        for cause in report.outcomes.causes { closed[classOf(cause: cause.code), default: 0] += cause.count }
        var lines = ["class,name,name_en,received,closed"]
        for item in classes {
            lines.append("\(item.code),\(item.name),\"\(item.nameEn.replacingOccurrences(of: "\"", with: "\"\""))\",\(received[item.code] ?? 0),\(closed[item.code] ?? 0)")
        }
        return [0xEF, 0xBB, 0xBF] + Array((lines.joined(separator: "\r\n") + "\r\n").utf8)
    }
}

public struct RegulatorClassesError: Error, CustomStringConvertible {
    public var detail: String
    public var description: String { detail }
}

/// Immutable snapshots of period reports, announced in the unit supervisors' inbox.
public enum ReportSnapshots {
    public struct Snapshot: Codable, Sendable, Equatable {
        public var id: UUID
        public var unit: String
        public var period: String
        public var version: Int
        public var generatedAt: Date
        public var generatedBy: String

        public init(id: UUID, unit: String, period: String, version: Int, generatedAt: Date, generatedBy: String) {
            self.id = id
            self.unit = unit
            self.period = period
            self.version = version
            self.generatedAt = generatedAt
            self.generatedBy = generatedBy
        }
    }

    /// Generates `unit`'s report for `period` from a freshly rebuilt rollup and stores it as the
    /// next version; tells the unit's supervisors in their inbox. Returns the snapshot.
    public static func generate(unit: String, period: ReportPeriod, by actor: String, now: Date = Date(),
                                on connection: PostgresConnection, logger: Logger) async throws -> Snapshot {
        guard let path = try await PeriodicReport.unitPath(of: unit, on: connection, logger: logger) else {
            throw RegulatorClassesError(detail: "no unit '\(unit)'")
        }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: ReportRollup.zone)!
        let first = calendar.date(from: period.first)!, last = calendar.date(from: period.last)!
        try await ReportRollup.rebuild(from: first, to: last, on: connection, logger: logger)
        let report = try await PeriodicReport.read(unit: unit, unitPath: path, period: period, withHandlers: true, on: connection, logger: logger)
        let body = String(decoding: try JSONEncoder().encode(report), as: UTF8.self)
        var version = 1
        for try await latest in try await connection.query("SELECT COALESCE(max(version), 0) + 1 FROM report_snapshots WHERE unit = \(unit) AND period = \(period.label)",
                                                           logger: logger).decode(Int.self) {
            version = latest
        }
        let id = UUID()
        try await connection.query("""
            INSERT INTO report_snapshots (id, unit, unit_path, period, version, generated_at, generated_by, body)
            VALUES (\(id), \(unit), \(path), \(period.label), \(version), \(now), \(actor), \(body)::jsonb)
            """, logger: logger)
        try await connection.query("""
            INSERT INTO notifications (id, complaint_id, event_id, recipient, channel, template, status, body, delivered_at, created_at, reference)
            VALUES (\(UUID()), NULL, \(id), \("supervisors:" + unit), 'staff_inbox', 'report.snapshot.supervisors', 'delivered',
                    \("\(period.label) 分析报告已生成（第 \(version) 版）/ the \(period.label) report is ready (version \(version))"), \(now), \(now),
                    \("report:\(unit):\(period.label):\(version)"))
            """, logger: logger)
        return Snapshot(id: id, unit: unit, period: period.label, version: version, generatedAt: now, generatedBy: actor)
    }

    /// The month and quarter that ended most recently before `now` (local days): what the
    /// supervisor snapshots for HQ and each province, once each.
    public static func endedPeriods(before now: Date) -> [ReportPeriod] {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: ReportRollup.zone)!
        let parts = calendar.dateComponents([.year, .month], from: now)
        let previousMonth = calendar.date(byAdding: .month, value: -1, to: calendar.date(from: DateComponents(year: parts.year, month: parts.month, day: 1))!)!
        let month = calendar.dateComponents([.year, .month], from: previousMonth)
        var periods = [ReportPeriod.parse(String(format: "%04d-%02d", month.year!, month.month!))!]
        // A quarter ended when the month that ended is a quarter's last.
        if month.month! % 3 == 0 {
            periods.append(ReportPeriod.parse("\(month.year!)-Q\(month.month! / 3)")!)
        }
        return periods
    }

    /// Snapshots every ended period for HQ and the provinces that has none yet. Idempotent; two
    /// supervisors serialise on the rollup's lock.
    @discardableResult
    public static func takeDue(now: Date = Date(), on connection: PostgresConnection, logger: Logger) async throws -> [Snapshot] {
        var units: [String] = []
        for try await code in try await connection.query("SELECT code FROM org_units WHERE level IN ('hq', 'province') ORDER BY path", logger: logger)
            .decode(String.self) { units.append(code) }
        try await connection.query("SELECT pg_advisory_xact_lock(\(Int64(0x736E_6170)))", logger: logger)
        var taken: [Snapshot] = []
        for period in endedPeriods(before: now) {
            for unit in units {
                var exists = false
                for try await _ in try await connection.query("SELECT 1 FROM report_snapshots WHERE unit = \(unit) AND period = \(period.label)", logger: logger)
                    .decode(Int.self) { exists = true }
                if !exists { taken.append(try await generate(unit: unit, period: period, by: "redress-supervisor", now: now, on: connection, logger: logger)) }
            }
        }
        return taken
    }
}
