import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import Metrics
import NIOCore
import PostgresNIO
import RedressContracts
import RedressDomain
import RedressKafka
import RedressServiceKit
import RedressStore
import ServiceLifecycle

/// `redress-notify`: tells each person what they must hear. Events become notifications — rendered
/// from the deployment's templates in the customer's language, on the channel they prefer and
/// consented to — and a dispatcher delivers them with retries, rate limits and quiet hours,
/// keeping the delivery as proof (告知 evidence). Staff notices land in the staff inbox.
public enum NotifyService {
    public static let name = "redress-notify"
    public static let defaultPort = 8085
    public static let consumerGroup = "redress-notify"
    static let actor = Actor.service(name)

    /// What a deployment configures (the README's table lists the variables).
    public struct Settings: Sendable {
        public var templates: TemplateBook
        public var channels: [String: any NotificationChannel]
        public var quietHours: QuietHours?
        public var maxAttempts: Int
        public var ratePerSecond: Double
        public var backoff: Backoff
        /// Customer times (promised dates) are written in this zone.
        public var timeZone: TimeZone

        public init(templates: TemplateBook, channels: [String: any NotificationChannel], quietHours: QuietHours?, maxAttempts: Int = 6,
                    ratePerSecond: Double = 50, backoff: Backoff = Backoff(), timeZone: TimeZone = TimeZone(identifier: "Asia/Shanghai")!) {
            self.templates = templates
            self.channels = channels
            self.quietHours = quietHours
            self.maxAttempts = maxAttempts
            self.ratePerSecond = ratePerSecond
            self.backoff = backoff
            self.timeZone = timeZone
        }

        public static func fromEnvironment(_ environment: [String: String], logger: Logger) throws -> Settings {
            var env = EnvironmentReader(environment)
            var templates: TemplateBook?
            do {
                templates = try TemplateBook.load(file: env.value("REDRESS_NOTIFY_TEMPLATES") ?? "deploy/notify/templates.json")
            } catch {
                env.problems.append("\(error)")
            }
            let zone = TimeZone(identifier: env.value("REDRESS_NOTIFY_TIME_ZONE") ?? "Asia/Shanghai")
            if zone == nil { env.problems.append("REDRESS_NOTIFY_TIME_ZONE is not an IANA time zone (Asia/Shanghai)") }
            var quiet: QuietHours?
            let quietText = env.value("REDRESS_QUIET_HOURS") ?? "21:00-08:00"
            if quietText != "off", let zone {
                quiet = QuietHours.parse(quietText, timeZone: zone)
                if quiet == nil { env.problems.append("REDRESS_QUIET_HOURS '\(quietText)' is not HH:MM-HH:MM (or off)") }
            }
            let timeout = TimeAmount.milliseconds(Int64(env.integer("REDRESS_GATEWAY_TIMEOUT_MS", 5000, 100...120_000)))
            var channels: [String: any NotificationChannel] = [:]
            for (channel, variable) in [("sms", "REDRESS_SMS_GATEWAY_URL"), ("wechat", "REDRESS_WECHAT_GATEWAY_URL")] {
                guard let url = env.value(variable) else { continue }
                if url == "log:" {
                    channels[channel] = LogChannel(logger: logger)
                } else if url.hasPrefix("http://") || url.hasPrefix("https://") {
                    channels[channel] = HTTPGatewayChannel(url: url, authorization: env.value("REDRESS_GATEWAY_AUTHORIZATION"), timeout: timeout)
                } else {
                    env.problems.append("\(variable) must be an http(s) URL or log: (development)")
                }
            }
            if let smtp = env.value("REDRESS_SMTP") {
                let parts = smtp.split(separator: ":")
                if smtp == "log:" {
                    channels["email"] = LogChannel(logger: logger)
                } else if parts.count == 2, let port = Int(parts[1]) {
                    channels["email"] = SMTPChannel(host: String(parts[0]), port: port, from: env.value("REDRESS_SMTP_FROM") ?? "complaints@redress.example", timeout: timeout)
                } else {
                    env.problems.append("REDRESS_SMTP must be host:port (or log: for development)")
                }
            }
            let attempts = env.integer("REDRESS_NOTIFY_MAX_ATTEMPTS", 6, 1...20)
            let rate = env.integer("REDRESS_NOTIFY_RATE_PER_SECOND", 50, 1...100_000)
            try env.check()
            // Neither is nil here: a missing one is a problem `check` has thrown for.
            return Settings(templates: templates!, channels: channels, quietHours: quiet, maxAttempts: attempts, ratePerSecond: Double(rate), timeZone: zone!)
        }
    }

    public static func main() async throws {
        try await ServiceHost.serve(service: name, defaultPort: defaultPort) { host in
            do {
                return build(host: host, settings: try Settings.fromEnvironment(ProcessInfo.processInfo.environment, logger: host.logger))
            } catch {
                host.logger.critical("\(error)")
                exit(2)
            }
        }
    }

    public static func build(host: ServiceHost, settings: Settings) -> (Router<RedressRequestContext>, [any Service]) {
        let composer = Composer(settings: settings)
        // Every notify consumer is off the path to an owner: each gathers its batches (REDRESS_CONSUMER_LINGER_MS).
        // Staff notices keep no inbox: each is one row per (event, recipient, 'staff_inbox'), inserted
        // ON CONFLICT DO NOTHING, so a redelivered event adds nothing (an inbox row per event cost more).
        // Customer notices keep theirs: the channel is chosen from the customer's preferences, which
        // may have changed before a redelivery.
        let customers = host.consumer(group: consumerGroup + ".customer", topics: CustomerNoticeHandler.topics,
                                      handler: CustomerNoticeHandler(composer: composer), gathers: true)
        let staff = host.consumer(group: consumerGroup + ".staff", topics: [EventType.caseAssigned.topic],
                                  handler: EventHandler<CaseAssigned>(inbox: false) { try await composer.tellOwner($0, on: $1, logger: $2) }, gathers: true)
        // Oversight in the inbox: a case sent back to its owner, a case referred to its unit's committee.
        let oversight = host.consumer(group: consumerGroup + ".oversight", topics: [EventType.caseUpdated.topic],
                                      handler: EventHandler<CaseUpdated>(inbox: false) { try await composer.tellOfOversight($0, on: $1, logger: $2) }, gathers: true)
        let alerts = host.consumer(group: consumerGroup + ".unassignable", topics: [EventType.complaintUnassignable.topic],
                                   handler: EventHandler<ComplaintUnassignable>(inbox: false) { try await composer.alertSupervisors($0, on: $1, logger: $2) }, gathers: true)
        let deadlines = host.consumer(group: consumerGroup + ".sla", topics: [EventType.slaWarning.topic, EventType.slaBreached.topic],
                                      handler: SLAAlertHandler(composer: composer), gathers: true)
        let dispatcher = Dispatcher(postgres: host.postgres, settings: settings, gate: host.gate, logger: host.logger)
        return (host.router(), [customers, staff, oversight, alerts, deadlines, dispatcher])
    }
}

/// A notification to record: who, on which channel, with which rendered text, in which state.
struct NoticeRow: Sendable {
    var complaintID: UUID
    var eventID: UUID
    var recipient: String
    var channel: String
    var template: String
    var language: String
    var subject: String?
    var body: String
    /// `pending` for customer channels (the dispatcher sends), `delivered` for the staff inbox
    /// (the row is the inbox), `suppressed` when the customer consented to no channel we can use.
    var status: String
    var lastError: String?
}

/// Turns events into rendered notifications.
public struct Composer: Sendable {
    let templates: TemplateBook
    /// Customer-facing dates are written in the deployment's zone.
    let calendar: Calendar

    init(settings: NotifyService.Settings) {
        templates = settings.templates
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = settings.timeZone
        self.calendar = calendar
    }

    /// Customer-facing dates: local time, to the minute.
    func local(_ date: Date) -> String {
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute], from: date)
        return String(format: "%04d-%02d-%02d %02d:%02d", c.year!, c.month!, c.day!, c.hour!, c.minute!)
    }

    /// One customer notice per event: rendered in the customer's language on the first channel
    /// they prefer and consented to; none at all is recorded as suppressed, with the reason.
    func tellCustomers(_ notices: [CustomerNotice], on connection: PostgresConnection, logger: Logger) async throws {
        guard !notices.isEmpty else { return }
        var customers: [UUID: (number: String, name: String, key: String, contact: CustomerContact, channel: RedressDomain.Channel, promised: Date)] = [:]
        let rows = try await connection.query("""
            SELECT id, number, customer_name, customer_key, customer_contact::text, channel, promised_reply_by
            FROM complaints WHERE id = ANY(\(notices.map(\.complaintID))::uuid[])
            """, logger: logger)
        let decoder = JSONDecoder()
        for try await (id, number, name, key, contact, channel, promised) in rows.decode((UUID, String, String, String, String, String, Date).self) {
            let parsed = (try? decoder.decode(CustomerContact.self, from: Data(contact.utf8))) ?? CustomerContact()
            customers[id] = (number, name, key, parsed, RedressDomain.Channel(rawValue: channel) ?? .online, promised)
        }
        // Handlers by name, and the promised date as it stands now.
        var names: [String: String] = [:]
        let owners = notices.compactMap { $0.fields["handlerName"] }
        if !owners.isEmpty {
            for try await (id, name) in try await connection.query("SELECT id, name FROM staff WHERE id = ANY(\(owners)::text[])", logger: logger)
                .decode((String, String).self) { names[id] = name }
        }
        // Offices by name: the customer reads 广东省分公司, not GD.
        var unitNames: [String: String] = [:]
        let units = notices.compactMap { $0.fields["unitName"] }
        if !units.isEmpty {
            for try await (code, name) in try await connection.query("SELECT code, name FROM org_units WHERE code = ANY(\(units)::text[])", logger: logger)
                .decode((String, String).self) { unitNames[code] = name }
        }
        var notes: [NoticeRow] = []
        for notice in notices {
            guard let customer = customers[notice.complaintID] else { continue }
            var fields = notice.fields
            if let owner = fields["handlerName"] { fields["handlerName"] = names[owner] ?? owner }
            if let unit = fields["unitName"] { fields["unitName"] = unitNames[unit] ?? unit }
            if fields["promisedReplyBy"] == "" { fields["promisedReplyBy"] = local(customer.promised) }
            fields["number"] = customer.number
            fields["customerName"] = PersonalData.maskName(customer.name)
            let language = customer.contact.language.rawValue
            if let channel = customer.contact.channels(complainedThrough: customer.channel).first {
                let text = templates.render(notice.template, language: language, channel: channel.rawValue, fields: fields)
                notes.append(NoticeRow(complaintID: notice.complaintID, eventID: notice.eventID, recipient: "customer:" + customer.key, channel: channel.rawValue,
                                       template: notice.template, language: language, subject: text.subject, body: text.body, status: "pending"))
            } else {
                notes.append(NoticeRow(complaintID: notice.complaintID, eventID: notice.eventID, recipient: "customer:" + customer.key, channel: "sms",
                                       template: notice.template, language: language, subject: nil, body: "", status: "suppressed",
                                       lastError: "the customer opted out of text messages and gave no WeChat or email address"))
            }
        }
        try await Self.record(notes, on: connection, logger: logger)
    }

    func staffNotice(_ template: String, complaint: UUID, event: UUID, recipient: String, fields: [String: String]) -> NoticeRow {
        let text = templates.render(template, language: "zh-CN", channel: "staff_inbox", fields: fields)
        return NoticeRow(complaintID: complaint, eventID: event, recipient: recipient, channel: "staff_inbox", template: template, language: "zh-CN",
                         subject: nil, body: text.body, status: "delivered")
    }

    func tellOwner(_ events: [EventEnvelope<CaseAssigned>], on connection: PostgresConnection, logger: Logger) async throws {
        // A case left in a supervisor queue has no owner to tell (in a surge, nearly every one): read only the owned.
        let events = events.filter { $0.payload.transition.assignee != nil }
        guard !events.isEmpty else { return }
        var cases: [UUID: (priority: String, promised: Date)] = [:]
        let rows = try await connection.query("""
            SELECT id, COALESCE(priority, 'normal'), promised_reply_by FROM complaints WHERE id = ANY(\(events.map(\.complaintId))::uuid[])
            """, logger: logger)
        for try await (id, priority, promised) in rows.decode((UUID, String, Date).self) { cases[id] = (priority, promised) }
        let notes = events.compactMap { event -> NoticeRow? in
            let t = event.payload.transition
            guard let owner = t.assignee, let known = cases[event.complaintId] else { return nil }
            return staffNotice("case.assigned.owner", complaint: event.complaintId, event: event.id, recipient: "staff:" + owner,
                               fields: ["number": t.number, "priority": known.priority, "promisedReplyBy": local(known.promised)])
        }
        try await Self.record(notes, on: connection, logger: logger)
    }

    /// 返回重新调查: the owner reads the guidance in their inbox. 提交协调委员会: each committee member
    /// of the handling unit hears of the referral.
    func tellOfOversight(_ events: [EventEnvelope<CaseUpdated>], on connection: PostgresConnection, logger: Logger) async throws {
        let relevant = events.filter { [.sendBack, .referToCommittee].contains($0.payload.transition.action) }
        guard !relevant.isEmpty else { return }
        var members: [String: [String]] = [:]
        let units = Array(Set(relevant.filter { $0.payload.transition.action == .referToCommittee }.map(\.payload.transition.handlingUnit)))
        if !units.isEmpty {
            for try await (id, unit) in try await connection.query("""
                SELECT id, org_unit FROM staff WHERE role = 'committee' AND active AND org_unit = ANY(\(units)::text[]) ORDER BY id
                """, logger: logger).decode((String, String).self) { members[unit, default: []].append(id) }
        }
        var notes: [NoticeRow] = []
        for event in relevant {
            let t = event.payload.transition
            let fields = ["number": t.number, "reason": t.reason ?? ""]
            if t.action == .sendBack, let owner = t.assignee {
                notes.append(staffNotice("case.sent_back.owner", complaint: event.complaintId, event: event.id, recipient: "staff:" + owner, fields: fields))
            } else if t.action == .referToCommittee {
                for member in members[t.handlingUnit] ?? [] {
                    notes.append(staffNotice("case.referred.committee", complaint: event.complaintId, event: event.id, recipient: "staff:" + member, fields: fields))
                }
            }
        }
        try await Self.record(notes, on: connection, logger: logger)
    }

    /// Nobody could take a complaint: the unit's supervisors hear of it in their inbox (the supervisor queue).
    func alertSupervisors(_ events: [EventEnvelope<ComplaintUnassignable>], on connection: PostgresConnection, logger: Logger) async throws {
        try await Self.record(events.map { event in
            staffNotice("complaint.unassignable.supervisors", complaint: event.complaintId, event: event.id, recipient: "supervisors:" + event.payload.handlingUnit,
                        fields: ["number": event.payload.number, "unit": event.payload.handlingUnit, "reason": event.payload.reason])
        }, on: connection, logger: logger)
    }

    /// A deadline near or missed: the owner and the unit's supervisors hear of it in their inbox.
    func alertDeadline(_ events: [SLAAlert], on connection: PostgresConnection, logger: Logger) async throws {
        var notes: [NoticeRow] = []
        for event in events {
            let fields = ["number": event.clock.number, "clock": event.clock.clock.rawValue, "dueAt": local(event.clock.dueAt)]
            let owner = event.clock.assignee.map { "staff:" + $0 }, supervisors = "supervisors:" + event.clock.handlingUnit
            // The daily update is the owner's to give: its warning is theirs, a miss goes to the supervisors.
            let recipients = event.clock.clock == .update ? (event.template == "sla.warning.staff" ? [owner] : [supervisors]) : [owner, supervisors]
            for recipient in recipients.compactMap({ $0 }) {
                notes.append(staffNotice(event.template, complaint: event.complaintID, event: event.id, recipient: recipient, fields: fields))
            }
        }
        try await Self.record(notes, on: connection, logger: logger)
    }

    /// At most one notification per (event, recipient, channel), however often the event arrives.
    static func record(_ notes: [NoticeRow], on connection: PostgresConnection, logger: Logger) async throws {
        guard !notes.isEmpty else { return }
        try await connection.query("""
            INSERT INTO notifications (id, complaint_id, event_id, recipient, channel, template, language, subject, body, status, last_error,
                delivered_at)
            SELECT gen_random_uuid(), complaint_id, event_id, recipient, channel, template, language, NULLIF(subject, ''), body, status,
                NULLIF(last_error, ''), CASE WHEN status = 'delivered' THEN now() END
            FROM unnest(\(notes.map(\.complaintID))::uuid[], \(notes.map(\.eventID))::uuid[], \(notes.map(\.recipient))::text[],
                        \(notes.map(\.channel))::text[], \(notes.map(\.template))::text[], \(notes.map(\.language))::text[],
                        \(notes.map { $0.subject ?? "" })::text[], \(notes.map(\.body))::text[], \(notes.map(\.status))::text[],
                        \(notes.map { $0.lastError ?? "" })::text[])
                AS t(complaint_id, event_id, recipient, channel, template, language, subject, body, status, last_error)
            ON CONFLICT (event_id, recipient, channel) DO NOTHING
            """, logger: logger)
        var tally = CounterTally("redress_notifications_recorded_total", dimensions: ["template", "channel", "status"])
        for note in notes { tally.add(note.template, note.channel, note.status) }
        tally.record()
    }
}

/// A customer notice to compose: which template, for which complaint, with the event's fields.
struct CustomerNotice: Sendable {
    var eventID: UUID
    var complaintID: UUID
    var template: String
    var fields: [String: String]
    /// A return-visit invitation: its link is read from `surveys` when the notice is composed.
    var surveyID: UUID? = nil
    /// A status look-up code: read from `status_codes` when the notice is composed.
    var statusCodeID: UUID? = nil
}

/// The events that tell the customer something, in one consumer: received, assigned (and moved to
/// another office), asked for something, offered a resolution, extended, concluded with its outcome,
/// and the return-visit invitation.
struct CustomerNoticeHandler: BatchHandler {
    let composer: Composer
    static let topics = [EventType.complaintRegistered, .caseAssigned, .caseUpdated, .caseExtended, .caseClosed, .surveyRequested,
                         .statusCodeRequested].map(\.topic)

    let registered = EventHandler<ComplaintRegistered> { _, _, _ in }
    let assigned = EventHandler<CaseAssigned> { _, _, _ in }
    let extended = EventHandler<CaseExtended> { _, _, _ in }
    let updated = EventHandler<CaseUpdated> { _, _, _ in }
    let closed = EventHandler<CaseClosed> { _, _, _ in }
    let surveys = EventHandler<SurveyRequested> { _, _, _ in }
    let statusCodes = EventHandler<StatusCodeRequested> { _, _, _ in }

    /// nil: an event that tells the customer nothing (a reassignment, say).
    func decode(_ message: KafkaMessage) -> Result<CustomerNotice?, Rejection> {
        let local = composer.local
        switch message.topic {
        case EventType.complaintRegistered.topic:
            return registered.decode(message).map {
                CustomerNotice(eventID: $0.id, complaintID: $0.complaintId, template: "complaint.registered.acknowledgement",
                               fields: ["receivedAt": local($0.payload.receivedAt), "promisedReplyBy": local($0.payload.promisedReplyBy)])
            }
        case EventType.caseAssigned.topic:
            return assigned.decode(message).map { event in
                let t = event.payload.transition
                guard let owner = t.assignee else { return nil }
                // The customer hears of their handler on the first assignment (and a reopened case's), and
                // again when an escalation or transfer has moved the case to another office.
                if [.registered, .reopened].contains(t.fromStatus) {
                    return CustomerNotice(eventID: event.id, complaintID: event.complaintId, template: "case.assigned.customer",
                                          fields: ["handlerName": owner, "promisedReplyBy": ""])
                }
                guard [.escalated, .transferred].contains(t.fromStatus) else { return nil }
                return CustomerNotice(eventID: event.id, complaintID: event.complaintId, template: "case.moved.customer",
                                      fields: ["handlerName": owner, "unitName": t.handlingUnit, "promisedReplyBy": ""])
            }
        case EventType.caseUpdated.topic:
            return updated.decode(message).map { event in
                switch event.payload.transition.action {
                case .awaitCustomer:
                    return CustomerNotice(eventID: event.id, complaintID: event.complaintId, template: "case.awaiting_customer.customer",
                                          fields: ["needed": event.payload.customerText ?? "", "respondBy": event.payload.nextContactAt.map(local) ?? ""])
                case .proposeResolution:
                    return CustomerNotice(eventID: event.id, complaintID: event.complaintId, template: "case.resolution_proposed.customer",
                                          fields: ["proposal": event.payload.customerText ?? ""])
                default:
                    return nil
                }
            }
        case EventType.caseExtended.topic:
            return extended.decode(message).map {
                CustomerNotice(eventID: $0.id, complaintID: $0.complaintId, template: "case.extended.customer",
                               fields: ["decisionDays": String($0.payload.decisionDays), "promisedReplyBy": local($0.payload.promisedReplyBy),
                                        "reason": $0.payload.transition.reason ?? ""])
            }
        case EventType.caseClosed.topic:
            return closed.decode(message).map {
                CustomerNotice(eventID: $0.id, complaintID: $0.complaintId, template: "case.closed.customer", fields: ["outcome": $0.payload.outcome ?? ""])
            }
        case EventType.statusCodeRequested.topic:
            return statusCodes.decode(message).map {
                CustomerNotice(eventID: $0.id, complaintID: $0.complaintId, template: "status.code.customer",
                               fields: ["expiresAt": local($0.payload.expiresAt)], statusCodeID: $0.payload.codeId)
            }
        default:
            return surveys.decode(message).map {
                CustomerNotice(eventID: $0.id, complaintID: $0.complaintId, template: "survey.requested.customer",
                               fields: ["expiresAt": local($0.payload.expiresAt)], surveyID: $0.payload.surveyId)
            }
        }
    }

    func eventID(of item: CustomerNotice?) -> UUID? { item?.eventID }

    func handle(_ items: [CustomerNotice?], on connection: PostgresConnection, logger: Logger) async throws {
        var notices = items.compactMap { $0 }
        let surveyIDs = notices.compactMap(\.surveyID)
        if !surveyIDs.isEmpty {
            // The links are credentials, so no event carries them: read here, while the visit is open.
            var links: [UUID: String] = [:]
            for try await (id, link) in try await connection.query("SELECT id, link FROM surveys WHERE id = ANY(\(surveyIDs)) AND link IS NOT NULL",
                                                                    logger: logger).decode((UUID, String).self) {
                links[id] = link
            }
            notices = notices.compactMap { notice in
                guard let id = notice.surveyID else { return notice }
                // Answered or expired before the invitation went out: nothing to invite to.
                guard let link = links[id] else { return nil }
                var notice = notice
                notice.fields["link"] = link
                return notice
            }
        }
        let codeIDs = notices.compactMap(\.statusCodeID)
        if !codeIDs.isEmpty {
            var codes: [UUID: String] = [:]
            for try await (id, code) in try await connection.query("SELECT id, code FROM status_codes WHERE id = ANY(\(codeIDs)) AND code IS NOT NULL",
                                                                    logger: logger).decode((UUID, String).self) {
                codes[id] = code
            }
            notices = notices.compactMap { notice in
                guard let id = notice.statusCodeID else { return notice }
                guard let code = codes[id] else { return nil }   // used already: nothing to send
                var notice = notice
                notice.fields["code"] = code
                return notice
            }
        }
        try await composer.tellCustomers(notices, on: connection, logger: logger)
    }
}

/// A deadline alert to send to staff.
struct SLAAlert: Sendable {
    var id: UUID
    var complaintID: UUID
    var template: String
    var clock: SLAClockEvent
}

/// `sla.warning` and `sla.breached` in one consumer: both alert the same people.
struct SLAAlertHandler: BatchHandler {
    let composer: Composer
    let warnings = EventHandler<SLAWarning> { _, _, _ in }
    let breaches = EventHandler<SLABreached> { _, _, _ in }

    func decode(_ message: KafkaMessage) -> Result<SLAAlert, Rejection> {
        if message.topic == EventType.slaWarning.topic {
            return warnings.decode(message).map { SLAAlert(id: $0.id, complaintID: $0.complaintId, template: "sla.warning.staff", clock: $0.payload.clock) }
        }
        return breaches.decode(message).map { SLAAlert(id: $0.id, complaintID: $0.complaintId, template: "sla.breached.staff", clock: $0.payload.clock) }
    }

    /// No inbox: staff notices are idempotent by (event, recipient, channel) (see `build`).
    func eventID(of item: SLAAlert) -> UUID? { nil }

    func handle(_ items: [SLAAlert], on connection: PostgresConnection, logger: Logger) async throws {
        try await composer.alertDeadline(items, on: connection, logger: logger)
    }
}
