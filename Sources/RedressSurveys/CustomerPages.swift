import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import Mustache
import NIOCore
import PostgresNIO
import RedressContracts
import RedressDomain
import RedressServiceKit
import RedressStore

/// The customer's pages, public and mobile-first: the return visit at the link the customer
/// receives (`/s/{token}`), and complaint status look-up (`/status`) with a one-time code sent to
/// the contact on file. No page shows a name, a phone, an ID or an amount; no page needs a script.
struct CustomerPages: Sendable {
    let survey: SurveyAPI
    let postgres: PostgresClient
    let templates: MustacheLibrary
    let texts: [String: [String: String]]

    /// Look-ups of one number per hour (codes asked for, codes tried), known number or not.
    static let codesPerHour = 5
    static let checksPerHour = 10
    static let codeLifetime: TimeInterval = 10 * 60

    static var resources: URL {
        if let path = ProcessInfo.processInfo.environment["REDRESS_SURVEYS_RESOURCES"], !path.isEmpty { return URL(fileURLWithPath: path) }
        return Bundle.module.bundleURL.appendingPathComponent("Resources")
    }

    init(survey: SurveyAPI, postgres: PostgresClient) throws {
        self.survey = survey
        self.postgres = postgres
        var library = MustacheLibrary()
        let directory = Self.resources.appendingPathComponent("templates").path
        for file in try FileManager.default.contentsOfDirectory(atPath: directory) where file.hasSuffix(".mustache") {
            try library.register(try String(contentsOfFile: directory + "/" + file, encoding: .utf8), named: String(file.dropLast(".mustache".count)))
        }
        templates = library
        guard let data = FileManager.default.contents(atPath: Self.resources.appendingPathComponent("catalogue.json").path) else {
            throw ConsoleText("the customer pages' catalogue cannot be read from \(Self.resources.path)")
        }
        texts = try JSONDecoder().decode([String: [String: String]].self, from: data)
    }

    struct ConsoleText: Error, CustomStringConvertible { var description: String; init(_ d: String) { description = d } }

    func add(to router: Router<RedressRequestContext>) {
        router.get("/s/:token") { request, context in try await surveyPage(request, context) }
        router.post("/s/:token") { request, context in try await answer(request, context) }
        router.get("/status") { request, _ in page("status", [:], request) }
        router.post("/status/code") { request, context in try await requestCode(request, context) }
        router.post("/status") { request, context in try await check(request, context) }
        router.get("/static/public.css") { _, _ in
            guard let data = FileManager.default.contents(atPath: Self.resources.appendingPathComponent("static/public.css").path) else { throw HTTPError(.notFound) }
            return Response(status: .ok, headers: [.contentType: "text/css; charset=utf-8", .cacheControl: "public, max-age=300"],
                            body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
    }

    func language(_ request: Request) -> String {
        if let chosen = request.uri.queryParameters.get("lang"), texts[chosen] != nil { return chosen }
        if let accept = request.headers[.acceptLanguage], accept.lowercased().hasPrefix("en") { return "en" }
        return "zh-CN"
    }

    func page(_ template: String, _ data: [String: Any], _ request: Request, status: HTTPResponse.Status = .ok) -> Response {
        let language = language(request)
        var all = data
        all["t"] = texts[language] ?? [:]
        all["lang"] = language
        all["otherLang"] = language == "en" ? "zh-CN" : "en"
        all["otherLangLabel"] = language == "en" ? "中文" : "English"
        let html = templates.render(all, withTemplate: template) ?? ""
        var response = Response(status: status, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: html)))
        // Public pages: no framing, no inline script, nothing cached (a code or an answer is private).
        response.headers[.contentSecurityPolicy] = "default-src 'self'; script-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        response.headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        response.headers[.cacheControl] = "no-store"
        return response
    }

    func text(_ key: String, _ request: Request) -> String { texts[language(request)]?[key] ?? texts["zh-CN"]?[key] ?? key }

    /// The posted form's first value of each name.
    static func form(_ request: Request, _ context: RedressRequestContext) async throws -> [String: String] {
        let body = FormBody(String(decoding: try await request.utf8Body(context: context), as: UTF8.self))
        return body.values.compactMapValues(\.first)
    }

    // MARK: Return visit

    /// The questions of an open visit; a used, expired or unknown link says only that.
    func surveyPage(_ request: Request, _ context: RedressRequestContext, errors: [String: String] = [:], values: [String: String] = [:]) async throws -> Response {
        let token = try context.parameters.require("token")
        do {
            let form = try await survey.show(request, context)
            var data: [String: Any] = ["number": form.number, "token": token]
            data["scores"] = (1...5).map { ["value": $0, "label": text("score_\($0)", request), "checked": values["score"] == String($0)] }
            data["resolvedYes"] = values["resolved"] == "true"
            data["resolvedNo"] = values["resolved"] == "false"
            data["comment"] = values["comment"] ?? ""
            if let e = errors["score"] { data["scoreError"] = e }
            if let e = errors["resolved"] { data["resolvedError"] = e }
            if let e = errors["comment"] { data["commentError"] = e }
            if !errors.isEmpty { data["hasErrors"] = true }
            return page("survey", data, request, status: errors.isEmpty ? .ok : .badRequest)
        } catch let problem as Problem where problem.status == 404 {
            return page("gone", [:], request, status: .notFound)
        } catch let problem as Problem where problem.status == 429 {
            return page("gone", ["busy": true], request, status: .tooManyRequests)
        }
    }

    func answer(_ request: Request, _ context: RedressRequestContext) async throws -> Response {
        let token = try context.parameters.require("token")
        let values = try await Self.form(request, context)
        var errors: [String: String] = [:]
        let score = values["score"].flatMap(Int.init)
        if score.map({ !(1...5).contains($0) }) ?? true { errors["score"] = text("error_score", request) }
        let resolved = values["resolved"].flatMap { $0 == "true" ? true : $0 == "false" ? false : nil }
        if resolved == nil { errors["resolved"] = text("error_resolved", request) }
        if let comment = values["comment"], comment.count > 1000 { errors["comment"] = text("error_comment", request) }
        guard errors.isEmpty, let score, let resolved else { return try await surveyPage(request, context, errors: errors, values: values) }
        guard let thanks = try await survey.record(token: token, score: score, resolved: resolved, comment: values["comment"], logger: context.logger) else {
            do {
                try await survey.refuseUnknown(token, client: survey.client(request, context), context)
            } catch let problem as Problem where problem.status == 429 {
                return page("gone", ["busy": true], request, status: .tooManyRequests)
            }
            return page("gone", [:], request, status: .notFound)
        }
        return page("thanks", ["number": thanks.number, "dissatisfied": !thanks.satisfied], request)
    }

    // MARK: Status look-up

    static func numberHash(_ number: String) -> ByteBuffer {
        ByteBuffer(bytes: Array(SHA256.hash(data: Data(number.uppercased().utf8))))
    }

    static func codeHash(_ code: String, complaint: UUID) -> ByteBuffer {
        ByteBuffer(bytes: Array(SHA256.hash(data: Data((complaint.uuidString.lowercased() + ":" + code).utf8))))
    }

    /// Counts this look-up and says whether the number has had too many of this kind in the last hour.
    func overLimit(_ number: String, kind: String, limit: Int, logger: Logger) async throws -> Bool {
        let hash = Self.numberHash(number)
        try await postgres.query("INSERT INTO status_lookups (number_hash, kind) VALUES (\(hash), \(kind))", logger: logger)
        let rows = try await postgres.query("""
            SELECT count(*) FROM status_lookups WHERE number_hash = \(hash) AND kind = \(kind) AND at > now() - interval '1 hour'
            """, logger: logger)
        for try await count in rows.decode(Int.self) { return count > limit }
        return false
    }

    /// Step one: the number. A code goes to the contact on file when the number is one; the page
    /// says the same either way, so it tells no one which numbers exist.
    func requestCode(_ request: Request, _ context: RedressRequestContext) async throws -> Response {
        let values = try await Self.form(request, context)
        let number = (values["number"] ?? "").trimmingCharacters(in: .whitespaces).uppercased()
        guard (10...64).contains(number.count), number.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else {
            return page("status", ["number": number, "numberError": text("error_number", request)], request, status: .badRequest)
        }
        if try await overLimit(number, kind: "code", limit: Self.codesPerHour, logger: context.logger) {
            Counter(label: "redress_status_lookups_total", dimensions: [("outcome", "limited")]).increment()
            return page("status", ["number": number, "numberError": text("error_limited", request)], request, status: .tooManyRequests)
        }
        let now = Date()
        try await postgres.withTransaction(logger: context.logger) { connection in
            let rows = try await connection.query("SELECT id, COALESCE(handling_unit, branch) FROM complaints WHERE number = \(number)", logger: context.logger)
            for try await (id, unit) in rows.decode((UUID, String).self) {
                let code = String(format: "%06d", Int.random(in: 0...999_999))
                let expires = now.addingTimeInterval(Self.codeLifetime)
                let codeID = UUID()
                // The code waits here for notify to text it (the event names the row, not the code).
                try await connection.query("""
                    INSERT INTO status_codes (id, complaint_id, code_hash, code, created_at, expires_at)
                    VALUES (\(codeID), \(id), \(Self.codeHash(code, complaint: id)), \(code), \(now), \(expires))
                    """, logger: context.logger)
                try await Outbox.append([try OutboxEntry(EventEnvelope(occurredAt: now, complaintId: id, orgUnit: unit, actor: SurveysService.actor,
                    payload: StatusCodeRequested(number: number, codeId: codeID, expiresAt: expires)), encoder: EventCoding.encoder())],
                    on: connection, logger: context.logger)
            }
        }
        Counter(label: "redress_status_lookups_total", dimensions: [("outcome", "code_requested")]).increment()
        return page("status-code", ["number": number], request)
    }

    /// Step two: the number and the code. The same refusal for a wrong number and a wrong code.
    func check(_ request: Request, _ context: RedressRequestContext) async throws -> Response {
        let values = try await Self.form(request, context)
        let number = (values["number"] ?? "").trimmingCharacters(in: .whitespaces).uppercased()
        let code = (values["code"] ?? "").filter(\.isNumber)
        let refused = page("status-code", ["number": number, "codeError": text("error_code", request)], request, status: .unauthorized)
        guard !number.isEmpty, number.count <= 64 else { return refused }
        if try await overLimit(number, kind: "check", limit: Self.checksPerHour, logger: context.logger) {
            Counter(label: "redress_status_lookups_total", dimensions: [("outcome", "limited")]).increment()
            return page("status-code", ["number": number, "codeError": text("error_limited", request)], request, status: .tooManyRequests)
        }
        let found = try await postgres.withTransaction(logger: context.logger) { connection -> [String: Any]? in
            let rows = try await connection.query("""
                SELECT k.id, k.code_hash, c.id, c.status, COALESCE(c.handling_unit, c.branch), u.name, c.promised_reply_by
                FROM status_codes k JOIN complaints c ON c.id = k.complaint_id JOIN org_units u ON u.code = COALESCE(c.handling_unit, c.branch)
                WHERE c.number = \(number) AND k.used_at IS NULL AND k.expires_at > now() AND k.attempts < 5
                ORDER BY k.created_at DESC LIMIT 1 FOR UPDATE OF k
                """, logger: context.logger)
            for try await (codeID, hash, complaint, status, _, unitName, promised) in rows.decode((UUID, ByteBuffer, UUID, String, String, String, Date).self) {
                guard code.count == 6, hash == Self.codeHash(code, complaint: complaint) else {
                    try await connection.query("UPDATE status_codes SET attempts = attempts + 1 WHERE id = \(codeID)", logger: context.logger)
                    return nil
                }
                try await connection.query("UPDATE status_codes SET used_at = now(), code = NULL WHERE id = \(codeID)", logger: context.logger)
                var result: [String: Any] = ["number": number, "statusLabel": text("status." + status, request), "unitName": unitName,
                                             "promised": Self.localDate(promised)]
                // The latest notice the customer was sent: what it was about and when, not its text.
                let notices = try await connection.query("""
                    SELECT template, created_at FROM notifications WHERE complaint_id = \(complaint) AND recipient LIKE 'customer:%'
                        AND template <> 'status.code.customer' ORDER BY created_at DESC LIMIT 1
                    """, logger: context.logger)
                for try await (template, at) in notices.decode((String, Date).self) {
                    result["notice"] = text("template." + template, request)
                    result["noticeAt"] = Self.localDate(at)
                }
                result["closed"] = status == "closed"
                return result
            }
            return nil
        }
        Counter(label: "redress_status_lookups_total", dimensions: [("outcome", found == nil ? "refused" : "shown")]).increment()
        guard let found else { return refused }
        return page("status-result", found, request)
    }

    static func localDate(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Asia/Shanghai")!
        let c = calendar.dateComponents([.year, .month, .day], from: date)
        return String(format: "%04d-%02d-%02d", c.year!, c.month!, c.day!)
    }
}
