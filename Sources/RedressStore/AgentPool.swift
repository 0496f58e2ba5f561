import Logging
import PostgresNIO
import RedressDomain

/// Who can take cases now, one definition for routing's assignment, a supervisor's reassignment and
/// a leaver's hand-over: an active agent, marked available, and not on leave.
public enum AgentPool {
    /// Available and not on leave at this moment (staff columns, unqualified).
    public static let availableNow = "available AND NOT COALESCE(leave_from <= now() AND now() < leave_to, false)"

    /// The units' agents at work. Those the caller may pick — room for another case, and `eligible`
    /// (the skill one of its complaints needs) — are locked until the transaction ends, in a fixed
    /// order so concurrent assigners cannot deadlock, and their figures are re-read under the lock.
    /// The others are read unlocked, for the reason a complaint waits and the workload gauge; no pick
    /// can land on them. In a surge, with every agent of the needed skill full, assigners take no lock
    /// at all, and routing's lanes run side by side instead of queueing on the same rows. NO KEY UPDATE:
    /// cases naming an agent as assignee (a foreign-key check) need not wait for the assigning transaction.
    public static func lock(units: Set<String>, eligible: (_ unit: String, _ agent: Assignment.Candidate) -> Bool = { _, _ in true },
                            on connection: PostgresConnection, logger: Logger) async throws -> [String: [Assignment.Candidate]] {
        var agents = try await decode(connection.query("""
            SELECT id, org_unit, open_cases, capacity, extract(epoch FROM last_assigned_at)::float8, skills
            FROM staff WHERE org_unit = ANY(\(Array(units))::text[]) AND role = 'agent' AND active AND \(unescaped: availableNow)
            """, logger: logger))
        let pickable = Set(agents.filter { $0.candidate.openCases < $0.candidate.capacity && eligible($0.unit, $0.candidate) }.map(\.candidate.id))
        let roomy = agents.map(\.candidate.id).filter(pickable.contains)
        if !roomy.isEmpty {
            // Every agent that had room is locked, even one that filled up meanwhile: the locked figures
            // replace the read ones. One that left the pool meanwhile (deactivated, on leave) is dropped.
            let locked = try await decode(connection.query("""
                SELECT id, org_unit, open_cases, capacity, extract(epoch FROM last_assigned_at)::float8, skills
                FROM staff WHERE id = ANY(\(roomy)::text[]) AND role = 'agent' AND active AND \(unescaped: availableNow)
                ORDER BY id
                FOR NO KEY UPDATE
                """, logger: logger))
            agents = agents.filter { !pickable.contains($0.candidate.id) } + locked
        }
        var candidates: [String: [Assignment.Candidate]] = [:]
        for (unit, candidate) in agents.sorted(by: { $0.candidate.id < $1.candidate.id }) {
            candidates[unit, default: []].append(candidate)
        }
        return candidates
    }

    static func decode(_ rows: PostgresRowSequence) async throws -> [(unit: String, candidate: Assignment.Candidate)] {
        var agents: [(unit: String, candidate: Assignment.Candidate)] = []
        for try await (id, unit, open, capacity, last, skills) in rows.decode((String, String, Int, Int, Double?, [String]).self) {
            agents.append((unit, Assignment.Candidate(id: id, openCases: open, capacity: capacity, lastAssigned: last, skills: Set(skills))))
        }
        return agents
    }
}
