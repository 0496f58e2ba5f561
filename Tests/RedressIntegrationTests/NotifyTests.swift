import Foundation
import NIOConcurrencyHelpers
import NIOCore
import PostgresNIO
@testable import RedressContracts
import RedressDomain
@testable import RedressNotify
@testable import RedressServiceKit
import Testing

enum NotifyFixture {
    static let templates = try! TemplateBook.load(file: TestDatabase.repo.appendingPathComponent("deploy/notify/templates.json").path)
    static let shanghai = TimeZone(identifier: "Asia/Shanghai")!

    /// The first local time hour:minute in Shanghai strictly after `after`.
    static func nextShanghai(hour: Int, minute: Int, after: Date) -> Date {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = shanghai
        return calendar.nextDate(after: after, matching: DateComponents(hour: hour, minute: minute, second: 0), matchingPolicy: .nextTime)!
    }

    static func settings(_ channels: [String: any NotificationChannel], quiet: QuietHours? = nil, maxAttempts: Int = 6, rate: Double = 1000) -> NotifyService.Settings {
        NotifyService.Settings(templates: templates, channels: channels, quietHours: quiet, maxAttempts: maxAttempts, ratePerSecond: rate,
                               backoff: Backoff(base: 1, cap: 60), timeZone: shanghai)
    }

    /// A complaint whose customer has `contact`, and one customer notice for it, recorded as notify would.
    @discardableResult
    static func notice(_ db: PostgresClient, number: String, phone: String = "13812345678", contact: String = "{}", settings: NotifyService.Settings) async throws -> UUID {
        let id = try await CaseFixture.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", number: number)
        try await db.query("UPDATE complaints SET customer_phone = \(phone), customer_contact = \(contact)::jsonb WHERE id = \(id)", logger: TestDatabase.logger)
        try await db.withTransaction(logger: TestDatabase.logger) { connection in
            try await Composer(settings: settings).tellCustomers([CustomerNotice(eventID: UUID(), complaintID: id, template: "case.closed.customer", fields: [:])],
                                                                 on: connection, logger: TestDatabase.logger)
        }
        return id
    }

    static func statuses(_ db: PostgresClient) async throws -> [String: String] {
        var result: [String: String] = [:]
        for try await (number, status) in try await db.query("SELECT c.number, n.status FROM notifications n JOIN complaints c ON c.id = n.complaint_id WHERE n.channel <> 'staff_inbox'",
                                                             logger: TestDatabase.logger).decode((String, String).self) { result[number] = status }
        return result
    }
}

/// A channel that forwards the first `passing` messages and then hangs, as a process frozen
/// mid-batch would: what it sent is never recorded.
struct CrashingChannel: NotificationChannel {
    let inner: any NotificationChannel
    let passing: Int
    let sent = NIOLockedValueBox(0)

    func send(_ message: OutgoingMessage) async -> DeliveryOutcome {
        let n = sent.withLockedValue { value -> Int in
            value += 1
            return value
        }
        if n <= passing { _ = await inner.send(message) }
        // Frozen: never returns, not even when cancelled (as a killed process would not).
        await withUnsafeContinuation { (_: UnsafeContinuation<Void, Never>) in }
        return .failed(reason: "unreachable")
    }
}

@Suite struct NotifyTests {
    typealias N = NotifyFixture

    @Test func unassignableComplaintsReachTheUnitsSupervisorsOnce() async throws {
        try await TestDatabase.withFresh { db, _ in
            let id = try await CaseFixture.insert(db, unit: "GD-SZ", assignee: nil, number: "GD-SZ-20261122-000001")
            let event = EventEnvelope(complaintId: id, orgUnit: "GD-SZ", actor: .service("redress-routing"),
                                      payload: ComplaintUnassignable(number: "GD-SZ-20261122-000001", handlingUnit: "GD-SZ", category: .claims,
                                                                     priority: .high, reason: "every eligible agent of the unit is at capacity"))
            for _ in 0..<2 {
                try await db.withTransaction(logger: TestDatabase.logger) { connection in
                    try await Composer(settings: N.settings([:])).alertSupervisors([event], on: connection, logger: TestDatabase.logger)
                }
            }
            #expect(try await TestDatabase.count(db, """
                SELECT count(*) FROM notifications
                WHERE recipient = 'supervisors:GD-SZ' AND channel = 'staff_inbox' AND template = 'complaint.unassignable.supervisors'
                  AND status = 'delivered' AND body LIKE '%GD-SZ-20261122-000001%'
                """) == 1)
        }
    }

    /// Notify's staff consumers keep no inbox (`NotifyService.build`): a redelivered event must then
    /// write nothing twice by the notices' own key.
    @Test func staffNoticesAreWrittenOnceWhenAnEventIsHandledTwice() async throws {
        try await TestDatabase.withFresh { db, _ in
            let id = try await CaseFixture.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", number: "GD-SZ-20261122-000002")
            let assigned = EventEnvelope(complaintId: id, orgUnit: "GD-SZ", actor: .service("redress-cases"), payload: CaseAssigned(transition: CaseTransition(
                number: "GD-SZ-20261122-000002", fromStatus: .registered, toStatus: .assigned, handlingUnit: "GD-SZ", assignee: "GD-SZ-AGE01",
                reason: "initial", caseVersion: 2, action: .assign)))
            let alert = SLAAlert(id: UUID(), complaintID: id, template: "sla.breached.staff", clock: SLAClockEvent(
                number: "GD-SZ-20261122-000002", clock: .decision, startedAt: Date(), dueAt: Date(), handlingUnit: "GD-SZ", assignee: "GD-SZ-AGE01"))
            let composer = Composer(settings: N.settings([:]))
            #expect(SLAAlertHandler(composer: composer).eventID(of: alert) == nil)
            #expect(EventHandler<CaseAssigned>(inbox: false) { _, _, _ in }.eventID(of: assigned) == nil)
            for _ in 0..<2 {
                try await db.withTransaction(logger: TestDatabase.logger) { connection in
                    try await composer.tellOwner([assigned], on: connection, logger: TestDatabase.logger)
                    try await composer.alertDeadline([alert], on: connection, logger: TestDatabase.logger)
                }
            }
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM notifications WHERE template = 'case.assigned.owner'") == 1)
            #expect(try await TestDatabase.count(db, """
                SELECT count(*) FROM notifications WHERE template = 'sla.breached.staff' AND recipient IN ('staff:GD-SZ-AGE01', 'supervisors:GD-SZ')
                """) == 2)
        }
    }

    @Test func aSendBackReachesTheOwnerAndAReferralTheUnitsCommittee() async throws {
        try await TestDatabase.withFresh { db, _ in
            let id = try await CaseFixture.insert(db, unit: "GD", assignee: "GD-AGE01", number: "GD-SZ-20261130-000001")
            func event(_ action: CaseAction, _ reason: String) -> EventEnvelope<CaseUpdated> {
                EventEnvelope(complaintId: id, orgUnit: "GD", actor: .service("test"), payload: CaseUpdated(transition: CaseTransition(
                    number: "GD-SZ-20261130-000001", fromStatus: .investigating, toStatus: .investigating, handlingUnit: "GD", assignee: "GD-AGE01",
                    reason: reason, caseVersion: 5, action: action)))
            }
            let events = [event(.sendBack, "补充核实到账日期"), event(.referToCommittee, "重大疑难"), event(.addNote, "无关")]
            for _ in 0..<2 {
                try await db.withTransaction(logger: TestDatabase.logger) { connection in
                    try await Composer(settings: N.settings([:])).tellOfOversight(events, on: connection, logger: TestDatabase.logger)
                }
            }
            #expect(try await TestDatabase.count(db, """
                SELECT count(*) FROM notifications WHERE recipient = 'staff:GD-AGE01' AND template = 'case.sent_back.owner' AND body LIKE '%补充核实到账日期%'
                """) == 1)
            #expect(try await TestDatabase.count(db, """
                SELECT count(*) FROM notifications WHERE recipient = 'staff:GD-COM01' AND template = 'case.referred.committee' AND body LIKE '%重大疑难%'
                """) == 1, "the committee member of the handling unit (GD), once")
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM notifications") == 2, "a note tells no one")
        }
    }

    @Test func customersAreToldInTheirLanguageOnTheirChannelAndAnOptOutIsRespected() async throws {
        try await TestDatabase.withFresh { db, _ in
            let settings = N.settings([:])
            try await N.notice(db, number: "GD-SZ-20261122-000011", contact: #"{"email":"li@example.com","preferredChannel":"email","smsConsent":true,"language":"en"}"#, settings: settings)
            try await N.notice(db, number: "GD-SZ-20261122-000012", contact: #"{"wechatOpenId":"oX1","smsConsent":false,"language":"zh-CN"}"#, settings: settings)
            try await N.notice(db, number: "GD-SZ-20261122-000013", contact: #"{"smsConsent":false,"language":"zh-CN"}"#, settings: settings)
            try await N.notice(db, number: "GD-SZ-20261122-000014", settings: settings)
            var rows: [String: (channel: String, language: String, status: String, subject: String?, body: String)] = [:]
            for try await r in try await db.query("""
                SELECT c.number, n.channel, n.language, n.status, n.subject, n.body FROM notifications n JOIN complaints c ON c.id = n.complaint_id
                """, logger: TestDatabase.logger).decode((String, String, String, String, String?, String).self) { rows[r.0] = (r.1, r.2, r.3, r.4, r.5) }
            #expect(rows["GD-SZ-20261122-000011"]?.channel == "email")
            #expect(rows["GD-SZ-20261122-000011"]?.language == "en")
            #expect(rows["GD-SZ-20261122-000011"]?.subject?.isEmpty == false)
            #expect(rows["GD-SZ-20261122-000012"]?.channel == "wechat", "opted out of SMS: told on WeChat")
            #expect(rows["GD-SZ-20261122-000013"]?.status == "suppressed", "opted out of SMS with no other address: never texted")
            #expect(rows["GD-SZ-20261122-000014"]?.channel == "sms")
            for (number, row) in rows where row.status == "pending" {
                #expect(row.body.contains(number), "\(number): the number is in the text")
                #expect(!row.body.contains("{{") && !row.body.contains("13812345678"), "\(number): filled, and no phone number")
            }
        }
    }

    @Test func theGatewayAdapterAgainstALoopbackGatewayThatFailsTimesOutAndRateLimits() async throws {
        let gateway = GatewayStub()
        try await gateway.run { url in
            // 2 s: long enough for an accepted send on a machine busy with the whole suite, far short of the 12 s hang.
            let channel = HTTPGatewayChannel(url: url, authorization: "Bearer t", timeout: .seconds(2))
            func send(_ to: String) async -> DeliveryOutcome {
                await channel.send(OutgoingMessage(id: UUID(), channel: "sms", address: to, template: "t", subject: nil, body: "您好"))
            }
            gateway.behave(.fail(400), for: "13800000002")
            gateway.behave(.fail(503), for: "13800000003")
            gateway.behave(.rateLimit(retryAfter: 7), for: "13800000004")
            gateway.behave(.hang, for: "13800000005")
            guard case .delivered(let receipt) = await send("13800000001") else { Issue.record("accepted message not delivered"); return }
            #expect(receipt?.hasPrefix("gw-") == true)
            guard case .failed = await send("13800000002") else { Issue.record("a 400 must fail for good"); return }
            guard case .retry = await send("13800000003") else { Issue.record("a 503 must be retried"); return }
            #expect(await send("13800000004") == .retry(reason: "gateway rate-limited (429)", after: 7))
            let started = ContinuousClock.now
            guard case .retry = await send("13800000005") else { Issue.record("a hung gateway must be retried"); return }
            #expect(ContinuousClock.now - started < .seconds(10), "the 2 s timeout cuts a gateway that hangs for 12 s short")
        }
    }

    @Test func theEmailAdapterAgainstALoopbackMailServer() async throws {
        let sink = SMTPSink()
        try await sink.run { port in
            let channel = SMTPChannel(host: "127.0.0.1", port: port, from: "complaints@redress.test", timeout: .seconds(5))
            sink.refuse("nobody@example.com")
            let message = OutgoingMessage(id: UUID(), channel: "email", address: "li@example.com", template: "case.closed.customer",
                                          subject: "您的投诉已办结", body: "尊敬的客户：\n您的投诉 GD-SZ-20261122-000001 已办结。")
            guard case .delivered(let receipt) = await channel.send(message) else { Issue.record("mail not accepted"); return }
            #expect(receipt?.contains("queued") == true)
            #expect(sink.mails.count == 1)
            #expect(sink.mails.first?.to == "li@example.com")
            #expect(sink.mails.first?.subject == "您的投诉已办结")
            #expect(sink.mails.first?.body == message.body)
            // A line of just "." would end the mail early in plain SMTP; the base64 body carries it whole.
            var dotted = message
            dotted.body = "第一行\n.\n..\n.隐藏\n最后一行"
            guard case .delivered = await channel.send(dotted) else { Issue.record("the dotted mail was not accepted"); return }
            #expect(sink.mails.count == 2)
            #expect(sink.mails.last?.body == dotted.body, "every line arrived, the dots included")
            var refused = message
            refused.address = "nobody@example.com"
            guard case .failed(let reason) = await channel.send(refused) else { Issue.record("a 550 must fail for good"); return }
            #expect(reason.contains("550"))
            let closed = SMTPChannel(host: "127.0.0.1", port: 1, from: "x@y.z", timeout: .seconds(2))
            guard case .retry = await closed.send(message) else { Issue.record("an unreachable server must be retried"); return }
        }
    }

    @Test func retriesBackOffThenFailWithAnEventAndAnAlert() async throws {
        let gateway = GatewayStub()
        try await gateway.run { url in
            try await TestDatabase.withFresh { db, _ in
                let settings = N.settings(["sms": HTTPGatewayChannel(url: url, authorization: nil, timeout: .seconds(2))], maxAttempts: 3)
                try await N.notice(db, number: "GD-SZ-20261122-000021", phone: "13800000021", settings: settings)
                try await N.notice(db, number: "GD-SZ-20261122-000022", phone: "13800000022", settings: settings)
                gateway.behave(.flaky(1), for: "13800000021")
                gateway.behave(.fail(503), for: "13800000022")
                let clock = NIOLockedValueBox(Date())
                let dispatcher = Dispatcher(postgres: db, settings: settings, gate: StartupGate(), logger: TestDatabase.logger,
                                            now: { clock.withLockedValue { $0 } }, jitter: { 0 })
                #expect(try await dispatcher.dispatch() == 2)
                #expect(try await dispatcher.dispatch() == 0, "nothing is due before the backoff has passed")
                clock.withLockedValue { $0 += 1 } // attempt 1 waits base/2 = 0.5 s with no jitter
                #expect(try await dispatcher.dispatch() == 2)
                #expect(try await N.statuses(db)["GD-SZ-20261122-000021"] == "delivered")
                clock.withLockedValue { $0 += 2 }
                #expect(try await dispatcher.dispatch() == 1)
                #expect(try await N.statuses(db)["GD-SZ-20261122-000022"] == "failed")
                #expect(try await TestDatabase.count(db, "SELECT count(*) FROM outbox WHERE event_type = 'notification.failed'") == 1)
                #expect(try await TestDatabase.count(db, "SELECT count(*) FROM outbox WHERE event_type = 'notification.delivered'") == 1)
                #expect(try await TestDatabase.count(db, """
                    SELECT count(*) FROM notifications WHERE template = 'notification.failed.supervisors' AND recipient = 'supervisors:GD-SZ'
                    """) == 1)
                #expect(try await TestDatabase.count(db, "SELECT max(attempts)::bigint FROM notifications WHERE channel = 'sms'") == 3)
            }
        }
    }

    @Test func quietHoursHoldTextsUntilTheMorningButNotEmail() async throws {
        let gateway = GatewayStub()
        try await gateway.run { url in
            try await TestDatabase.withFresh { db, _ in
                let quiet = QuietHours.parse("21:00-08:00", timeZone: N.shanghai)
                let log = LogChannel(logger: TestDatabase.logger)
                let settings = N.settings(["sms": HTTPGatewayChannel(url: url, authorization: nil, timeout: .seconds(2)), "email": log], quiet: quiet)
                try await N.notice(db, number: "GD-SZ-20261122-000031", phone: "13800000031", settings: settings)
                try await N.notice(db, number: "GD-SZ-20261122-000032", contact: #"{"email":"li@example.com","preferredChannel":"email","smsConsent":true,"language":"zh-CN"}"#,
                                   settings: settings)
                // The next 23:30 in Shanghai after the notices were made: the suite holds on any date and hour.
                let night = N.nextShanghai(hour: 23, minute: 30, after: Date().addingTimeInterval(60))
                let morning = night.addingTimeInterval(8.5 * 3600)
                let clock = NIOLockedValueBox(night)
                let dispatcher = Dispatcher(postgres: db, settings: settings, gate: StartupGate(), logger: TestDatabase.logger, now: { clock.withLockedValue { $0 } })
                // The complaints' notices were made "now"; the injected night is later.
                #expect(try await dispatcher.dispatch() == 1)
                #expect(try await N.statuses(db) == ["GD-SZ-20261122-000031": "pending", "GD-SZ-20261122-000032": "delivered"])
                #expect(gateway.requests.isEmpty)
                #expect(try await TestDatabase.count(db, """
                    SELECT count(*) FROM notifications WHERE channel = 'sms' AND next_attempt_at = \(morning)
                    """) == 1, "held until 08:00 local time")
                clock.withLockedValue { $0 = morning.addingTimeInterval(-60) }
                #expect(try await dispatcher.dispatch() == 0)
                clock.withLockedValue { $0 = morning.addingTimeInterval(1) }
                #expect(try await dispatcher.dispatch() == 1)
                #expect(gateway.delivered.count == 1)
            }
        }
    }

    @Test func aThrottledChannelIsClaimedOnlyAsFarAsItsBucketHolds() async throws {
        try await TestDatabase.withFresh { db, _ in
            // Email is configured but has no rows: its full bucket must not widen the SMS claims.
            let settings = N.settings(["sms": LogChannel(logger: TestDatabase.logger), "email": LogChannel(logger: TestDatabase.logger)], rate: 5)
            for n in 0..<12 {
                try await N.notice(db, number: String(format: "GD-SZ-20261122-%06d", 300 + n), phone: String(format: "138000003%02d", n), settings: settings)
            }
            let start = Date().addingTimeInterval(1)
            let clock = NIOLockedValueBox(start)
            let dispatcher = Dispatcher(postgres: db, settings: settings, gate: StartupGate(), logger: TestDatabase.logger, now: { clock.withLockedValue { $0 } })
            #expect(try await dispatcher.dispatch() == 5, "a full bucket: its five")
            #expect(dispatcher.throttledLastRound.withLockedValue { $0 } == 6, "the first round claims for every channel's bucket (5 + 5 + 1)")
            // The SMS bucket is empty and only SMS rows were found: a round claims one row to learn that
            // more wait, not a second's worth (11) again, nor the idle email bucket's five.
            #expect(try await dispatcher.dispatch() == 0)
            #expect(dispatcher.throttledLastRound.withLockedValue { $0 } == 1)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM notifications WHERE status = 'delivered' AND channel = 'sms'") == 5)
            clock.withLockedValue { $0 = start.addingTimeInterval(1) }
            #expect(try await dispatcher.dispatch() == 5, "a second later, the rate's five more")
            clock.withLockedValue { $0 = start.addingTimeInterval(2) }
            #expect(try await dispatcher.dispatch() == 2)
            #expect(dispatcher.throttledLastRound.withLockedValue { $0 } == 0)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM notifications WHERE status = 'delivered' AND channel = 'sms'") == 12)
        }
    }

    @Test func eachNotificationIsSentOnceAcrossARestartMidBatch() async throws {
        let gateway = GatewayStub()
        try await gateway.run { url in
            try await TestDatabase.withFresh { db, _ in
                let http = HTTPGatewayChannel(url: url, authorization: nil, timeout: .seconds(2))
                let settings = N.settings(["sms": http])
                for n in 0..<20 {
                    try await N.notice(db, number: String(format: "GD-SZ-20261122-%06d", 100 + n), phone: String(format: "138000001%02d", n), settings: settings)
                }
                // The first process sends eight, then freezes before recording anything, and is killed.
                let crashing = Dispatcher(postgres: db, settings: N.settings(["sms": CrashingChannel(inner: http, passing: 8)]), gate: StartupGate(),
                                          logger: TestDatabase.logger)
                let frozen = Task { try await crashing.dispatch() }
                try await eventually("eight reach the gateway") { gateway.requests.count == 8 }
                frozen.cancel()
                #expect(try await TestDatabase.count(db, "SELECT count(*) FROM notifications WHERE status = 'sending'") == 20)
                // The restarted process finds the claims expired and sends again, with the same keys.
                let later = Date().addingTimeInterval(121)
                let restarted = Dispatcher(postgres: db, settings: settings, gate: StartupGate(), logger: TestDatabase.logger, now: { later })
                while try await restarted.dispatch() > 0 {}
                #expect(try await TestDatabase.count(db, "SELECT count(*) FROM notifications WHERE status = 'delivered'") == 20)
                #expect(try await TestDatabase.count(db, "SELECT count(*) FROM outbox WHERE event_type = 'notification.delivered'") == 20)
                // The proof is in what was sent, not in the stub: each phone's requests all carry one key, the
                // key of its first send, so any gateway that honours Idempotency-Key delivers each message once.
                let keysByPhone = Dictionary(grouping: gateway.requests, by: \.to).mapValues { Set($0.map(\.key)) }
                #expect(keysByPhone.count == 20 && keysByPhone.values.allSatisfy { $0.count == 1 }, "every resend carried its first key")
                #expect(gateway.delivered.count == 20, "each customer got the message once")
                #expect(try await TestDatabase.count(db, "SELECT count(*) FROM notifications WHERE gateway_message_id LIKE 'gw-%' AND delivered_at IS NOT NULL") == 20,
                        "the gateway's receipt is kept as proof")
                let keys = gateway.requests.map(\.key)
                #expect(keys.count == 28 && Set(keys).count == 20, "the eight in doubt were resent with their own keys")
            }
        }
    }

    @Test func aSentSurveyLinkIsNotKeptInTheStoredText() async throws {
        try await TestDatabase.withFresh { db, _ in
            let settings = N.settings(["sms": LogChannel(logger: TestDatabase.logger)])
            let id = try await CaseFixture.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "closed", number: "GD-SZ-20261122-000071")
            try await db.withTransaction(logger: TestDatabase.logger) { connection in
                try await Composer(settings: settings).tellCustomers([CustomerNotice(eventID: UUID(), complaintID: id, template: "survey.requested.customer",
                    fields: ["link": "https://s.test/s/SECRETTOKEN123", "expiresAt": "2026-12-06 18:00"])], on: connection, logger: TestDatabase.logger)
            }
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM notifications WHERE body LIKE '%SECRETTOKEN123%'") == 1, "the link is in the text to send")
            let dispatcher = Dispatcher(postgres: db, settings: settings, gate: StartupGate(), logger: TestDatabase.logger, now: { Date().addingTimeInterval(1) })
            #expect(try await dispatcher.dispatch() == 1)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM notifications WHERE body LIKE '%SECRETTOKEN123%'") == 0)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM notifications WHERE body LIKE '%[link sent]%' AND status = 'delivered'") == 1)
        }
    }
}
