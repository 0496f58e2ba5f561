import Foundation

/// Least open workload relative to capacity; ties go to whoever was assigned longest ago, then by id.
public enum Assignment {
    /// The skill an owner of a case of `category` needs: the category's own name, and none for
    /// `other` (as the routing rules' skills map has it; reassignment and hand-over use this).
    public static func requiredSkill(for category: String?) -> String? {
        guard let category, category != Category.other.rawValue else { return nil }
        return category
    }

    public struct Candidate: Sendable, Equatable {
        public var id: String
        public var openCases: Int
        public var capacity: Int
        /// Order of the last assignment (smaller = longer ago); nil = never assigned.
        public var lastAssigned: Double?
        public var skills: Set<String>

        public init(id: String, openCases: Int, capacity: Int, lastAssigned: Double?, skills: Set<String> = []) {
            self.id = id
            self.openCases = openCases
            self.capacity = capacity
            self.lastAssigned = lastAssigned
            self.skills = skills
        }
    }

    /// Picks an owner for each of `count` complaints, updating loads as it goes. Nobody past
    /// capacity, nobody without `skill`, nobody in `excluded` (a conflict of interest).
    public static func pick(_ count: Int, from candidates: inout [Candidate], clock: inout Double,
                            skill: String? = nil, excluded: Set<String> = []) -> [String?] {
        var picks: [String?] = []
        for _ in 0..<count {
            let best = candidates.indices
                .filter { index in
                    let c = candidates[index]
                    return c.openCases < c.capacity && !excluded.contains(c.id) && (skill.map(c.skills.contains) ?? true)
                }
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
