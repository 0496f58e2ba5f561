import Foundation
import RedressDomain

// The oversight duties of the complaint-management rules (第五条–第七条): department inquiries,
// spot-checks, the coordination committee and the vexatious-complainant register. Each event is
// about one complaint (the envelope's `complaintId`); free text (questions, findings, reasons,
// guidance) stays in the database, where row-level security keeps it.

/// 转相关部门调查: the case owner (or, for litigation or media risk, the service) asked a department to investigate.
public struct InquiryOpened: EventPayload, Equatable {
    public static let eventType = EventType.inquiryOpened
    public var number: String
    public var inquiryId: UUID
    /// The unit and department asked.
    public var unit: String
    public var department: String
    public var dueAt: Date
    /// Opened by the service for a complaint routed with litigation or media risk (法律风险评估).
    public var automatic: Bool
    public init(number: String, inquiryId: UUID, unit: String, department: String, dueAt: Date, automatic: Bool) {
        self.number = number
        self.inquiryId = inquiryId
        self.unit = unit
        self.department = department
        self.dueAt = dueAt
        self.automatic = automatic
    }
}

/// The department's coordinator answered with findings and evidence.
public struct InquiryAnswered: EventPayload, Equatable {
    public static let eventType = EventType.inquiryAnswered
    public var number: String
    public var inquiryId: UUID
    public var unit: String
    public var department: String
    public var answeredBy: String
    /// Answered after the inquiry's due time.
    public var late: Bool
    public init(number: String, inquiryId: UUID, unit: String, department: String, answeredBy: String, late: Bool) {
        self.number = number
        self.inquiryId = inquiryId
        self.unit = unit
        self.department = department
        self.answeredBy = answeredBy
        self.late = late
    }
}

/// What a spot-check looks at: a "not liable" closure below a province, or a closed case's
/// satisfaction (HQ's 满意度抽查).
public enum SpotCheckKind: String, Sendable, Codable, CaseIterable {
    case notLiable = "not_liable"
    case satisfaction
}

/// A spot-check's verdict: the ruling stands, is revised, or the case is investigated again.
public enum SpotCheckVerdict: String, Sendable, Codable, CaseIterable {
    case upheld
    case revised
    case reinvestigate
}

/// 抽查: the case was drawn into a unit's sample.
public struct SpotCheckDrawn: EventPayload, Equatable {
    public static let eventType = EventType.spotCheckDrawn
    public var number: String
    public var spotCheckId: UUID
    public var kind: SpotCheckKind
    /// The unit that drew the sample, and the period it covers.
    public var drawingUnit: String
    public var period: String
    /// The unit that handled the case (the one assessed).
    public var handlingUnit: String
    public init(number: String, spotCheckId: UUID, kind: SpotCheckKind, drawingUnit: String, period: String, handlingUnit: String) {
        self.number = number
        self.spotCheckId = spotCheckId
        self.kind = kind
        self.drawingUnit = drawingUnit
        self.period = period
        self.handlingUnit = handlingUnit
    }
}

/// The verdict on a drawn case (修订、考核).
public struct SpotCheckDecided: EventPayload, Equatable {
    public static let eventType = EventType.spotCheckDecided
    public var number: String
    public var spotCheckId: UUID
    public var kind: SpotCheckKind
    public var drawingUnit: String
    public var handlingUnit: String
    public var verdict: SpotCheckVerdict
    /// For `revised`: the closure's new liability, responsible link and cause.
    public var liability: Liability?
    public var responsibleLink: String?
    public var causeCode: String?
    /// For `reinvestigate`: the review case opened at the handling unit.
    public var reviewCase: ComplaintReference?
    public init(number: String, spotCheckId: UUID, kind: SpotCheckKind, drawingUnit: String, handlingUnit: String, verdict: SpotCheckVerdict,
                liability: Liability? = nil, responsibleLink: String? = nil, causeCode: String? = nil, reviewCase: ComplaintReference? = nil) {
        self.number = number
        self.spotCheckId = spotCheckId
        self.kind = kind
        self.drawingUnit = drawingUnit
        self.handlingUnit = handlingUnit
        self.verdict = verdict
        self.liability = liability
        self.responsibleLink = responsibleLink
        self.causeCode = causeCode
        self.reviewCase = reviewCase
    }
}

/// 提交协调委员会: the case went to the committee, which must rule by `dueAt`.
public struct CommitteeReferred: EventPayload, Equatable {
    public static let eventType = EventType.committeeReferred
    public var number: String
    public var referralId: UUID
    public var handlingUnit: String
    public var dueAt: Date
    public init(number: String, referralId: UUID, handlingUnit: String, dueAt: Date) {
        self.number = number
        self.referralId = referralId
        self.handlingUnit = handlingUnit
        self.dueAt = dueAt
    }
}

/// The committee ruled: the closure must use this liability, responsible link and cause.
public struct CommitteeRuled: EventPayload, Equatable {
    public static let eventType = EventType.committeeRuled
    public var number: String
    public var referralId: UUID
    public var handlingUnit: String
    /// The committee members present (staff ids).
    public var members: [String]
    public var liability: Liability
    public var responsibleLink: String
    public var causeCode: String
    public init(number: String, referralId: UUID, handlingUnit: String, members: [String], liability: Liability, responsibleLink: String, causeCode: String) {
        self.number = number
        self.referralId = referralId
        self.handlingUnit = handlingUnit
        self.members = members
        self.liability = liability
        self.responsibleLink = responsibleLink
        self.causeCode = causeCode
    }
}

/// Where a register entry stands.
public enum RegisterStatus: String, Sendable, Codable, CaseIterable {
    case proposed, approved, rejected, expired
}

/// 无理缠访备案: an entry was proposed, approved, rejected, renewed or expired. The customer is named by
/// the keyed hash alone; `complaintId` is the latest case the entry cites.
public struct RegisterChanged: EventPayload, Equatable {
    public static let eventType = EventType.registerChanged
    public var entryId: UUID
    public var customerKey: String
    public var status: RegisterStatus
    /// `propose`, `approve`, `reject`, `renew` or `expire`.
    public var change: String
    public var unit: String
    /// Until when an approved entry holds, unless renewed.
    public var reviewAt: Date?
    public init(entryId: UUID, customerKey: String, status: RegisterStatus, change: String, unit: String, reviewAt: Date?) {
        self.entryId = entryId
        self.customerKey = customerKey
        self.status = status
        self.change = change
        self.unit = unit
        self.reviewAt = reviewAt
    }
}
