import Foundation
import Hummingbird
import Metrics
import RedressDomain
import RedressServiceKit

/// 受理登记 (registering a complaint at the counter or on the phone) and staff administration.
extension ConsolePages {
    /// The registration form's fields, named as intake's submission fields so its field errors
    /// (`customer.phone`, `subject`, …) land beside the right input.
    static let registrationFields: [(name: String, kind: String, required: Bool)] = [
        ("channel", "select", true), ("branch", "select", true), ("customer.name", "text", true), ("customer.phone", "tel", true),
        ("customer.idNumber", "text", false), ("policyNumber", "text", false), ("claimNumber", "text", false),
        ("subject", "text", true), ("content", "textarea", true),
    ]

    func registrationPage(_ request: Request, _ context: RedressRequestContext, session: ConsoleSession, form: FormBody?,
                          errors: [String: String], flash: String?, error: String? = nil, status: HTTPResponse.Status = .ok) async throws -> Response {
        guard [.agent, .supervisor, .admin].contains(session.role) else {
            throw PageRefusal(status: .forbidden, heading: text("forbidden", request), message: text("register_forbidden", request))
        }
        let language = language(request)
        let branches = await units.subtree(of: session.unit)
        let fields = Self.registrationFields.map { field -> [String: Any] in
            let value = form?.raw(field.name) ?? ""
            var view: [String: Any] = ["name": field.name, "label": catalogue.label("field", field.name, language), "required": field.required]
            switch field.kind {
            case "textarea": view["isTextarea"] = true
            case "select":
                view["isSelect"] = true
                if field.name == "channel" {
                    let chosen = value.isEmpty ? Channel.branchCounter.rawValue : value
                    view["options"] = Channel.allCases.filter { $0 != .regulator }.map {
                        ["value": $0.rawValue, "label": catalogue.label("channel", $0.rawValue, language), "selected": $0.rawValue == chosen]
                    }
                } else {
                    let chosen = value.isEmpty ? session.unit : value
                    view["options"] = branches.map { ["value": $0.code, "label": "\($0.code) \($0.name)", "selected": $0.code == chosen] }
                }
            default: (view["isInput"], view["type"]) = (true, field.kind)
            }
            if !value.isEmpty { view["value"] = value }
            if let message = errors[field.name] { view["fieldError"] = message }
            let hint = catalogue.text("hint.\(field.name)", language)
            if hint != "hint.\(field.name)" { view["hint"] = hint }
            return view
        }
        var data: [String: Any] = ["fields": fields, "formId": form?["formId"] ?? UUID().uuidString.lowercased()]
        if let flash { data["flash"] = flash }
        if let error {
            data["error"] = error
            let items = errors.sorted { $0.key < $1.key }.map { ["field": $0.key, "label": catalogue.label("field", $0.key, language), "message": $0.value] }
            if !items.isEmpty { data["errorList"] = ["items": items] }
        }
        return render("new", data, request: request, session: session, title: catalogue.text("new_title", language), nav: "New", status: status)
    }

    /// Registers through intake as the staff member: the same validation and numbering as every
    /// other channel. A form sent twice (a double click, a reload) registers once: its form id is
    /// the complaint's external reference.
    func register(_ request: Request, _ context: RedressRequestContext) async throws -> Response {
        let (session, form) = try await self.form(request, context)
        var customer: [String: Any] = ["name": form["customer.name"] ?? "", "phone": form["customer.phone"] ?? ""]
        if let id = form["customer.idNumber"] { customer["idNumber"] = id }
        var body: [String: Any] = ["channel": form["channel"] ?? "", "branch": form["branch"] ?? "", "customer": customer,
                                   "subject": form["subject"] ?? "", "content": form["content"] ?? "",
                                   "externalRef": "console-" + (form["formId"] ?? UUID().uuidString.lowercased()),
                                   "receivedAt": Timestamp.format(Date())]
        if let policy = form["policyNumber"] { body["policyNumber"] = policy }
        if let claim = form["claimNumber"] { body["claimNumber"] = claim }
        let answer = try await api.post("/v1/complaints", body: body, as: session, base: api.intakeURL, logger: context.logger)
        Counter(label: "redress_console_registrations_total", dimensions: [("outcome", answer.ok ? "registered" : "refused")]).increment()
        if answer.ok, let number = answer.object["number"] as? String {
            let due = (answer.object["promisedReplyBy"] as? String).map { "&due=" + $0.queryEscaped } ?? ""
            throw Redirect(location: "/complaints/new?registered=\(number.queryEscaped)\(due)")
        }
        return try await registrationPage(request, context, session: session, form: form, errors: answer.fieldErrors, flash: nil,
                                          error: answer.detail, status: HTTPResponse.Status(code: answer.status))
    }

    // MARK: Staff administration

    static let staffAddFields: [(name: String, kind: String)] = [("id", "text"), ("name", "text"), ("unit", "select"), ("role", "select"),
                                                                  ("capacity", "number")]

    func staffPage(_ request: Request, _ context: RedressRequestContext, form: FormBody?, errors: [String: String], flash: String?,
                   error: String? = nil, status: HTTPResponse.Status = .ok) async throws -> Response {
        let session = try await signedIn(request, context)
        guard [.supervisor, .admin].contains(session.role) else {
            throw PageRefusal(status: .forbidden, heading: text("forbidden", request), message: text("staff_forbidden", request))
        }
        let language = language(request)
        let answer = try await api.get("/v1/staff", as: session, logger: context.logger)
        let people = (answer.object["items"] as? [[String: Any]] ?? []).map { person -> [String: Any] in
            var row = person
            row["roleLabel"] = catalogue.label("role", person["role"] as? String ?? "", language)
            let active = person["active"] as? Bool ?? false
            let available = person["available"] as? Bool ?? false
            row["stateLabel"] = catalogue.text(!active ? "staff_inactive" : available ? "staff_available" : "staff_unavailable", language)
            return row
        }
        let unitChoices = await units.subtree(of: session.unit)
        let roles = session.role == .admin ? ["agent", "supervisor", "committee", "auditor", "admin"] : ["agent", "committee"]
        let addFields = Self.staffAddFields.map { field -> [String: Any] in
            let value = form?.raw(field.name) ?? ""
            var view: [String: Any] = ["name": field.name, "label": catalogue.label("field", "staff." + field.name, language)]
            if field.kind == "select" {
                view["isSelect"] = true
                view["options"] = field.name == "unit"
                    ? unitChoices.map { ["value": $0.code, "label": "\($0.code) \($0.name)", "selected": $0.code == value] }
                    : roles.map { ["value": $0, "label": catalogue.label("role", $0, language), "selected": $0 == value] }
            } else {
                (view["isInput"], view["type"]) = (true, field.kind)
            }
            if !value.isEmpty { view["value"] = value }
            if let message = errors[field.name] { view["fieldError"] = message }
            return view
        }
        var data: [String: Any] = ["people": people, "addFields": addFields]
        if let flash { data["flash"] = flash }
        if let error { data["error"] = error } else if !answer.ok { data["error"] = answer.detail }
        return render("staff", data, request: request, session: session, title: catalogue.text("nav_staff", language), nav: "Staff", status: status)
    }

    func addStaff(_ request: Request, _ context: RedressRequestContext) async throws -> Response {
        let (session, form) = try await self.form(request, context)
        var body: [String: Any] = [:]
        for field in Self.staffAddFields {
            guard let value = form[field.name] else { continue }
            body[field.name] = field.name == "capacity" ? (Int(value) ?? value) : value
        }
        let answer = try await api.post("/v1/staff", body: body, as: session, logger: context.logger)
        if answer.ok { return try await staffPage(request, context, form: nil, errors: [:], flash: text("staff_added", request) + (form["id"] ?? "")) }
        return try await staffPage(request, context, form: form, errors: answer.fieldErrors, flash: nil, error: answer.detail,
                                   status: HTTPResponse.Status(code: answer.status))
    }

    /// Activates or deactivates (a leaver's open cases are handed on by the staff API).
    func changeStaff(_ request: Request, _ context: RedressRequestContext) async throws -> Response {
        let (session, form) = try await self.form(request, context)
        let id = try context.parameters.require("id")
        let answer = try await api.patch("/v1/staff/\(id.queryEscaped)", body: ["active": form["active"] == "true"], as: session, logger: context.logger)
        if answer.ok { return try await staffPage(request, context, form: nil, errors: [:], flash: text("staff_changed", request) + id) }
        return try await staffPage(request, context, form: nil, errors: [:], flash: nil, error: answer.detail, status: HTTPResponse.Status(code: answer.status))
    }
}
