import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import PostgresNIO
@testable import RedressCases
@testable import RedressContracts
import RedressDomain
import RedressKafka
@testable import RedressRouting
@testable import RedressServiceKit
@testable import RedressSurveys
import Testing

/// Return visits: scheduled on closure, invited when due (an injected clock, no waiting), answered
/// once through a single-use, expiring link; a bad answer reopens the case one level up.
@Suite struct SurveyTests {
    static let settings = SurveysService.Settings(linkBase: "https://s.test/s/", missesPerMinute: 10)

    static func close(_ db: PostgresClient, _ id: UUID, at: Date) async throws {
        let event = EventEnvelope(occurredAt: at, complaintId: id, orgUnit: "GD-SZ", actor: .service("redress-cases"), payload: CaseClosed(
            transition: CaseTransition(number: "n", fromStatus: .resolved, toStatus: .closed, handlingUnit: "GD-SZ", assignee: "GD-SZ-AGE01",
                                       reason: nil, caseVersion: 5, action: .close),
            liability: .liable, responsibleLink: "claims", causeCode: "claim_delay"))
        try await db.withTransaction(logger: TestDatabase.logger) { connection in
            try await ReturnVisits(postgres: db, settings: settings, logger: TestDatabase.logger).schedule([event], on: connection, logger: TestDatabase.logger)
        }
    }

    struct Invitation {
        var surveyId: UUID
        var number: String
        var wave: String
        var link: String
    }

    /// The invitations in the outbox, each with its link as notify reads it — from the surveys
    /// table: the event itself carries no link, and no part of its token.
    static func links(_ db: PostgresClient) async throws -> [Invitation] {
        var result: [Invitation] = []
        for try await text in try await db.query("SELECT convert_from(payload, 'UTF8') FROM outbox WHERE event_type = 'survey.requested' ORDER BY id",
                                                 logger: TestDatabase.logger).decode(String.self) {
            #expect(!text.contains("s.test/s/") && !text.contains("link"), "a survey.requested event carries no link: \(text)")
            let payload = try EventCoding.decoder().decode(EventEnvelope<SurveyRequested>.self, from: Data(text.utf8)).payload
            var link = ""
            for try await value in try await db.query("SELECT link FROM surveys WHERE id = \(payload.surveyId)", logger: TestDatabase.logger).decode(String?.self) {
                link = value ?? ""
            }
            result.append(Invitation(surveyId: payload.surveyId, number: payload.number, wave: payload.wave, link: link))
        }
        return result
    }

    static func withApp(_ body: @Sendable @escaping (PostgresClient, ReturnVisits, any TestClientProtocol) async throws -> Void) async throws {
        try await TestDatabase.withFresh { db, database in
            try await TestHost.withHost(service: SurveysService.name, database: database) { host in
                // The limiter's minute is pinned: the misses of a test fall in one minute whatever the hour.
                let pinned = Date()
                let (router, _) = SurveysService.build(host: host, settings: settings, now: { pinned })
                try await Application(router: router).test(.router) { client in
                    try await body(db, ReturnVisits(postgres: db, settings: settings, logger: TestDatabase.logger), client)
                }
            }
        }
    }

    static func token(_ link: String) -> String { String(link.dropFirst("https://s.test/s/".count)) }

    static func post(_ client: some TestClientProtocol, _ token: String, _ body: String) async throws -> HTTPResponse.Status {
        try await client.execute(uri: "/v1/surveys/\(token)", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: body)).status
    }

    @Test func visitsAreScheduledOnClosureAndInvitedWhenDue() async throws {
        try await TestDatabase.withFresh { db, _ in
            let id = try await CaseFixture.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "closed", number: "GD-SZ-20261122-000041")
            let closed = Timestamp.parse("2026-11-22T10:00:00+08:00")!
            try await Self.close(db, id, at: closed)
            try await Self.close(db, id, at: closed) // redelivered: still three visits
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM surveys WHERE complaint_id = \(id) AND handler = 'GD-SZ-AGE01'") == 3)
            let visits = ReturnVisits(postgres: db, settings: Self.settings, logger: TestDatabase.logger)
            // Each link read as notify would, right after its invitation (an expired visit's link is cleared).
            var seen: [UUID: Invitation] = [:]
            func collect() async throws {
                for invitation in try await Self.links(db) where !invitation.link.isEmpty && seen[invitation.surveyId] == nil {
                    seen[invitation.surveyId] = invitation
                }
            }
            #expect(try await visits.invite(now: closed) == 1, "the same-day visit")
            try await collect()
            #expect(try await visits.invite(now: closed.addingTimeInterval(6 * 86_400)) == 0)
            #expect(try await visits.invite(now: closed.addingTimeInterval(7 * 86_400 + 1)) == 1, "one week")
            try await collect()
            #expect(try await visits.invite(now: closed.addingTimeInterval(30 * 86_400 + 1)) == 1, "one month")
            try await collect()
            let order = ["day0", "day7", "day30"]
            let links = seen.values.sorted { (order.firstIndex(of: $0.wave) ?? 9) < (order.firstIndex(of: $1.wave) ?? 9) }
            #expect(links.map(\.wave) == ["day0", "day7", "day30"])
            #expect(links.allSatisfy { $0.link.hasPrefix("https://s.test/s/") && Self.token($0.link).count == 43 })
            #expect(Set(links.map(\.link)).count == 3)
            // Only the hash is kept.
            for link in links {
                #expect(try await TestDatabase.count(db, "SELECT count(*) FROM surveys WHERE token_hash = \(ByteBuffer(bytes: SurveysService.hash(Self.token(link.link))))") == 1)
                #expect(try await TestDatabase.count(db, "SELECT count(*) FROM surveys WHERE encode(token_hash, 'escape') LIKE \("%" + Self.token(link.link) + "%")") == 0)
            }
        }
    }

    @Test func aLinkIsSingleUseExpiresAndResistsGuessing() async throws {
        try await Self.withApp { db, visits, client in
            let fresh = try await CaseFixture.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "closed", number: "GD-SZ-20261122-000051")
            let stale = try await CaseFixture.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "closed", number: "GD-SZ-20261122-000052")
            try await Self.close(db, fresh, at: Date())
            try await Self.close(db, stale, at: Date().addingTimeInterval(-20 * 86_400))
            try await visits.invite(now: Date().addingTimeInterval(-15 * 86_400)) // stale's day0: its link expired yesterday
            // Read while open: once the visit expires, its link is cleared from the table.
            let expired = try #require(try await Self.links(db).first { $0.number == "GD-SZ-20261122-000052" && $0.wave == "day0" })
            try await visits.invite(now: Date())
            let links = try await Self.links(db)
            let open = try #require(links.first { $0.number == "GD-SZ-20261122-000051" && $0.wave == "day0" })
            #expect(try #require(links.first { $0.surveyId == expired.surveyId }).link.isEmpty, "an expired visit's link is cleared")
            let form = try await client.execute(uri: "/v1/surveys/\(Self.token(open.link))", method: .get, headers: [:], body: nil)
            #expect(form.status == .ok)
            #expect(String(buffer: form.body).contains("GD-SZ-20261122-000051"))
            #expect(try await Self.post(client, Self.token(open.link), #"{"score": 9}"#) == .badRequest)
            #expect(try await Self.post(client, Self.token(open.link), #"{"score": 5, "resolved": true, "comment": "很好，电话13812345678"}"#) == .created)
            #expect(try await Self.post(client, Self.token(open.link), #"{"score": 1, "resolved": false}"#) == .notFound, "single use")
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM surveys WHERE id = \(open.surveyId) AND link IS NULL") == 1, "an answered visit's link is cleared")
            #expect(try await client.execute(uri: "/v1/surveys/\(Self.token(open.link))", method: .get, headers: [:], body: nil).status == .notFound)
            #expect(try await client.execute(uri: "/v1/surveys/\(Self.token(expired.link))", method: .get, headers: [:], body: nil).status == .notFound)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM surveys WHERE comment LIKE '%很好%' AND comment LIKE '%138****5678%'") == 1,
                    "the comment is stored, with the phone masked")
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM surveys WHERE comment LIKE '%13812345678%'") == 0, "the comment is stored masked")
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM outbox WHERE event_type = 'survey.dissatisfied'") == 0)
            // Guessing: after ten unknown tokens in a minute the client is refused for unknown ones; a real
            // link still opens, so a customer behind the same proxy is never locked out.
            // (The used and expired links above were real ones: they do not count.)
            var statuses: [HTTPResponse.Status] = []
            for _ in 0..<10 {
                statuses.append(try await client.execute(uri: "/v1/surveys/\(SurveysService.newToken())", method: .get, headers: [:], body: nil).status)
            }
            #expect(statuses.allSatisfy { $0 == .notFound })
            let day7 = try #require(links.first { $0.number == "GD-SZ-20261122-000052" && $0.wave == "day7" })
            let refused = try await client.execute(uri: "/v1/surveys/\(SurveysService.newToken())", method: .get, headers: [:], body: nil)
            #expect(refused.status == .tooManyRequests)
            #expect(refused.headers[.retryAfter].flatMap(Int.init).map { (1...60).contains($0) } == true)
            let valid = try await client.execute(uri: "/v1/surveys/\(Self.token(day7.link))", method: .get, headers: [:], body: nil)
            #expect(valid.status == .ok, "a valid link opens whatever others guessed from the same address")
        }
    }

    @Test func aDissatisfiedCustomerReopensTheCaseOneLevelUpAndItsClosureIsVisitedAgain() async throws {
        try await Self.withApp { db, visits, client in
            let id = try await CaseFixture.insert(db, unit: "GD-SZ", assignee: "GD-SZ-AGE01", status: "closed", number: "GD-SZ-20261122-000061")
            try await Self.close(db, id, at: Date())
            try await visits.invite(now: Date())
            let link = try #require(try await Self.links(db).first)
            #expect(try await Self.post(client, Self.token(link.link), #"{"score": 4, "resolved": false}"#) == .created)
            // survey.dissatisfied → the case service reopens → routing sends it one level up.
            var dissatisfied: [EventEnvelope<SurveyDissatisfied>] = []
            for try await text in try await db.query("SELECT convert_from(payload, 'UTF8') FROM outbox WHERE event_type = 'survey.dissatisfied'",
                                                     logger: TestDatabase.logger).decode(String.self) {
                dissatisfied.append(try EventCoding.decoder().decode(EventEnvelope<SurveyDissatisfied>.self, from: Data(text.utf8)))
            }
            #expect(dissatisfied.count == 1)
            #expect(dissatisfied.first?.payload.resolved == false)
            try await db.withTransaction(logger: TestDatabase.logger) { connection in
                try await CasesService.reopenDissatisfied(dissatisfied, workflow: CaseWorkflow(taxonomy: CaseFixture.taxonomy), on: connection, logger: TestDatabase.logger)
            }
            var reopened: [String] = []
            for try await text in try await db.query("SELECT convert_from(payload, 'UTF8') FROM outbox WHERE event_type = 'case.reopened'",
                                                     logger: TestDatabase.logger).decode(String.self) { reopened.append(text) }
            #expect(reopened.count == 1)
            let handler = RerouteHandler(engine: RoutingEngine(rules: .fallback, postgres: db, logger: TestDatabase.logger))
            let item = try handler.decode(KafkaMessage(topic: EventType.caseReopened.topic, partition: 0, offset: 0, key: nil, value: Array(reopened[0].utf8), headers: [])).get()
            try await db.withTransaction(logger: TestDatabase.logger) { try await handler.handle([item], on: $0, logger: TestDatabase.logger) }
            var assigned: [ComplaintAssigned] = []
            for try await text in try await db.query("SELECT convert_from(payload, 'UTF8') FROM outbox WHERE event_type = 'complaint.assigned'",
                                                     logger: TestDatabase.logger).decode(String.self) {
                assigned.append(try EventCoding.decoder().decode(EventEnvelope<ComplaintAssigned>.self, from: Data(text.utf8)).payload)
            }
            #expect(assigned.first?.handlingUnit == "GD")
            #expect(assigned.first?.reason == .reopened)
            #expect(assigned.first?.number == "GD-SZ-20261122-000061-R1")
            // The second complaint's own closure schedules its own visits.
            let second = item.complaintID
            try await Self.close(db, second, at: Date())
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM surveys WHERE complaint_id = \(second)") == 3)
        }
    }
}
