import Foundation
import Hummingbird
import Logging
import Metrics
import NIOConcurrencyHelpers
import PostgresNIO
import RedressContracts
import RedressDomain
import RedressKafka
import RedressServiceKit
import RedressStore
import ServiceLifecycle

/// `redress-supervisor`: keeps every complaint's SLA clocks and fires `sla.warning` / `sla.breached`
/// when they come due. Clocks are rebuilt from the complaint and its case history whenever either
/// changes, so pauses, extensions and stops replay to the same deadlines. One instance scans at a
/// time (a PostgreSQL advisory lock); firing is marked on the clock row in the same transaction as
/// the event, so each fires once whoever scans.
public enum SupervisorService {
    public static let name = "redress-supervisor"
    public static let defaultPort = 8086
    public static let consumerGroup = "redress-supervisor"
    static let actor = Actor.service(name)

    /// Every event after which a complaint's clocks may read differently. Not `complaint.assigned`:
    /// the priority it decides is in the system of record only once cases has applied it, which
    /// `case.assigned` announces.
    public static let topics = [
        EventType.complaintRegistered, .caseAssigned, .caseUpdated, .caseExtended, .caseEscalated,
        .caseTransferred, .caseReopened, .caseClosed, .notificationDelivered,
    ].map(\.topic)

    /// `redressctl sla recompute` notifies this channel: every instance re-reads its policy and calendars.
    public static let reloadChannel = "redress_sla"

    public static func main() async throws {
        let env = ProcessInfo.processInfo.environment
        let policy = env["REDRESS_SLA_POLICY"] ?? "deploy/sla/policy.json"
        let calendars = env["REDRESS_CALENDARS"] ?? "deploy/calendars"
        try await ServiceHost.serve(service: name, defaultPort: defaultPort) { host in
            do {
                let book = ClockBookHolder(try ClockBook.load(policyFile: policy, calendarDirectory: calendars))
                // The watch reports the calendars' gaps on its first round and after each reload.
                let watch = CalendarWatch()
                var (router, services) = build(host: host, book: book, watch: watch)
                // A bad file is refused with its problems logged; the policy and calendars in force stay.
                services.append(ReloadListener(channel: reloadChannel, postgres: host.postgres, gate: host.gate, logger: host.logger) { [logger = host.logger] why in
                    do {
                        book.replace(try ClockBook.load(policyFile: policy, calendarDirectory: calendars))
                        logger.notice("SLA policy and calendars reloaded", metadata: ["trigger": "\(why)"])
                        // The next gauge round reports the calendars' coverage afresh, gaps or none.
                        watch.reset()
                    } catch {
                        logger.error("\(error)")
                    }
                })
                return (router, services)
            } catch {
                // Refuse to start on a policy or calendar that does not validate: every problem is in the message.
                host.logger.critical("\(error)")
                exit(2)
            }
        }
    }

    public static func build(host: ServiceHost, book: ClockBookHolder, watch: CalendarWatch = CalendarWatch(), scanInterval: Duration = .seconds(1),
                             gaugeInterval: Duration = .seconds(15))
        -> (Router<RedressRequestContext>, [any Service]) {
        // Off the path to an owner: it gathers a complaint's events into one rebuild (REDRESS_SUPERVISOR_GATHER_MS).
        let consumer = host.consumer(group: consumerGroup, topics: topics, handler: ClockHandler(book: book),
                                     gather: host.configuration.supervisorGather, maxBatch: 2_000)
        let scanner = DeadlineScanner(postgres: host.postgres, gate: host.gate, interval: scanInterval, logger: host.logger,
                                      escalating: { Set(book.current.policy.clocks.filter(\.escalates).map(\.kind)) })
        let series = GaugeSeries()
        // Open clocks by kind and unit (running, paused, at risk) and the misses not yet acted on (SLAGauges).
        let gauges = Periodic("SLA gauges", every: gaugeInterval, gate: host.gate, logger: host.logger) { [postgres = host.postgres, logger = host.logger] in
            let reading = try await SLAGauges.readOpen(on: postgres, logger: logger)
            for (label, values) in [("redress_sla_clocks_open", reading.open), ("redress_sla_clocks_paused", reading.paused),
                                    ("redress_sla_clocks_at_risk", reading.atRisk), ("redress_sla_clocks_breached", reading.breached)] {
                series.record(label, dimensions: ["kind", "unit"], values)
            }
            // A year some region's working calendar lacks, while a clock or the coming weeks need it: 1 while missing.
            let gaps = try await watch.check(book: book.current, postgres: postgres, logger: logger)
            series.record("redress_sla_calendar_missing", dimensions: ["region", "year"],
                          Dictionary(uniqueKeysWithValues: gaps.map { ([$0.region, String($0.year)], 1.0) }))
        }
        // The breach rate reads a quarter's closed cases: a slower cadence, as for cases' liable rate.
        let breachRatio = Periodic("SLA breach-ratio gauge", every: .seconds(60), gate: host.gate, logger: host.logger) { [postgres = host.postgres, logger = host.logger] in
            let ratio = try await SLAGauges.readBreachRatio(on: postgres, logger: logger)
            series.record("redress_sla_breach_ratio", dimensions: ["kind", "unit"], ratio)
        }
        // Every group's lag, measured here so that a group whose service is down still shows it.
        let lag = ConsumerLagExporter(client: host.configuration.kafkaClient("lag"), logger: host.logger)
        // 定期分析报告: the report rollup of the last three local days, recomputed every ten minutes
        // (older days change only by late corrections: `redressctl report rebuild` for those).
        let rollupSeconds = ProcessInfo.processInfo.environment["REDRESS_REPORT_ROLLUP_SECONDS"].flatMap(Int.init).map { min(86_400, max(1, $0)) } ?? 600
        let reports = Periodic("report rollup", every: .seconds(rollupSeconds), gate: host.gate, logger: host.logger) { [postgres = host.postgres, logger = host.logger] in
            try await postgres.withTransaction(logger: logger) { connection in
                try await ReportRollup.rebuild(from: Date().addingTimeInterval(-2 * 86_400), to: Date(), on: connection, logger: logger)
            }
        }
        // When a month or quarter has ended: HQ's and each province's report, kept as a snapshot and
        // announced to the unit's supervisors. Checked hourly; once taken, a period is not taken again.
        let snapshots = Periodic("report snapshots", every: .seconds(3_600), gate: host.gate, logger: host.logger) { [postgres = host.postgres, logger = host.logger] in
            let taken = try await postgres.withTransaction(logger: logger) { connection in
                try await ReportSnapshots.takeDue(on: connection, logger: logger)
            }
            for snapshot in taken {
                logger.info("report snapshot taken", metadata: ["unit": "\(snapshot.unit)", "period": "\(snapshot.period)", "version": "\(snapshot.version)"])
            }
        }
        // The oversight deadlines (inquiries, committee rulings, corrective actions, register reviews),
        // checked every 30 seconds; each row fires once (marked in the statement that finds it).
        let oversightSeconds = ProcessInfo.processInfo.environment["REDRESS_OVERSIGHT_SCAN_SECONDS"].flatMap(Int.init).map { min(3_600, max(1, $0)) } ?? 30
        let oversight = Periodic("oversight deadlines", every: .seconds(oversightSeconds), gate: host.gate, logger: host.logger) { [postgres = host.postgres, logger = host.logger] in
            let fired = try await postgres.withTransaction(logger: logger) { connection in
                try await OversightDeadlines.scan(actor: actor, on: connection, logger: logger)
            }
            if fired != OversightDeadlines.Fired() { logger.info("oversight deadlines", metadata: ["fired": "\(fired)"]) }
        }
        // 抽查: each province's "not liable" sample and HQ's satisfaction sample of the month just ended,
        // drawn once (a draw is stored; drawing again returns it). Checked hourly.
        let policy = SpotCheckPolicy.fromEnvironment()
        let draws = Periodic("spot-check draws", every: .seconds(3_600), gate: host.gate, logger: host.logger) { [postgres = host.postgres, logger = host.logger] in
            let made = try await postgres.withTransaction(logger: logger) { connection in
                try await SpotChecks.drawMonthly(now: Date(), policy: policy, actor: actor, on: connection, logger: logger)
            }
            for draw in made {
                logger.info("spot-check drawn", metadata: ["kind": "\(draw.kind.rawValue)", "unit": "\(draw.unit)", "period": "\(draw.period)",
                                                           "drawn": "\(draw.drawn)", "population": "\(draw.population)"])
            }
        }
        return (host.router(), [consumer, scanner, gauges, breachRatio, lag, reports, snapshots, oversight, draws])
    }
}

/// Reports the calendars' gaps in the log when they change: on the first round after start and
/// after each reload, and whenever a clock or the date brings a new one.
public final class CalendarWatch: Sendable {
    private let reported = NIOLockedValueBox<[CalendarCoverage.Gap]?>(nil)

    public init() {}

    public func reset() { reported.withLockedValue { $0 = nil } }

    public func check(book: ClockBook, postgres: PostgresClient, logger: Logger, now: Date = Date()) async throws -> [CalendarCoverage.Gap] {
        let gaps = try await book.calendarGaps(now: now, on: postgres, logger: logger)
        let changed = reported.withLockedValue { last in
            defer { last = gaps }
            return last != gaps
        }
        if changed {
            if gaps.isEmpty {
                logger.notice("working calendars cover every year running clocks and the next \(CalendarCoverage.warningDays) days need")
            } else {
                logger.warning("\(CalendarCoverage.describe(gaps))", metadata: ["gaps": "\(gaps.map(\.description).joined(separator: ","))"])
            }
        }
        return gaps
    }
}

/// The policy and calendars in force, swapped whole on reload.
public final class ClockBookHolder: Sendable {
    private let box: NIOLockedValueBox<ClockBook>

    public init(_ book: ClockBook) { box = NIOLockedValueBox(book) }

    public var current: ClockBook { box.withLockedValue { $0 } }

    public func replace(_ book: ClockBook) { box.withLockedValue { $0 = book } }
}

/// Reads any event that may change a complaint's clocks and rebuilds them. Only the envelope is
/// decoded (and a delivered notice's template): the clocks come from the system of record, not from the event.
public struct ClockHandler: BatchHandler {
    public let book: ClockBookHolder

    public init(book: ClockBookHolder) { self.book = book }

    /// An event for the clocks: its envelope, and for a delivered notice its template.
    public struct Item: Sendable {
        public var header: EventHeader
        public var noticeTemplate: String?
    }

    struct DeliveredTemplate: Decodable {
        struct Payload: Decodable { var template: String }
        var payload: Payload
    }

    public func decode(_ message: KafkaMessage) -> Result<Item, Rejection> {
        do {
            let data = Data(message.value)
            let header = try EventCoding.decoder().decode(EventHeader.self, from: data)
            let template = header.type == EventType.notificationDelivered.rawValue
                ? try EventCoding.decoder().decode(DeliveredTemplate.self, from: data).payload.template : nil
            return .success(Item(header: header, noticeTemplate: template))
        } catch {
            return .failure(Rejection(index: 0, reason: "not a Redress event envelope: \(EventCoding.describe(error))"))
        }
    }

    /// No inbox: a rebuild reads the system of record and writes the clocks whole, so an event seen
    /// twice rebuilds the same clocks again and changes nothing. The inbox rows were a third of the
    /// inbox's inserts in a surge, for no effect.
    public func eventID(of item: Item) -> UUID? { nil }

    /// Whether the event can move a clock: every case and complaint event can; a delivered notice
    /// only when the policy has a clock it meets (the acknowledgement). Each complaint's other notices
    /// — the handler's introduction, a proposal, the closure — rebuilt its clocks for nothing, a
    /// quarter of the supervisor's statements in a surge.
    public static func movesClocks(_ item: Item, policy: SLAPolicy) -> Bool {
        guard let template = item.noticeTemplate else { return true }
        return policy.clocks.contains { $0.stopsOnNotice == template }
    }

    public func handle(_ items: [Item], on connection: PostgresConnection, logger: Logger) async throws {
        let book = book.current
        let ids = Set(items.filter { Self.movesClocks($0, policy: book.policy) }.map(\.header.complaintId))
        try await ClockKeeper(book: book).rebuild(Array(ids), on: connection, logger: logger)
    }
}

/// Rebuilds complaints' clocks from their rows and case histories, and stores them.
public struct ClockKeeper: Sendable {
    public let book: ClockBook

    public init(book: ClockBook) { self.book = book }

    /// Arrays cannot carry NULL through the bindings: the epoch stands for "not set".
    static let none = Date(timeIntervalSince1970: 0)

    public func rebuild(_ ids: [UUID], on connection: PostgresConnection, logger: Logger) async throws {
        guard !ids.isEmpty else { return }
        // One rebuild of a complaint at a time (the consumer, another instance after a rebalance,
        // `redressctl sla recompute`): each reads the history and writes the clocks whole. Sorted, so two never deadlock
        // (each id's text made once: made in every comparison, it was the supervisor's largest cost after its statements).
        let sorted = ids.map { ($0.uuidString, $0) }.sorted { $0.0 < $1.0 }.map(\.1)
        try await connection.query("""
            SELECT pg_advisory_xact_lock(hashtextextended(x::text, 7)) FROM (SELECT unnest(\(sorted)::uuid[]) AS x) t
            """, logger: logger)
        var subjects: [UUID: (ClockSubject, String)] = [:]
        let rows = try await connection.query("""
            SELECT c.id, c.received_at, COALESCE(c.priority, 'normal'), c.claim_stage, c.regulator_deadline, u.region, c.category
            FROM complaints c JOIN org_units u ON u.code = COALESCE(c.handling_unit, c.branch)
            WHERE c.id = ANY(\(ids)::uuid[])
            """, logger: logger)
        for try await (id, received, priority, stage, deadline, region, category) in rows.decode((UUID, Date, String, String?, Date?, String, String?).self) {
            subjects[id] = (ClockSubject(receivedAt: received, priority: Priority(rawValue: priority) ?? .normal,
                                         postClaim: stage == "post_claim", regulatorDeadline: deadline,
                                         category: category.flatMap(Category.init(rawValue:))), region)
        }
        // Notices delivered — or suppressed because the customer consented to no channel we can use,
        // where there is no one to tell: the acknowledgement meets its clock.
        let notices = try await connection.query("""
            SELECT complaint_id, template, min(COALESCE(delivered_at, created_at)) FROM notifications
            WHERE complaint_id = ANY(\(ids)::uuid[]) AND status IN ('delivered', 'suppressed') AND channel <> 'staff_inbox' GROUP BY 1, 2
            """, logger: logger)
        for try await (id, template, at) in notices.decode((UUID, String, Date).self) { subjects[id]?.0.notices[template] = at }
        var histories: [UUID: [ClockHistoryEntry]] = [:]
        let events = try await connection.query("""
            SELECT complaint_id, at, action, from_status, to_status, (payload->>'decisionDays')::int, payload->>'nextContactAt'
            FROM case_events WHERE complaint_id = ANY(\(ids)::uuid[]) ORDER BY id
            """, logger: logger)
        for try await (id, at, action, from, to, days, next) in events.decode((UUID, Date, String, String?, String, Int?, String?).self) {
            guard let action = CaseAction(rawValue: action), let to = CaseStatus(rawValue: to) else { continue }
            histories[id, default: []].append(ClockHistoryEntry(at: at, action: action, fromStatus: from.flatMap(CaseStatus.init(rawValue:)),
                                                                toStatus: to, decisionDays: days, nextContactAt: next.flatMap(Timestamp.parse)))
        }
        // The clocks as stored: a rebuild writes only what it changes. Most rebuilds (the assignment,
        // the acknowledgement) leave most clocks as they were, and an upsert that changes nothing
        // still locks and rewrites its row's header.
        var stored: [ClockKey: StoredClock] = [:]
        let existing = try await connection.query("""
            SELECT complaint_id, kind, started_at, warn_at, due_at, paused_at, stopped_at FROM sla_clocks WHERE complaint_id = ANY(\(ids)::uuid[])
            """, logger: logger)
        for try await (id, kind, started, warn, due, paused, stopped) in existing.decode((UUID, String, Date, Date, Date, Date?, Date?).self) {
            stored[ClockKey(complaint: id, kind: kind)] = StoredClock(started: started, warn: warn, due: due, paused: paused, stopped: stopped)
        }
        var complaintIDs: [UUID] = [], kinds: [String] = [], started: [Date] = [], warn: [Date] = [], due: [Date] = []
        var paused: [Date?] = [], stopped: [Date?] = []
        var kept = Set<ClockKey>()
        for (id, (subject, region)) in subjects {
            for clock in ClockReplay.clocks(policy: book.policy, subject: subject, history: histories[id] ?? [], calendar: book.calendar(for: region)) {
                let key = ClockKey(complaint: id, kind: clock.kind.rawValue)
                kept.insert(key)
                let rebuilt = StoredClock(started: clock.startedAt, warn: clock.warnAt, due: clock.dueAt, paused: clock.pausedAt, stopped: clock.stoppedAt)
                if let old = stored[key], old.same(as: rebuilt) { continue }
                complaintIDs.append(id)
                kinds.append(clock.kind.rawValue)
                started.append(clock.startedAt)
                warn.append(clock.warnAt)
                due.append(clock.dueAt)
                paused.append(clock.pausedAt)
                stopped.append(clock.stoppedAt)
            }
        }
        // Warnings and breaches already fired stay fired: each fires once per clock. A stopped clock stays stopped.
        if !complaintIDs.isEmpty {
            try await connection.query("""
                INSERT INTO sla_clocks (complaint_id, kind, started_at, warn_at, due_at, paused_at, stopped_at)
                SELECT id, kind, started, warn, due, NULLIF(paused, 'epoch'), NULLIF(stopped, 'epoch')
                FROM unnest(\(complaintIDs)::uuid[], \(kinds)::text[], \(started)::timestamptz[], \(warn)::timestamptz[], \(due)::timestamptz[],
                            \(paused.map { $0 ?? Self.none })::timestamptz[], \(stopped.map { $0 ?? Self.none })::timestamptz[])
                    AS t(id, kind, started, warn, due, paused, stopped)
                ON CONFLICT (complaint_id, kind) DO UPDATE SET
                    started_at = EXCLUDED.started_at, warn_at = EXCLUDED.warn_at, due_at = EXCLUDED.due_at, paused_at = EXCLUDED.paused_at,
                    stopped_at = COALESCE(sla_clocks.stopped_at, EXCLUDED.stopped_at),
                    -- A restarted clock (the update clock, after a contact) is a new period: it may warn and breach again.
                    warned_at = CASE WHEN sla_clocks.started_at = EXCLUDED.started_at THEN sla_clocks.warned_at END,
                    breached_at = CASE WHEN sla_clocks.started_at = EXCLUDED.started_at THEN sla_clocks.breached_at END
                WHERE (sla_clocks.started_at, sla_clocks.warn_at, sla_clocks.due_at, sla_clocks.paused_at, sla_clocks.stopped_at)
                    IS DISTINCT FROM (EXCLUDED.started_at, EXCLUDED.warn_at, EXCLUDED.due_at, EXCLUDED.paused_at, COALESCE(sla_clocks.stopped_at, EXCLUDED.stopped_at))
                """, logger: logger)
        }
        // A clock the complaint no longer gets (reclassified out of the categories it applies to) stops now.
        let dropped = stored.filter { $0.value.stopped == nil && subjects[$0.key.complaint] != nil && !kept.contains($0.key) }.map(\.key)
        if !dropped.isEmpty {
            try await connection.query("""
                UPDATE sla_clocks s SET stopped_at = now()
                FROM unnest(\(dropped.map(\.complaint))::uuid[], \(dropped.map(\.kind))::text[]) AS t(id, kind)
                WHERE s.complaint_id = t.id AND s.kind = t.kind AND s.stopped_at IS NULL
                """, logger: logger)
        }
    }

    struct ClockKey: Hashable {
        var complaint: UUID
        var kind: String
    }

    /// A clock's times as the table keeps them.
    struct StoredClock {
        var started: Date, warn: Date, due: Date, paused: Date?, stopped: Date?

        /// Whether storing `rebuilt` would change nothing, as the upsert decides it: a stopped clock
        /// stays stopped, and times are compared in PostgreSQL's microseconds.
        func same(as rebuilt: StoredClock) -> Bool {
            func micros(_ date: Date?) -> Int64? { date.map { Int64(($0.timeIntervalSince1970 * 1_000_000).rounded()) } }
            return micros(started) == micros(rebuilt.started) && micros(warn) == micros(rebuilt.warn) && micros(due) == micros(rebuilt.due)
                && micros(paused) == micros(rebuilt.paused) && micros(stopped) == micros(stopped ?? rebuilt.stopped)
        }
    }

    /// 日历变更: recomputes every open clock (after a calendar or policy change), in slices.
    /// Returns how many complaints were rebuilt.
    public func rebuildOpen(on postgres: PostgresClient, logger: Logger, slice: Int = 2000) async throws -> Int {
        var after = UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        var total = 0
        while true {
            var ids: [UUID] = []
            for try await id in try await postgres.query("""
                SELECT DISTINCT complaint_id FROM sla_clocks WHERE stopped_at IS NULL AND breached_at IS NULL AND complaint_id > \(after)
                ORDER BY complaint_id LIMIT \(slice)
                """, logger: logger).decode(UUID.self) { ids.append(id) }
            guard let last = ids.last else { return total }
            try await postgres.withTransaction(logger: logger) { try await rebuild(ids, on: $0, logger: logger) }
            total += ids.count
            after = last
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
    /// The kinds whose breach escalates the case (from the policy in force).
    let escalating: @Sendable () -> Set<ClockKind>

    public init(postgres: PostgresClient, gate: StartupGate, interval: Duration, logger: Logger,
                escalating: @escaping @Sendable () -> Set<ClockKind> = { Set(ClockKind.allCases) }) {
        self.postgres = postgres
        self.gate = gate
        self.interval = interval
        self.logger = logger
        self.escalating = escalating
    }

    public func run() async throws {
        await gate.wait()
        guard gate.isOpen else { return }
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
                      -- A closed case whose clocks the consumer has not caught up with yet fires nothing.
                      AND c.status <> 'closed'
                    RETURNING s.complaint_id, s.kind, s.started_at, s.due_at, c.number, COALESCE(c.handling_unit, c.branch), c.assignee
                    """, logger: logger)
                var entries: [OutboxEntry] = []
                let encoder = EventCoding.encoder()
                let escalating = self.escalating()
                for try await (id, kind, started, dueAt, number, unit, assignee) in rows.decode((UUID, String, Date, Date, String, String, String?).self) {
                    let clockKind = ClockKind(rawValue: kind) ?? .decision
                    let clock = SLAClockEvent(number: number, clock: clockKind, startedAt: started, dueAt: dueAt, handlingUnit: unit, assignee: assignee,
                                              escalates: escalating.contains(clockKind))
                    if type == .slaWarning {
                        entries.append(try OutboxEntry(EventEnvelope(occurredAt: now, complaintId: id, orgUnit: unit, actor: SupervisorService.actor, payload: SLAWarning(clock: clock)), encoder: encoder))
                        Counter(label: "redress_sla_warnings_total", dimensions: [("kind", kind)]).increment()
                    } else {
                        entries.append(try OutboxEntry(EventEnvelope(occurredAt: now, complaintId: id, orgUnit: unit, actor: SupervisorService.actor, payload: SLABreached(clock: clock)), encoder: encoder))
                        Counter(label: "redress_sla_breaches_total", dimensions: [("kind", kind), ("unit", unit)]).increment()
                        // How long the clock ran before it was missed.
                        Recorder(label: "redress_sla_time_to_breach_seconds", dimensions: [("kind", kind)]).record(dueAt.timeIntervalSince(started))
                    }
                }
                try await Outbox.append(entries, on: tx, logger: logger)
                fired += entries.count
            }
            return fired
        }
    }
}
