import Foundation
import Testing
@testable import RedressDomain

/// SLA clocks rebuilt from a case's history: pauses, extensions, stops, the urgent factor, the
/// regulator's deadline, and working time across weekends, holidays and make-up days.
@Suite struct ClockReplayTests {
    static let china = WorkingCalendarTests.china
    static let received = Timestamp.parse("2026-11-20T17:00:00+08:00")! // a Friday, an hour before close
    static let hour = 3600.0, day = 86_400.0

    static func subject(priority: Priority = .normal, postClaim: Bool = false, regulator: Date? = nil, received: Date = received) -> ClockSubject {
        ClockSubject(receivedAt: received, priority: priority, postClaim: postClaim, regulatorDeadline: regulator)
    }

    static func entry(_ offset: Double, _ action: CaseAction, _ from: CaseStatus?, _ to: CaseStatus, days: Int? = nil) -> ClockHistoryEntry {
        ClockHistoryEntry(at: received.addingTimeInterval(offset), action: action, fromStatus: from, toStatus: to, decisionDays: days)
    }

    static func clock(_ kind: ClockKind, policy: SLAPolicy = .standard, subject: ClockSubject = subject(), history: [ClockHistoryEntry] = []) -> ClockState? {
        ClockReplay.clocks(policy: policy, subject: subject, history: history, calendar: china).first { $0.kind == kind }
    }

    @Test func aNewComplaintGetsTheStatutoryClocks() throws {
        let clocks = ClockReplay.clocks(policy: .standard, subject: Self.subject(), history: [], calendar: Self.china)
        #expect(clocks.map(\.kind) == [.acknowledge, .firstContact, .decision], "post_claim only for post-claim questions")
        let decision = try #require(Self.clock(.decision))
        #expect(decision.dueAt == Self.received.addingTimeInterval(15 * Self.day))
        #expect(decision.warnAt == Self.received.addingTimeInterval(12 * Self.day), "warned at 80 %")
        #expect(Self.clock(.acknowledge)?.dueAt == Self.received.addingTimeInterval(24 * Self.hour))
        #expect(Self.clock(.postClaim, subject: Self.subject(postClaim: true))?.dueAt == Self.received.addingTimeInterval(48 * Self.hour))
    }

    @Test func timeAwaitingTheCustomerDoesNotCount() throws {
        let history = [
            Self.entry(1 * Self.hour, .startInvestigation, .assigned, .investigating),
            Self.entry(2 * Self.day, .awaitCustomer, .investigating, .awaitingCustomer),
            Self.entry(5 * Self.day, .customerResponded, .awaitingCustomer, .investigating),
        ]
        let decision = try #require(Self.clock(.decision, history: history))
        #expect(decision.dueAt == Self.received.addingTimeInterval(18 * Self.day))
        #expect(decision.pausedAt == nil)
        // Still waiting: the clock is paused where the wait began.
        let waiting = try #require(Self.clock(.decision, history: Array(history.prefix(2))))
        #expect(waiting.pausedAt == Self.received.addingTimeInterval(2 * Self.day))
        // The first-contact clock does not pause; the investigation's start stopped it.
        #expect(Self.clock(.firstContact, history: history)?.stoppedAt == Self.received.addingTimeInterval(Self.hour))
    }

    @Test func extensionsLengthenTheDecisionClock() {
        let history = [
            Self.entry(Self.day, .startInvestigation, .assigned, .investigating),
            Self.entry(10 * Self.day, .extend, .investigating, .investigating, days: 30),
        ]
        #expect(Self.clock(.decision, history: history)?.dueAt == Self.received.addingTimeInterval(30 * Self.day))
        let sixty = history + [Self.entry(20 * Self.day, .extend, .investigating, .investigating, days: 60)]
        #expect(Self.clock(.decision, history: sixty)?.dueAt == Self.received.addingTimeInterval(60 * Self.day))
    }

    @Test func theRegulatorsDeadlineCountsWhenEarlier() {
        let deadline = Self.received.addingTimeInterval(10 * Self.day)
        let clock = Self.clock(.decision, subject: Self.subject(regulator: deadline))
        #expect(clock?.dueAt == deadline)
        #expect(clock?.warnAt == Self.received.addingTimeInterval(8 * Self.day))
        #expect(Self.clock(.decision, subject: Self.subject(regulator: Self.received.addingTimeInterval(20 * Self.day)))?.dueAt
            == Self.received.addingTimeInterval(15 * Self.day))
    }

    @Test func urgentShortensOnlyTheClocksThatSaySo() {
        let urgent = Self.subject(priority: .urgent)
        #expect(Self.clock(.firstContact, subject: urgent)?.dueAt == Self.received.addingTimeInterval(12 * Self.hour))
        #expect(Self.clock(.decision, subject: urgent)?.dueAt == Self.received.addingTimeInterval(15 * Self.day))
        #expect(Self.clock(.acknowledge, subject: urgent)?.dueAt == Self.received.addingTimeInterval(24 * Self.hour))
    }

    @Test func closingStopsEveryClockAndLaterEventsChangeNothing() {
        let history = [
            Self.entry(Self.day, .startInvestigation, .assigned, .investigating),
            Self.entry(3 * Self.day, .close, .resolved, .closed),
            Self.entry(4 * Self.day, .reopen, .closed, .closed),
        ]
        for kind in [ClockKind.acknowledge, .decision] {
            #expect(Self.clock(kind, history: history)?.stoppedAt == Self.received.addingTimeInterval(3 * Self.day), "\(kind)")
        }
    }

    @Test func theAcknowledgementIsMetWhenItsNoticeIsDelivered() {
        var subject = Self.subject()
        subject.notices["complaint.registered.acknowledgement"] = Self.received.addingTimeInterval(600)
        #expect(Self.clock(.acknowledge, subject: subject)?.stoppedAt == Self.received.addingTimeInterval(600))
        #expect(Self.clock(.decision, subject: subject)?.stoppedAt == nil, "other clocks run on")
        #expect(Self.clock(.acknowledge)?.stoppedAt == nil)
    }

    @Test func theOrderEventsArriveInDoesNotMatter() {
        let history = [
            Self.entry(2 * Self.day, .awaitCustomer, .investigating, .awaitingCustomer),
            Self.entry(Self.hour, .startInvestigation, .assigned, .investigating),
            Self.entry(10 * Self.day, .extend, .investigating, .investigating, days: 30),
            Self.entry(5 * Self.day, .customerResponded, .awaitingCustomer, .investigating),
        ]
        let a = ClockReplay.clocks(policy: .standard, subject: Self.subject(), history: history, calendar: Self.china)
        let b = ClockReplay.clocks(policy: .standard, subject: Self.subject(), history: history.reversed(), calendar: Self.china)
        #expect(a == b)
        #expect(a.first { $0.kind == .decision }?.dueAt == Self.received.addingTimeInterval(33 * Self.day))
    }

    /// Fifteen working hours (two days of 7.5) as a working-time clock.
    static let working = SLAPolicy(warnShare: 0.8, urgentFactor: 0.5, clocks: [
        ClockRule(kind: .decision, hours: 15, time: .working, urgentShortens: true, pauses: true, stopsOn: [.close]),
    ])

    @Test func workingTimeSkipsTheWeekend() {
        // Fri 17:00–18:00 (1 h), Mon 7.5 h, Tue 09:00–12:00 (3 h), then 13:30 + 3.5 h.
        #expect(Self.clock(.decision, policy: Self.working)?.dueAt == Timestamp.parse("2026-11-24T17:00:00+08:00"))
        // Urgent: 7.5 h — Fri 1 h, then Mon 09:00–12:00 and 13:30 + 3.5 h.
        #expect(Self.clock(.decision, policy: Self.working, subject: Self.subject(priority: .urgent))?.dueAt == Timestamp.parse("2026-11-23T17:00:00+08:00"))
    }

    @Test func workingTimeCountsTheMakeUpSaturdayAndSkipsTheSpringFestival() {
        // Fri 13 Feb 17:00 (1 h); Sat 14 Feb is a make-up working day (7.5 h); 15–23 Feb is the holiday;
        // Tue 24 Feb 09:00–12:00 (3 h) and 13:30 + 3.5 h.
        let subject = Self.subject(received: Timestamp.parse("2026-02-13T17:00:00+08:00")!)
        #expect(Self.clock(.decision, policy: Self.working, subject: subject)?.dueAt == Timestamp.parse("2026-02-24T17:00:00+08:00"))
    }

    @Test func aPauseInWorkingTimeResumesWhereItLeftOff() {
        // 1 h on Friday and 1 h on Monday morning before the wait; 13 h left from Wednesday 09:00:
        // Wed 7.5 h, Thu 09:00–12:00 (3 h) and 13:30 + 2.5 h.
        let history = [
            ClockHistoryEntry(at: Timestamp.parse("2026-11-23T10:00:00+08:00")!, action: .awaitCustomer, fromStatus: .investigating, toStatus: .awaitingCustomer),
            ClockHistoryEntry(at: Timestamp.parse("2026-11-25T09:00:00+08:00")!, action: .customerResponded, fromStatus: .awaitingCustomer, toStatus: .investigating),
        ]
        #expect(Self.clock(.decision, policy: Self.working, history: history)?.dueAt == Timestamp.parse("2026-11-26T16:00:00+08:00"))
    }

    @Test func theShippedPolicyIsValidAndAFaultyOneSaysWhy() throws {
        let data = try Data(contentsOf: WorkingCalendarTests.repo.appendingPathComponent("deploy/sla/policy.json"))
        let policy = try JSONDecoder().decode(SLAPolicy.self, from: data)
        #expect(policy.problems().isEmpty)
        #expect(policy == .standard, "the shipped file and the built-in standard agree")
        let broken = SLAPolicy(warnShare: 1.2, urgentFactor: 0, clocks: [
            ClockRule(kind: .acknowledge, hours: 0, time: .calendar, urgentShortens: false, pauses: false, stopsOn: []),
            ClockRule(kind: .acknowledge, hours: 24, time: .calendar, urgentShortens: false, pauses: false, stopsOn: []),
        ])
        #expect(broken.problems().count == 5)
    }
}

@Suite struct ExcludedTimeTests {
    typealias T = ClockReplayTests

    @Test func timeTheRegulationExcludesDoesNotCountEvenOverlappingAWaitForTheCustomer() {
        let history = [
            T.entry(T.hour, .startInvestigation, .assigned, .investigating),
            T.entry(1 * T.day, .excludeTime, .investigating, .investigating),
            T.entry(2 * T.day, .awaitCustomer, .investigating, .awaitingCustomer),
            T.entry(3 * T.day, .customerResponded, .awaitingCustomer, .investigating),
            T.entry(4 * T.day, .includeTime, .investigating, .investigating),
        ]
        // Paused from day 1 (appraisal) until day 4: the customer's answer on day 3 does not restart it.
        #expect(T.clock(.decision, history: history)?.dueAt == T.received.addingTimeInterval(18 * T.day))
        #expect(T.clock(.decision, history: Array(history.prefix(4)))?.pausedAt == T.received.addingTimeInterval(T.day))
    }
}

extension ClockReplayTests {
    /// 每日更新处理状态: the deployment's policy gives claims complaints an update clock that each
    /// recorded contact restarts, due at the promised next contact when one was given.
    @Test func theUpdateClockRestartsOnEachContactAndMeetsThePromise() throws {
        let policy = try JSONDecoder().decode(SLAPolicy.self, from: Data(contentsOf: URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("deploy/sla/policy.json")))
        #expect(policy.problems().isEmpty)
        let claims = ClockSubject(receivedAt: Self.received, priority: .normal, postClaim: false, regulatorDeadline: nil, category: .claims)
        let sales = ClockSubject(receivedAt: Self.received, priority: .normal, postClaim: false, regulatorDeadline: nil, category: .sales)
        #expect(Self.clock(.update, policy: policy, subject: sales) == nil, "only the categories the policy names")
        let fresh = try #require(Self.clock(.update, policy: policy, subject: claims))
        #expect(fresh.startedAt == Self.received && fresh.dueAt == Self.received.addingTimeInterval(24 * Self.hour))
        // A contact with a promise: due then. A later contact without one: 24 h from it.
        var contact = Self.entry(3 * Self.hour, .recordContact, .investigating, .investigating)
        contact.nextContactAt = Self.received.addingTimeInterval(2 * Self.day)
        let promised = try #require(Self.clock(.update, policy: policy, subject: claims, history: [contact]))
        #expect(promised.startedAt == contact.at && promised.dueAt == contact.nextContactAt)
        #expect(promised.warnAt == contact.at.addingTimeInterval(contact.nextContactAt!.timeIntervalSince(contact.at) * 0.8))
        let later = Self.entry(30 * Self.hour, .recordContact, .investigating, .investigating)
        let again = try #require(Self.clock(.update, policy: policy, subject: claims, history: [contact, later]))
        #expect(again.startedAt == later.at && again.dueAt == later.at.addingTimeInterval(24 * Self.hour))
        // A note is no contact; closing stops it.
        let note = Self.entry(40 * Self.hour, .addNote, .investigating, .investigating)
        #expect(Self.clock(.update, policy: policy, subject: claims, history: [contact, later, note])?.startedAt == later.at)
        let closed = Self.entry(50 * Self.hour, .close, .resolved, .closed)
        #expect(Self.clock(.update, policy: policy, subject: claims, history: [contact, later, closed])?.stoppedAt == closed.at)
    }
}
