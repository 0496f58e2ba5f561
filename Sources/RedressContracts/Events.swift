import Foundation
import RedressDomain

/// The customer as events carry them: the name masked, and a keyed hash other services match on.
/// No masked phone or ID number rides beside the hash: with the key, a masked number's hidden
/// digits could be found by trying the few thousand candidates; a service that must reach the
/// customer reads the number from the complaint row at send time.
public struct MaskedCustomer: Sendable, Codable, Equatable {
    public var name: String
    /// HMAC-SHA256 of the normalised phone number under the deployment's key: the same customer
    /// always has the same key, and the number cannot be recovered from it.
    public var key: String
    public var flags: [CustomerFlag]

    public init(name: String, key: String, flags: [CustomerFlag]) {
        self.name = name
        self.key = key
        self.flags = flags
    }
}

/// Another complaint, by id and by the number people read out.
public struct ComplaintReference: Sendable, Codable, Equatable, Hashable {
    public var id: UUID
    public var number: String

    public init(id: UUID, number: String) {
        self.id = id
        self.number = number
    }
}

/// 受理: a complaint was registered and numbered.
public struct ComplaintRegistered: EventPayload, Equatable {
    public static let eventType = EventType.complaintRegistered

    public var number: String
    public var channel: Channel
    public var externalRef: String
    public var receivedAt: Date
    public var registeredAt: Date
    /// 承诺处理时间 — the reply date promised to the customer.
    public var promisedReplyBy: Date
    /// The branch the customer belongs to (the receiving unit).
    public var branch: String
    public var customer: MaskedCustomer
    public var policyNumber: String?
    public var claimNumber: String?
    public var claimStage: String?
    /// Subject and content with phone and ID numbers masked.
    public var subject: String
    public var content: String
    public var regulatorCaseNumber: String?
    public var regulatorDeadline: Date?
    /// 重复投诉: the same customer's still-open complaint about the same policy or claim, which this one repeats.
    public var repeatOf: ComplaintReference?
    /// 可能的二次投诉: the same customer's complaint closed within the configured window (30 days):
    /// this one may be a second complaint about it, for the handler to check.
    public var possibleSecondOf: ComplaintReference?
    /// References to the customer's evidence (document store URIs; never the documents).
    public var attachments: [AttachmentReference]
    /// Staff who must not own this complaint (they sold the policy or handled the claim).
    public var policyAgent: String?
    public var claimHandler: String?

    public init(
        number: String, channel: Channel, externalRef: String, receivedAt: Date, registeredAt: Date,
        promisedReplyBy: Date, branch: String, customer: MaskedCustomer, policyNumber: String?,
        claimNumber: String?, claimStage: String?, subject: String, content: String,
        regulatorCaseNumber: String?, regulatorDeadline: Date?, repeatOf: ComplaintReference? = nil,
        policyAgent: String? = nil, claimHandler: String? = nil, attachments: [AttachmentReference] = [],
        possibleSecondOf: ComplaintReference? = nil
    ) {
        self.possibleSecondOf = possibleSecondOf
        self.number = number
        self.channel = channel
        self.externalRef = externalRef
        self.receivedAt = receivedAt
        self.registeredAt = registeredAt
        self.promisedReplyBy = promisedReplyBy
        self.branch = branch
        self.customer = customer
        self.policyNumber = policyNumber
        self.claimNumber = claimNumber
        self.claimStage = claimStage
        self.subject = subject
        self.content = content
        self.regulatorCaseNumber = regulatorCaseNumber
        self.regulatorDeadline = regulatorDeadline
        self.repeatOf = repeatOf
        self.policyAgent = policyAgent
        self.claimHandler = claimHandler
        self.attachments = attachments
    }
}

/// 分流/指派: routing decided category, priority, handling unit and owner.
public struct ComplaintAssigned: EventPayload, Equatable {
    public static let eventType = EventType.complaintAssigned

    public enum Reason: String, Sendable, Codable {
        case initial, escalated, transferred, reopened
    }

    public var number: String
    public var category: Category
    public var priority: Priority
    public var handlingUnit: String
    /// The staff id of the owner, or nil when nobody eligible was found and the case waits in the unit's supervisor queue.
    public var assignee: String?
    public var ruleIds: [String]
    public var rulesVersion: String
    public var reason: Reason

    public init(number: String, category: Category, priority: Priority, handlingUnit: String, assignee: String?, ruleIds: [String], rulesVersion: String, reason: Reason) {
        self.number = number
        self.category = category
        self.priority = priority
        self.handlingUnit = handlingUnit
        self.assignee = assignee
        self.ruleIds = ruleIds
        self.rulesVersion = rulesVersion
        self.reason = reason
    }
}

/// Nobody eligible could take a complaint: it waits in the unit's supervisor queue. An alert for the unit's supervisors.
public struct ComplaintUnassignable: EventPayload, Equatable {
    public static let eventType = EventType.complaintUnassignable

    public var number: String
    public var handlingUnit: String
    public var category: Category
    public var priority: Priority
    /// Why: which requirement nobody met (capacity, skill, availability, conflict of interest).
    public var reason: String

    public init(number: String, handlingUnit: String, category: Category, priority: Priority, reason: String) {
        self.number = number
        self.handlingUnit = handlingUnit
        self.category = category
        self.priority = priority
        self.reason = reason
    }
}

/// A case changed state. One payload shape for every `case.*` event: what changed, from what, to what, why.
public struct CaseTransition: Sendable, Codable, Equatable {
    public var number: String
    public var fromStatus: CaseStatus
    public var toStatus: CaseStatus
    public var handlingUnit: String
    public var assignee: String?
    public var reason: String?
    public var caseVersion: Int
    /// The action taken; several actions keep the state (notes, extensions, reassignment).
    public var action: CaseAction?

    public init(number: String, fromStatus: CaseStatus, toStatus: CaseStatus, handlingUnit: String, assignee: String?, reason: String?,
                caseVersion: Int, action: CaseAction? = nil) {
        self.action = action
        self.number = number
        self.fromStatus = fromStatus
        self.toStatus = toStatus
        self.handlingUnit = handlingUnit
        self.assignee = assignee
        self.reason = reason
        self.caseVersion = caseVersion
    }
}

public struct CaseAssigned: EventPayload, Equatable {
    public static let eventType = EventType.caseAssigned
    public var transition: CaseTransition
    public init(transition: CaseTransition) { self.transition = transition }
}

/// 升级: the case goes one level up the tree (the customer went over the branch's head, or a
/// deadline was missed); routing names the new unit and owner.
public struct CaseEscalated: EventPayload, Equatable {
    public static let eventType = EventType.caseEscalated
    public var transition: CaseTransition
    public init(transition: CaseTransition) { self.transition = transition }
}

/// 转办: the case goes sideways or down to the unit named.
public struct CaseTransferred: EventPayload, Equatable {
    public static let eventType = EventType.caseTransferred
    public var transition: CaseTransition
    public var targetUnit: String
    public init(transition: CaseTransition, targetUnit: String) {
        self.transition = transition
        self.targetUnit = targetUnit
    }
}

/// 二次投诉: a closed complaint comes back as a new, linked case, handled one level above the first.
public struct CaseReopened: EventPayload, Equatable {
    public static let eventType = EventType.caseReopened
    public var transition: CaseTransition
    public var reopenedFrom: ComplaintReference
    public var firstHandlingUnit: String
    public init(transition: CaseTransition, reopenedFrom: ComplaintReference, firstHandlingUnit: String) {
        self.transition = transition
        self.reopenedFrom = reopenedFrom
        self.firstHandlingUnit = firstHandlingUnit
    }
}

public struct CaseClosed: EventPayload, Equatable {
    public static let eventType = EventType.caseClosed
    public var transition: CaseTransition
    public var liability: Liability
    public var responsibleLink: String
    public var causeCode: String
    /// 抽查: a "not liable" ruling below province level, marked for the province to spot-check.
    public var spotCheck: Bool
    /// 处理结果: what the customer is told was decided, written for them (others' personal data scrubbed).
    public var outcome: String?
    public init(transition: CaseTransition, liability: Liability, responsibleLink: String, causeCode: String, spotCheck: Bool = false,
                outcome: String? = nil) {
        self.transition = transition
        self.liability = liability
        self.responsibleLink = responsibleLink
        self.causeCode = causeCode
        self.spotCheck = spotCheck
        self.outcome = outcome
    }
}

/// 延期: the decision deadline moved to 30 or 60 days. The customer must be told (notify), and the
/// decision clock moves with it (supervisor).
public struct CaseExtended: EventPayload, Equatable {
    public static let eventType = EventType.caseExtended
    public var transition: CaseTransition
    public var decisionDays: Int
    public var promisedReplyBy: Date
    /// Staff id of who approved: the requester for 30 days, a supervisor of the level above for 60.
    public var approvedBy: String
    public init(transition: CaseTransition, decisionDays: Int, promisedReplyBy: Date, approvedBy: String) {
        self.transition = transition
        self.decisionDays = decisionDays
        self.promisedReplyBy = promisedReplyBy
        self.approvedBy = approvedBy
    }
}

/// Every other change of a case: investigation started, waiting for the customer and back, a
/// resolution proposed, accepted or refused, reassignment, committee referral and ruling, notes,
/// contacts and evidence. `transition.action` says which; notes' text stays in the database.
public struct CaseUpdated: EventPayload, Equatable {
    public static let eventType = EventType.caseUpdated
    public var transition: CaseTransition
    /// For `record_contact`: when the handler promised to contact the customer next; for
    /// `await_customer`: by when the customer is asked to answer.
    public var nextContactAt: Date?
    /// For `propose_resolution`: the proposal; for `await_customer`: what the customer is asked for.
    /// Written for the customer, personal data scrubbed.
    public var customerText: String?
    public init(transition: CaseTransition, nextContactAt: Date? = nil, customerText: String? = nil) {
        self.transition = transition
        self.nextContactAt = nextContactAt
        self.customerText = customerText
    }
}

/// A deadline is near (`sla.warning`) or missed (`sla.breached`).
public struct SLAClockEvent: Sendable, Codable, Equatable {
    public var number: String
    public var clock: ClockKind
    public var startedAt: Date
    public var dueAt: Date
    public var handlingUnit: String
    public var assignee: String?
    /// Whether a breach escalates the case one level up (the policy's say), or only alerts.
    public var escalates: Bool

    public init(number: String, clock: ClockKind, startedAt: Date, dueAt: Date, handlingUnit: String, assignee: String?, escalates: Bool = true) {
        self.escalates = escalates
        self.number = number
        self.clock = clock
        self.startedAt = startedAt
        self.dueAt = dueAt
        self.handlingUnit = handlingUnit
        self.assignee = assignee
    }
}

public struct SLAWarning: EventPayload, Equatable {
    public static let eventType = EventType.slaWarning
    public var clock: SLAClockEvent
    public init(clock: SLAClockEvent) { self.clock = clock }
}

public struct SLABreached: EventPayload, Equatable {
    public static let eventType = EventType.slaBreached
    public var clock: SLAClockEvent
    public init(clock: SLAClockEvent) { self.clock = clock }
}

/// A return visit (回访) found the customer dissatisfied: score 1–2 or "not resolved". The case
/// service reopens the case as a second complaint, handled one level up.
public struct SurveyDissatisfied: EventPayload, Equatable {
    public static let eventType = EventType.surveyDissatisfied
    public var surveyId: UUID
    public var number: String
    public var wave: String
    public var score: Int
    public var resolved: Bool
    /// The customer's words, personal data masked.
    public var comment: String?
    public var answeredAt: Date

    public init(surveyId: UUID, number: String, wave: String, score: Int, resolved: Bool, comment: String?, answeredAt: Date) {
        self.surveyId = surveyId
        self.number = number
        self.wave = wave
        self.score = score
        self.resolved = resolved
        self.comment = comment
        self.answeredAt = answeredAt
    }
}

/// Who a notification went to: a customer (by key) or a staff member, with the address masked.
public struct NotificationRecipient: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable {
        case customer, staff
    }

    public var kind: Kind
    public var id: String
    public var address: String?

    public init(kind: Kind, id: String, address: String?) {
        self.kind = kind
        self.id = id
        self.address = address
    }
}

/// 告知 evidence: a gateway or mail server accepted the message.
public struct NotificationDelivered: EventPayload, Equatable {
    public static let eventType = EventType.notificationDelivered
    public var notificationId: UUID
    public var number: String
    public var template: String
    public var channel: String
    public var recipient: NotificationRecipient
    public var sourceEventId: UUID
    public var attempt: Int
    public var gatewayMessageId: String?
    public var deliveredAt: Date

    public init(notificationId: UUID, number: String, template: String, channel: String, recipient: NotificationRecipient,
                sourceEventId: UUID, attempt: Int, gatewayMessageId: String?, deliveredAt: Date) {
        self.notificationId = notificationId
        self.number = number
        self.template = template
        self.channel = channel
        self.recipient = recipient
        self.sourceEventId = sourceEventId
        self.attempt = attempt
        self.gatewayMessageId = gatewayMessageId
        self.deliveredAt = deliveredAt
    }
}

/// The last try failed (or the first could never work): the customer was not told this way.
public struct NotificationFailed: EventPayload, Equatable {
    public static let eventType = EventType.notificationFailed
    public var notificationId: UUID
    public var number: String
    public var template: String
    public var channel: String
    public var recipient: NotificationRecipient
    public var sourceEventId: UUID
    public var attempts: Int
    public var error: String
    public var failedAt: Date

    public init(notificationId: UUID, number: String, template: String, channel: String, recipient: NotificationRecipient,
                sourceEventId: UUID, attempts: Int, error: String, failedAt: Date) {
        self.notificationId = notificationId
        self.number = number
        self.template = template
        self.channel = channel
        self.recipient = recipient
        self.sourceEventId = sourceEventId
        self.attempts = attempts
        self.error = error
        self.failedAt = failedAt
    }
}

/// 回访 invitation: a return visit is due. The link carries a single-use token (only its hash is
/// stored); notify sends it to the customer.
public struct SurveyRequested: EventPayload, Equatable {
    public static let eventType = EventType.surveyRequested
    public var surveyId: UUID
    public var number: String
    public var wave: String
    public var requestedAt: Date
    public var expiresAt: Date

    /// No link: it is a live credential, kept in `surveys.link` for notify to read at send time.
    public init(surveyId: UUID, number: String, wave: String, requestedAt: Date, expiresAt: Date) {
        self.surveyId = surveyId
        self.number = number
        self.wave = wave
        self.requestedAt = requestedAt
        self.expiresAt = expiresAt
    }
}

/// A return visit answered: the score (1–5), whether the customer says it is resolved, their words.
public struct SurveyAnswered: EventPayload, Equatable {
    public static let eventType = EventType.surveyAnswered
    public var surveyId: UUID
    public var number: String
    public var wave: String
    public var score: Int
    public var resolved: Bool
    public var satisfied: Bool
    public var comment: String?
    public var answeredAt: Date

    public init(surveyId: UUID, number: String, wave: String, score: Int, resolved: Bool, satisfied: Bool, comment: String?, answeredAt: Date) {
        self.surveyId = surveyId
        self.number = number
        self.wave = wave
        self.score = score
        self.resolved = resolved
        self.satisfied = satisfied
        self.comment = comment
        self.answeredAt = answeredAt
    }
}

/// 投诉进度查询: the customer asked to see their complaint's status; notify sends the one-time code
/// to the contact on file. The code is a credential for ten minutes: only its hash is stored by
/// surveys, and notify keeps the sent text without it.
public struct StatusCodeRequested: EventPayload, Equatable {
    public static let eventType = EventType.statusCodeRequested
    public var number: String
    /// The `status_codes` row: the code itself is a credential, so it stays in the database, where
    /// notify reads it to text it to the customer.
    public var codeId: UUID
    public var expiresAt: Date

    public init(number: String, codeId: UUID, expiresAt: Date) {
        self.number = number
        self.codeId = codeId
        self.expiresAt = expiresAt
    }
}
