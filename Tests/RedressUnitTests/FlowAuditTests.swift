import Foundation
import Testing
@testable import RedressDomain

/// The benchmark's exactly-once check: each part of a complaint's flow, once. Weakening any part of
/// the check (what it counts, or what it expects) fails one of these.
@Suite struct FlowAuditTests {
    static let received = Timestamp.parse("2026-11-20T17:00:00+08:00")!

    static func subject(_ category: RedressDomain.Category, postClaim: Bool = false) -> ClockSubject {
        ClockSubject(receivedAt: received, priority: .normal, postClaim: postClaim, regulatorDeadline: nil, category: category)
    }

    static let complete = FlowAudit.Observed(assignments: 1, delivered: ["complaint.registered.acknowledgement": 1, "case.assigned.customer": 1],
                                             clocks: ["acknowledge", "first_contact", "decision", "update"])

    @Test func theExpectedClocksFollowThePolicy() {
        #expect(FlowAudit.expectedClocks(policy: .standard, subject: Self.subject(.claims)) == ["acknowledge", "first_contact", "decision", "update"])
        #expect(FlowAudit.expectedClocks(policy: .standard, subject: Self.subject(.sales)) == ["acknowledge", "first_contact", "decision"])
        #expect(FlowAudit.expectedClocks(policy: .standard, subject: Self.subject(.claims, postClaim: true)).contains("post_claim"))
    }

    @Test func aCompleteFlowHasNoShortfallAndEachGapIsNamed() {
        let claims = FlowAudit.expectedClocks(policy: .standard, subject: Self.subject(.claims))
        let owned = FlowAudit.impliedNotices(owned: true)
        #expect(FlowAudit.shortfalls(Self.complete, expectedClocks: claims, notices: owned).isEmpty)
        // Nobody could take it: no introduction is owed, the acknowledgement still is.
        var unowned = Self.complete
        unowned.delivered["case.assigned.customer"] = nil
        #expect(FlowAudit.shortfalls(unowned, expectedClocks: claims, notices: FlowAudit.impliedNotices(owned: false)).isEmpty)
        unowned.delivered["complaint.registered.acknowledgement"] = nil
        #expect(FlowAudit.shortfalls(unowned, expectedClocks: claims, notices: FlowAudit.impliedNotices(owned: false))
                == ["notice.missing:complaint.registered.acknowledgement"])
        var o = Self.complete
        o.assignments = 0
        #expect(FlowAudit.shortfalls(o, expectedClocks: claims, notices: owned) == ["assignment.missing"])
        o.assignments = 2
        #expect(FlowAudit.shortfalls(o, expectedClocks: claims, notices: owned) == ["assignment.duplicated"])
        o = Self.complete
        o.delivered["complaint.registered.acknowledgement"] = nil
        #expect(FlowAudit.shortfalls(o, expectedClocks: claims, notices: owned) == ["notice.missing:complaint.registered.acknowledgement"])
        o.delivered["complaint.registered.acknowledgement"] = 2
        #expect(FlowAudit.shortfalls(o, expectedClocks: claims, notices: owned) == ["notice.duplicated:complaint.registered.acknowledgement"])
        o = Self.complete
        o.delivered["case.assigned.customer"] = 0
        #expect(FlowAudit.shortfalls(o, expectedClocks: claims, notices: owned) == ["notice.missing:case.assigned.customer"])
        o = Self.complete
        o.clocks = ["acknowledge", "first_contact", "decision"]
        #expect(FlowAudit.shortfalls(o, expectedClocks: claims, notices: owned) == ["clock.missing:update"])
        o.clocks = ["acknowledge", "first_contact", "decision", "update", "update"]
        #expect(FlowAudit.shortfalls(o, expectedClocks: claims, notices: owned) == ["clock.duplicated:update"])
        o.clocks = ["acknowledge", "first_contact", "decision", "update", "post_claim"]
        #expect(FlowAudit.shortfalls(o, expectedClocks: claims, notices: owned) == ["clock.unexpected:post_claim"])
    }
}
