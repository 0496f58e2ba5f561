import Foundation

/// Which years each region's working calendar covers, and which years are needed but missing.
///
/// Holidays and make-up working days are known only once the State Council publishes them, so a
/// year's file is added by hand. Until it is, a working-time clock reaching that year counts
/// weekends alone (the documented fallback) — so the gap must be seen early: from
/// `warningDays` before a year begins, and whenever a running working-time clock reaches it.
public struct CalendarCoverage: Sendable, Equatable {
    /// A year a region's calendar lacks.
    public struct Gap: Sendable, Hashable, Comparable, CustomStringConvertible {
        public var region: String
        public var year: Int

        public init(region: String, year: Int) {
            self.region = region
            self.year = year
        }

        public static func < (a: Gap, b: Gap) -> Bool { (a.region, a.year) < (b.region, b.year) }

        public var description: String { "\(region)-\(year)" }
    }

    /// A running working-time clock: its region and the instants it runs between.
    public struct Span: Sendable, Equatable {
        public var region: String
        public var from: Date
        public var to: Date

        public init(region: String, from: Date, to: Date) {
            self.region = region
            self.from = from
            self.to = to
        }
    }

    /// How long before a year begins its calendar must be there.
    public static let warningDays = 60

    /// Years with a calendar file, by region.
    public var years: [String: Set<Int>]
    /// Each region's time zone: a year begins at local midnight.
    public var timeZones: [String: TimeZone]
    /// The region whose calendar a region without one uses (ClockBook falls back to CN's).
    public var fallbackRegion: String?

    public init(years: [String: Set<Int>], timeZones: [String: TimeZone], fallbackRegion: String? = nil) {
        self.years = years
        self.timeZones = timeZones
        self.fallbackRegion = fallbackRegion
    }

    /// The local calendar year of `date` in `region`.
    public func year(of date: Date, in region: String) -> Int {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZones[region] ?? TimeZone(identifier: "Asia/Shanghai")!
        return calendar.component(.year, from: date)
    }

    /// Every gap, sorted: each region's current year and the year `warningDays` ahead, and every
    /// year a running working-time clock reaches (in the calendar it is counted by).
    public func missing(now: Date, spans: [Span] = []) -> [Gap] {
        var gaps = Set<Gap>()
        let ahead = now.addingTimeInterval(Double(Self.warningDays) * 86_400)
        for (region, covered) in years {
            for year in Set([year(of: now, in: region), year(of: ahead, in: region)]) where !covered.contains(year) {
                gaps.insert(Gap(region: region, year: year))
            }
        }
        for span in spans {
            let region = years[span.region] != nil ? span.region : (fallbackRegion ?? span.region)
            guard let covered = years[region], span.to >= span.from else { continue }
            for year in self.year(of: span.from, in: region)...self.year(of: span.to, in: region) where !covered.contains(year) {
                gaps.insert(Gap(region: region, year: year))
            }
        }
        return gaps.sorted()
    }

    /// One line for operators naming what is missing and what to do.
    public static func describe(_ gaps: [Gap]) -> String {
        "no working calendar for " + gaps.map { "\($0.region) \($0.year)" }.joined(separator: ", ")
            + ": working-time clocks count weekends only there. Add <REGION>-<YEAR>.json from the State Council's notice, "
            + "then run redressctl sla check and redressctl sla recompute (deploy/README.md)"
    }
}
