import Logging
import PostgresNIO
import RedressDomain

/// Who can take cases now, one definition for routing's assignment, a supervisor's reassignment and
/// a leaver's hand-over: an active agent, marked available, and not on leave.
public enum AgentPool {
    /// Available and not on leave at this moment (staff columns, unqualified).
    public static let availableNow = "available AND NOT COALESCE(leave_from <= now() AND now() < leave_to, false)"

    /// The units' agents at work, locked until the transaction ends, in a fixed order so concurrent
    /// assigners cannot deadlock. NO KEY UPDATE: cases naming an agent as assignee (a foreign-key
    /// check) need not wait for the assigning transaction.
    public static func lock(units: Set<String>, on connection: PostgresConnection, logger: Logger) async throws -> [String: [Assignment.Candidate]] {
        let rows = try await connection.query("""
            SELECT id, org_unit, open_cases, capacity, extract(epoch FROM last_assigned_at)::float8, skills
            FROM staff
            WHERE org_unit = ANY(\(Array(units))::text[]) AND role = 'agent' AND active AND \(unescaped: availableNow)
            ORDER BY id
            FOR NO KEY UPDATE
            """, logger: logger)
        var candidates: [String: [Assignment.Candidate]] = [:]
        for try await (id, unit, open, capacity, last, skills) in rows.decode((String, String, Int, Int, Double?, [String]).self) {
            candidates[unit, default: []].append(Assignment.Candidate(id: id, openCases: open, capacity: capacity, lastAssigned: last, skills: Set(skills)))
        }
        return candidates
    }
}
