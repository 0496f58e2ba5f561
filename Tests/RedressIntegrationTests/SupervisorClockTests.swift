import Foundation
import PostgresNIO
@testable import RedressCases
@testable import RedressContracts
import RedressDomain
import RedressKafka
@testable import RedressNotify
@testable import RedressRouting
@testable import RedressServiceKit
@testable import RedressSupervisor
import Testing

/// Clocks kept from the system of record: rebuilt from the case history on every change, fired
/// once, and a breach escalating the case through the case service to routing.
@Suite struct SupervisorClockTests {
    /// A delivered notice rebuilds the clocks only when a clock of the policy is met by it (the
    /// acknowledgement); the handler's introduction and the other notices change no clock.
    @Test func onlyANoticeThatMeetsAClockRebuildsTheClocks() async throws {
        try await TestDatabase.withFresh { db, _ in
            let id = try await CaseFixture.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", number: "GD-SZ-20261130-000701")
            let handler = ClockHandler(book: ClockBookHolder(try ClockBook.fromEnvironment()))
            func delivered(_ template: String) throws -> ClockHandler.Item {
                let envelope = EventEnvelope(complaintId: id, orgUnit: "GD-SZ", actor: .service("redress-notify"), payload: NotificationDelivered(
                    notificationId: UUID(), number: "GD-SZ-20261130-000701", template: template, channel: "sms",
                    recipient: NotificationRecipient(kind: .customer, id: "k", address: "138****5678"), sourceEventId: UUID(), attempt: 1,
                    gatewayMessageId: nil, deliveredAt: Date()))
                let message = KafkaMessage(topic: EventType.notificationDelivered.topic, partition: 0, offset: 0, key: nil,
                                           value: Array(try EventCoding.encoder().encode(envelope)), headers: [])
                return try handler.decode(message).get()
            }
            let introduction = try delivered("case.assigned.customer"), acknowledgement = try delivered("complaint.registered.acknowledgement")
            #expect(introduction.noticeTemplate == "case.assigned.customer")
            #expect(!ClockHandler.movesClocks(introduction, policy: handler.book.current.policy))
            #expect(ClockHandler.movesClocks(acknowledgement, policy: handler.book.current.policy))
            try await db.withTransaction(logger: TestDatabase.logger) { try await handler.handle([introduction], on: $0, logger: TestDatabase.logger) }
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM sla_clocks WHERE complaint_id = \(id)") == 0, "no rebuild for the introduction")
            try await db.withTransaction(logger: TestDatabase.logger) { try await handler.handle([acknowledgement], on: $0, logger: TestDatabase.logger) }
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM sla_clocks WHERE complaint_id = \(id)") >= 3, "the acknowledgement rebuilds them")
            // No inbox: the same event handled again (a redelivery) rebuilds the same clocks and rewrites no row.
            #expect(handler.eventID(of: acknowledgement) == nil)
            func writers() async throws -> [String] {
                try await db.query("SELECT kind || ':' || xmin::text FROM sla_clocks WHERE complaint_id = \(id) ORDER BY kind", logger: TestDatabase.logger)
                    .collect().map { try $0.decode(String.self) }
            }
            let before = try await writers()
            try await db.withTransaction(logger: TestDatabase.logger) { try await handler.handle([acknowledgement, acknowledgement], on: $0, logger: TestDatabase.logger) }
            #expect(try await writers() == before)
        }
    }

    static let book: ClockBook = try! ClockBook.load(policyFile: TestDatabase.repo.appendingPathComponent("deploy/sla/policy.json").path,
                                                      calendarDirectory: TestDatabase.repo.appendingPathComponent("deploy/calendars").path)
    static let received = Timestamp.parse("2026-11-02T10:00:00+08:00")!
    static let day = 86_400.0

    static func history(_ db: PostgresClient, _ id: UUID, _ entries: [(Double, String, String, String, String)]) async throws {
        for (offset, action, from, to, payload) in entries {
            try await db.query("""
                INSERT INTO case_events (complaint_id, event_id, at, actor, action, from_status, to_status, payload)
                VALUES (\(id), \(UUID()), \(received.addingTimeInterval(offset)), 'GD-SZ-AGE01', \(action), \(from), \(to), \(payload)::jsonb)
                """, logger: TestDatabase.logger)
        }
    }

    static func clock(_ db: PostgresClient, _ id: UUID, _ kind: String) async throws -> (due: Date, paused: Date?, stopped: Date?)? {
        for try await row in try await db.query("SELECT due_at, paused_at, stopped_at FROM sla_clocks WHERE complaint_id = \(id) AND kind = \(kind)",
                                                logger: TestDatabase.logger).decode((Date, Date?, Date?).self) {
            return row
        }
        return nil
    }

    static func rebuild(_ db: PostgresClient, _ ids: [UUID], book: ClockBook = book) async throws {
        try await db.withTransaction(logger: TestDatabase.logger) { try await ClockKeeper(book: book).rebuild(ids, on: $0, logger: TestDatabase.logger) }
    }

    /// A rebuild writes only what it changes: replayed again, no clock row is rewritten; a clock the
    /// complaint no longer gets (a claim reclassified as a service complaint) stops, and only it.
    @Test func aRebuildWritesOnlyWhatChanged() async throws {
        try await TestDatabase.withFresh { db, _ in
            let id = try await CaseFixture.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", number: "GD-SZ-20261102-000009")
            try await db.query("UPDATE complaints SET received_at = \(Self.received), category = 'claims' WHERE id = \(id)", logger: TestDatabase.logger)
            // Each row's xmin: the transaction that last wrote it.
            func writers() async throws -> [String: String] {
                var result: [String: String] = [:]
                for try await (kind, xmin) in try await db.query("SELECT kind, xmin::text FROM sla_clocks WHERE complaint_id = \(id)",
                                                                 logger: TestDatabase.logger).decode((String, String).self) {
                    result[kind] = xmin
                }
                return result
            }
            try await Self.rebuild(db, [id])
            let first = try await writers()
            #expect(first["update"] != nil && first["decision"] != nil, "a claim gets the daily update: \(first)")
            try await Self.rebuild(db, [id])
            #expect(try await writers() == first, "replayed with nothing new, no clock is rewritten")
            try await db.query("UPDATE complaints SET category = 'service' WHERE id = \(id)", logger: TestDatabase.logger)
            try await Self.rebuild(db, [id])
            let after = try await writers()
            #expect(after["update"] != first["update"])
            #expect(try await Self.clock(db, id, "update")?.stopped != nil, "the daily update stops once the case is no claim")
            for kind in first.keys where kind != "update" { #expect(after[kind] == first[kind], "\(kind) is left as it was") }
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM sla_clocks WHERE complaint_id = \(id) AND stopped_at IS NULL") == first.count - 1)
        }
    }

    @Test func clocksFollowTheCaseHistoryAndReplayToTheSameDeadlines() async throws {
        try await TestDatabase.withFresh { db, _ in
            let id = try await CaseFixture.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", number: "GD-SZ-20261102-000001")
            try await db.query("UPDATE complaints SET received_at = \(Self.received) WHERE id = \(id)", logger: TestDatabase.logger)
            try await Self.rebuild(db, [id])
            #expect(try await Self.clock(db, id, "decision")?.due == Self.received.addingTimeInterval(15 * Self.day))
            #expect(try await Self.clock(db, id, "first_contact")?.due == Self.received.addingTimeInterval(Self.day))
            #expect(try await Self.clock(db, id, "post_claim") == nil)
            // 告知受理: the acknowledgement reached the customer two hours in; its clock stops there.
            try await db.query("""
                INSERT INTO notifications (id, complaint_id, event_id, recipient, channel, template, status, delivered_at)
                VALUES (\(UUID()), \(id), \(UUID()), 'customer:k', 'sms', 'complaint.registered.acknowledgement', 'delivered', \(Self.received.addingTimeInterval(7200)))
                """, logger: TestDatabase.logger)
            try await Self.rebuild(db, [id])
            #expect(try await Self.clock(db, id, "acknowledge")?.stopped == Self.received.addingTimeInterval(7200))
            try await Self.history(db, id, [
                (3600, "start_investigation", "assigned", "investigating", "{}"),
                (2 * Self.day, "await_customer", "investigating", "awaiting_customer", "{}"),
            ])
            try await Self.rebuild(db, [id])
            #expect(try await Self.clock(db, id, "decision")?.paused == Self.received.addingTimeInterval(2 * Self.day))
            #expect(try await Self.clock(db, id, "first_contact")?.stopped == Self.received.addingTimeInterval(3600))
            try await Self.history(db, id, [
                (4 * Self.day, "customer_responded", "awaiting_customer", "investigating", "{}"),
                (6 * Self.day, "extend", "investigating", "investigating", #"{"decisionDays":"30"}"#),
            ])
            try await Self.rebuild(db, [id])
            let decision = try #require(try await Self.clock(db, id, "decision"))
            #expect(decision.due == Self.received.addingTimeInterval(32 * Self.day), "30 days plus the 2 awaiting the customer")
            #expect(decision.paused == nil)
            // Replaying changes nothing.
            try await Self.rebuild(db, [id])
            #expect(try await Self.clock(db, id, "decision")?.due == decision.due)
            try await Self.history(db, id, [(9 * Self.day, "close", "resolved", "closed", "{}")])
            try await Self.rebuild(db, [id])
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM sla_clocks WHERE complaint_id = \(id) AND stopped_at IS NULL") == 0)
        }
    }

    @Test func aBreachFiresOnceAlertsAndEscalatesTheCaseToRouting() async throws {
        try await TestDatabase.withFresh { db, _ in
            // A service complaint: no daily-update clock (that is for claims).
            let id = try await CaseFixture.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "investigating", number: "GD-SZ-20261102-000002",
                                                  category: "service")
            try await db.query("UPDATE complaints SET received_at = \(Self.received) WHERE id = \(id)", logger: TestDatabase.logger)
            try await Self.history(db, id, [(3600, "start_investigation", "assigned", "investigating", "{}")])
            try await Self.rebuild(db, [id])
            let gate = StartupGate()
            gate.open()
            let now = Self.received.addingTimeInterval(16 * Self.day)
            let escalating = Set(Self.book.policy.clocks.filter(\.escalates).map(\.kind))
            let fired = try await db.withConnection {
                try await DeadlineScanner(postgres: db, gate: gate, interval: .seconds(1), logger: TestDatabase.logger, escalating: { escalating })
                    .scan(on: $0, now: now)
            }
            #expect(fired == 4, "acknowledge and decision: each warned and breached; first contact stopped in time")
            // A restarted supervisor, and a rebuild after the breach, fire nothing again.
            try await Self.rebuild(db, [id])
            let again = try await db.withConnection {
                try await DeadlineScanner(postgres: db, gate: gate, interval: .seconds(1), logger: TestDatabase.logger).scan(on: $0, now: now.addingTimeInterval(60))
            }
            #expect(again == 0)

            let breaches = try await Self.outbox(db, EventType.slaBreached).map { try EventCoding.decoder().decode(EventEnvelope<SLABreached>.self, from: Data($0.utf8)) }
            #expect(breaches.map(\.payload.clock.clock).sorted { $0.rawValue < $1.rawValue } == [.acknowledge, .decision])
            #expect(breaches.first { $0.payload.clock.clock == .acknowledge }?.payload.clock.escalates == false, "a missed acknowledgement alerts; it does not escalate")
            try await db.withTransaction(logger: TestDatabase.logger) { connection in
                // The owner and the unit's supervisors are told…
                try await Composer(settings: NotifyFixture.settings([:])).alertDeadline(
                    breaches.map { SLAAlert(id: $0.id, complaintID: $0.complaintId, template: "sla.breached.staff", clock: $0.payload.clock) },
                    on: connection, logger: TestDatabase.logger)
                // …and the case service escalates the case, for the decision clock only.
                try await CasesService.escalateBreaches(breaches, workflow: CaseWorkflow(taxonomy: CaseFixture.taxonomy), on: connection, logger: TestDatabase.logger)
            }
            #expect(try await TestDatabase.count(db, """
                SELECT count(*) FROM notifications WHERE template = 'sla.breached.staff' AND recipient IN ('staff:GD-SZ-AGE01', 'supervisors:GD-SZ')
                """) == 4)
            let escalations = try await Self.outbox(db, EventType.caseEscalated)
            #expect(escalations.count == 1)
            // Routing takes the escalation one level up.
            let handler = RerouteHandler(engine: RoutingEngine(rules: .fallback, postgres: db, logger: TestDatabase.logger))
            let item = try handler.decode(KafkaMessage(topic: EventType.caseEscalated.topic, partition: 0, offset: 0, key: nil, value: Array(escalations[0].utf8), headers: [])).get()
            try await db.withTransaction(logger: TestDatabase.logger) { try await handler.handle([item], on: $0, logger: TestDatabase.logger) }
            let assigned = try await Self.outbox(db, EventType.complaintAssigned).map { try EventCoding.decoder().decode(EventEnvelope<ComplaintAssigned>.self, from: Data($0.utf8)) }
            #expect(assigned.first?.payload.handlingUnit == "GD")
            #expect(assigned.first?.payload.reason == .escalated)
        }
    }

    @Test func aCalendarChangeRecomputesTheOpenWorkingTimeDeadlines() async throws {
        try await TestDatabase.withFresh { db, _ in
            let working = SLAPolicy(warnShare: 0.8, urgentFactor: 0.5, clocks: [
                ClockRule(kind: .decision, hours: 15, time: .working, urgentShortens: false, pauses: true, stopsOn: [.close]),
            ])
            let before = ClockBook(policy: working, calendars: Self.book.calendars)
            let friday = Timestamp.parse("2026-11-20T17:00:00+08:00")!
            let id = try await CaseFixture.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", number: "GD-SZ-20261120-000001")
            try await db.query("UPDATE complaints SET received_at = \(friday) WHERE id = \(id)", logger: TestDatabase.logger)
            try await Self.rebuild(db, [id], book: before)
            #expect(try await Self.clock(db, id, "decision")?.due == Timestamp.parse("2026-11-24T17:00:00+08:00"))
            // A day off is declared for Monday 23 November: the deadline moves a working day on.
            let cn = Self.book.calendar(for: "CN")
            let monday = Int(Timestamp.parse("2026-11-23T00:00:00Z")!.timeIntervalSince1970 / 86_400)
            let changed = WorkingCalendar(region: "CN", timeZone: cn.timeZone, workingHours: cn.workingHours, weekend: cn.weekend,
                                          holidays: cn.holidays.union([monday]), makeUpWorkingDays: cn.makeUpWorkingDays)
            let rebuilt = try await ClockKeeper(book: ClockBook(policy: working, calendars: ["CN": changed])).rebuildOpen(on: db, logger: TestDatabase.logger)
            #expect(rebuilt == 1)
            #expect(try await Self.clock(db, id, "decision")?.due == Timestamp.parse("2026-11-25T17:00:00+08:00"))
        }
    }

    static func outbox(_ db: PostgresClient, _ type: EventType) async throws -> [String] {
        var texts: [String] = []
        for try await text in try await db.query("SELECT convert_from(payload, 'UTF8') FROM outbox WHERE event_type = \(type.rawValue) ORDER BY id",
                                                 logger: TestDatabase.logger).decode(String.self) { texts.append(text) }
        return texts
    }
}

extension SupervisorClockTests {
    /// A missed daily update fires once; the contact that follows starts a new period that may fire again.
    @Test func aRecordedContactRestartsTheUpdateClockAndItMayFireAgain() async throws {
        try await TestDatabase.withFresh { db, _ in
            let policy = try ClockBook.load(policyFile: TestDatabase.repo.appendingPathComponent("deploy/sla/policy.json").path,
                                            calendarDirectory: TestDatabase.repo.appendingPathComponent("deploy/calendars").path)
            let id = try await CaseFixture.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "investigating", number: "GD-SZ-20261101-000001")
            let received = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 - 3 * 86_400).rounded(.down))
            try await db.query("UPDATE complaints SET received_at = \(received) WHERE id = \(id)", logger: TestDatabase.logger)
            try await Self.rebuild(db, [id], book: policy)
            #expect(try await Self.clock(db, id, "update")?.due == received.addingTimeInterval(86_400))
            let scanner = DeadlineScanner(postgres: db, gate: StartupGate(), interval: .seconds(1), logger: TestDatabase.logger)
            _ = try await db.withConnection { try await scanner.scan(on: $0) }
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM sla_clocks WHERE complaint_id = \(id) AND kind = 'update' AND breached_at IS NOT NULL") == 1)
            let contact = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 - 2 * 3600).rounded(.down))
            try await db.query("""
                INSERT INTO case_events (complaint_id, event_id, at, actor, action, from_status, to_status, payload)
                VALUES (\(id), \(UUID()), \(contact), 'GD-SZ-AGE01', 'record_contact', 'investigating', 'investigating', '{}'::jsonb)
                """, logger: TestDatabase.logger)
            try await Self.rebuild(db, [id], book: policy)
            #expect(try await Self.clock(db, id, "update")?.due == contact.addingTimeInterval(86_400))
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM sla_clocks WHERE complaint_id = \(id) AND kind = 'update' AND breached_at IS NULL AND warned_at IS NULL") == 1,
                    "a new period: nothing fired yet")
            // Other clocks keep what they fired.
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM sla_clocks WHERE complaint_id = \(id) AND kind = 'first_contact' AND breached_at IS NOT NULL") == 1)
        }
    }

    /// A closed case's clocks never fire, even before the consumer has caught up and stopped them.
    @Test func aClosedCaseNeverFires() async throws {
        try await TestDatabase.withFresh { db, _ in
            let closed = try await CaseFixture.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "closed", number: "GD-SZ-20261101-000011")
            let open = try await CaseFixture.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "investigating", number: "GD-SZ-20261101-000012")
            for id in [closed, open] {
                try await db.query("""
                    INSERT INTO sla_clocks (complaint_id, kind, started_at, warn_at, due_at)
                    VALUES (\(id), 'decision', now() - interval '20 days', now() - interval '5 days', now() - interval '1 day')
                    """, logger: TestDatabase.logger)
            }
            let scanner = DeadlineScanner(postgres: db, gate: StartupGate(), interval: .seconds(1), logger: TestDatabase.logger)
            let fired = try await db.withConnection { try await scanner.scan(on: $0) }
            #expect(fired == 2, "the open case's warning and breach")
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM sla_clocks WHERE complaint_id = \(closed) AND (warned_at IS NOT NULL OR breached_at IS NOT NULL)") == 0)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM outbox WHERE key = \(closed.uuidString.lowercased())") == 0)
        }
    }

    /// 告知受理 when there is no one to tell: a customer who consented to no channel we can use has their
    /// acknowledgement recorded as suppressed, which meets the clock as a delivery would.
    @Test func aSuppressedAcknowledgementMeetsItsClock() async throws {
        try await TestDatabase.withFresh { db, _ in
            let id = try await CaseFixture.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", number: "GD-SZ-20261101-000013", category: "service")
            let received = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 - 3600).rounded(.down))
            try await db.query("UPDATE complaints SET received_at = \(received) WHERE id = \(id)", logger: TestDatabase.logger)
            try await Self.rebuild(db, [id])
            #expect(try await Self.clock(db, id, "acknowledge")?.stopped == nil)
            try await db.query("""
                INSERT INTO notifications (id, complaint_id, event_id, recipient, channel, template, status, body, created_at)
                VALUES (\(UUID()), \(id), \(UUID()), 'customer:k', 'sms', 'complaint.registered.acknowledgement', 'suppressed', '', \(received.addingTimeInterval(60)))
                """, logger: TestDatabase.logger)
            try await Self.rebuild(db, [id])
            #expect(try await Self.clock(db, id, "acknowledge")?.stopped == received.addingTimeInterval(60))
            #expect(try await Self.clock(db, id, "decision")?.stopped == nil, "the other clocks run on")
        }
    }
}
