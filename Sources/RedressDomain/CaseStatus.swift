import Foundation

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
    /// 二次投诉 / 复核: the linked second case, created when a closed one comes back, until routing
    /// names its owner one level above the first.
    case reopened

    /// Closed cases take no further action; everything else is open work.
    public var isOpen: Bool { self != .closed }
}

/// The actions that move or annotate a case. Each is one row of `case_events` and one `case.*` event.
public enum CaseAction: String, Sendable, Codable, CaseIterable {
    /// Routing named the owner (first time, or after escalation, transfer or reopening).
    case assign
    /// A supervisor gave the case to another agent of their subtree; the state stays.
    case reassign
    case startInvestigation = "start_investigation"
    case awaitCustomer = "await_customer"
    case customerResponded = "customer_responded"
    case proposeResolution = "propose_resolution"
    case customerAccepts = "customer_accepts"
    case customerRefuses = "customer_refuses"
    case close
    case escalate
    case transfer
    /// The decision deadline moves from 15 to 30 or 60 days; the state stays.
    case extend
    /// 投诉处理协调委员会: major and difficult cases go to the unit's committee; the state stays.
    case referToCommittee = "refer_to_committee"
    case recordCommitteeRuling = "record_committee_ruling"
    /// Investigation notes, customer contacts and evidence references: on record, the state stays.
    case addNote = "add_note"
    case recordContact = "record_contact"
    case addEvidence = "add_evidence"
    /// 二次投诉 / 复核申请: the closed case stays closed and a new linked case opens one level up.
    case reopen
    /// Time the regulation excludes (an external appraisal, 外部鉴定) begins and ends: the pausing
    /// clocks stop counting in between; the state stays.
    case excludeTime = "exclude_time"
    case includeTime = "include_time"
    /// A supervisor corrects the category or the priority routing gave; the state stays and the
    /// clocks are rebuilt under the new values.
    case reclassify
    case reprioritise
    /// 返回重新调查: a supervisor of a level above returns the case to its owner with written
    /// guidance; it goes back to `investigating`.
    case sendBack = "send_back"
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
/// resolved → closed`, with `awaiting_customer`, `escalated`, `transferred` and `reopened` on the side.
/// Escalated, transferred and reopened cases return to `assigned` when routing names the new owner.
public enum CaseStateMachine {
    public static func next(from status: CaseStatus, on action: CaseAction) throws(IllegalTransition) -> CaseStatus {
        if let target = table[status]?[action] { return target }
        throw IllegalTransition(from: status, action: action, allowed: allowedActions(from: status))
    }

    public static func allowedActions(from status: CaseStatus) -> [CaseAction] {
        let moves = table[status] ?? [:]
        return CaseAction.allCases.filter { moves[$0] != nil }
    }

    /// Actions that change nothing but the record (and, for extend/reassign, a field): they keep the state.
    static func staying(_ status: CaseStatus, _ actions: [CaseAction]) -> [CaseAction: CaseStatus] {
        Dictionary(uniqueKeysWithValues: actions.map { ($0, status) })
    }

    private static let record: [CaseAction] = [.addNote, .recordContact, .addEvidence]
    /// Corrections a supervisor may make while the case is open and owned.
    private static let correct: [CaseAction] = [.reclassify, .reprioritise]

    private static let table: [CaseStatus: [CaseAction: CaseStatus]] = [
        .registered: [.assign: .assigned],
        .reopened: [.assign: .assigned],
        .assigned: staying(.assigned, [.assign, .reassign, .extend] + record + correct).merging([
            .startInvestigation: .investigating, .escalate: .escalated, .transfer: .transferred,
        ]) { $1 },
        .investigating: staying(.investigating, [.reassign, .extend, .referToCommittee, .recordCommitteeRuling, .excludeTime, .includeTime, .sendBack] + record + correct).merging([
            .awaitCustomer: .awaitingCustomer, .proposeResolution: .resolutionProposed,
            .escalate: .escalated, .transfer: .transferred,
        ]) { $1 },
        .awaitingCustomer: staying(.awaitingCustomer, [.reassign, .extend, .includeTime] + record + correct).merging([
            .customerResponded: .investigating, .escalate: .escalated,
        ]) { $1 },
        .resolutionProposed: staying(.resolutionProposed, [.reassign, .extend, .recordCommitteeRuling, .includeTime] + record + correct).merging([
            .customerAccepts: .resolved, .customerRefuses: .investigating, .escalate: .escalated, .sendBack: .investigating,
        ]) { $1 },
        // A resolved case waits for its owner to close it: a supervisor may give it to someone else.
        .resolved: staying(.resolved, [.reassign] + record).merging([.close: .closed, .sendBack: .investigating]) { $1 },
        .closed: [.reopen: .closed],
        .escalated: [.assign: .assigned, .addNote: .escalated],
        .transferred: [.assign: .assigned, .addNote: .transferred],
    ]
}

/// 答复期限: 15 days from receipt to decide and reply, extendable to 30 with a reason, and to 60 only
/// with the approval of a supervisor of the level above (the 2020 complaint-handling regulation).
public enum DecisionDeadline {
    public static let standardDays = 15
    public static let extendedDays = 30
    public static let maximumDays = 60

    /// The reply promised for a complaint received at `receivedAt`, with `days` to decide: the
    /// regulator's deadline when that is earlier (只取其早). The one place the promise is computed.
    public static func promise(receivedAt: Date, days: Int = standardDays, regulatorDeadline: Date? = nil) -> Date {
        let due = receivedAt.addingTimeInterval(Double(days) * 86_400)
        return regulatorDeadline.map { min($0, due) } ?? due
    }

    public struct Approver: Sendable, Equatable {
        public var staffID: String
        public var role: String
        public var unit: String
        public init(staffID: String, role: String, unit: String) {
            self.staffID = staffID
            self.role = role
            self.unit = unit
        }
    }

    public struct Refused: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// Checks an extension from `current` to `requested` days of a case handled at `handlingUnit`,
    /// whose parent is `parentUnit` (nil at HQ). Returns who approved it: the approver for 60 days,
    /// the requester for 30.
    public static func check(current: Int, requested: Int, reason: String, requester: String,
                             approver: Approver?, parentUnit: String?, handlingUnit: String) throws(Refused) -> String {
        guard requested == extendedDays || requested == maximumDays else {
            throw Refused(description: "a decision deadline extends to \(extendedDays) or \(maximumDays) days, not \(requested)")
        }
        guard requested > current else {
            throw Refused(description: "the decision deadline is already \(current) days; it can only be extended beyond that")
        }
        guard !reason.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw Refused(description: "an extension needs a reason the customer will be told")
        }
        guard requested == maximumDays else { return requester }
        guard let approver else {
            throw Refused(description: "extending to \(maximumDays) days needs the approval of a supervisor of the level above: name them in approvedBy")
        }
        // At HQ there is no level above: HQ's own supervisors approve.
        let requiredUnit = parentUnit ?? handlingUnit
        guard approver.role == "supervisor", approver.unit == requiredUnit else {
            throw Refused(description: "\(approver.staffID) cannot approve: extending to \(maximumDays) days needs a supervisor of \(requiredUnit), the level above \(handlingUnit)")
        }
        return approver.staffID
    }
}

/// 结案: a closure needs liability, the responsible link (责任环节) and a cause code, both from the
/// deployment's taxonomy. A "not liable" ruling below province level goes to the province for spot-check.
public struct ClosureTaxonomy: Sendable, Codable, Equatable {
    public struct Entry: Sendable, Codable, Equatable {
        public var code: String
        public var name: String
        public init(code: String, name: String) {
            self.code = code
            self.name = name
        }
    }

    public var responsibleLinks: [Entry]
    public var causes: [Entry]

    public init(responsibleLinks: [Entry], causes: [Entry]) {
        self.responsibleLinks = responsibleLinks
        self.causes = causes
    }

    /// Every problem with a closure, at once; empty when it may close.
    public func problems(liability: String?, responsibleLink: String?, causeCode: String?) -> [String] {
        var problems: [String] = []
        if liability.flatMap(Liability.init(rawValue:)) == nil {
            problems.append("liability must be one of \(Liability.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let link = responsibleLink, responsibleLinks.contains(where: { $0.code == link }) {} else {
            problems.append("responsibleLink must be one of \(responsibleLinks.map(\.code).joined(separator: ", "))")
        }
        if let cause = causeCode, causes.contains(where: { $0.code == cause }) {} else {
            problems.append("causeCode must be one of \(causes.map(\.code).joined(separator: ", "))")
        }
        return problems
    }

    /// 抽查: "not liable" decided at city level or below is spot-checked by the province.
    public static func needsSpotCheck(liability: Liability, unitLevel: OrgLevel) -> Bool {
        liability == .notLiable && (unitLevel == .city || unitLevel == .county)
    }
}
