import Foundation

/// A region's working time (工作日历): working hours, weekends, public holidays and make-up working
/// days (调休 — a Saturday can be a working day), in the region's time zone. Pure arithmetic, so the
/// supervisor's working-time clocks can be tested exhaustively against a minute-by-minute reference.
public struct WorkingCalendar: Sendable {
    public let region: String
    public let timeZone: TimeZone
    /// Working intervals within a day, as seconds from local midnight, sorted and disjoint.
    public let workingHours: [Range<Int>]
    /// ISO weekdays off (1 = Monday … 7 = Sunday).
    public let weekend: Set<Int>
    /// Local dates (days since 1970-01-01) that are holidays.
    public let holidays: Set<Int>
    /// Local dates that are working days although they fall on a weekend.
    public let makeUpWorkingDays: Set<Int>

    public init(region: String, timeZone: TimeZone, workingHours: [Range<Int>], weekend: Set<Int>, holidays: Set<Int>, makeUpWorkingDays: Set<Int>) {
        self.region = region
        self.timeZone = timeZone
        self.workingHours = workingHours.sorted { $0.lowerBound < $1.lowerBound }
        self.weekend = weekend
        self.holidays = holidays
        self.makeUpWorkingDays = makeUpWorkingDays
    }

    public func isWorkingDay(_ day: Int) -> Bool {
        if makeUpWorkingDays.contains(day) { return true }
        if holidays.contains(day) { return false }
        return !weekend.contains(Self.isoWeekday(day))
    }

    /// The instant `seconds` of working time after `start` (the end of the last working second).
    public func adding(workingSeconds seconds: Int, to start: Date) -> Date {
        precondition(seconds >= 0, "working time to add must not be negative")
        if seconds == 0 { return start }
        var remaining = seconds
        var (day, second) = local(start)
        // A calendar with no working time at all would never end: stop after ten years.
        for _ in 0..<3_660 {
            if isWorkingDay(day) {
                for hours in workingHours where hours.upperBound > second {
                    let from = max(hours.lowerBound, second)
                    let available = hours.upperBound - from
                    if remaining <= available { return instant(day: day, second: from + remaining) }
                    remaining -= available
                }
            }
            day += 1
            second = 0
        }
        preconditionFailure("calendar \(region) has no working time in ten years")
    }

    /// Working seconds in [from, to).
    public func workingSeconds(from: Date, to: Date) -> Int {
        guard to > from else { return 0 }
        let (endDay, endSecond) = local(to)
        var (day, second) = local(from)
        var total = 0
        while day <= endDay {
            if isWorkingDay(day) {
                for hours in workingHours {
                    let lower = max(hours.lowerBound, second)
                    let upper = day == endDay ? min(hours.upperBound, endSecond) : hours.upperBound
                    if upper > lower { total += upper - lower }
                }
            }
            day += 1
            second = 0
        }
        return total
    }

    /// Local date (days since epoch) and second of that local day.
    public func local(_ date: Date) -> (day: Int, second: Int) {
        let utc = Int(floor(date.timeIntervalSince1970))
        let local = utc + timeZone.secondsFromGMT(for: date)
        let day = Int(floor(Double(local) / 86_400))
        return (day, local - day * 86_400)
    }

    /// The instant of a local date and second, resolving the zone's offset at that moment.
    public func instant(day: Int, second: Int) -> Date {
        let local = day * 86_400 + second
        var guess = Date(timeIntervalSince1970: Double(local - timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(local)))))
        guess = Date(timeIntervalSince1970: Double(local - timeZone.secondsFromGMT(for: guess)))
        return guess
    }

    /// ISO weekday of a day since epoch (1970-01-01 was a Thursday).
    public static func isoWeekday(_ day: Int) -> Int {
        ((day % 7 + 7) % 7 + 3) % 7 + 1
    }
}

/// The calendar file format (`deploy/calendars/CN-2026.json`).
public struct CalendarFile: Sendable, Codable {
    public struct Interval: Sendable, Codable {
        public var from: String
        public var to: String
    }

    public struct Holiday: Sendable, Codable {
        public var name: String
        public var from: String
        public var to: String
    }

    public var region: String
    public var year: Int
    public var timeZone: String
    public var workingHours: [Interval]
    public var weekend: [String]
    public var holidays: [Holiday]
    public var makeUpWorkingDays: [String]

    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    public func calendar() throws -> WorkingCalendar {
        guard let zone = TimeZone(identifier: timeZone) else { throw Invalid(description: "timeZone '\(timeZone)' is not an IANA time zone (e.g. Asia/Shanghai)") }
        func clock(_ text: String) throws -> Int {
            let parts = text.split(separator: ":").compactMap { Int($0) }
            guard parts.count == 2, (0...24).contains(parts[0]), (0..<60).contains(parts[1]), parts[0] * 60 + parts[1] <= 1440 else {
                throw Invalid(description: "'\(text)' is not a time of day HH:MM")
            }
            return (parts[0] * 60 + parts[1]) * 60
        }
        func day(_ text: String) throws -> Int {
            guard let date = Timestamp.parse(text + "T00:00:00Z") else { throw Invalid(description: "'\(text)' is not a date YYYY-MM-DD") }
            return Int(date.timeIntervalSince1970 / 86_400)
        }
        let names = ["monday": 1, "tuesday": 2, "wednesday": 3, "thursday": 4, "friday": 5, "saturday": 6, "sunday": 7]
        var hours: [Range<Int>] = []
        for interval in workingHours {
            let (from, to) = (try clock(interval.from), try clock(interval.to))
            guard from < to else { throw Invalid(description: "working hours \(interval.from)–\(interval.to) end before they start") }
            hours.append(from..<to)
        }
        let sorted = hours.sorted { $0.lowerBound < $1.lowerBound }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.upperBound > b.lowerBound {
            throw Invalid(description: "working hours overlap")
        }
        var weekendDays = Set<Int>()
        for name in weekend {
            guard let number = names[name.lowercased()] else { throw Invalid(description: "weekend day '\(name)' is not a weekday name") }
            weekendDays.insert(number)
        }
        var off = Set<Int>()
        for holiday in holidays {
            let (from, to) = (try day(holiday.from), try day(holiday.to))
            guard from <= to else { throw Invalid(description: "holiday \(holiday.name) ends before it starts") }
            off.formUnion(from...to)
        }
        return WorkingCalendar(region: region, timeZone: zone, workingHours: hours, weekend: weekendDays,
                               holidays: off, makeUpWorkingDays: Set(try makeUpWorkingDays.map(day)))
    }
}
