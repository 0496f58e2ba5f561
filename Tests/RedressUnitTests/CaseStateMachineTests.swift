import Testing
@testable import RedressDomain

@Suite struct CaseStateMachineTests {
    /// The whole table, written out: every state × every action is either this target or refused.
    static let expected: [CaseStatus: [CaseAction: CaseStatus]] = [
        .registered: [.assign: .assigned],
        .assigned: [.assign: .assigned, .startInvestigation: .investigating, .escalate: .escalated, .transfer: .transferred],
        .investigating: [.awaitCustomer: .awaitingCustomer, .proposeResolution: .resolutionProposed, .escalate: .escalated, .transfer: .transferred],
        .awaitingCustomer: [.customerResponded: .investigating, .escalate: .escalated],
        .resolutionProposed: [.customerAccepts: .resolved, .customerRefuses: .investigating, .escalate: .escalated],
        .resolved: [.close: .closed],
        .closed: [:],
        .escalated: [.assign: .assigned],
        .transferred: [.assign: .assigned],
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

    @Test func closedIsFinalAndEverythingElseIsOpen() {
        #expect(CaseStateMachine.allowedActions(from: .closed).isEmpty)
        #expect(CaseStatus.allCases.filter { !$0.isOpen } == [.closed])
    }
}
