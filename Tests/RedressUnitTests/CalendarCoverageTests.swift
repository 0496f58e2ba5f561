import Foundation
import RedressDomain
import Testing

/// A year without a calendar is reported from 60 days before it begins, and whenever a running
/// working-time clock reaches it. Every instant here is injected; nothing reads the wall clock.
@Suite struct CalendarCoverageTests {
    static let shanghai = TimeZone(identifier: "Asia/Shanghai")!
    static let only2026 = CalendarCoverage(years: ["CN": [2026]], timeZones: ["CN": shanghai], fallbackRegion: "CN")

    static func at(_ text: String) -> Date { Timestamp.parse(text)! }

    @Test func theNextYearIsDueSixtyDaysBeforeItBegins() {
        // 2027-01-01T00:00+08:00 less 60 days is 2026-11-02T00:00+08:00.
        #expect(Self.only2026.missing(now: Self.at("2026-11-01T23:59:59+08:00")).isEmpty)
        #expect(Self.only2026.missing(now: Self.at("2026-11-02T00:00:00+08:00")) == [.init(region: "CN", year: 2027)])
        // In UTC it is still 1 November: the region's own midnight decides.
        #expect(Self.only2026.missing(now: Self.at("2026-11-01T16:00:00Z")) == [.init(region: "CN", year: 2027)])
        // A year with no calendar at all is missing for itself too.
        #expect(Self.only2026.missing(now: Self.at("2027-03-01T00:00:00+08:00")) == [.init(region: "CN", year: 2027)])
        let both = CalendarCoverage(years: ["CN": [2026, 2027]], timeZones: ["CN": Self.shanghai])
        #expect(both.missing(now: Self.at("2026-12-31T12:00:00+08:00")).isEmpty)
    }

    @Test func aRunningClockThatReachesAYearWithoutACalendarIsAGap() {
        let june = Self.at("2026-06-01T09:00:00+08:00")
        let crossing = CalendarCoverage.Span(region: "CN", from: Self.at("2026-12-20T09:00:00+08:00"), to: Self.at("2027-01-12T18:00:00+08:00"))
        #expect(Self.only2026.missing(now: june).isEmpty, "in June nothing is due yet")
        #expect(Self.only2026.missing(now: june, spans: [crossing]) == [.init(region: "CN", year: 2027)])
        // A region with no calendar of its own is counted by CN's, whose gap it is.
        let guangdong = CalendarCoverage.Span(region: "GD", from: crossing.from, to: crossing.to)
        #expect(Self.only2026.missing(now: june, spans: [guangdong]) == [.init(region: "CN", year: 2027)])
        let within = CalendarCoverage.Span(region: "CN", from: june, to: Self.at("2026-12-31T18:00:00+08:00"))
        #expect(Self.only2026.missing(now: june, spans: [within]).isEmpty)
    }

    @Test func theMessageNamesRegionYearAndWhatToDo() {
        let text = CalendarCoverage.describe([.init(region: "CN", year: 2027)])
        #expect(text.contains("CN 2027"))
        #expect(text.contains("redressctl sla check") && text.contains("redressctl sla recompute"))
    }
}
