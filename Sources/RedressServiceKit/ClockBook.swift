import Foundation
import Logging
import PostgresNIO
import RedressContracts
import RedressDomain

/// The deployment's SLA policy and its regions' working calendars.
public struct ClockBook: Sendable {
    public var policy: SLAPolicy
    public var calendars: [String: WorkingCalendar]
    /// Which years the calendar files cover (none known for a book built in code: no gaps reported).
    public var coverage: CalendarCoverage

    public init(policy: SLAPolicy, calendars: [String: WorkingCalendar], coverage: CalendarCoverage? = nil) {
        self.policy = policy
        self.calendars = calendars
        self.coverage = coverage ?? CalendarCoverage(years: [:], timeZones: [:])
    }

    /// Years some region's calendar lacks: from 60 days before a year begins, and every year a
    /// running working-time clock reaches.
    public func calendarGaps(now: Date, on postgres: PostgresClient, logger: Logger) async throws -> [CalendarCoverage.Gap] {
        let working = policy.clocks.filter { $0.time == .working }.map(\.kind.rawValue)
        var spans: [CalendarCoverage.Span] = []
        if !working.isEmpty {
            let rows = try await postgres.query("""
                SELECT u.region, min(s.started_at), max(s.due_at)
                FROM sla_clocks s JOIN complaints c ON c.id = s.complaint_id JOIN org_units u ON u.code = COALESCE(c.handling_unit, c.branch)
                WHERE s.stopped_at IS NULL AND s.breached_at IS NULL AND s.kind = ANY(\(working)::text[])
                GROUP BY 1
                """, logger: logger)
            for try await (region, from, to) in rows.decode((String, Date, Date).self) {
                spans.append(CalendarCoverage.Span(region: region, from: from, to: to))
            }
        }
        return coverage.missing(now: now, spans: spans)
    }

    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    /// Reads the policy file and every calendar file (`<REGION>-<YEAR>.json`) of the directory;
    /// a region's years are joined into one calendar.
    public static func load(policyFile: String, calendarDirectory: String) throws -> ClockBook {
        guard let data = FileManager.default.contents(atPath: policyFile) else {
            throw Invalid(description: "SLA policy \(policyFile) cannot be read: set REDRESS_SLA_POLICY to the JSON file (deploy/sla/policy.json)")
        }
        let policy: SLAPolicy
        do {
            policy = try JSONDecoder().decode(SLAPolicy.self, from: data)
        } catch {
            throw Invalid(description: "SLA policy \(policyFile) is not valid: \(EventCoding.describe(error))")
        }
        let problems = policy.problems()
        guard problems.isEmpty else { throw Invalid(description: "SLA policy \(policyFile): " + problems.joined(separator: "; ")) }
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: calendarDirectory)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
        guard !files.isEmpty else {
            throw Invalid(description: "no calendars in \(calendarDirectory): set REDRESS_CALENDARS to the directory of <REGION>-<YEAR>.json files")
        }
        var byRegion: [String: [WorkingCalendar]] = [:]
        var covered: [String: Set<Int>] = [:]
        for file in files {
            let path = calendarDirectory + "/" + file
            do {
                let parsed = try JSONDecoder().decode(CalendarFile.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
                let calendar = try parsed.calendar()
                byRegion[calendar.region, default: []].append(calendar)
                covered[calendar.region, default: []].insert(parsed.year)
            } catch {
                throw Invalid(description: "calendar \(path) is not valid: \(error)")
            }
        }
        var calendars: [String: WorkingCalendar] = [:]
        for (region, years) in byRegion {
            // The latest year's hours and weekend; every year's holidays and make-up days.
            let last = years.last!
            calendars[region] = WorkingCalendar(region: region, timeZone: last.timeZone, workingHours: last.workingHours, weekend: last.weekend,
                                                holidays: years.reduce(into: Set()) { $0.formUnion($1.holidays) },
                                                makeUpWorkingDays: years.reduce(into: Set()) { $0.formUnion($1.makeUpWorkingDays) })
        }
        let coverage = CalendarCoverage(years: covered, timeZones: calendars.mapValues(\.timeZone),
                                        fallbackRegion: calendars["CN"] != nil ? "CN" : calendars.keys.sorted().first)
        return ClockBook(policy: policy, calendars: calendars, coverage: coverage)
    }

    /// The region's calendar; a region without one falls back to CN's, which every deployment ships.
    public func calendar(for region: String) -> WorkingCalendar {
        calendars[region] ?? calendars["CN"] ?? calendars.values.first!
    }
}

extension ClockBook {
    /// The policy and calendars named by `REDRESS_SLA_POLICY` and `REDRESS_CALENDARS` (the repository's
    /// files when unset), as the supervisor and the staff API (for inquiry and ruling deadlines) read them.
    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) throws -> ClockBook {
        try load(policyFile: env["REDRESS_SLA_POLICY"] ?? "deploy/sla/policy.json", calendarDirectory: env["REDRESS_CALENDARS"] ?? "deploy/calendars")
    }
}
