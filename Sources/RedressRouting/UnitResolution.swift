import RedressDomain

/// The org tree as routing needs it: each unit's level, parent and the province setting.
public struct OrgDirectory: Sendable {
    public struct Unit: Sendable, Equatable {
        public var code: String
        public var parent: String?
        public var level: OrgLevel
        public var claimsCentralised: Bool

        public init(code: String, parent: String?, level: OrgLevel, claimsCentralised: Bool = false) {
            self.code = code
            self.parent = parent
            self.level = level
            self.claimsCentralised = claimsCentralised
        }
    }

    public let units: [String: Unit]

    public init(_ units: [Unit]) {
        self.units = Dictionary(units.map { ($0.code, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// The unit itself if it is at `level` or above, else its ancestor at `level`.
    public func atMost(_ level: OrgLevel, from code: String) -> String {
        var current = code
        while let unit = units[current], unit.level > level, let parent = unit.parent { current = parent }
        return current
    }

    /// One level up; HQ stays HQ.
    public func parent(of code: String) -> String {
        units[code]?.parent ?? code
    }
}

/// 处理单位: which unit handles a complaint. Pure, so every rule is tested on a tree.
public enum UnitResolution {
    public struct Outcome: Sendable, Equatable {
        public var unit: String
        public var ruleID: String
    }

    /// A new complaint: the customer's city unit by default; the province where the function is
    /// centralised there (claims, underwriting) or for regulator transfers; HQ for complaints received at HQ.
    public static func initial(branch: String, channel: Channel, centralised: Bool, rules: RoutingRules, org: OrgDirectory) -> Outcome {
        let level = org.units[branch]?.level ?? .city
        if level == .hq {
            return rules.hqStaysAtHq ? Outcome(unit: branch, ruleID: "unit.hq") : Outcome(unit: branch, ruleID: "unit.branch")
        }
        let province = org.atMost(.province, from: branch)
        if channel == .regulator, rules.regulatorTransfers == .province {
            return Outcome(unit: province, ruleID: "unit.regulator_province")
        }
        if centralised, org.units[province]?.claimsCentralised == true {
            return Outcome(unit: province, ruleID: "unit.centralised_province")
        }
        return Outcome(unit: org.atMost(.city, from: branch), ruleID: "unit.customer_city")
    }

    /// 升级: one level above the unit handling it now.
    public static func escalated(from unit: String, org: OrgDirectory) -> Outcome {
        Outcome(unit: org.parent(of: unit), ruleID: "unit.escalated")
    }

    /// 二次投诉: one level above the unit that handled the first complaint.
    public static func reopened(firstUnit: String, org: OrgDirectory) -> Outcome {
        Outcome(unit: org.parent(of: firstUnit), ruleID: "unit.reopened")
    }

    /// 转办: the target the transfer names, when it is a unit of the tree.
    public static func transferred(to target: String, org: OrgDirectory) -> Outcome? {
        org.units[target] == nil ? nil : Outcome(unit: target, ruleID: "unit.transferred")
    }
}
