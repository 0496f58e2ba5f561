import RedressContracts
import RedressDomain

/// What a classifier sees: the complaint's text (lower-cased) and the facts rules may test.
public struct TriageInput: Sendable {
    public var text: MatchText
    public var channel: Channel
    public var hasClaimNumber: Bool
    public var flags: [CustomerFlag]
    public var isRepeat: Bool

    public init(_ complaint: ComplaintRegistered) {
        text = MatchText(complaint.subject + " " + complaint.content, indexed: true)
        channel = complaint.channel
        hasClaimNumber = complaint.claimNumber != nil
        flags = complaint.customer.flags
        isRepeat = complaint.repeatOf != nil
    }
}

public struct Classification: Sendable, Equatable {
    public var category: Category
    public var ruleID: String
    /// The function is handled at province level where the province centralises it (claims, underwriting).
    public var centralised: Bool
}

/// A way of putting a complaint in a category. Rules first; a statistical model can be added
/// behind this interface and consulted when no rule speaks.
public protocol ComplaintClassifier: Sendable {
    /// nil when it has no opinion.
    func classify(_ input: TriageInput) -> Classification?
}

/// The rules file's classification: the first matching rule wins, and it says which rule fired.
public struct RuleClassifier: ComplaintClassifier {
    let rules: [RoutingRules.ClassificationRule]

    public init(_ rules: RoutingRules) {
        self.rules = rules.classification
    }

    public func classify(_ input: TriageInput) -> Classification? {
        for rule in rules where rule.conditions.match(
            text: input.text, channel: input.channel, hasClaimNumber: input.hasClaimNumber, flags: input.flags,
            isRepeat: input.isRepeat, category: nil) {
            return Classification(category: rule.category, ruleID: rule.id, centralised: rule.centralised)
        }
        return nil
    }
}

/// 分类与优先级: category from the classifiers, priority from every priority rule that applies
/// (the highest wins), with the ids of the rules that decided — a decision anyone can explain.
public struct Triage: Sendable {
    public let rules: RoutingRules
    let classifiers: [any ComplaintClassifier]

    public init(rules: RoutingRules, extraClassifiers: [any ComplaintClassifier] = []) {
        self.rules = rules
        self.classifiers = [RuleClassifier(rules)] + extraClassifiers
    }

    public struct Decision: Sendable, Equatable {
        public var category: Category
        public var priority: Priority
        public var ruleIds: [String]
        public var centralised: Bool
        public var rulesVersion: String
    }

    public func decide(_ complaint: ComplaintRegistered) -> Decision {
        let input = TriageInput(complaint)
        let classification = classifiers.lazy.compactMap { $0.classify(input) }.first
            ?? Classification(category: .other, ruleID: "default", centralised: false)
        var ruleIds = [classification.ruleID]
        var priority = Priority.normal
        for rule in rules.priority where rule.conditions.match(
            text: input.text, channel: input.channel, hasClaimNumber: input.hasClaimNumber, flags: input.flags,
            isRepeat: input.isRepeat, category: classification.category) {
            ruleIds.append(rule.id)
            priority = max(priority, rule.priority)
        }
        return Decision(category: classification.category, priority: priority, ruleIds: ruleIds,
                        centralised: classification.centralised, rulesVersion: rules.version)
    }

    /// The skill an owner of this category needs, if any.
    public func skill(for category: Category) -> String? { rules.skills[category] }
}
