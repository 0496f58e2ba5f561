import RedressContracts
import RedressDomain

/// 分类与优先级 for the walking skeleton: a small explainable keyword table. The routing issue
/// replaces the table with the operations-maintained rules file behind this same function.
public enum Triage {
    public static let rulesVersion = "builtin-1"

    public struct Decision: Sendable, Equatable {
        public var category: Category
        public var priority: Priority
        public var ruleIds: [String]
    }

    static let keywords: [(Category, String, [String])] = [
        (.claims, "kw.claims", ["理赔", "赔付", "拒赔", "赔款", "claim", "payout"]),
        (.sales, "kw.sales", ["误导", "销售", "mis-sold", "misled", "salesman"]),
        (.product, "kw.product", ["条款", "产品", "terms", "product"]),
        (.service, "kw.service", ["态度", "服务", "attitude", "rude", "service"]),
    ]

    public static func decide(_ complaint: ComplaintRegistered) -> Decision {
        var rules: [String] = []
        var category = Category.other
        if complaint.claimNumber != nil {
            category = .claims
            rules.append("field.claim_number")
        } else {
            let text = (complaint.subject + " " + complaint.content).lowercased()
            for (candidate, id, words) in keywords where words.contains(where: { text.contains($0) }) {
                category = candidate
                rules.append(id)
                break
            }
        }
        var priority = Priority.normal
        if complaint.channel == .regulator {
            priority = .urgent
            rules.append("priority.regulator")
        } else if complaint.customer.flags.contains(.elderly) || complaint.customer.flags.contains(.seriouslyIll) {
            priority = .high
            rules.append("priority.special_customer")
        } else if complaint.repeatOf != nil {
            priority = .high
            rules.append("priority.repeat")
        }
        return Decision(category: category, priority: priority, ruleIds: rules)
    }
}

/// Least open workload relative to capacity; ties go to whoever was assigned longest ago, then by id.
public enum Assignment {
    public struct Candidate: Sendable, Equatable {
        public var id: String
        public var openCases: Int
        public var capacity: Int
        /// Order of the last assignment (smaller = longer ago); nil = never assigned.
        public var lastAssigned: Double?

        public init(id: String, openCases: Int, capacity: Int, lastAssigned: Double?) {
            self.id = id
            self.openCases = openCases
            self.capacity = capacity
            self.lastAssigned = lastAssigned
        }
    }

    /// Picks an owner for each of `count` complaints, updating loads as it goes. Nobody past capacity.
    public static func pick(_ count: Int, from candidates: inout [Candidate], clock: inout Double) -> [String?] {
        var picks: [String?] = []
        for _ in 0..<count {
            let best = candidates.indices
                .filter { candidates[$0].openCases < candidates[$0].capacity }
                .min { a, b in
                    let ca = candidates[a], cb = candidates[b]
                    let la = Double(ca.openCases) / Double(ca.capacity), lb = Double(cb.openCases) / Double(cb.capacity)
                    if la != lb { return la < lb }
                    let ta = ca.lastAssigned ?? -.infinity, tb = cb.lastAssigned ?? -.infinity
                    if ta != tb { return ta < tb }
                    return ca.id < cb.id
                }
            guard let best else {
                picks.append(nil)
                continue
            }
            candidates[best].openCases += 1
            clock += 1
            candidates[best].lastAssigned = clock
            picks.append(candidates[best].id)
        }
        return picks
    }
}
