import Foundation
import RedressDomain
import Yams

/// A phrase or a complaint's text as UTF-8 bytes: rules test thousands of phrases per second
/// against unsegmented Chinese, and a byte scan is two orders faster than `String.contains`.
public struct MatchText: Sendable, Equatable {
    public let bytes: [UInt8]
    /// Where a search for this phrase looks first: its rarest byte. Every Chinese character starts
    /// with one of a handful of lead bytes (0xE4–0xE9), so a search keyed on the first byte stopped
    /// at nearly every character of a Chinese text; a continuation byte takes one of 64 values.
    /// Keyed on the first byte, phrase matching was a quarter of routing's CPU in a surge.
    let anchor: Int
    /// For a text searched for every phrase of the rules (a complaint's): one bit for each pair of
    /// adjacent bytes that occurs in it. A phrase with a pair the text lacks is not in it; most
    /// phrases are turned away so, in a few steps, instead of a scan of the whole text each.
    let pairs: [UInt64]

    /// `indexed` for a text that many phrases will be looked for in: indexing costs one pass and 8 KB.
    public init(_ text: String, indexed: Bool = false) {
        bytes = Array(text.lowercased().utf8)
        anchor = Self.rarest(bytes)
        var pairs: [UInt64] = []
        if indexed, bytes.count >= 2 {
            pairs = [UInt64](repeating: 0, count: 1024)
            for index in 1..<bytes.count {
                let pair = Int(bytes[index - 1]) << 8 | Int(bytes[index])
                pairs[pair >> 6] |= 1 << UInt64(pair & 63)
            }
        }
        self.pairs = pairs
    }

    static func rarest(_ bytes: [UInt8]) -> Int {
        func rarity(_ byte: UInt8) -> Int {
            switch byte {
            case 0x80...0xBF: return 3 // a UTF-8 continuation byte
            case 0xC0...0xFF: return 0 // a UTF-8 lead byte
            case UInt8(ascii: " "), UInt8(ascii: "a"), UInt8(ascii: "e"), UInt8(ascii: "i"), UInt8(ascii: "o"), UInt8(ascii: "n"), UInt8(ascii: "t"): return 1
            default: return 2
            }
        }
        var best = 0
        for index in bytes.indices where rarity(bytes[index]) > rarity(bytes[best]) { best = index }
        return best
    }

    public func contains(_ phrase: MatchText) -> Bool {
        if phrase.bytes.isEmpty { return true }
        if phrase.bytes.count > bytes.count { return false }
        if !pairs.isEmpty {
            let needle = phrase.bytes
            for index in 1..<needle.count {
                let pair = Int(needle[index - 1]) << 8 | Int(needle[index])
                if pairs[pair >> 6] & (1 << UInt64(pair & 63)) == 0 { return false }
            }
        }
        return bytes.withUnsafeBufferPointer { haystack in
            phrase.bytes.withUnsafeBufferPointer { needle in
                let offset = phrase.anchor, key = needle[offset]
                let last = haystack.count - needle.count
                var i = 0
                while i <= last {
                    if haystack[i + offset] == key {
                        var j = 0
                        while j < needle.count, haystack[i + j] == needle[j] { j += 1 }
                        if j == needle.count { return true }
                    }
                    i += 1
                }
                return false
            }
        }
    }
}

/// The routing rules operations maintain (`deploy/routing/rules.yaml`): classification, priority,
/// skills and unit policy. Loaded and validated as a whole; an invalid file is refused with every
/// problem named by line, and the rules in force stay as they were.
public struct RoutingRules: Sendable, Equatable {
    public struct Conditions: Sendable, Equatable {
        public var any: [MatchText] = []
        public var all: [MatchText] = []
        public var none: [MatchText] = []
        public var channels: Set<Channel>? = nil
        public var hasClaimNumber: Bool? = nil
        public var flags: Set<CustomerFlag>? = nil
        public var repeatComplaint: Bool? = nil
        public var categories: Set<Category>? = nil

        /// True when the complaint meets every condition given.
        func match(text: MatchText, channel: Channel, hasClaimNumber claim: Bool, flags customerFlags: [CustomerFlag], isRepeat: Bool, category: Category?) -> Bool {
            if !any.isEmpty, !any.contains(where: { text.contains($0) }) { return false }
            if !all.allSatisfy({ text.contains($0) }) { return false }
            if none.contains(where: { text.contains($0) }) { return false }
            if let channels, !channels.contains(channel) { return false }
            if let hasClaimNumber, hasClaimNumber != claim { return false }
            if let flags, !customerFlags.contains(where: flags.contains) { return false }
            if let repeatComplaint, repeatComplaint != isRepeat { return false }
            if let categories, !(category.map(categories.contains) ?? false) { return false }
            return true
        }
    }

    public struct ClassificationRule: Sendable, Equatable {
        public var id: String
        public var category: Category
        public var conditions: Conditions
        /// The function (claims, underwriting 核保) is handled at province level where centralised.
        public var centralised: Bool
        public var line: Int
    }

    public struct PriorityRule: Sendable, Equatable {
        public var id: String
        public var priority: Priority
        public var conditions: Conditions
        public var line: Int
    }

    public enum RegulatorUnit: String, Sendable, Equatable {
        case province, branch
    }

    public var version: String
    public var classification: [ClassificationRule]
    public var priority: [PriorityRule]
    /// The skill an assignee needs for a category; none listed, none needed.
    public var skills: [Category: String]
    public var regulatorTransfers: RegulatorUnit
    public var hqStaysAtHq: Bool

    /// Built in, for a deployment that has no rules file yet: nothing classified, priority by channel and flags.
    public static let fallback = RoutingRules(
        version: "builtin-fallback", classification: [],
        priority: [
            PriorityRule(id: "priority.regulator", priority: .urgent, conditions: Conditions(channels: [.regulator]), line: 0),
            PriorityRule(id: "priority.special_customer", priority: .high, conditions: Conditions(flags: [.elderly, .seriouslyIll]), line: 0),
            PriorityRule(id: "priority.repeat", priority: .high, conditions: Conditions(repeatComplaint: true), line: 0),
        ],
        skills: [:], regulatorTransfers: .province, hqStaysAtHq: true)
}

/// Everything wrong with a rules file, each problem with its line.
public struct RulesFileError: Error, Sendable, CustomStringConvertible {
    public var file: String
    public var problems: [String]

    public var description: String {
        "routing rules \(file) refused; the rules in force are unchanged:\n" + problems.map { "  - \($0)" }.joined(separator: "\n")
    }
}

extension RoutingRules {
    public static func load(file: String) throws -> RoutingRules {
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw RulesFileError(file: file, problems: ["cannot read the file: \(error.localizedDescription)"])
        }
        return try parse(text, file: file)
    }

    public static func parse(_ yaml: String, file: String = "rules") throws -> RoutingRules {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: yaml) else {
                throw RulesFileError(file: file, problems: ["the file is empty"])
            }
            root = node
        } catch let error as RulesFileError {
            throw error
        } catch let error as YamlError {
            throw RulesFileError(file: file, problems: [Self.describe(error)])
        } catch {
            throw RulesFileError(file: file, problems: ["not YAML: \(error)"])
        }
        var reader = RulesReader()
        let rules = reader.read(root)
        guard reader.problems.isEmpty, let rules else { throw RulesFileError(file: file, problems: reader.problems) }
        return rules
    }

    static func describe(_ error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return "line \(mark.line): \(problem)"
        case .duplicatedKeysInMapping(let duplicates, let context):
            return "line \(context.mark.line): the key(s) \(duplicates.joined(separator: ", ")) appear twice"
        default:
            return "not valid YAML: \(error)"
        }
    }
}

/// Walks the YAML tree, collecting problems with their lines instead of stopping at the first.
struct RulesReader {
    var problems: [String] = []
    var ids: [String: Int] = [:]

    mutating func problem(_ node: Node?, _ text: String) {
        problems.append("line \(node?.mark?.line ?? 0): \(text)")
    }

    func line(_ node: Node) -> Int { node.mark?.line ?? 0 }

    mutating func mapping(_ node: Node, _ what: String, allowed: Set<String>) -> [String: Node]? {
        guard let mapping = node.mapping else {
            problem(node, "\(what) must be a mapping of keys to values")
            return nil
        }
        var result: [String: Node] = [:]
        for (key, value) in mapping {
            guard let name = key.string else { continue }
            if !allowed.contains(name) {
                problem(key, "unknown key '\(name)' in \(what); allowed: \(allowed.sorted().joined(separator: ", "))")
            }
            result[name] = value
        }
        return result
    }

    mutating func string(_ node: Node?, _ what: String) -> String? {
        guard let node else { return nil }
        guard let value = node.scalar?.string, !value.trimmingCharacters(in: .whitespaces).isEmpty else {
            problem(node, "\(what) must be a non-empty text")
            return nil
        }
        return value
    }

    mutating func strings(_ node: Node?, _ what: String) -> [String]? {
        guard let node else { return nil }
        guard let sequence = node.sequence else {
            problem(node, "\(what) must be a list, e.g. [\"理赔\", \"claim\"]")
            return nil
        }
        return sequence.compactMap { string($0, "an entry of \(what)") }
    }

    mutating func bool(_ node: Node?, _ what: String) -> Bool? {
        guard let node else { return nil }
        guard let value = node.bool else {
            problem(node, "\(what) must be true or false")
            return nil
        }
        return value
    }

    mutating func enumeration<E: RawRepresentable & CaseIterable>(_ node: Node, _ type: E.Type, _ what: String) -> E? where E.RawValue == String {
        guard let raw = string(node, what) else { return nil }
        guard let value = E(rawValue: raw) else {
            problem(node, "\(what) '\(raw)' is not one of \(E.allCases.map(\.rawValue).joined(separator: ", "))")
            return nil
        }
        return value
    }

    mutating func enumerations<E: RawRepresentable & CaseIterable & Hashable>(_ node: Node?, _ type: E.Type, _ what: String) -> Set<E>? where E.RawValue == String {
        guard let node else { return nil }
        guard let sequence = node.sequence else {
            problem(node, "\(what) must be a list")
            return nil
        }
        return Set(sequence.compactMap { enumeration($0, type, "an entry of \(what)") })
    }

    mutating func id(_ node: Node?, _ where_: String) -> String? {
        guard let node else {
            problem(nil, "\(where_) has no id")
            return nil
        }
        guard let id = string(node, "id") else { return nil }
        if id.unicodeScalars.contains(where: { !("a"..."z").contains($0) && !("0"..."9").contains($0) && !".-_".unicodeScalars.contains($0) }) {
            problem(node, "id '\(id)' may use only a-z, 0-9, '.', '-' and '_'")
        }
        if let first = ids[id] {
            problem(node, "id '\(id)' is already used on line \(first)")
        } else {
            ids[id] = line(node)
        }
        return id
    }

    static let conditionKeys: Set<String> = ["any", "all", "none", "channel", "hasClaimNumber"]

    mutating func conditions(_ fields: [String: Node], priority: Bool) -> RoutingRules.Conditions {
        var c = RoutingRules.Conditions()
        let lower = { (phrases: [String]) in phrases.map { MatchText($0) } }
        c.any = lower(strings(fields["any"], "any") ?? [])
        c.all = lower(strings(fields["all"], "all") ?? [])
        c.none = lower(strings(fields["none"], "none") ?? [])
        c.channels = enumerations(fields["channel"], Channel.self, "channel")
        c.hasClaimNumber = bool(fields["hasClaimNumber"], "hasClaimNumber")
        if priority {
            c.flags = enumerations(fields["flags"], CustomerFlag.self, "flags")
            c.repeatComplaint = bool(fields["repeat"], "repeat")
            c.categories = enumerations(fields["category"], Category.self, "category")
        }
        return c
    }

    mutating func read(_ root: Node) -> RoutingRules? {
        guard let top = mapping(root, "the rules file", allowed: ["version", "classification", "priority", "skills", "units"]) else { return nil }
        let version = string(top["version"], "version")
        if top["version"] == nil { problem(root, "version is missing: name this edition of the rules (it is recorded on every decision)") }

        var classification: [RoutingRules.ClassificationRule] = []
        if let list = top["classification"] {
            if let sequence = list.sequence {
                for node in sequence {
                    guard let fields = mapping(node, "a classification rule", allowed: Self.conditionKeys.union(["id", "category", "centralised"])) else { continue }
                    let id = id(fields["id"], "the classification rule on line \(line(node))")
                    let category = fields["category"].flatMap { enumeration($0, Category.self, "category") }
                    if fields["category"] == nil { problem(node, "classification rule \(id ?? "?") has no category") }
                    if fields["any"] == nil { problem(node, "classification rule \(id ?? "?") needs 'any': the phrases that identify it") }
                    let conditions = conditions(fields, priority: false)
                    let centralised = bool(fields["centralised"], "centralised")
                    if let id, let category {
                        classification.append(.init(id: id, category: category, conditions: conditions,
                                                    centralised: centralised ?? (category == .claims), line: line(node)))
                    }
                }
            } else {
                problem(list, "classification must be a list of rules")
            }
        }

        var priority: [RoutingRules.PriorityRule] = []
        if let list = top["priority"] {
            if let sequence = list.sequence {
                for node in sequence {
                    guard let fields = mapping(node, "a priority rule", allowed: Self.conditionKeys.union(["id", "priority", "flags", "repeat", "category"])) else { continue }
                    let id = id(fields["id"], "the priority rule on line \(line(node))")
                    let level = fields["priority"].flatMap { enumeration($0, Priority.self, "priority") }
                    if fields["priority"] == nil { problem(node, "priority rule \(id ?? "?") has no priority (urgent or high)") }
                    if level == .normal { problem(fields["priority"], "priority rule \(id ?? "?") sets normal, which is what no rule gives; use urgent or high") }
                    let conditions = conditions(fields, priority: true)
                    if conditions == RoutingRules.Conditions() {
                        problem(node, "priority rule \(id ?? "?") has no condition and would apply to every complaint")
                    }
                    if let id, let level { priority.append(.init(id: id, priority: level, conditions: conditions, line: line(node))) }
                }
            } else {
                problem(list, "priority must be a list of rules")
            }
        }

        var skills: [Category: String] = [:]
        if let node = top["skills"], let fields = mapping(node, "skills", allowed: Set(Category.allCases.map(\.rawValue))) {
            for (key, value) in fields {
                if let category = Category(rawValue: key), let skill = string(value, "the skill for \(key)") { skills[category] = skill }
            }
        }

        var regulator = RoutingRules.RegulatorUnit.province
        var hqStays = true
        if let node = top["units"], let fields = mapping(node, "units", allowed: ["regulatorTransfers", "hqStaysAtHq"]) {
            if let raw = fields["regulatorTransfers"] {
                if let value = string(raw, "regulatorTransfers"), let unit = RoutingRules.RegulatorUnit(rawValue: value) {
                    regulator = unit
                } else {
                    problem(raw, "regulatorTransfers must be province or branch")
                }
            }
            hqStays = bool(fields["hqStaysAtHq"], "hqStaysAtHq") ?? true
        }

        guard let version else { return nil }
        return RoutingRules(version: version, classification: classification, priority: priority, skills: skills,
                            regulatorTransfers: regulator, hqStaysAtHq: hqStays)
    }
}

