import Foundation
import Hummingbird
import Logging
import Metrics
import PostgresNIO
import RedressContracts
import RedressDomain
import RedressServiceKit
import RedressStore
import ServiceLifecycle

/// `redress-surveys`: 回访 — schedules the return visits of every closed case (same day, one week,
/// one month). Invitations, tokens and answers come with the surveys issue.
public enum SurveysService {
    public static let name = "redress-surveys"
    public static let defaultPort = 8083
    public static let consumerGroup = "redress-surveys"
    /// Return visits after closure: 当天, 一周, 一个月.
    public static let visits: [(name: String, after: TimeInterval)] = [("day0", 0), ("day7", 7 * 86_400), ("day30", 30 * 86_400)]

    public static func main() async throws {
        try await ServiceHost.serve(service: name, defaultPort: defaultPort) { build(host: $0) }
    }

    public static func build(host: ServiceHost) -> (Router<RedressRequestContext>, [any Service]) {
        let consumer = host.consumer(group: consumerGroup, topics: [EventType.caseClosed.topic], handler: EventHandler<CaseClosed>(schedule))
        return (host.router(), [consumer])
    }

    @Sendable
    static func schedule(_ events: [EventEnvelope<CaseClosed>], on connection: PostgresConnection, logger: Logger) async throws {
        var ids: [UUID] = [], complaints: [UUID] = [], names: [String] = [], due: [Date] = []
        for event in events {
            for visit in visits {
                ids.append(UUID())
                complaints.append(event.complaintId)
                names.append(visit.name)
                due.append(event.occurredAt.addingTimeInterval(visit.after))
            }
        }
        try await connection.query("""
            INSERT INTO surveys (id, complaint_id, visit, due_at)
            SELECT * FROM unnest(\(ids)::uuid[], \(complaints)::uuid[], \(names)::text[], \(due)::timestamptz[])
            ON CONFLICT (complaint_id, visit) DO NOTHING
            """, logger: logger)
        Counter(label: "redress_surveys_scheduled_total").increment(by: ids.count)
    }
}
