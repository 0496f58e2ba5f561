import Foundation
import Testing
@testable import RedressDomain

@Suite struct TimestampTests {
    @Test func formatsUTCWithMilliseconds() {
        #expect(Timestamp.format(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp.format(Date(timeIntervalSince1970: 1_795_312_800.123)) == "2026-11-22T02:00:00.123Z")
        #expect(Timestamp.format(Date(timeIntervalSince1970: -1)) == "1969-12-31T23:59:59.000Z")
    }

    @Test func parsesOffsetsAndFractions() throws {
        let shanghai = try #require(Timestamp.parse("2026-11-22T09:30:00+08:00"))
        #expect(shanghai == Date(timeIntervalSince1970: 1_795_311_000))
        #expect(Timestamp.parse("2026-11-22T01:30:00Z") == shanghai)
        #expect(Timestamp.parse("2026-11-22T01:30:00.500Z") == shanghai.addingTimeInterval(0.5))
        #expect(Timestamp.parse("2024-02-29T00:00:00Z") != nil)
    }

    @Test(arguments: ["", "yesterday", "2026-11-22", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2025-02-29T00:00:00Z",
                      "2026-11-22T25:00:00Z", "2026-11-22T09:30:00", "2026-11-22T09:30:00+0800", "2026-11-22T09:30:00.Z", "2026-11-22T09:30:00Zjunk"])
    func refusesMalformed(_ text: String) {
        #expect(Timestamp.parse(text) == nil)
    }

    @Test func roundTripsAgainstFoundationOverManyInstants() {
        var generator = SystemRandomNumberGenerator()
        let reference = ISO8601DateFormatter()
        reference.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        for _ in 0..<2_000 {
            let millis = Int64.random(in: -2_000_000_000_000...4_000_000_000_000, using: &generator)
            let date = Date(timeIntervalSince1970: Double(millis) / 1000)
            let text = Timestamp.format(date)
            #expect(text == reference.string(from: date))
            #expect(Timestamp.parse(text).map { abs($0.timeIntervalSince(date)) < 0.0005 } == true)
        }
    }

    @Test func compactDayUsesTheBranchOffset() {
        // 2026-11-22T17:00Z is already the 23rd in Shanghai.
        let instant = Date(timeIntervalSince1970: 1_795_366_800)
        #expect(Timestamp.compactDay(instant, utcOffsetSeconds: 0) == "20261122")
        #expect(Timestamp.compactDay(instant, utcOffsetSeconds: 8 * 3600) == "20261123")
    }
}
