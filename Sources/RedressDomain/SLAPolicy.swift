import Foundation

/// Whether a clock counts every second or only the region's working time.
public enum ClockTime: String, Sendable, Codable {
    case calendar
    case working
}

/// One clock of the deployment's policy (`deploy/sla/policy.json`).
public struct ClockRule: Sendable, Codable, Equatable {
    public var kind: ClockKind
    /// Length in hours of `time` (calendar hours, or working hours of the region's calendar).
    public var hours: Double
    public var time: ClockTime
    /// Urgent complaints get `urgentFactor` of the length.
    public var urgentShortens: Bool
    /// Time in `awaiting_customer` (and excluded by the regulation, such as an external appraisal) does not count.
    public var pauses: Bool
    /// Actions that meet the clock: the first of them stops it. Closing stops every clock.
    public var stopsOn: [CaseAction]
    /// Which complaints get the clock: all, or only those with a claim stage of post-claim.
    public var appliesTo: Scope
    /// A notice whose delivery meets the clock (the acknowledgement, for 告知受理), by template id.
    public var stopsOnNotice: String?
    /// Whether missing it escalates the case one level up, or only alerts the owner and the unit's supervisors.
    public var escalates: Bool
    /// Actions that start the clock afresh (a recorded contact restarts the update clock); nil: none.
    public var restartsOn: [CaseAction]?
    /// Only complaints of these categories get the clock; nil: every category.
    public var categories: [Category]?

    public enum Scope: String, Sendable, Codable {
        case all
        case postClaim = "post_claim"
    }

    public init(kind: ClockKind, hours: Double, time: ClockTime, urgentShortens: Bool, pauses: Bool, stopsOn: [CaseAction], appliesTo: Scope = .all,
                stopsOnNotice: String? = nil, escalates: Bool = true, restartsOn: [CaseAction]? = nil, categories: [Category]? = nil) {
        self.restartsOn = restartsOn
        self.categories = categories
        self.stopsOnNotice = stopsOnNotice
        self.escalates = escalates
        self.kind = kind
        self.hours = hours
        self.time = time
        self.urgentShortens = urgentShortens
        self.pauses = pauses
        self.stopsOn = stopsOn
        self.appliesTo = appliesTo
    }
}

extension ClockRule {
    /// Whether a complaint gets this clock: post-claim questions only for a post-claim clock, and only
    /// the categories a clock names.
    public func applies(to subject: ClockSubject) -> Bool {
        // An inquiry's or a referral's clock runs on its own row, not on every complaint.
        if !kind.perComplaint { return false }
        if appliesTo == .postClaim && !subject.postClaim { return false }
        if let categories, !categories.contains(subject.category ?? .other) { return false }
        return true
    }
}

/// The per-deployment SLA policy: which clocks run, how long, in which time, and when to warn.
public struct SLAPolicy: Sendable, Codable, Equatable {
    /// Warn at this share of a clock's length (default 0.8).
    public var warnShare: Double
    /// Urgent complaints' clocks that shorten run for this share of their length.
    public var urgentFactor: Double
    public var clocks: [ClockRule]

    public init(warnShare: Double, urgentFactor: Double, clocks: [ClockRule]) {
        self.warnShare = warnShare
        self.urgentFactor = urgentFactor
        self.clocks = clocks
    }

    /// Every problem with the policy at once; empty when usable.
    public func problems() -> [String] {
        var problems: [String] = []
        if !(warnShare > 0 && warnShare < 1) { problems.append("warnShare must be between 0 and 1 (exclusive), not \(warnShare)") }
        if !(urgentFactor > 0 && urgentFactor <= 1) { problems.append("urgentFactor must be above 0 and at most 1, not \(urgentFactor)") }
        let kinds = clocks.map(\.kind)
        for kind in Set(kinds) where kinds.filter({ $0 == kind }).count > 1 { problems.append("clock \(kind.rawValue) is listed twice") }
        for rule in clocks where !(rule.hours > 0) { problems.append("clock \(rule.kind.rawValue) needs hours above 0") }
        if !kinds.contains(.decision) { problems.append("the decision clock (15 days, regulation) must be in the policy") }
        // The regulation counts the decision's days (and its 30- and 60-day extensions) in calendar time.
        if clocks.contains(where: { $0.kind == .decision && $0.time == .working }) { problems.append("the decision clock counts calendar days (the regulation's), not working time") }
        return problems
    }

    public static let standard = SLAPolicy(warnShare: 0.8, urgentFactor: 0.5, clocks: [
        // A reopened case was acknowledged when the review request was taken: its own reopening meets the clock.
        ClockRule(kind: .acknowledge, hours: 24, time: .calendar, urgentShortens: false, pauses: false, stopsOn: [.reopen],
                  stopsOnNotice: "complaint.registered.acknowledgement", escalates: false),
        ClockRule(kind: .firstContact, hours: 24, time: .calendar, urgentShortens: true, pauses: false, stopsOn: [.startInvestigation, .recordContact]),
        ClockRule(kind: .postClaim, hours: 48, time: .calendar, urgentShortens: true, pauses: true, stopsOn: [.proposeResolution], appliesTo: .postClaim),
        ClockRule(kind: .decision, hours: Double(DecisionDeadline.standardDays * 24), time: .calendar, urgentShortens: false, pauses: true, stopsOn: [.close]),
        // 每日更新处理状态 for claims (the claims-service rules, seed 002): restarted by each contact.
        ClockRule(kind: .update, hours: 24, time: .calendar, urgentShortens: false, pauses: true, stopsOn: [], escalates: false,
                  restartsOn: [.recordContact], categories: [.claims]),
        inquiryDefault,
        rulingDefault,
    ])

    /// 3 working days of 7.5 hours (the CN calendar's 09:00–12:00 and 13:30–18:00).
    public static let inquiryDefault = ClockRule(kind: .inquiry, hours: 22.5, time: .working, urgentShortens: false, pauses: false, stopsOn: [],
                                                 escalates: false)
    /// 10 working days.
    public static let rulingDefault = ClockRule(kind: .ruling, hours: 75, time: .working, urgentShortens: false, pauses: false, stopsOn: [],
                                                escalates: false)

    /// When a clock of `kind` that starts at `start` warns and falls due: for the clocks that run per
    /// inquiry or referral (a policy without them uses the defaults above).
    public func deadline(_ kind: ClockKind, from start: Date, calendar: WorkingCalendar) -> (warnAt: Date, dueAt: Date) {
        let rule = clocks.first { $0.kind == kind } ?? (kind == .inquiry ? Self.inquiryDefault : Self.rulingDefault)
        let length = rule.hours * 3600
        func instant(_ seconds: Double) -> Date {
            switch rule.time {
            case .calendar: start.addingTimeInterval(seconds)
            case .working: calendar.adding(workingSeconds: Int(seconds.rounded()), to: start)
            }
        }
        return (instant(length * warnShare), instant(length))
    }
}

/// What a clock needs to know about its complaint.
public struct ClockSubject: Sendable, Equatable {
    public var receivedAt: Date
    public var priority: Priority
    public var postClaim: Bool
    public var regulatorDeadline: Date?
    /// When each notice was first delivered, by template id.
    public var notices: [String: Date]
    public var category: Category?
    public init(receivedAt: Date, priority: Priority, postClaim: Bool, regulatorDeadline: Date?, notices: [String: Date] = [:], category: Category? = nil) {
        self.category = category
        self.notices = notices
        self.receivedAt = receivedAt
        self.priority = priority
        self.postClaim = postClaim
        self.regulatorDeadline = regulatorDeadline
    }
}

/// One entry of a case's history, as the clocks read it.
public struct ClockHistoryEntry: Sendable, Equatable {
    public var at: Date
    public var action: CaseAction
    public var fromStatus: CaseStatus?
    public var toStatus: CaseStatus
    /// For `extend`: the new decision deadline in days.
    public var decisionDays: Int?
    /// For `record_contact`: when the handler promised to contact the customer next.
    public var nextContactAt: Date?
    public init(at: Date, action: CaseAction, fromStatus: CaseStatus?, toStatus: CaseStatus, decisionDays: Int? = nil, nextContactAt: Date? = nil) {
        self.nextContactAt = nextContactAt
        self.at = at
        self.action = action
        self.fromStatus = fromStatus
        self.toStatus = toStatus
        self.decisionDays = decisionDays
    }
}

/// A clock as the history makes it.
public struct ClockState: Sendable, Equatable {
    public var kind: ClockKind
    public var startedAt: Date
    public var warnAt: Date
    public var dueAt: Date
    public var pausedAt: Date?
    public var stoppedAt: Date?
}

/// Rebuilds a complaint's clocks from its history alone, so replaying the history gives the same
/// deadlines: pauses in `awaiting_customer` push a pausing clock's deadline out by the paused time
/// (working time for working-time clocks), extensions lengthen the decision clock, and the first
/// stopping action (or closure) stops it.
public enum ClockReplay {
    public static func clocks(policy: SLAPolicy, subject: ClockSubject, history: [ClockHistoryEntry], calendar: WorkingCalendar) -> [ClockState] {
        policy.clocks.compactMap { rule in
            guard rule.kind.perComplaint, rule.applies(to: subject) else { return nil }
            return clock(rule, policy: policy, subject: subject, history: history, calendar: calendar)
        }
    }

    static func clock(_ rule: ClockRule, policy: SLAPolicy, subject: ClockSubject, history: [ClockHistoryEntry], calendar: WorkingCalendar) -> ClockState {
        // A restarting clock runs from its latest restart before the case closed, to the promised time if one was given.
        var start = subject.receivedAt
        var promised: Date?
        if let restarts = rule.restartsOn, !restarts.isEmpty {
            for entry in history.sorted(by: { $0.at < $1.at }) {
                if entry.action == .close { break }
                if restarts.contains(entry.action), entry.at >= start {
                    start = entry.at
                    promised = entry.nextContactAt.flatMap { $0 > entry.at ? $0 : nil }
                }
            }
        }
        var length = rule.hours * 3600
        if rule.kind == .decision, let days = history.compactMap(\.decisionDays).last { length = Double(days) * 86_400 }
        if rule.urgentShortens && subject.priority == .urgent { length *= policy.urgentFactor }
        // Running segments: from the start, cut by pauses, until the clock stops.
        var segments: [(from: Date, to: Date?)] = [(start, nil)]
        // Why the clock stands still: waiting for the customer, or time the regulation excludes.
        var pauses: Set<String> = []
        var pausedAt: Date?
        var stoppedAt: Date?
        for entry in history.sorted(by: { $0.at < $1.at }) where entry.at >= start {
            if entry.action == .close || rule.stopsOn.contains(entry.action) {
                stoppedAt = entry.at
                break
            }
            guard rule.pauses else { continue }
            let before = pauses.isEmpty
            if entry.toStatus == .awaitingCustomer, entry.fromStatus != .awaitingCustomer { pauses.insert("customer") }
            if entry.fromStatus == .awaitingCustomer, entry.toStatus != .awaitingCustomer { pauses.remove("customer") }
            if entry.action == .excludeTime { pauses.insert("excluded") }
            if entry.action == .includeTime { pauses.remove("excluded") }
            if before && !pauses.isEmpty {
                pausedAt = entry.at
                segments[segments.count - 1].to = entry.at
            } else if !before && pauses.isEmpty {
                pausedAt = nil
                segments.append((entry.at, nil))
            }
        }
        func instant(after share: Double) -> Date {
            var remaining = length * share
            for (index, segment) in segments.enumerated() {
                let last = index == segments.count - 1
                switch rule.time {
                case .calendar:
                    let available = segment.to.map { $0.timeIntervalSince(segment.from) } ?? .infinity
                    if remaining <= available || last { return segment.from.addingTimeInterval(remaining) }
                    remaining -= available
                case .working:
                    let available = segment.to.map { Double(calendar.workingSeconds(from: segment.from, to: $0)) } ?? .infinity
                    if remaining <= available || last { return calendar.adding(workingSeconds: Int(remaining.rounded()), to: segment.from) }
                    remaining -= available
                }
            }
            return start
        }
        var warnAt = instant(after: policy.warnShare)
        var dueAt = instant(after: 1)
        if let promised {
            dueAt = promised
            warnAt = start.addingTimeInterval(promised.timeIntervalSince(start) * policy.warnShare)
        }
        // A regulator transfer's deadline counts when it is earlier (只取其早).
        if rule.kind == .decision, let deadline = subject.regulatorDeadline, deadline < dueAt {
            dueAt = deadline
            warnAt = min(warnAt, start.addingTimeInterval(deadline.timeIntervalSince(start) * policy.warnShare))
        }
        // The customer was told: a notice-met clock stops at the delivery, if that came first.
        if let template = rule.stopsOnNotice, let told = subject.notices[template], told < (stoppedAt ?? .distantFuture) {
            stoppedAt = max(told, start)
        }
        return ClockState(kind: rule.kind, startedAt: start, warnAt: warnAt, dueAt: dueAt, pausedAt: stoppedAt == nil ? pausedAt : nil, stoppedAt: stoppedAt)
    }
}
