import Foundation

/// What one complaint's flow must leave behind, exactly once each: one assignment, one delivered
/// acknowledgement, every clock the policy starts for it, and every customer notice the flow implies.
/// The benchmark checks each complaint against it and reports every shortfall by kind, so "lost 0,
/// duplicated 0" means the whole flow happened once, not only that the schema's unique keys held.
public enum FlowAudit {
    /// What the system of record shows for one complaint.
    public struct Observed: Sendable, Equatable {
        public var assignments: Int
        /// Delivered customer notices by template (the acknowledgement among them).
        public var delivered: [String: Int]
        public var clocks: [String]

        public init(assignments: Int, delivered: [String: Int], clocks: [String]) {
            self.assignments = assignments
            self.delivered = delivered
            self.clocks = clocks
        }
    }

    /// The customer notices a registered and routed complaint implies: the acknowledgement, and the
    /// handler's introduction when routing found an owner (with none, the unit's supervisors are alerted instead).
    public static func impliedNotices(owned: Bool) -> [String] {
        owned ? ["complaint.registered.acknowledgement", "case.assigned.customer"] : ["complaint.registered.acknowledgement"]
    }

    /// The clocks `policy` starts for a complaint of this category and claim stage.
    public static func expectedClocks(policy: SLAPolicy, subject: ClockSubject) -> Set<String> {
        Set(policy.clocks.filter { $0.applies(to: subject) }.map(\.kind.rawValue))
    }

    /// Every shortfall, by kind: `assignment.missing`, `assignment.duplicated`, `clock.missing:<kind>`,
    /// `clock.duplicated:<kind>`, `clock.unexpected:<kind>`, `notice.missing:<template>`, `notice.duplicated:<template>`.
    public static func shortfalls(_ observed: Observed, expectedClocks: Set<String>, notices: [String]) -> [String] {
        var found: [String] = []
        if observed.assignments == 0 { found.append("assignment.missing") }
        if observed.assignments > 1 { found.append("assignment.duplicated") }
        let counts = Dictionary(observed.clocks.map { ($0, 1) }, uniquingKeysWith: +)
        for kind in expectedClocks.sorted() {
            switch counts[kind] ?? 0 {
            case 0: found.append("clock.missing:\(kind)")
            case 1: break
            default: found.append("clock.duplicated:\(kind)")
            }
        }
        for kind in counts.keys.sorted() where !expectedClocks.contains(kind) { found.append("clock.unexpected:\(kind)") }
        for template in notices {
            switch observed.delivered[template] ?? 0 {
            case 0: found.append("notice.missing:\(template)")
            case 1: break
            default: found.append("notice.duplicated:\(template)")
            }
        }
        return found
    }
}
