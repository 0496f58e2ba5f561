import Foundation
import Logging
import PostgresNIO
import RedressContracts
import RedressDomain

/// A note in staff inboxes written by the service that knows of it, in its own transaction (a
/// deadline of an inquiry, a spot-check draw, a register decision). `recipient` is `staff:<id>` or
/// `supervisors:<unit>`; a note about no complaint names what it is about in `reference`.
public struct InboxNote: Sendable {
    public var complaintID: UUID?
    public var recipient: String
    public var template: String
    public var reference: String?

    public init(complaintID: UUID?, recipient: String, template: String, reference: String? = nil) {
        self.complaintID = complaintID
        self.recipient = recipient
        self.template = template
        self.reference = reference
    }

    public static func record(_ notes: [InboxNote], on connection: PostgresConnection, logger: Logger) async throws {
        guard !notes.isEmpty else { return }
        try await connection.query("""
            INSERT INTO notifications (id, complaint_id, event_id, recipient, channel, template, status, delivered_at, reference)
            SELECT gen_random_uuid(), NULLIF(t.complaint_id, '')::uuid, gen_random_uuid(), t.recipient, 'staff_inbox', t.template, 'delivered', now(),
                NULLIF(t.reference, '')
            FROM unnest(\(notes.map { $0.complaintID?.uuidString ?? "" })::text[], \(notes.map(\.recipient))::text[], \(notes.map(\.template))::text[],
                        \(notes.map { $0.reference ?? "" })::text[]) AS t(complaint_id, recipient, template, reference)
            """, logger: logger)
    }

    /// The active staff of a role in a unit (and department), as inbox recipients.
    public static func staff(role: String, unit: String, department: String? = nil, on connection: PostgresConnection, logger: Logger) async throws -> [String] {
        var ids: [String] = []
        let rows = try await connection.query("""
            SELECT id FROM staff WHERE active AND role = \(role) AND org_unit = \(unit) AND (\(department)::text IS NULL OR department = \(department)) ORDER BY id
            """, logger: logger)
        for try await id in rows.decode(String.self) { ids.append("staff:" + id) }
        return ids
    }
}

/// 抽查的随机抽样: which of a period's candidates a draw takes, reproducibly. Each candidate is ranked
/// by a 64-bit hash of the draw's seed and its id, and the lowest ranks are taken: the same seed and
/// candidates give the same sample on any machine, and a candidate's chance does not depend on order.
public enum SpotCheckSample {
    /// How many of `population` a draw takes: the share, rounded up, but at least `minimum` (or all).
    public static func size(population: Int, share: Double, minimum: Int) -> Int {
        guard population > 0 else { return 0 }
        return min(population, max(minimum, Int((Double(population) * share).rounded(.up))))
    }

    public static func rank(seed: String, id: UUID) -> UInt64 {
        // FNV-1a over "seed|id", then the SplitMix64 finaliser so that near-equal inputs spread.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in (seed + "|" + id.uuidString.lowercased()).utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        hash = (hash ^ (hash >> 30)) &* 0xbf58_476d_1ce4_e5b9
        hash = (hash ^ (hash >> 27)) &* 0x94d0_49bb_1331_11eb
        return hash ^ (hash >> 31)
    }

    public static func pick(_ candidates: [UUID], seed: String, share: Double, minimum: Int) -> [UUID] {
        let count = size(population: candidates.count, share: share, minimum: minimum)
        let ranked: [(id: UUID, rank: UInt64)] = candidates.map { (id: $0, rank: rank(seed: seed, id: $0)) }
        let ordered = ranked.sorted { (a: (id: UUID, rank: UInt64), b: (id: UUID, rank: UInt64)) -> Bool in
            a.rank != b.rank ? a.rank < b.rank : a.id.uuidString < b.id.uuidString
        }
        return ordered.prefix(count).map { $0.id }
    }
}

/// The configured share and minimum count of each kind of draw.
public struct SpotCheckPolicy: Sendable, Equatable {
    public var share: [SpotCheckKind: Double]
    public var minimum: [SpotCheckKind: Int]

    public init(share: [SpotCheckKind: Double], minimum: [SpotCheckKind: Int]) {
        self.share = share
        self.minimum = minimum
    }

    /// A tenth of a month's "not liable" closures, at least five; a twentieth of HQ's closed cases, at least ten.
    public static let standard = SpotCheckPolicy(share: [.notLiable: 0.1, .satisfaction: 0.05], minimum: [.notLiable: 5, .satisfaction: 10])

    /// `REDRESS_SPOT_CHECK_SHARE`/`_MINIMUM` (not-liable closures) and `REDRESS_SATISFACTION_CHECK_SHARE`/`_MINIMUM`.
    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) -> SpotCheckPolicy {
        var policy = standard
        if let share = env["REDRESS_SPOT_CHECK_SHARE"].flatMap(Double.init), share > 0, share <= 1 { policy.share[.notLiable] = share }
        if let minimum = env["REDRESS_SPOT_CHECK_MINIMUM"].flatMap(Int.init), minimum >= 0 { policy.minimum[.notLiable] = minimum }
        if let share = env["REDRESS_SATISFACTION_CHECK_SHARE"].flatMap(Double.init), share > 0, share <= 1 { policy.share[.satisfaction] = share }
        if let minimum = env["REDRESS_SATISFACTION_CHECK_MINIMUM"].flatMap(Int.init), minimum >= 0 { policy.minimum[.satisfaction] = minimum }
        return policy
    }
}

public enum SpotChecks {
    /// A draw as stored: which period, how many there were and how many it took.
    public struct Draw: Sendable, Codable, Equatable {
        public var kind: SpotCheckKind
        public var unit: String
        public var period: String
        public var seed: String
        public var share: Double
        public var minimum: Int
        public var population: Int
        public var drawn: Int
        public var drawnBy: String
        public var drawnAt: String
    }

    /// Which level draws which kind: a province its subtree's "not liable" closures; HQ the
    /// satisfaction spot-check over closed cases. Nil when `level` may draw `kind`, else who may.
    public static func refusal(kind: SpotCheckKind, level: OrgLevel) -> String? {
        switch (kind, level) {
        case (.notLiable, .province), (.satisfaction, .hq): nil
        case (.notLiable, _): "the spot-check of \"not liable\" closures is drawn by a province (第六条): a province's supervisor draws it for the cities and counties below"
        case (.satisfaction, _): "the satisfaction spot-check (满意度抽查) is drawn by headquarters: an HQ supervisor draws it"
        }
    }

    /// Draws `kind` for `unit` over `period` once: drawing again returns the stored draw (and the
    /// second value is false). Runs in the caller's transaction, as a service or as staff under
    /// row-level security (then only the caller's subtree is a candidate, which is the drawing unit's).
    public static func draw(kind: SpotCheckKind, unit: String, period: ReportPeriod, by actor: Actor, policy: SpotCheckPolicy,
                            on connection: PostgresConnection, logger: Logger) async throws -> (Draw, Bool) {
        if let existing = try await stored(kind: kind, unit: unit, period: period.label, on: connection, logger: logger) { return (existing, false) }
        var path: String?
        for try await value in try await connection.query("SELECT path FROM org_units WHERE code = \(unit)", logger: logger).decode(String.self) {
            path = value
        }
        guard let path else { throw SeedError(description: "unit \(unit) is not a unit of the organisation") }
        let below = kind == .notLiable
        var candidates: [UUID] = []
        var cases: [UUID: (number: String, unit: String)] = [:]
        // Closures of the period by the rules' local day; for "not liable" those below the drawing unit
        // flagged for spot-check at closure, for satisfaction every closed case of the subtree.
        let rows = try await connection.query("""
            SELECT id, number, COALESCE(handling_unit, branch) FROM complaints
            WHERE status = 'closed' AND closed_at IS NOT NULL
              AND (unit_path LIKE \(path) || '/%' OR (NOT \(below) AND unit_path = \(path)))
              AND (NOT \(below) OR (spot_check AND liability = 'not_liable'))
              AND (closed_at AT TIME ZONE \(ReportRollup.zone))::date BETWEEN \(period.firstDay)::date AND \(period.lastDay)::date
            ORDER BY id
            """, logger: logger)
        for try await (id, number, handling) in rows.decode((UUID, String, String).self) {
            candidates.append(id)
            cases[id] = (number, handling)
        }
        let seed = "\(kind.rawValue):\(unit):\(period.label)"
        let share = policy.share[kind] ?? 0.1, minimum = policy.minimum[kind] ?? 0
        let picked = SpotCheckSample.pick(candidates, seed: seed, share: share, minimum: minimum)
        let inserted = try await connection.query("""
            INSERT INTO spot_check_draws (kind, unit, unit_path, period, seed, share, minimum, population, drawn, drawn_by)
            VALUES (\(kind.rawValue), \(unit), \(path), \(period.label), \(seed), \(share), \(minimum), \(candidates.count), \(picked.count), \(actor.id))
            ON CONFLICT DO NOTHING RETURNING 1
            """, logger: logger)
        var created = false
        for try await _ in inserted.decode(Int.self) { created = true }
        guard created else {
            // Another instance drew it a moment ago: theirs is the draw.
            return (try await stored(kind: kind, unit: unit, period: period.label, on: connection, logger: logger)!, false)
        }
        var outbox: [OutboxEntry] = []
        let ids = picked.map { _ in UUID() }
        let encoder = EventCoding.encoder()
        for (checkID, complaint) in zip(ids, picked) {
            let known = cases[complaint]!
            outbox.append(try OutboxEntry(EventEnvelope(complaintId: complaint, orgUnit: known.unit, actor: actor,
                payload: SpotCheckDrawn(number: known.number, spotCheckId: checkID, kind: kind, drawingUnit: unit, period: period.label,
                                        handlingUnit: known.unit)), encoder: encoder))
        }
        try await connection.query("""
            INSERT INTO spot_checks (id, kind, unit, unit_path, period, complaint_id, handling_unit)
            SELECT t.id, \(kind.rawValue), \(unit), \(path), \(period.label), t.complaint, t.handling
            FROM unnest(\(ids)::uuid[], \(picked)::uuid[], \(picked.map { cases[$0]!.unit })::text[]) AS t(id, complaint, handling)
            """, logger: logger)
        try await Outbox.append(outbox, on: connection, logger: logger)
        try await InboxNote.record([InboxNote(complaintID: nil, recipient: "supervisors:" + unit, template: "spotcheck.drawn.supervisors",
                                              reference: "spotcheck:\(kind.rawValue):\(unit):\(period.label)")], on: connection, logger: logger)
        return (try await stored(kind: kind, unit: unit, period: period.label, on: connection, logger: logger)!, true)
    }

    static func stored(kind: SpotCheckKind, unit: String, period: String, on connection: PostgresConnection, logger: Logger) async throws -> Draw? {
        let rows = try await connection.query("""
            SELECT seed, share, minimum, population, drawn, drawn_by, drawn_at FROM spot_check_draws
            WHERE kind = \(kind.rawValue) AND unit = \(unit) AND period = \(period)
            """, logger: logger)
        for try await (seed, share, minimum, population, drawn, by, at) in rows.decode((String, Double, Int, Int, Int, String, Date).self) {
            return Draw(kind: kind, unit: unit, period: period, seed: seed, share: share, minimum: minimum, population: population, drawn: drawn,
                        drawnBy: by, drawnAt: Timestamp.format(at))
        }
        return nil
    }

    /// The month before `now`'s, in the rules' zone (`2026-10` on any day of November).
    public static func previousMonth(before now: Date) -> ReportPeriod {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: ReportRollup.zone)!
        let month = calendar.date(byAdding: .month, value: -1, to: now)!
        let c = calendar.dateComponents([.year, .month], from: month)
        return ReportPeriod.parse(String(format: "%04d-%02d", c.year!, c.month!))!
    }

    /// Each province's "not liable" draw and HQ's satisfaction draw for the month that ended last:
    /// what the supervisor does each month (it checks hourly; a period is drawn once).
    public static func drawMonthly(now: Date, policy: SpotCheckPolicy, actor: Actor, on connection: PostgresConnection, logger: Logger) async throws -> [Draw] {
        let period = previousMonth(before: now)
        var units: [(String, OrgLevel)] = []
        for try await (code, level) in try await connection.query("SELECT code, level FROM org_units WHERE level IN ('hq', 'province') ORDER BY path",
                                                                   logger: logger).decode((String, String).self) {
            units.append((code, OrgLevel(rawValue: level) ?? .province))
        }
        var made: [Draw] = []
        for (unit, level) in units {
            let kind: SpotCheckKind = level == .hq ? .satisfaction : .notLiable
            let (draw, created) = try await draw(kind: kind, unit: unit, period: period, by: actor, policy: policy, on: connection, logger: logger)
            if created { made.append(draw) }
        }
        return made
    }
}

/// The oversight deadlines the supervisor watches besides the case clocks: inquiries and committee
/// rulings (warned at the policy's share, alerted when due), corrective actions (a reminder two days
/// before, an alert after), and register entries whose review date has passed (expired). Each row is
/// marked in the statement that finds it, so each note goes out once whichever instance scans.
public enum OversightDeadlines {
    public struct Fired: Sendable, Equatable {
        public var inquiryWarnings = 0, inquiriesOverdue = 0, rulingWarnings = 0, rulingsOverdue = 0
        public var correctiveReminders = 0, correctiveOverdue = 0, registerExpired = 0
        public init() {}
    }

    public static func scan(now: Date = Date(), actor: Actor, on connection: PostgresConnection, logger: Logger) async throws -> Fired {
        var fired = Fired()
        var notes: [InboxNote] = []
        for (stage, column, due) in [("warning", "warned_at", "warn_at"), ("overdue", "breached_at", "due_at")] {
            let rows = try await connection.query(PostgresQuery(unsafeSQL: """
                UPDATE inquiries i SET \(column) = $1 FROM complaints c
                WHERE c.id = i.complaint_id AND i.status = 'open' AND i.\(column) IS NULL AND i.\(due) <= $1
                RETURNING i.complaint_id, i.unit, i.department, c.assignee
                """, binds: binds(now)), logger: logger)
            for try await (complaint, unit, department, owner) in rows.decode((UUID, String, String, String?).self) {
                for coordinator in try await InboxNote.staff(role: "coordinator", unit: unit, department: department, on: connection, logger: logger) {
                    notes.append(InboxNote(complaintID: complaint, recipient: coordinator, template: "inquiry.\(stage).coordinator"))
                }
                if stage == "overdue", let owner { notes.append(InboxNote(complaintID: complaint, recipient: "staff:" + owner, template: "inquiry.overdue.owner")) }
                if stage == "warning" { fired.inquiryWarnings += 1 } else { fired.inquiriesOverdue += 1 }
            }
            let rulings = try await connection.query(PostgresQuery(unsafeSQL: """
                UPDATE committee_referrals r SET \(column) = $1 FROM complaints c
                WHERE c.id = r.complaint_id AND r.ruled_at IS NULL AND r.\(column) IS NULL AND r.\(due) <= $1
                RETURNING r.complaint_id, COALESCE(c.handling_unit, c.branch)
                """, binds: binds(now)), logger: logger)
            for try await (complaint, unit) in rulings.decode((UUID, String).self) {
                for member in try await InboxNote.staff(role: "committee", unit: unit, on: connection, logger: logger) {
                    notes.append(InboxNote(complaintID: complaint, recipient: member, template: "committee.ruling.\(stage)"))
                }
                notes.append(InboxNote(complaintID: complaint, recipient: "supervisors:" + unit, template: "committee.ruling.\(stage)"))
                if stage == "warning" { fired.rulingWarnings += 1 } else { fired.rulingsOverdue += 1 }
            }
        }
        // Corrective actions: a reminder when two days are left, an alert once the deadline has passed.
        let reminders = try await connection.query("""
            UPDATE corrective_actions SET reminded_at = \(now)
            WHERE status = 'open' AND reminded_at IS NULL AND due_at <= \(now.addingTimeInterval(2 * 86_400)) AND due_at > \(now)
            RETURNING id, complaint_id, responsible
            """, logger: logger)
        for try await (id, complaint, responsible) in reminders.decode((UUID, UUID?, String).self) {
            notes.append(InboxNote(complaintID: complaint, recipient: "staff:" + responsible, template: "corrective.reminder.responsible",
                                   reference: complaint == nil ? "corrective:\(id.uuidString.lowercased())" : nil))
            fired.correctiveReminders += 1
        }
        let overdue = try await connection.query("""
            UPDATE corrective_actions SET alerted_at = \(now) WHERE status = 'open' AND alerted_at IS NULL AND due_at <= \(now)
            RETURNING id, complaint_id, responsible, owner_unit
            """, logger: logger)
        for try await (id, complaint, responsible, unit) in overdue.decode((UUID, UUID?, String, String).self) {
            let reference = complaint == nil ? "corrective:\(id.uuidString.lowercased())" : nil
            notes.append(InboxNote(complaintID: complaint, recipient: "staff:" + responsible, template: "corrective.overdue", reference: reference))
            notes.append(InboxNote(complaintID: complaint, recipient: "supervisors:" + unit, template: "corrective.overdue", reference: reference))
            fired.correctiveOverdue += 1
        }
        // Register entries past their review date lapse unless a province supervisor renewed them.
        let expired = try await connection.query("""
            UPDATE vexatious_register SET status = 'expired', version = version + 1 WHERE status = 'approved' AND review_at <= \(now)
            RETURNING id, customer_key, unit, case_numbers
            """, logger: logger)
        var outbox: [OutboxEntry] = []
        var audit: [UUID] = []
        for try await (id, key, unit, numbers) in expired.decode((UUID, String, String, [String]).self) {
            audit.append(id)
            notes.append(InboxNote(complaintID: nil, recipient: "supervisors:" + unit, template: "register.expired.supervisors",
                                   reference: "register:\(id.uuidString.lowercased())"))
            if let complaint = try await latestCase(numbers, on: connection, logger: logger) {
                outbox.append(try OutboxEntry(EventEnvelope(complaintId: complaint, orgUnit: unit, actor: actor,
                    payload: RegisterChanged(entryId: id, customerKey: key, status: .expired, change: "expire", unit: unit, reviewAt: nil))))
            }
            fired.registerExpired += 1
        }
        if !audit.isEmpty {
            try await connection.query("""
                INSERT INTO register_reads (entry_id, actor, actor_role, action) SELECT id, \(actor.id), 'service', 'expire' FROM unnest(\(audit)::uuid[]) AS t(id)
                """, logger: logger)
        }
        try await Outbox.append(outbox, on: connection, logger: logger)
        try await InboxNote.record(notes, on: connection, logger: logger)
        return fired
    }

    static func binds(_ now: Date) -> PostgresBindings {
        var binds = PostgresBindings()
        binds.append(now)
        return binds
    }

    /// The latest of a register entry's cases, which its events are keyed by.
    public static func latestCase(_ numbers: [String], on connection: PostgresConnection, logger: Logger) async throws -> UUID? {
        let rows = try await connection.query("SELECT id FROM complaints WHERE number = ANY(\(numbers)::text[]) ORDER BY received_at DESC LIMIT 1", logger: logger)
        for try await id in rows.decode(UUID.self) { return id }
        return nil
    }
}
