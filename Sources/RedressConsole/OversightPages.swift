import Foundation
import HTTPTypes
import Hummingbird
import RedressContracts
import RedressDomain
import RedressServiceKit

/// 监督: the oversight duties on one page, each section for the roles that have it — inquiries
/// (coordinators answer them), spot-checks (a province's or HQ's supervisors draw and give verdicts),
/// corrective actions (done by the responsible person, verified by the level above) and the
/// vexatious-complainant register (proposed by supervisors, decided by the province, read by sales).
/// Everything goes through the staff API, which decides who may; the page only offers what fits.
extension ConsolePages {
    func addOversight(to router: Router<RedressRequestContext>) {
        router.get("/oversight") { request, context in try await oversightPage(request, context) }
        router.post("/oversight/inquiries/:id/answer") { request, context in
            try await oversightStep(request, context, path: "/v1/inquiries/\(try Self.id(context))/answer") { form in
                ["version": Int(form["version"] ?? "") ?? 0, "findings": form["findings"] ?? ""]
            }
        }
        router.post("/oversight/spot-checks/draw") { request, context in
            try await oversightStep(request, context, path: "/v1/spot-checks/draw") { form in
                ["kind": form["kind"] ?? "", "period": form["period"] ?? ""]
            }
        }
        router.post("/oversight/spot-checks/:id/verdict") { request, context in
            try await oversightStep(request, context, path: "/v1/spot-checks/\(try Self.id(context))/verdict") { form in
                var body: [String: Any] = ["version": Int(form["version"] ?? "") ?? 0, "verdict": form["verdict"] ?? ""]
                for name in ["note", "liability", "responsibleLink", "causeCode"] { if let value = form[name] { body[name] = value } }
                return body
            }
        }
        router.post("/oversight/corrective/:id/:step") { request, context in
            let step = try context.parameters.require("step")
            guard step == "done" || step == "verify" else { throw HTTPError(.notFound) }
            return try await oversightStep(request, context, path: "/v1/corrective-actions/\(try Self.id(context))/\(step)") { form in
                var body: [String: Any] = ["version": Int(form["version"] ?? "") ?? 0]
                if let note = form["note"] { body["note"] = note }
                return body
            }
        }
        router.post("/oversight/register/:id/decision") { request, context in
            try await oversightStep(request, context, path: "/v1/register/\(try Self.id(context))/decision") { form in
                var body: [String: Any] = ["version": Int(form["version"] ?? "") ?? 0, "decision": form["decision"] ?? ""]
                if let note = form["note"] { body["note"] = note }
                return body
            }
        }
        // 转相关部门调查 from the case page.
        router.post("/cases/:number/inquiries") { request, context in
            let (session, form) = try await self.form(request, context)
            let number = try context.parameters.require("number")
            var body: [String: Any] = ["department": form["department"] ?? "", "question": form["question"] ?? ""]
            if let unit = form["unit"] { body["unit"] = unit }
            let answer = try await api.post("/v1/cases/\(number.queryEscaped)/inquiries", body: body, as: session, logger: context.logger)
            if answer.ok { throw Redirect(location: "/cases/\(number.queryEscaped)?done=open_inquiry") }
            return try await casePage(number: number, session: session, request, context, error: answer.detail, status: HTTPResponse.Status(code: answer.status))
        }
    }

    static func id(_ context: RedressRequestContext) throws -> String {
        let id = try context.parameters.require("id")
        guard UUID(uuidString: id) != nil else { throw HTTPError(.notFound) }
        return id
    }

    /// Sends one oversight step and comes back to the page: with a note on success, with the API's
    /// reason (and its status) otherwise.
    func oversightStep(_ request: Request, _ context: RedressRequestContext, path: String,
                       body: (FormBody) -> [String: Any]) async throws -> Response {
        let (session, form) = try await self.form(request, context)
        let answer = try await api.post(path, body: body(form), as: session, logger: context.logger)
        if answer.ok { throw Redirect(location: "/oversight?done=1") }
        return try await oversightPage(request, context, session: session, error: answer.detail, status: HTTPResponse.Status(code: answer.status))
    }

    func oversightPage(_ request: Request, _ context: RedressRequestContext, session given: ConsoleSession? = nil, error: String? = nil,
                       status: HTTPResponse.Status = .ok) async throws -> Response {
        let session: ConsoleSession
        if let given { session = given } else { session = try await signedIn(request, context) }
        let language = language(request)
        let role = session.role
        let supervisor = [.supervisor, .admin].contains(role)
        var data: [String: Any] = [:]
        var problems: [String] = error.map { [$0] } ?? []
        func list(_ path: String) async throws -> [[String: Any]] {
            let answer = try await api.get(path, as: session, logger: context.logger)
            if !answer.ok { problems.append(answer.detail) }
            return (answer.object["items"] as? [[String: Any]] ?? []).map { $0.filter { !($0.value is NSNull) } }
        }
        if role != .salesLiaison {
            let inquiries = try await list("/v1/inquiries?status=open").map { item -> [String: Any] in
                var row = item
                row["departmentLabel"] = catalogue.label("department", item["department"] as? String ?? "", language)
                row["dueLocal"] = local(item["dueAt"] as? String) ?? ""
                row["canAnswer"] = role == .coordinator
                return row
            }
            data["showInquiries"] = true
            data["inquiries"] = inquiries
            data["hasInquiries"] = !inquiries.isEmpty
            let actions = try await list("/v1/corrective-actions").filter { $0["status"] as? String != "verified" }.map { item -> [String: Any] in
                var row = item
                row["statusLabel"] = catalogue.label("corrective", item["status"] as? String ?? "", language)
                row["dueLocal"] = local(item["dueAt"] as? String) ?? ""
                let open = item["status"] as? String == "open"
                row["canDone"] = open && (item["responsible"] as? String == session.staffID || supervisor)
                row["canVerify"] = item["status"] as? String == "done" && supervisor
                return row
            }
            data["showCorrective"] = true
            data["corrective"] = actions
            data["hasCorrective"] = !actions.isEmpty
        }
        if [.supervisor, .admin, .auditor].contains(role) {
            let checks = try await list("/v1/spot-checks?status=pending").map { item -> [String: Any] in
                var row = item
                row["kindLabel"] = catalogue.label("spotcheck_kind", item["kind"] as? String ?? "", language)
                row["canDecide"] = supervisor
                return row
            }
            data["showSpotChecks"] = true
            data["spotChecks"] = checks
            data["hasSpotChecks"] = !checks.isEmpty
            data["canDraw"] = supervisor
            data["kinds"] = SpotCheckKind.allCases.map { ["value": $0.rawValue, "label": catalogue.label("spotcheck_kind", $0.rawValue, language)] }
            data["verdicts"] = SpotCheckVerdict.allCases.map { ["value": $0.rawValue, "label": catalogue.label("verdict", $0.rawValue, language)] }
            data["liabilities"] = Liability.allCases.map { ["value": $0.rawValue, "label": catalogue.label("liability", $0.rawValue, language)] }
            let taxonomy = try await api.get("/v1/closure-taxonomy", as: session, logger: context.logger).object
            func choices(_ key: String) -> [[String: Any]] {
                (taxonomy[key] as? [[String: Any]] ?? []).compactMap { entry in
                    (entry["code"] as? String).map { ["value": $0, "label": entry["name"] as? String ?? $0] }
                }
            }
            data["links"] = choices("responsibleLinks")
            data["causes"] = choices("causes")
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = Self.zone
            let month = calendar.dateComponents([.year, .month], from: calendar.date(byAdding: .month, value: -1, to: Date())!)
            data["lastMonth"] = String(format: "%04d-%02d", month.year!, month.month!)
        }
        if [.supervisor, .admin, .auditor, .salesLiaison].contains(role) {
            let entries = try await list("/v1/register").map { item -> [String: Any] in
                var row = item
                row["statusLabel"] = catalogue.label("register", item["status"] as? String ?? "", language)
                row["customerLabel"] = ((item["customer"] as? [String: Any]).map { "\($0["name"] ?? "") \($0["phone"] ?? "")" }) ?? ""
                row["caseList"] = (item["caseNumbers"] as? [String] ?? []).joined(separator: "、")
                row["reviewLocal"] = local(item["reviewAt"] as? String) ?? ""
                row["canDecide"] = role == .supervisor && item["status"] as? String == "proposed"
                return row
            }
            data["showRegister"] = true
            data["register"] = entries
            data["hasRegister"] = !entries.isEmpty
        }
        if !problems.isEmpty { data["error"] = problems.joined(separator: " · ") }
        if request.uri.queryParameters.get("done") != nil, error == nil { data["flash"] = catalogue.text("oversight_done", language) }
        return render("oversight", data, request: request, session: session, title: catalogue.text("nav_oversight", language), nav: "Oversight", status: status)
    }
}
