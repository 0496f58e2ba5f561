import Foundation
import PropertyBased
@testable import RedressContracts
@testable import RedressDomain
@testable import RedressStore
import Testing

/// The pure rules behind the oversight duties: the spot-check sample, who draws what, and the
/// inquiry and ruling deadlines in working time.
@Suite struct OversightLogicTests {
    static func ids(_ count: Int, from seed: Int) -> [UUID] {
        (0..<count).map { UUID(uuidString: String(format: "00000000-0000-4000-8000-%012d", seed * 10_000 + $0))! }
    }

    @Test(arguments: [(0, 0.1, 5, 0), (3, 0.1, 5, 3), (40, 0.1, 5, 5), (41, 0.1, 5, 5), (60, 0.1, 5, 6), (61, 0.1, 5, 7), (200, 0.05, 10, 10), (10, 1, 0, 10)])
    func theSampleIsTheShareRoundedUpWithAMinimum(population: Int, share: Double, minimum: Int, expected: Int) {
        #expect(SpotCheckSample.size(population: population, share: share, minimum: minimum) == expected)
    }

    /// Reproducible: the same seed and candidates give the same sample in any order; the sample is a
    /// subset of the candidates, of the size the rule says, without repeats.
    @Test func theSampleDependsOnTheSeedAndCandidatesOnly() async {
        await propertyCheck(count: 200, input: Gen.int(in: 0...5_000), Gen.int(in: 0...150)) { seed, count in
            let candidates = Self.ids(count, from: seed)
            let label = "not_liable:GD:2026-\(seed % 12 + 1)"
            let sample = SpotCheckSample.pick(candidates, seed: label, share: 0.1, minimum: 5)
            #expect(sample == SpotCheckSample.pick(candidates.reversed(), seed: label, share: 0.1, minimum: 5), "order of the candidates does not matter")
            #expect(sample == SpotCheckSample.pick(candidates.shuffled(), seed: label, share: 0.1, minimum: 5))
            #expect(Set(sample).count == sample.count && Set(sample).isSubset(of: candidates))
            #expect(sample.count == SpotCheckSample.size(population: count, share: 0.1, minimum: 5))
        }
    }

    @Test func anotherSeedDrawsAnotherSampleAndEveryCandidateHasAChance() {
        let candidates = Self.ids(100, from: 1)
        let october = SpotCheckSample.pick(candidates, seed: "not_liable:GD:2026-10", share: 0.1, minimum: 5)
        let november = SpotCheckSample.pick(candidates, seed: "not_liable:GD:2026-11", share: 0.1, minimum: 5)
        #expect(october != november)
        // Over many seeds each candidate is drawn about a tenth of the time (never, or always, would be a broken hash).
        var drawn: [UUID: Int] = [:]
        for month in 0..<2_000 {
            for id in SpotCheckSample.pick(candidates, seed: "not_liable:GD:\(month)", share: 0.1, minimum: 5) { drawn[id, default: 0] += 1 }
        }
        #expect(drawn.count == 100, "every candidate was drawn at some point")
        #expect(drawn.values.allSatisfy { (120...290).contains($0) }, "about 200 of 2000 each: \(drawn.values.sorted().prefix(3)) … \(drawn.values.sorted().suffix(3))")
    }

    /// A known value: the rank is a fixed function, the same on every machine and every run
    /// (SWIFT_DETERMINISTIC_HASHING or not: it does not use Swift's Hasher).
    @Test func theRankIsAFixedFunction() {
        let id = UUID(uuidString: "00000000-0000-4000-8000-000000000001")!
        #expect(SpotCheckSample.rank(seed: "a", id: id) == SpotCheckSample.rank(seed: "a", id: id))
        #expect(SpotCheckSample.rank(seed: "a", id: id) != SpotCheckSample.rank(seed: "b", id: id))
        // FNV-1a then the SplitMix64 finaliser, computed independently (Python) for this seed and id.
        #expect(SpotCheckSample.rank(seed: "not_liable:GD:2026-10", id: id) == 0xd097_e563_7880_d768)
    }

    @Test func aProvinceDrawsNotLiableClosuresAndHQSatisfaction() {
        #expect(SpotChecks.refusal(kind: .notLiable, level: .province) == nil)
        #expect(SpotChecks.refusal(kind: .satisfaction, level: .hq) == nil)
        for level in [OrgLevel.hq, .city, .county] { #expect(SpotChecks.refusal(kind: .notLiable, level: level)?.contains("province") == true) }
        for level in [OrgLevel.province, .city, .county] { #expect(SpotChecks.refusal(kind: .satisfaction, level: level)?.contains("headquarters") == true) }
    }

    @Test func theMonthBeforeIsTheBeijingMonth() {
        #expect(SpotChecks.previousMonth(before: Timestamp.parse("2026-11-01T00:30:00+08:00")!).label == "2026-10")
        #expect(SpotChecks.previousMonth(before: Timestamp.parse("2026-10-31T16:30:00Z")!).label == "2026-10", "already 1 November in Beijing")
        #expect(SpotChecks.previousMonth(before: Timestamp.parse("2027-01-15T12:00:00+08:00")!).label == "2026-12")
    }

    static let calendar = WorkingCalendar(region: "CN", timeZone: TimeZone(identifier: "Asia/Shanghai")!, workingHours: [32_400..<43_200, 48_600..<64_800],
                                          weekend: [6, 7], holidays: [], makeUpWorkingDays: [])

    /// Three working days from Friday 16:00: Monday, Tuesday, and Wednesday until 16:00 (22.5 working hours).
    @Test func anInquiryIsDueInThreeWorkingDays() {
        let asked = Timestamp.parse("2026-11-27T16:00:00+08:00")!
        let (warn, due) = SLAPolicy.standard.deadline(.inquiry, from: asked, calendar: Self.calendar)
        #expect(due == Timestamp.parse("2026-12-02T16:00:00+08:00")!, "\(Timestamp.format(due))")
        #expect(warn > asked && warn < due)
        #expect(Self.calendar.workingSeconds(from: asked, to: due) == 22 * 3600 + 1800)
        let (_, ruling) = SLAPolicy.standard.deadline(.ruling, from: asked, calendar: Self.calendar)
        #expect(Self.calendar.workingSeconds(from: asked, to: ruling) == 75 * 3600, "ten working days")
        // A policy without the clocks uses the defaults.
        let bare = SLAPolicy(warnShare: 0.8, urgentFactor: 0.5, clocks: SLAPolicy.standard.clocks.filter(\.kind.perComplaint))
        #expect(bare.deadline(.inquiry, from: asked, calendar: Self.calendar).dueAt == due)
    }

    @Test func inquiryAndRulingClocksDoNotRunPerComplaint() {
        let subject = ClockSubject(receivedAt: Date(), priority: .normal, postClaim: false, regulatorDeadline: nil, category: .claims)
        let kinds = ClockReplay.clocks(policy: .standard, subject: subject, history: [], calendar: Self.calendar).map(\.kind)
        #expect(!kinds.contains(.inquiry) && !kinds.contains(.ruling) && kinds.contains(.decision))
    }

    @Test func aChannelMayNotSendTheRegisterFlag() throws {
        let body = ComplaintSubmission(channel: "online", externalRef: "W-1", receivedAt: Date(),
                                       customer: .init(name: "张三", phone: "13812345678", flags: ["vexatious_register"]),
                                       branch: "GD-SZ", subject: "s", content: "c")
        guard case .failure(let errors) = SubmissionValidator.validate(body, now: Date()) else {
            Issue.record("a channel's vexatious_register flag was accepted")
            return
        }
        #expect(errors.errors.map(\.field) == ["customer.flags[0]"] && errors.errors[0].message.contains("register"))
    }
}
