/// The states of a case. The raw values are the names in SQL, events and the API.
public enum CaseStatus: String, Sendable, Codable, CaseIterable {
    case registered
    case assigned
    case investigating
    case awaitingCustomer = "awaiting_customer"
    case resolutionProposed = "resolution_proposed"
    case resolved
    case closed
    case escalated
    case transferred

    /// Closed cases take no further action; everything else is open work.
    public var isOpen: Bool { self != .closed }
}

/// The actions that move a case. Each is one `case.*` event.
public enum CaseAction: String, Sendable, Codable, CaseIterable {
    case assign
    case startInvestigation = "start_investigation"
    case awaitCustomer = "await_customer"
    case customerResponded = "customer_responded"
    case proposeResolution = "propose_resolution"
    case customerAccepts = "customer_accepts"
    case customerRefuses = "customer_refuses"
    case close
    case escalate
    case transfer
}

public struct IllegalTransition: Error, Sendable, Equatable, CustomStringConvertible {
    public let from: CaseStatus
    public let action: CaseAction
    public let allowed: [CaseAction]

    public var description: String {
        let moves = allowed.map(\.rawValue).joined(separator: ", ")
        return "cannot \(action.rawValue) a case that is \(from.rawValue); allowed from \(from.rawValue): \(moves.isEmpty ? "none" : moves)"
    }
}

/// The case state machine, pure. `registered → assigned → investigating → resolution_proposed →
/// resolved → closed`, with `awaiting_customer`, `escalated` and `transferred` on the side.
/// Escalated and transferred cases return to `assigned` when routing names the new owner.
public enum CaseStateMachine {
    public static func next(from status: CaseStatus, on action: CaseAction) throws(IllegalTransition) -> CaseStatus {
        if let target = table[status]?[action] { return target }
        throw IllegalTransition(from: status, action: action, allowed: allowedActions(from: status))
    }

    public static func allowedActions(from status: CaseStatus) -> [CaseAction] {
        let moves = table[status] ?? [:]
        return CaseAction.allCases.filter { moves[$0] != nil }
    }

    private static let table: [CaseStatus: [CaseAction: CaseStatus]] = [
        .registered: [.assign: .assigned],
        .assigned: [.assign: .assigned, .startInvestigation: .investigating, .escalate: .escalated, .transfer: .transferred],
        .investigating: [
            .awaitCustomer: .awaitingCustomer, .proposeResolution: .resolutionProposed,
            .escalate: .escalated, .transfer: .transferred,
        ],
        .awaitingCustomer: [.customerResponded: .investigating, .escalate: .escalated],
        .resolutionProposed: [.customerAccepts: .resolved, .customerRefuses: .investigating, .escalate: .escalated],
        .resolved: [.close: .closed],
        .closed: [:],
        .escalated: [.assign: .assigned],
        .transferred: [.assign: .assigned],
    ]
}
