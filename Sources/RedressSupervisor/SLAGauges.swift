import Logging
import PostgresNIO

/// What the SLA gauges count, read from the system of record. Both reads start from the complaints
/// they concern (the open ones; those closed in the last 90 days), so their cost follows the open
/// backlog and one quarter's closures, not every clock ever kept: `sla_clocks` grows by four or five
/// rows a complaint for as long as the records are kept, and the first version of these gauges read
/// all of it every 15 seconds.
public enum SLAGauges {
    /// Counts by `[kind, unit]`, the unit being where the case is handled (its branch until routed).
    public struct Open: Equatable, Sendable {
        /// Not stopped and not breached, paused ones included.
        public var open: [[String]: Double] = [:]
        public var paused: [[String]: Double] = [:]
        /// Warned (inside their warning window), not breached, not stopped.
        public var atRisk: [[String]: Double] = [:]
        /// Past their due time and not stopped: the misses still waiting for an action.
        public var breached: [[String]: Double] = [:]
    }

    /// The clocks of open cases that have not stopped. A closed case's clocks all stop with the
    /// closure (SLAPolicy); one the supervisor has not yet rebuilt is not counted as open either.
    public static func readOpen(on postgres: PostgresClient, logger: Logger) async throws -> Open {
        var reading = Open()
        let rows = try await postgres.query("""
            SELECT s.kind, COALESCE(c.handling_unit, c.branch),
                count(*) FILTER (WHERE s.breached_at IS NULL),
                count(*) FILTER (WHERE s.breached_at IS NULL AND s.paused_at IS NOT NULL),
                count(*) FILTER (WHERE s.breached_at IS NULL AND s.warned_at IS NOT NULL),
                count(*) FILTER (WHERE s.breached_at IS NOT NULL)
            FROM complaints c JOIN sla_clocks s ON s.complaint_id = c.id
            WHERE c.status <> 'closed' AND s.stopped_at IS NULL
            GROUP BY 1, 2
            """, logger: logger)
        for try await (kind, unit, open, paused, atRisk, breached) in rows.decode((String, String, Int, Int, Int, Int).self) {
            let key = [kind, unit]
            (reading.open[key], reading.paused[key], reading.atRisk[key], reading.breached[key]) =
                (Double(open), Double(paused), Double(atRisk), Double(breached))
        }
        return reading
    }

    /// The share of clocks that breached, by `[kind, unit]`, over the cases closed in the last 90
    /// days, whether or not the supervisor has yet stopped their clocks (closure stops them all): a
    /// rate that moves with how units do now, where one over all time would barely move at all.
    public static func readBreachRatio(on postgres: PostgresClient, logger: Logger) async throws -> [[String]: Double] {
        var ratio: [[String]: Double] = [:]
        let rows = try await postgres.query("""
            SELECT s.kind, COALESCE(c.handling_unit, c.branch), count(*) FILTER (WHERE s.breached_at IS NOT NULL)::float8 / count(*)
            FROM complaints c JOIN sla_clocks s ON s.complaint_id = c.id
            WHERE c.status = 'closed' AND c.closed_at > now() - interval '90 days'
            GROUP BY 1, 2
            """, logger: logger)
        for try await (kind, unit, share) in rows.decode((String, String, Double).self) { ratio[[kind, unit]] = share }
        return ratio
    }
}
