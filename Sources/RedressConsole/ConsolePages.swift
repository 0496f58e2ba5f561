import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import Mustache
import NIOCore
import RedressContracts
import RedressDomain
import RedressServiceKit

/// The console's pages and forms. Every read and action goes through `api` as the signed-in
/// staff member; this type only turns answers into pages and forms into requests.
struct ConsolePages: Sendable {
    let templates: MustacheLibrary
    let catalogue: Catalogue
    let api: StaffAPIClient
    let auth: ConsoleAuth
    let units: UnitDirectory
    let settings: ConsoleService.Settings

    static let sessionCookie = "redress_session"
    static let loginCookie = "redress_login"
    static let languageCookie = "redress_lang"

    static func loadTemplates() throws -> MustacheLibrary {
        let directory = ConsoleService.resources.appendingPathComponent("templates").path
        var library = MustacheLibrary()
        guard let files = try? FileManager.default.contentsOfDirectory(atPath: directory), !files.isEmpty else {
            throw ConsoleError("the console templates in \(directory) cannot be read")
        }
        for file in files where file.hasSuffix(".mustache") {
            let text = try String(contentsOfFile: directory + "/" + file, encoding: .utf8)
            try library.register(text, named: String(file.dropLast(".mustache".count)))
        }
        return library
    }

    func add(to router: Router<RedressRequestContext>) {
        router.add(middleware: ConsoleMiddleware(pages: self))
        router.get("/") { _, _ in Response.redirect(to: "/queue/mine", type: .normal) }
        router.get("/static/:file") { _, context in try staticFile(context.parameters.require("file")) }
        router.get("/lang/:language") { request, context in
            let language = Catalogue.Language(rawValue: try context.parameters.require("language")) ?? .zh
            var response = Response.redirect(to: "/", type: .normal)
            response.setCookie(cookie(Self.languageCookie, language.rawValue, maxAge: 365 * 86_400, httpOnly: false))
            return response
        }
        router.get("/login") { request, context in loginPage(request, error: nil, staffID: "") }
        router.post("/login") { request, context in try await signIn(request, context) }
        router.post("/logout") { request, context in
            let (session, _) = try await form(request, context)
            try await auth.signOutEverywhere(session.staffID, logger: context.logger)
            var response = Response.redirect(to: "/login", type: .normal)
            response.setCookie(cookie(Self.sessionCookie, "", maxAge: 0))
            return response
        }
        router.get("/queue/mine") { request, context in try await queuePage(request, context, mine: true) }
        router.get("/queue/unit") { request, context in try await queuePage(request, context, mine: false) }
        router.post("/queue/search") { request, context in try await searchPage(request, context) }
        router.get("/cases/:number") { request, context in
            let session = try await signedIn(request, context)
            let number = try context.parameters.require("number")
            var flash: String?
            if let done = request.uri.queryParameters.get("done") {
                flash = text("done", request) + catalogue.label("action", done, language(request))
            }
            return try await casePage(number: number, session: session, request, context, flash: flash)
        }
        router.post("/cases/:number/actions/:action") { request, context in try await act(request, context) }
        router.post("/cases/:number/reveal") { request, context in try await reveal(request, context) }
        router.post("/cases/:number/typical") { request, context in try await markTypical(request, context) }
        router.get("/typical") { request, context in try await typicalPage(request, context) }
        router.get("/reports") { request, context in try await reportPage(request, context) }
        router.get("/reports/download") { request, context in try await reportDownload(request, context) }
        router.get("/inbox") { request, context in try await inboxPage(request, context) }
        router.get("/board") { request, context in try await boardPage(request, context) }
        addOversight(to: router)
        router.get("/complaints/new") { request, context in
            let session = try await signedIn(request, context)
            var flash: String?
            if let number = request.uri.queryParameters.get("registered") {
                flash = text("registered_as", request) + number
                if let due = request.uri.queryParameters.get("due").flatMap(Timestamp.parse) { flash! += " · " + text("promised_reply", request) + " " + local(due) }
            }
            return try await registrationPage(request, context, session: session, form: nil, errors: [:], flash: flash)
        }
        router.post("/complaints/new") { request, context in try await register(request, context) }
        router.get("/staff") { request, context in try await staffPage(request, context, form: nil, errors: [:], flash: nil) }
        router.post("/staff") { request, context in try await addStaff(request, context) }
        router.post("/staff/:id") { request, context in try await changeStaff(request, context) }
    }

    // MARK: Plumbing

    func language(_ request: Request) -> Catalogue.Language {
        if let chosen = request.cookies[Self.languageCookie].flatMap({ Catalogue.Language(rawValue: $0.value) }) { return chosen }
        if let accept = request.headers[.acceptLanguage], accept.lowercased().hasPrefix("en") { return .en }
        return .zh
    }

    func text(_ key: String, _ request: Request) -> String { catalogue.text(key, language(request)) }

    func cookie(_ name: String, _ value: String, maxAge: Int? = nil, httpOnly: Bool = true) -> Cookie {
        Cookie(name: name, value: value, maxAge: maxAge, path: "/", secure: settings.secureCookies, httpOnly: httpOnly, sameSite: .strict)
    }

    /// The session of the request, or a redirect to the sign-in page.
    func signedIn(_ request: Request, _ context: RedressRequestContext) async throws -> ConsoleSession {
        guard let value = request.cookies[Self.sessionCookie]?.value, !value.isEmpty,
              let session = try await auth.session(cookie: value, logger: context.logger) else {
            throw Redirect(location: "/login")
        }
        return session
    }

    /// A posted form of a signed-in staff member, its CSRF token checked.
    func form(_ request: Request, _ context: RedressRequestContext) async throws -> (ConsoleSession, FormBody) {
        let session = try await signedIn(request, context)
        let body = try await readForm(request, context)
        guard let token = body["csrf"], ConsoleAuth.sameToken(token, session.csrf) else {
            Counter(label: "redress_console_csrf_refusals_total").increment()
            throw PageRefusal(status: .forbidden, heading: text("csrf_heading", request), message: text("csrf_message", request))
        }
        return (session, body)
    }

    func readForm(_ request: Request, _ context: RedressRequestContext) async throws -> FormBody {
        let bytes = try await request.utf8Body(context: context)
        return FormBody(String(decoding: bytes, as: UTF8.self))
    }

    func render(_ template: String, _ data: [String: Any], request: Request, session: ConsoleSession?, title: String, nav: String? = nil,
                status: HTTPResponse.Status = .ok) -> Response {
        let language = language(request)
        var all = data
        all["t"] = catalogue.table(language)
        all["lang"] = language.rawValue
        let other: Catalogue.Language = language == .zh ? .en : .zh
        all["otherLang"] = other.rawValue
        all["otherLangLabel"] = other == .en ? "English" : "中文"
        all["title"] = title
        if let session {
            let board = [.supervisor, .admin].contains(session.role)
            var me: [String: Any] = ["name": session.name, "staffID": session.staffID, "unit": session.unit, "unitName": session.unitName,
                                     "roleLabel": catalogue.label("role", session.role.rawValue, language), "csrf": session.csrf,
                                     "canBoard": board, "canStaff": board, "canRegister": [.agent, .supervisor, .admin].contains(session.role),
                                     "canReports": [.supervisor, .admin, .auditor].contains(session.role),
                                     "canQueues": session.role != .salesLiaison]
            if let nav { me["nav" + nav] = true }
            all["me"] = me
            all["csrf"] = session.csrf
        }
        let html = templates.render(all, withTemplate: template) ?? "template \(template) is missing"
        return Response(status: status, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    func staticFile(_ name: String) throws -> Response {
        let types = ["css": "text/css; charset=utf-8", "js": "text/javascript; charset=utf-8", "svg": "image/svg+xml"]
        guard name.range(of: "^[a-z0-9-]+\\.(css|js|svg)$", options: .regularExpression) != nil,
              let data = FileManager.default.contents(atPath: ConsoleService.resources.appendingPathComponent("static/" + name).path),
              let type = types[String(name.split(separator: ".").last!)] else {
            throw HTTPError(.notFound)
        }
        return Response(status: .ok, headers: [.contentType: type, .cacheControl: "public, max-age=300"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    // MARK: Times

    static let zone = TimeZone(identifier: "Asia/Shanghai")!

    /// A date in the units' local time (China Standard Time): all units are in one zone today.
    func local(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = Self.zone
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute], from: date)
        return String(format: "%04d-%02d-%02d %02d:%02d", c.year!, c.month!, c.day!, c.hour!, c.minute!)
    }

    func local(_ text: String?) -> String? { text.flatMap(Timestamp.parse).map(local) }

    /// Time left to a deadline as words, a class and an icon (colour is never alone).
    static func timeLeft(due: Date, start: Date?, now: Date = Date(), _ language: Catalogue.Language) -> (cls: String, icon: String, text: String) {
        let left = due.timeIntervalSince(now)
        let span = Self.span(abs(left), language)
        if left < 0 {
            return ("breached", "✖", language == .zh ? "已超时 \(span)" : "\(span) overdue")
        }
        let total = start.map { due.timeIntervalSince($0) } ?? 0
        let cls = total > 0 && left / total <= 0.5 ? "warn" : "ok"
        return (cls, cls == "ok" ? "●" : "▲", language == .zh ? "剩 \(span)" : "\(span) left")
    }

    static func span(_ seconds: TimeInterval, _ language: Catalogue.Language) -> String {
        let minutes = Int(seconds / 60), hours = minutes / 60, days = hours / 24
        if language == .zh {
            if days > 0 { return "\(days)天\(hours % 24)小时" }
            if hours > 0 { return "\(hours)小时\(minutes % 60)分" }
            return "\(minutes)分"
        }
        if days > 0 { return "\(days)d \(hours % 24)h" }
        if hours > 0 { return "\(hours)h \(minutes % 60)m" }
        return "\(minutes)m"
    }

    // MARK: Sign-in

    func loginPage(_ request: Request, error: String?, staffID: String, status: HTTPResponse.Status = .ok) -> Response {
        let token = ConsoleAuth.randomToken()
        var data: [String: Any] = ["loginCSRF": token, "staffId": staffID]
        if let error { data["error"] = error }
        var response = render("login", data, request: request, session: nil, title: text("login_title", request), status: status)
        // Double submit: the form's token must equal this cookie's, so another site cannot post a sign-in.
        response.setCookie(cookie(Self.loginCookie, token, maxAge: 3600))
        return response
    }

    func signIn(_ request: Request, _ context: RedressRequestContext) async throws -> Response {
        let body = try await readForm(request, context)
        let staffID = (body["staffId"] ?? "").uppercased()
        guard let token = body["csrf"], let expected = request.cookies[Self.loginCookie]?.value, ConsoleAuth.sameToken(token, expected) else {
            Counter(label: "redress_console_csrf_refusals_total").increment()
            return loginPage(request, error: text("csrf_message", request), staffID: staffID, status: .forbidden)
        }
        do {
            let value = try await auth.signIn(staffID: staffID, password: body.raw("password"), totp: body["totp"], logger: context.logger)
            Counter(label: "redress_console_sign_ins_total", dimensions: [("outcome", "ok")]).increment()
            var response = Response.redirect(to: "/queue/mine", type: .normal)
            response.setCookie(cookie(Self.sessionCookie, value))
            response.setCookie(cookie(Self.loginCookie, "", maxAge: 0))
            return response
        } catch {
            let (outcome, message): (String, String) = switch error {
            case .wrongCredentials: ("refused", text("login_wrong", request))
            case .locked(let until): ("locked", text("login_locked", request) + local(until))
            case .secondFactorNeeded: ("second_factor", text("login_totp_needed", request))
            case .secondFactorNotEnrolled: ("second_factor", text("login_totp_not_enrolled", request))
            }
            Counter(label: "redress_console_sign_ins_total", dimensions: [("outcome", outcome)]).increment()
            return loginPage(request, error: message, staffID: staffID, status: .unauthorized)
        }
    }
}

/// HTML for errors, redirects for sign-in, and the security headers of every console answer.
struct ConsoleMiddleware: RouterMiddleware {
    typealias Context = RedressRequestContext
    let pages: ConsolePages

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response: Response
        do {
            response = try await next(request, context)
        } catch let redirect as Redirect {
            response = Response.redirect(to: redirect.location, type: .normal)
        } catch let refusal as PageRefusal {
            response = pages.render("error", ["heading": refusal.heading, "message": refusal.message], request: request, session: nil,
                                    title: refusal.heading, status: refusal.status)
        } catch let error as ConsoleError {
            response = pages.render("error", ["heading": pages.text("error_title", request), "message": error.description], request: request,
                                    session: nil, title: pages.text("error_title", request), status: .badGateway)
        } catch let error as HTTPError where error.status == .notFound {
            response = pages.render("error", ["heading": pages.text("not_found", request), "message": pages.text("not_found_message", request)],
                                    request: request, session: nil, title: pages.text("not_found", request), status: .notFound)
        } catch let problem as Problem {
            response = pages.render("error", ["heading": problem.title, "message": problem.detail], request: request, session: nil,
                                    title: problem.title, status: HTTPResponse.Status(code: problem.status))
        }
        // No inline script or style, no framing, no sniffing, no referrer; pages are never cached
        // (they hold personal data), the static files briefly.
        response.headers[.contentSecurityPolicy] = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            + "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
        response.headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        if response.headers[.cacheControl] == nil { response.headers[.cacheControl] = "no-store" }
        return response
    }
}
