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

/// `redress-supervisor`: starts every complaint's SLA clocks and fires `sla.warning` / `sla.breached`
/// when they come due. One instance scans at a time (a PostgreSQL advisory lock); firing is marked
/// on the clock row in the same transaction as the event, so each fires once whoever scans.
public enum SupervisorService {
    public static let name = "redress-supervisor"
    public static let defaultPort = 8086
    public static let consumerGroup = "redress-supervisor"
    static let actor = Actor.service(name)
    static let policy = ClockPolicy()

    public static func main() async throws {
        try await ServiceHost.serve(service: name, defaultPort: defaultPort) { build(host: $0) }
    }

    public static func build(host: ServiceHost, scanInterval: Duration = .seconds(1)) -> (Router<RedressRequestContext>, [any Service]) {
        let consumer = host.consumer(group: consumerGroup, topics: [EventType.complaintRegistered.topic], handler: EventHandler<ComplaintRegistered>(startClocks))
        let scanner = DeadlineScanner(postgres: host.postgres, gate: host.gate, interval: scanInterval, logger: host.logger)
        return (host.router(), [consumer, scanner])
    }

    /// Starts the acknowledgement clock (24 h) and the decision clock (15 days from receipt, or the
    /// regulator's deadline when that is earlier).
    @Sendable
    static func startClocks(_ events: [EventEnvelope<ComplaintRegistered>], on connection: PostgresConnection, logger: Logger) async throws {
        var complaints: [UUID] = [], kinds: [String] = [], started: [Date] = [], warn: [Date] = [], due: [Date] = []
        for event in events {
            let received = event.payload.receivedAt
            for kind in [ClockKind.acknowledge, .decision] {
                var (warnAt, dueAt) = policy.schedule(kind, from: received)
                if kind == .decision, let deadline = event.payload.regulatorDeadline, deadline < dueAt {
                    dueAt = deadline
                    warnAt = received.addingTimeInterval(deadline.timeIntervalSince(received) * policy.warnShare)
                }
                complaints.append(event.complaintId)
                kinds.append(kind.rawValue)
                started.append(received)
                warn.append(warnAt)
                due.append(dueAt)
            }
        }
        try await connection.query("""
            INSERT INTO sla_clocks (complaint_id, kind, started_at, warn_at, due_at)
            SELECT * FROM unnest(\(complaints)::uuid[], \(kinds)::text[], \(started)::timestamptz[], \(warn)::timestamptz[], \(due)::timestamptz[])
            ON CONFLICT (complaint_id, kind) DO NOTHING
            """, logger: logger)
        for kind in [ClockKind.acknowledge, .decision] {
            Counter(label: "redress_sla_clocks_started_total", dimensions: [("kind", kind.rawValue)]).increment(by: events.count)
        }
    }
}

/// Finds due clocks and fires them. Leadership is a session advisory lock held on a connection
/// of its own: if this instance dies, PostgreSQL drops the lock and a standby takes over within
/// one scan interval.
public final class DeadlineScanner: Service, Sendable {
    static let lockKey: Int64 = 0x7264_7273_7376 // 'rdrssv'
    let postgres: PostgresClient
    let gate: StartupGate
    let interval: Duration
    let logger: Logger

    public init(postgres: PostgresClient, gate: StartupGate, interval: Duration, logger: Logger) {
        self.postgres = postgres
        self.gate = gate
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await gate.wait()
        let leader = Gauge(label: "redress_sla_leader")
        leader.record(0)
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            do {
                try await postgres.withConnection { connection in
                    var isLeader = false
                    for try await got in try await connection.query("SELECT pg_try_advisory_lock(\(Self.lockKey))", logger: logger).decode(Bool.self) {
                        isLeader = got
                    }
                    guard isLeader else { return }
                    leader.record(1)
                    logger.info("supervisor is the active scanner")
                    // Give the lock back on every way out: a pooled connection returned still holding it
                    // would keep leadership away from every instance. (If the process dies, PostgreSQL
                    // ends the session and frees the lock, and a standby takes over within one interval.)
                    do {
                        while !Task.isShuttingDownGracefully, !Task.isCancelled {
                            while try await scan(on: connection) > 0 {}
                            try? await Task.sleep(for: interval)
                        }
                    } catch {
                        leader.record(0)
                        _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
                        throw error
                    }
                    leader.record(0)
                    _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
                }
            } catch {
                logger.warning("deadline scan failed; retrying", metadata: ["error": "\(String(reflecting: error))"])
            }
            try? await Task.sleep(for: interval)
        }
    }

    /// Fires what is due now: warnings, then breaches. Returns how many fired (the caller repeats while busy).
    @discardableResult
    public func scan(on connection: PostgresConnection, now: Date = Date(), limit: Int = 500) async throws -> Int {
        try await connection.withTransaction(logger: logger) { tx in
            var fired = 0
            for (column, dueColumn, type) in [("warned_at", "warn_at", EventType.slaWarning), ("breached_at", "due_at", EventType.slaBreached)] {
                // The column names are this code's own constants; the values are bound.
                let rows = try await tx.query("""
                    WITH due AS (
                        SELECT complaint_id, kind FROM sla_clocks
                        WHERE \(unescaped: column) IS NULL AND stopped_at IS NULL AND paused_at IS NULL AND \(unescaped: dueColumn) <= \(now)
                        ORDER BY \(unescaped: dueColumn) LIMIT \(limit)
                        FOR UPDATE SKIP LOCKED
                    )
                    UPDATE sla_clocks s SET \(unescaped: column) = \(now) FROM due, complaints c
                    WHERE s.complaint_id = due.complaint_id AND s.kind = due.kind AND c.id = s.complaint_id
                    RETURNING s.complaint_id, s.kind, s.started_at, s.due_at, c.number, COALESCE(c.handling_unit, c.branch), c.assignee
                    """, logger: logger)
                var entries: [OutboxEntry] = []
                let encoder = EventCoding.encoder()
                for try await (id, kind, started, dueAt, number, unit, assignee) in rows.decode((UUID, String, Date, Date, String, String, String?).self) {
                    let clock = SLAClockEvent(number: number, clock: ClockKind(rawValue: kind) ?? .decision, startedAt: started, dueAt: dueAt, handlingUnit: unit, assignee: assignee)
                    if type == .slaWarning {
                        entries.append(try OutboxEntry(EventEnvelope(occurredAt: now, complaintId: id, orgUnit: unit, actor: SupervisorService.actor, payload: SLAWarning(clock: clock)), encoder: encoder))
                        Counter(label: "redress_sla_warnings_total", dimensions: [("kind", kind)]).increment()
                    } else {
                        entries.append(try OutboxEntry(EventEnvelope(occurredAt: now, complaintId: id, orgUnit: unit, actor: SupervisorService.actor, payload: SLABreached(clock: clock)), encoder: encoder))
                        Counter(label: "redress_sla_breaches_total", dimensions: [("kind", kind)]).increment()
                    }
                }
                try await Outbox.append(entries, on: tx, logger: logger)
                fired += entries.count
            }
            return fired
        }
    }
}
