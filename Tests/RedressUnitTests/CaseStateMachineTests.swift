import Testing
@testable import RedressDomain

@Suite struct CaseStateMachineTests {
    /// The whole table, written out independently of the implementation: every state × every
    /// action is either this target or refused.
    static let expected: [CaseStatus: [CaseAction: CaseStatus]] = [
        .registered: [.assign: .assigned],
        .reopened: [.assign: .assigned],
        .assigned: [
            .assign: .assigned, .reassign: .assigned, .extend: .assigned, .addNote: .assigned, .recordContact: .assigned, .addEvidence: .assigned,
            .startInvestigation: .investigating, .escalate: .escalated, .transfer: .transferred,
            .reclassify: .assigned, .reprioritise: .assigned,
        ],
        .investigating: [
            .reassign: .investigating, .extend: .investigating, .referToCommittee: .investigating, .recordCommitteeRuling: .investigating,
            .excludeTime: .investigating, .includeTime: .investigating,
            .addNote: .investigating, .recordContact: .investigating, .addEvidence: .investigating,
            .awaitCustomer: .awaitingCustomer, .proposeResolution: .resolutionProposed, .escalate: .escalated, .transfer: .transferred,
            .reclassify: .investigating, .reprioritise: .investigating, .sendBack: .investigating,
        ],
        .awaitingCustomer: [
            .reassign: .awaitingCustomer, .extend: .awaitingCustomer, .includeTime: .awaitingCustomer, .addNote: .awaitingCustomer, .recordContact: .awaitingCustomer,
            .addEvidence: .awaitingCustomer, .customerResponded: .investigating, .escalate: .escalated,
            .reclassify: .awaitingCustomer, .reprioritise: .awaitingCustomer,
        ],
        .resolutionProposed: [
            .reassign: .resolutionProposed, .extend: .resolutionProposed, .recordCommitteeRuling: .resolutionProposed, .includeTime: .resolutionProposed,
            .addNote: .resolutionProposed, .recordContact: .resolutionProposed, .addEvidence: .resolutionProposed,
            .customerAccepts: .resolved, .customerRefuses: .investigating, .escalate: .escalated,
            .reclassify: .resolutionProposed, .reprioritise: .resolutionProposed, .sendBack: .investigating,
        ],
        .resolved: [.reassign: .resolved, .addNote: .resolved, .recordContact: .resolved, .addEvidence: .resolved, .close: .closed, .sendBack: .investigating],
        .closed: [.reopen: .closed],
        .escalated: [.assign: .assigned, .addNote: .escalated],
        .transferred: [.assign: .assigned, .addNote: .transferred],
    ]

    @Test(arguments: CaseStatus.allCases)
    func everyActionFromEveryState(_ status: CaseStatus) {
        for action in CaseAction.allCases {
            if let target = Self.expected[status]?[action] {
                #expect((try? CaseStateMachine.next(from: status, on: action)) == target, "\(status) --\(action)--> \(target)")
            } else {
                #expect(throws: IllegalTransition.self, "\(status) must refuse \(action)") {
                    try CaseStateMachine.next(from: status, on: action)
                }
            }
        }
    }

    @Test func refusalNamesTheStateAndTheAllowedMoves() {
        do {
            _ = try CaseStateMachine.next(from: .registered, on: .close)
            Issue.record("closing a registered case must be refused")
        } catch {
            #expect(error.description == "cannot close a case that is registered; allowed from registered: assign")
        }
    }

    @Test func closedOnlyReopensAndEverythingElseIsOpen() {
        #expect(CaseStateMachine.allowedActions(from: .closed) == [.reopen])
        #expect(CaseStatus.allCases.filter { !$0.isOpen } == [.closed])
    }

    @Test func theMainPathReachesClosedOnlyThroughEveryStep() throws {
        var status = CaseStatus.registered
        for action: CaseAction in [.assign, .startInvestigation, .proposeResolution, .customerAccepts, .close] {
            status = try CaseStateMachine.next(from: status, on: action)
        }
        #expect(status == .closed)
        #expect(throws: IllegalTransition.self) { try CaseStateMachine.next(from: .investigating, on: .close) }
        #expect(throws: IllegalTransition.self) { try CaseStateMachine.next(from: .assigned, on: .proposeResolution) }
    }
}

@Suite struct DecisionDeadlineTests {
    let supervisorAbove = DecisionDeadline.Approver(staffID: "GD-SUP01", role: "supervisor", unit: "GD")

    @Test func thirtyDaysNeedsOnlyAReason() throws {
        let approved = try DecisionDeadline.check(current: 15, requested: 30, reason: "等待鉴定结果", requester: "GD-SZ-AGE01",
                                                  approver: nil, parentUnit: "GD", handlingUnit: "GD-SZ")
        #expect(approved == "GD-SZ-AGE01")
        #expect(throws: DecisionDeadline.Refused.self) {
            try DecisionDeadline.check(current: 15, requested: 30, reason: "  ", requester: "a", approver: nil, parentUnit: "GD", handlingUnit: "GD-SZ")
        }
    }

    @Test func sixtyDaysNeedsASupervisorOfTheLevelAbove() throws {
        #expect(try DecisionDeadline.check(current: 30, requested: 60, reason: "重大案件", requester: "GD-SZ-AGE01",
                                           approver: supervisorAbove, parentUnit: "GD", handlingUnit: "GD-SZ") == "GD-SUP01")
        for approver: DecisionDeadline.Approver? in [
            nil,
            .init(staffID: "GD-SZ-SUP01", role: "supervisor", unit: "GD-SZ"), // same level
            .init(staffID: "GD-AGE01", role: "agent", unit: "GD"), // not a supervisor
            .init(staffID: "HQ-SUP01", role: "supervisor", unit: "HQ"), // two levels up
        ] {
            #expect(throws: DecisionDeadline.Refused.self, "\(String(describing: approver))") {
                try DecisionDeadline.check(current: 30, requested: 60, reason: "r", requester: "x", approver: approver, parentUnit: "GD", handlingUnit: "GD-SZ")
            }
        }
        // HQ has no level above: its own supervisors approve.
        #expect(try DecisionDeadline.check(current: 15, requested: 60, reason: "r", requester: "x",
                                           approver: .init(staffID: "HQ-SUP01", role: "supervisor", unit: "HQ"), parentUnit: nil, handlingUnit: "HQ") == "HQ-SUP01")
    }

    @Test func onlyThirtyOrSixtyAndOnlyForward() {
        for (current, requested) in [(15, 20), (15, 15), (30, 30), (60, 60), (30, 90), (60, 30)] {
            #expect(throws: DecisionDeadline.Refused.self, "\(current) → \(requested)") {
                try DecisionDeadline.check(current: current, requested: requested, reason: "r", requester: "x",
                                           approver: supervisorAbove, parentUnit: "GD", handlingUnit: "GD-SZ")
            }
        }
    }
}

@Suite struct ClosureTaxonomyTests {
    let taxonomy = ClosureTaxonomy(responsibleLinks: [.init(code: "claims", name: "理赔")], causes: [.init(code: "claim_delay", name: "理赔时效")])

    @Test func aClosureNeedsAllThreeFromTheTaxonomy() {
        #expect(taxonomy.problems(liability: "liable", responsibleLink: "claims", causeCode: "claim_delay").isEmpty)
        #expect(taxonomy.problems(liability: "maybe", responsibleLink: "sales", causeCode: nil).count == 3)
        #expect(taxonomy.problems(liability: "not_liable", responsibleLink: "claims", causeCode: "unknown")
            == ["causeCode must be one of claim_delay"])
    }

    @Test func notLiableBelowProvinceIsSpotChecked() {
        #expect(ClosureTaxonomy.needsSpotCheck(liability: .notLiable, unitLevel: .city))
        #expect(ClosureTaxonomy.needsSpotCheck(liability: .notLiable, unitLevel: .county))
        #expect(!ClosureTaxonomy.needsSpotCheck(liability: .notLiable, unitLevel: .province))
        #expect(!ClosureTaxonomy.needsSpotCheck(liability: .liable, unitLevel: .city))
    }
}
