import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import PostgresNIO
import RedressContracts
import RedressDomain
import RedressServiceKit
import RedressStore
import ServiceLifecycle

/// `redress-surveys`: 回访 — schedules the return visits of every closed case (same day, one week,
/// one month by default), invites the customer through notify with a single-use, expiring link,
/// records the answer, and turns a bad one (score 1–2, or "not resolved") into `survey.dissatisfied`,
/// which the case service reopens one level up.
public enum SurveysService {
    public static let name = "redress-surveys"
    public static let defaultPort = 8083
    public static let consumerGroup = "redress-surveys"
    static let actor = Actor.service(name)

    public struct Settings: Sendable {
        /// Days after closure of each visit (名称 day<N>).
        public var waves: [Int]
        public var tokenLifetime: TimeInterval
        /// The public survey page; the token is appended.
        public var linkBase: String
        /// Unknown-token lookups a client may make per minute before it is refused (429).
        public var missesPerMinute: Int
        /// The deployment's proxies (REDRESS_TRUSTED_PROXIES): their X-Forwarded-For names the client.
        public var trustedProxies: Set<String> = []

        public init(waves: [Int] = [0, 7, 30], tokenLifetime: TimeInterval = 14 * 86_400, linkBase: String = "https://survey.redress.example/s/",
                    missesPerMinute: Int = 10) {
            self.waves = waves
            self.tokenLifetime = tokenLifetime
            self.linkBase = linkBase
            self.missesPerMinute = missesPerMinute
        }

        public static func fromEnvironment(_ environment: [String: String]) throws -> Settings {
            var settings = Settings()
            var env = EnvironmentReader(environment)
            if let text = env.value("REDRESS_SURVEY_WAVES") {
                let days = text.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
                if days.isEmpty || days.count != text.split(separator: ",").count || days.contains(where: { $0 < 0 || $0 > 365 }) || Set(days).count != days.count {
                    env.problems.append("REDRESS_SURVEY_WAVES must list distinct days after closure, 0 to 365, e.g. 0,7,30")
                } else {
                    settings.waves = days.sorted()
                }
            }
            settings.tokenLifetime = Double(env.integer("REDRESS_SURVEY_TOKEN_DAYS", 14, 1...90)) * 86_400
            if let base = env.value("REDRESS_SURVEY_LINK_BASE") { settings.linkBase = base }
            if let proxies = env.value("REDRESS_TRUSTED_PROXIES") {
                settings.trustedProxies = Set(proxies.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
            }
            try env.check()
            return settings
        }
    }

    public static func main() async throws {
        try await ServiceHost.serve(service: name, defaultPort: defaultPort) { host in
            do {
                return build(host: host, settings: try Settings.fromEnvironment(ProcessInfo.processInfo.environment))
            } catch {
                host.logger.critical("\(error)")
                exit(2)
            }
        }
    }

    /// `now` is the limiter's clock: tests pin it so that their misses fall in one minute whatever the hour.
    public static func build(host: ServiceHost, settings: Settings = Settings(), now: @escaping @Sendable () -> Date = Date.init)
        -> (Router<RedressRequestContext>, [any Service]) {
        // Ready when PostgreSQL is: what it takes in goes to the outbox, sent when the broker is back.
        host.readyWithoutBroker()
        let router = host.router()
        let visits = ReturnVisits(postgres: host.postgres, settings: settings, logger: host.logger)
        let api = SurveyAPI(postgres: host.postgres, guard: MissLimiter(perMinute: settings.missesPerMinute, now: now),
                            trustedProxies: settings.trustedProxies)
        api.add(to: router)
        do {
            try CustomerPages(survey: api, postgres: host.postgres).add(to: router)
        } catch {
            host.logger.critical("the customer pages cannot start: \(error)")
            exit(2)
        }
        let consumer = host.consumer(group: consumerGroup, topics: [EventType.caseClosed.topic],
                                     handler: EventHandler<CaseClosed> { try await visits.schedule($0, on: $1, logger: $2) }, gathers: true)
        let series = GaugeSeries()
        // Satisfaction by unit: the share of answers scoring 4–5 (CSAT), the share of invitations
        // answered, and the share of closed cases visited at all.
        let gauges = Periodic("survey gauges", every: .seconds(30), gate: host.gate, logger: host.logger) { [postgres = host.postgres, logger = host.logger] in
            var csat: [[String]: Double] = [:], response: [[String]: Double] = [:], completion: [[String]: Double] = [:]
            let rows = try await postgres.query("""
                SELECT COALESCE(handling_unit, '?'),
                    count(*) FILTER (WHERE status = 'answered' AND score >= 4)::float8 / greatest(1, count(*) FILTER (WHERE status = 'answered')),
                    count(*) FILTER (WHERE status = 'answered')::float8 / greatest(1, count(*) FILTER (WHERE status IN ('invited', 'answered', 'expired'))),
                    count(DISTINCT complaint_id) FILTER (WHERE status = 'answered')::float8 / greatest(1, count(DISTINCT complaint_id))
                FROM surveys GROUP BY 1
                """, logger: logger)
            for try await (unit, c, r, v) in rows.decode((String, Double, Double, Double).self) {
                (csat[[unit]], response[[unit]], completion[[unit]]) = (c, r, v)
            }
            series.record("redress_survey_csat_ratio", dimensions: ["unit"], csat)
            series.record("redress_survey_response_ratio", dimensions: ["unit"], response)
            series.record("redress_survey_completion_ratio", dimensions: ["unit"], completion)
        }
        // Due visits are invited every few seconds; several instances share the work without overlap (SKIP LOCKED).
        let inviter = Periodic("survey invitations", every: .seconds(2), gate: host.gate, logger: host.logger) {
            while try await visits.invite() > 0 {}
        }
        return (router, [consumer, inviter, gauges])
    }

    static func hash(_ token: String) -> [UInt8] { Array(SHA256.hash(data: Data(token.utf8))) }

    /// 32 random bytes, base64url: unguessable, and fits a text message.
    static func newToken() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}

/// Scheduling and inviting.
public struct ReturnVisits: Sendable {
    let postgres: PostgresClient
    let settings: SurveysService.Settings
    let logger: Logger

    /// On closure: one visit per wave, due that many days after the closure. A reopened case's
    /// closure schedules its own (it is another complaint).
    func schedule(_ events: [EventEnvelope<CaseClosed>], on connection: PostgresConnection, logger: Logger) async throws {
        var complaints: [UUID] = [], names: [String] = [], due: [Date] = []
        for event in events {
            for days in settings.waves {
                complaints.append(event.complaintId)
                names.append("day\(days)")
                due.append(event.occurredAt.addingTimeInterval(Double(days) * 86_400))
            }
        }
        try await connection.query("""
            INSERT INTO surveys (id, complaint_id, visit, due_at, handling_unit, category, handler)
            SELECT gen_random_uuid(), t.complaint_id, t.visit, t.due, COALESCE(c.handling_unit, c.branch), c.category, c.assignee
            FROM unnest(\(complaints)::uuid[], \(names)::text[], \(due)::timestamptz[]) AS t(complaint_id, visit, due)
            JOIN complaints c ON c.id = t.complaint_id
            ON CONFLICT (complaint_id, visit) DO NOTHING
            """, logger: logger)
        Counter(label: "redress_surveys_scheduled_total").increment(by: complaints.count)
    }

    /// Invites every visit due at `now`: a fresh token (only its hash is kept) and `survey.requested`,
    /// in one transaction. Visits whose links expired unanswered are marked expired. Returns how many were invited.
    @discardableResult
    public func invite(now: Date = Date(), limit: Int = 200) async throws -> Int {
        try await postgres.withTransaction(logger: logger) { connection in
            try await connection.query("UPDATE surveys SET status = 'expired', link = NULL WHERE status = 'invited' AND expires_at <= \(now)", logger: logger)
            var due: [(UUID, UUID, String, String, String)] = []
            let rows = try await connection.query("""
                SELECT s.id, s.complaint_id, s.visit, c.number, COALESCE(s.handling_unit, c.branch)
                FROM surveys s JOIN complaints c ON c.id = s.complaint_id
                WHERE s.status = 'scheduled' AND s.due_at <= \(now)
                ORDER BY s.due_at LIMIT \(limit) FOR UPDATE OF s SKIP LOCKED
                """, logger: logger)
            for try await row in rows.decode((UUID, UUID, String, String, String).self) { due.append(row) }
            guard !due.isEmpty else { return 0 }
            let expires = now.addingTimeInterval(settings.tokenLifetime)
            var hashes: [[UInt8]] = [], links: [String] = [], outbox: [OutboxEntry] = []
            let encoder = EventCoding.encoder()
            for (id, complaint, visit, number, unit) in due {
                let token = SurveysService.newToken()
                hashes.append(SurveysService.hash(token))
                // The link stays in the database (notify reads it at send time): the event carries none.
                links.append(settings.linkBase + token)
                outbox.append(try OutboxEntry(EventEnvelope(occurredAt: now, complaintId: complaint, orgUnit: unit, actor: SurveysService.actor,
                    payload: SurveyRequested(surveyId: id, number: number, wave: visit, requestedAt: now, expiresAt: expires)),
                    encoder: encoder))
                Counter(label: "redress_survey_invitations_total", dimensions: [("unit", unit)]).increment()
            }
            try await connection.query("""
                UPDATE surveys s SET status = 'invited', token_hash = t.hash, link = t.link, invited_at = \(now), expires_at = \(expires)
                FROM unnest(\(due.map(\.0))::uuid[], \(hashes.map { ByteBuffer(bytes: $0) })::bytea[], \(links)::text[]) AS t(id, hash, link)
                WHERE s.id = t.id
                """, logger: logger)
            try await Outbox.append(outbox, on: connection, logger: logger)
            return due.count
        }
    }
}

/// Counts a client's lookups of unknown tokens per minute: past the limit, it is refused (429)
/// until the minute is over, so tokens cannot be found by trying.
public final class MissLimiter: Sendable {
    let perMinute: Int
    let now: @Sendable () -> Date
    private let misses = NIOLockedValueBox<[String: (minute: Int, count: Int)]>([:])

    public init(perMinute: Int, now: @escaping @Sendable () -> Date = Date.init) {
        self.perMinute = perMinute
        self.now = now
    }

    public func isBlocked(_ client: String) -> Bool {
        let minute = Int(now().timeIntervalSince1970 / 60)
        return misses.withLockedValue { ($0[client]?.minute == minute) && ($0[client]?.count ?? 0) >= perMinute }
    }

    /// When the current minute's budget is renewed (for Retry-After).
    public func secondsToNextMinute() -> Int { 60 - Int(now().timeIntervalSince1970) % 60 }

    public func miss(_ client: String) {
        let minute = Int(now().timeIntervalSince1970 / 60)
        misses.withLockedValue { all in
            if all.count > 10_000 { all = all.filter { $0.value.minute == minute } }
            let current = all[client].flatMap { $0.minute == minute ? $0.count : nil } ?? 0
            all[client] = (minute, current + 1)
        }
    }
}

struct SurveyQuestion: Codable, Sendable {
    var id: String
    var type: String
    var text: String
    var textEn: String
    var min: Int?
    var max: Int?
    var maxLength: Int?
    var optional: Bool
}

struct SurveyForm: ResponseEncodable, Sendable {
    var number: String
    var wave: String
    var expiresAt: String
    var questions: [SurveyQuestion]
}

struct SurveyThanks: ResponseEncodable, Sendable {
    var number: String
    var wave: String
    var thanks: String
    /// Not sent: the customer's page says what happens next (a dissatisfied answer is looked at again, one level up).
    var satisfied = true

    enum CodingKeys: String, CodingKey { case number, wave, thanks }
}

struct SurveyAnswer: Codable, Sendable {
    var score: Int?
    var resolved: Bool?
    var comment: String?
}

/// `GET`/`POST /v1/surveys/{token}`: public, the link token is the credential. A wrong, expired or
/// used token gets the same 404, so the answer never tells whether a token existed.
struct SurveyAPI: Sendable {
    let postgres: PostgresClient
    let `guard`: MissLimiter
    /// Addresses of the deployment's own proxies, whose X-Forwarded-For is believed.
    var trustedProxies: Set<String> = []

    static let questions = [
        SurveyQuestion(id: "score", type: "integer", text: "您对本次投诉处理的满意程度（1 非常不满意 – 5 非常满意）",
                       textEn: "How satisfied are you with how your complaint was handled (1 very dissatisfied – 5 very satisfied)?",
                       min: 1, max: 5, maxLength: nil, optional: false),
        SurveyQuestion(id: "resolved", type: "boolean", text: "您的问题是否已经解决？", textEn: "Has your problem been resolved?",
                       min: nil, max: nil, maxLength: nil, optional: false),
        SurveyQuestion(id: "comment", type: "text", text: "您还有什么想告诉我们的？", textEn: "Anything else you would like to tell us?",
                       min: nil, max: nil, maxLength: 1000, optional: true),
    ]

    static let notFound = Problem(status: .notFound, title: "No open survey", detail: "no open survey for this link; it may have expired or been answered already")

    func add(to router: Router<RedressRequestContext>) {
        let group = router.group("v1/surveys")
        group.get(":token") { request, context in try await show(request, context) }
        group.post(":token") { request, context in try await answer(request, context) }
    }

    /// The client a guess is counted against: the connection's peer, or — when the peer is one of
    /// the deployment's proxies (`REDRESS_TRUSTED_PROXIES`) — the address it forwarded for, so the
    /// customers behind one ingress do not share one budget.
    func client(_ request: Request, _ context: RedressRequestContext) -> String {
        let peer = context.remoteIP ?? "unknown"
        guard trustedProxies.contains(peer), let forwarded = request.headers[HTTPField.Name("X-Forwarded-For")!] else { return peer }
        // The right-most address no trusted proxy added: what the last proxy we trust saw.
        let chain = forwarded.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return chain.last { !trustedProxies.contains($0) } ?? peer
    }

    /// After a link was not found: 429 when this client has guessed too often this minute, else the
    /// miss is counted (only a token no visit ever had counts: a customer clicking an old or
    /// answered link is not guessing) and the caller answers 404.
    func refuseUnknown(_ token: String, client: String, _ context: RedressRequestContext) async throws {
        if `guard`.isBlocked(client) {
            throw Problem(status: .tooManyRequests, title: "Too many unknown links",
                          detail: "too many requests for unknown survey links from your address; try again in a minute",
                          retryAfter: `guard`.secondsToNextMinute())
        }
        let rows = try await postgres.query("SELECT 1 FROM surveys WHERE token_hash = \(ByteBuffer(bytes: SurveysService.hash(token)))", logger: context.logger)
        for try await _ in rows.decode(Int.self) { return }
        `guard`.miss(client)
    }

    /// A valid link always opens, however often others behind the same address guessed: only the
    /// unknown ones are limited.
    func show(_ request: Request, _ context: RedressRequestContext) async throws -> SurveyForm {
        let client = client(request, context)
        let token = try context.parameters.require("token")
        let rows = try await postgres.query("""
            SELECT c.number, s.visit, s.expires_at FROM surveys s JOIN complaints c ON c.id = s.complaint_id
            WHERE s.token_hash = \(ByteBuffer(bytes: SurveysService.hash(token))) AND s.status = 'invited' AND s.expires_at > now()
            """, logger: context.logger)
        for try await (number, wave, expires) in rows.decode((String, String, Date).self) {
            return SurveyForm(number: number, wave: wave, expiresAt: Timestamp.format(expires), questions: Self.questions)
        }
        try await refuseUnknown(token, client: client, context)
        throw Self.notFound
    }

    func answer(_ request: Request, _ context: RedressRequestContext) async throws -> Response {
        let client = client(request, context)
        let token = try context.parameters.require("token")
        let body: SurveyAnswer
        do {
            body = try JSONDecoder().decode(SurveyAnswer.self, from: Data(try await request.utf8Body(context: context)))
            try NULCharacter.refuse(in: body)
        } catch let problem as Problem {
            throw problem
        } catch {
            throw Problem(status: .badRequest, title: "Body is not valid JSON", detail: "send {\"score\": 1-5, \"resolved\": true|false, \"comment\": \"…\"}")
        }
        var errors: [FieldError] = []
        if body.score.map({ !(1...5).contains($0) }) ?? true { errors.append(FieldError("score", "required: a whole number from 1 to 5")) }
        if body.resolved == nil { errors.append(FieldError("resolved", "required: true or false")) }
        if let comment = body.comment, comment.count > 1000 { errors.append(FieldError("comment", "is longer than 1000 characters")) }
        guard errors.isEmpty, let score = body.score, let resolved = body.resolved else {
            throw Problem(status: .badRequest, title: "Invalid answer", detail: errors.map(\.description).joined(separator: "; "), errors: errors)
        }
        let thanks = try await record(token: token, score: score, resolved: resolved, comment: body.comment, logger: context.logger)
        guard let thanks else {
            try await refuseUnknown(token, client: client, context)
            throw Self.notFound
        }
        return try thanks.response(from: request, context: context).withStatus(.created)
    }

    /// Records an answer (the JSON API and the customer's page alike): only an invited, unexpired
    /// visit takes it, once. A bad answer (1–2, or not resolved) also raises `survey.dissatisfied`.
    /// Nil when the link is unknown, used or expired.
    func record(token: String, score: Int, resolved: Bool, comment: String?, logger: Logger) async throws -> SurveyThanks? {
        let comment = comment.map(PersonalData.scrub).flatMap { $0.isEmpty ? nil : $0 }
        let satisfied = score >= 3 && resolved
        let now = Date()
        return try await postgres.withTransaction(logger: logger) { connection -> SurveyThanks? in
            let rows = try await connection.query("""
                UPDATE surveys s SET status = 'answered', link = NULL, answered_at = \(now), score = \(score), resolved = \(resolved), comment = \(comment)
                FROM complaints c
                WHERE s.token_hash = \(ByteBuffer(bytes: SurveysService.hash(token))) AND s.status = 'invited' AND s.expires_at > \(now) AND c.id = s.complaint_id
                RETURNING s.id, s.complaint_id, s.visit, c.number, COALESCE(s.handling_unit, c.branch), COALESCE(s.category, 'other'), COALESCE(s.handler, '')
                """, logger: logger)
            for try await (id, complaint, wave, number, unit, category, handler) in rows.decode((UUID, UUID, String, String, String, String, String).self) {
                let encoder = EventCoding.encoder()
                var outbox = [try OutboxEntry(EventEnvelope(occurredAt: now, complaintId: complaint, orgUnit: unit, actor: SurveysService.actor,
                    payload: SurveyAnswered(surveyId: id, number: number, wave: wave, score: score, resolved: resolved, satisfied: satisfied,
                                            comment: comment, answeredAt: now)), encoder: encoder)]
                // 1–2, or not resolved: the case service reopens it one level up.
                if !satisfied {
                    outbox.append(try OutboxEntry(EventEnvelope(occurredAt: now, complaintId: complaint, orgUnit: unit, actor: SurveysService.actor,
                        payload: SurveyDissatisfied(surveyId: id, number: number, wave: wave, score: score, resolved: resolved, comment: comment, answeredAt: now)),
                        encoder: encoder))
                }
                try await Outbox.append(outbox, on: connection, logger: logger)
                Counter(label: "redress_survey_answers_total", dimensions: [
                    ("unit", unit), ("category", category), ("handler", handler), ("score", String(score)), ("resolved", String(resolved)),
                ]).increment()
                return SurveyThanks(number: number, wave: wave, thanks: "感谢您的反馈。Thank you for your feedback.", satisfied: satisfied)
            }
            return nil
        }
    }
}
