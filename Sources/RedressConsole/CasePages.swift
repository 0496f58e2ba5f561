import Foundation
import Hummingbird
import Metrics
import RedressDomain
import RedressServiceKit

/// One field of an action's form: its name is the staff API's field name, so the API's field
/// errors land beside the right input.
struct ActionField: Sendable {
    enum Kind: Sendable { case text, textarea, datetime, select([(String, String)]), number }
    var name: String
    var kind: Kind
    var required: Bool
}

/// The case page: the complaint as written, clocks, history, the customer (masked, revealed on
/// request with a purpose), linked complaints, notices and return visits, and every action the
/// caller may take as a form.
extension ConsolePages {
    static let contactChannels = ["phone", "sms", "email", "wechat", "visit"]

    /// The fields each action's form asks for. Which actions are offered is the API's answer
    /// (`allowedActions`); what each needs is checked by the API and shown beside the field.
    func fields(_ action: String, taxonomy: [String: Any], units: [UnitDirectory.Unit], _ language: Catalogue.Language) -> [ActionField] {
        func choices(_ list: [String], _ kind: String) -> [(String, String)] { list.map { ($0, catalogue.label(kind, $0, language)) } }
        func taxonomyChoices(_ key: String) -> [(String, String)] {
            (taxonomy[key] as? [[String: Any]] ?? []).compactMap { entry in
                (entry["code"] as? String).map { ($0, entry["name"] as? String ?? $0) }
            }
        }
        switch action {
        case "add_note", "propose_resolution": return [ActionField(name: "text", kind: .textarea, required: true)]
        case "record_contact":
            return [ActionField(name: "contactChannel", kind: .select(choices(Self.contactChannels, "contact")), required: false),
                    ActionField(name: "text", kind: .textarea, required: true),
                    ActionField(name: "nextContactAt", kind: .datetime, required: false)]
        case "add_evidence":
            return [ActionField(name: "name", kind: .text, required: true), ActionField(name: "uri", kind: .text, required: true)]
        case "await_customer":
            return [ActionField(name: "reason", kind: .textarea, required: true), ActionField(name: "respondBy", kind: .datetime, required: false)]
        case "close":
            return [ActionField(name: "liability", kind: .select(choices(Liability.allCases.map(\.rawValue), "liability")), required: true),
                    ActionField(name: "responsibleLink", kind: .select(taxonomyChoices("responsibleLinks")), required: true),
                    ActionField(name: "causeCode", kind: .select(taxonomyChoices("causes")), required: true),
                    ActionField(name: "outcome", kind: .textarea, required: true)]
        case "extend":
            return [ActionField(name: "days", kind: .select([("30", "30"), ("60", "60")]), required: true),
                    ActionField(name: "reason", kind: .textarea, required: true),
                    ActionField(name: "approvedBy", kind: .text, required: false)]
        case "transfer":
            return [ActionField(name: "targetUnit", kind: .select(units.map { ($0.code, "\($0.code) \($0.name)") }), required: true),
                    ActionField(name: "reason", kind: .textarea, required: true)]
        case "record_committee_ruling":
            // The ruling fixes the closure's liability, responsible link and cause.
            return [ActionField(name: "text", kind: .textarea, required: true), ActionField(name: "members", kind: .text, required: true),
                    ActionField(name: "liability", kind: .select(choices(Liability.allCases.map(\.rawValue), "liability")), required: true),
                    ActionField(name: "responsibleLink", kind: .select(taxonomyChoices("responsibleLinks")), required: true),
                    ActionField(name: "causeCode", kind: .select(taxonomyChoices("causes")), required: true)]
        case "reassign": return [ActionField(name: "assignee", kind: .text, required: true), ActionField(name: "reason", kind: .text, required: false)]
        case "reclassify":
            return [ActionField(name: "category", kind: .select(choices(RedressDomain.Category.allCases.map(\.rawValue), "category")), required: true),
                    ActionField(name: "reason", kind: .textarea, required: true)]
        case "reprioritise":
            return [ActionField(name: "priority", kind: .select(choices(Priority.allCases.map(\.rawValue), "priority")), required: true),
                    ActionField(name: "reason", kind: .textarea, required: true)]
        case "escalate", "refer_to_committee", "reopen", "exclude_time", "send_back": return [ActionField(name: "reason", kind: .textarea, required: true)]
        case "customer_refuses", "customer_responded": return [ActionField(name: "reason", kind: .textarea, required: false)]
        default: return []
        }
    }

    /// The JSON body of an action from its form: numbers as numbers, members as a list, and local
    /// date-times (the browser's datetime-local, China time) as RFC 3339.
    func actionBody(_ action: String, _ form: FormBody, fields: [ActionField]) -> [String: Any] {
        var body: [String: Any] = [:]
        if let version = form["version"].flatMap(Int.init) { body["version"] = version }
        for field in fields {
            guard let value = form[field.name] else { continue }
            switch field.kind {
            case .datetime:
                body[field.name] = Self.rfc3339(local: value) ?? value
            case .select where field.name == "days":
                body[field.name] = Int(value) ?? value
            default:
                if field.name == "members" {
                    body[field.name] = value.split(whereSeparator: { ", 、，".contains($0) }).map(String.init)
                } else {
                    body[field.name] = value
                }
            }
        }
        return body
    }

    /// `2026-12-01T10:30` in China time as an RFC 3339 instant.
    static func rfc3339(local text: String) -> String? {
        let parts = text.split(whereSeparator: { "-T:".contains($0) }).compactMap { Int($0) }
        guard parts.count >= 5 else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        guard let date = calendar.date(from: DateComponents(year: parts[0], month: parts[1], day: parts[2], hour: parts[3], minute: parts[4])) else { return nil }
        return Timestamp.format(date)
    }

    func casePage(number: String, session: ConsoleSession, _ request: Request, _ context: RedressRequestContext, flash: String? = nil,
                  open: String? = nil, form: FormBody? = nil, errors: [String: String] = [:], error: String? = nil,
                  revealed: [String: Any]? = nil, status: HTTPResponse.Status = .ok) async throws -> Response {
        let language = language(request)
        let path = "/v1/cases/\(number.queryEscaped)"
        async let detailAnswer = api.get(path, as: session, logger: context.logger)
        async let historyAnswer = api.get(path + "/customer-history", as: session, logger: context.logger)
        async let taxonomyAnswer = api.get("/v1/closure-taxonomy", as: session, logger: context.logger)
        let detail = try await detailAnswer
        guard detail.ok else {
            // A case outside the caller's part of the organisation is "not found", exactly as the API says it.
            throw PageRefusal(status: HTTPResponse.Status(code: detail.status), heading: text(detail.status == 404 ? "not_found" : "error_title", request),
                              message: detail.status == 404 ? text("case_not_found", request) : detail.detail)
        }
        let c = detail.object
        let others = try await historyAnswer.object["items"] as? [[String: Any]] ?? []
        let taxonomy = try await taxonomyAnswer.object
        let allUnits = await units.all()
        var data: [String: Any] = [:]
        for key in ["number", "subject", "status", "priority", "version", "handlingUnit", "decisionDays", "content", "promisedReplyBy", "outcome",
                    "policyNumber", "claimNumber", "claimStage"] {
            if let value = c[key], !(value is NSNull) { data[key] = value }
        }
        data["statusLabel"] = catalogue.label("status", c["status"] as? String ?? "", language)
        data["priorityLabel"] = (c["priority"] as? String).map { catalogue.label("priority", $0, language) } ?? "—"
        data["categoryLabel"] = (c["category"] as? String).map { catalogue.label("category", $0, language) } ?? "—"
        data["channelLabel"] = catalogue.label("channel", c["channel"] as? String ?? "", language)
        data["assigneeLabel"] = c["assignee"] as? String ?? catalogue.text("nobody", language)
        if let unit = c["handlingUnit"] as? String { data["handlingUnit"] = "\(unit) \(allUnits.first { $0.code == unit }?.name ?? "")" }
        data["receivedLocal"] = local(c["receivedAt"] as? String) ?? ""
        if let committee = c["committeeStatus"] as? String { data["committeeLabel"] = catalogue.label("committee", committee, language) }
        if c["spotCheck"] as? Bool == true { data["spotCheck"] = true }
        if let due = (c["promisedReplyBy"] as? String).flatMap(Timestamp.parse) {
            let left = Self.timeLeft(due: due, start: (c["receivedAt"] as? String).flatMap(Timestamp.parse), language)
            (data["dueClass"], data["dueIcon"], data["dueText"]) = (left.cls, left.icon, left.text)
            data["promisedLocal"] = local(due) + " " + catalogue.text("zone", language)
            if c["status"] as? String == "closed" { (data["dueClass"], data["dueIcon"], data["dueText"]) = ("stopped", "■", catalogue.text("status.closed", language)) }
        }
        let clocks = (c["clocks"] as? [[String: Any]] ?? []).map { clock -> [String: Any] in
            var row: [String: Any] = ["kindLabel": catalogue.label("clock", clock["kind"] as? String ?? "", language),
                                      "stateLabel": catalogue.label("clockstate", clock["state"] as? String ?? "", language),
                                      "dueLocal": local(clock["dueAt"] as? String) ?? ""]
            let state = clock["state"] as? String ?? ""
            if state == "running", let due = (clock["dueAt"] as? String).flatMap(Timestamp.parse) {
                let left = Self.timeLeft(due: due, start: (clock["startedAt"] as? String).flatMap(Timestamp.parse), language)
                (row["dueClass"], row["dueIcon"], row["dueText"]) = (left.cls, left.icon, left.text)
                row["live"] = true
                row["dueAt"] = clock["dueAt"]
            } else {
                (row["dueClass"], row["dueIcon"], row["dueText"]) = (state == "breached" ? "breached" : "stopped", state == "breached" ? "✖" : "■",
                                                                      catalogue.label("clockstate", state, language))
            }
            return row
        }
        data["clocks"] = clocks
        data["hasClocks"] = !clocks.isEmpty
        let attachments = c["attachments"] as? [[String: Any]] ?? []
        data["attachments"] = attachments
        data["hasAttachments"] = !attachments.isEmpty
        // The customer: masked as the API gives it, or in full after an audited reveal.
        let customer = c["customer"] as? [String: Any] ?? [:]
        data["customerName"] = revealed?["name"] ?? customer["name"] ?? ""
        data["customerPhone"] = revealed?["phone"] ?? customer["phone"] ?? ""
        if let id = revealed?["idNumber"] as? String { data["customerID"] = id }
        if revealed != nil { data["revealed"] = true }
        let flags = c["customerFlags"] as? [String] ?? []
        if !flags.isEmpty { data["flags"] = flags.map { catalogue.label("flag", $0, language) }.joined(separator: "、") }
        if let regulator = c["regulator"] as? [String: Any], let caseNumber = regulator["caseNumber"] as? String {
            var view: [String: Any] = ["caseNumber": caseNumber]
            if let deadline = local(regulator["deadline"] as? String) { view["deadlineLocal"] = deadline }
            data["regulator"] = view
        }
        // History, newest first (Request Tracker's default), each line who, when, what.
        let history = (c["history"] as? [[String: Any]] ?? []).reversed().map { entry -> [String: Any] in
            var row: [String: Any] = ["atLocal": local(entry["at"] as? String) ?? "", "actor": entry["actor"] as? String ?? "",
                                      "actionLabel": catalogue.label("action", entry["action"] as? String ?? "", language)]
            if let role = entry["actorRole"] as? String { row["actorRoleLabel"] = catalogue.label("role", role, language) }
            if let reason = entry["reason"] as? String, !reason.isEmpty { row["reason"] = reason }
            if let from = entry["fromStatus"] as? String, let to = entry["toStatus"] as? String, from != to {
                row["move"] = catalogue.label("status", from, language) + " → " + catalogue.label("status", to, language)
            }
            let payload = entry["payload"] as? [String: Any] ?? [:]
            let details = payload.keys.sorted().compactMap { key -> String? in
                // Ids of the inquiry, spot-check or corrective action: the oversight page shows those, not the history.
                if ["inquiry", "spotCheck", "correctiveAction"].contains(key) { return nil }
                let value = payload[key]
                var text = (value as? String) ?? (value as? [String])?.joined(separator: "、")
                guard let raw = text, !raw.isEmpty else { return nil }
                // Codes read as words: 服务类, not service.
                if ["category", "priority", "liability", "contactChannel"].contains(key) {
                    text = catalogue.label(key == "contactChannel" ? "contact" : key, raw, language)
                }
                if key == "previousLiability" { text = catalogue.label("liability", raw, language) }
                if key == "department" || key == "verdict" { text = catalogue.label(key, raw, language) }
                // Instants in the units' local time, as everywhere on the page.
                if key.hasSuffix("At"), let instant = local(raw) { text = instant }
                let name = catalogue.text("payload.\(key)", language)
                return (name == "payload.\(key)" ? catalogue.label("field", key, language) : name) + "：" + text!
            }
            if !details.isEmpty { row["details"] = details.joined(separator: "；") }
            return row
        }
        data["history"] = Array(history)
        // Linked complaints and the customer's others.
        let linked = c["linked"] as? [String: Any] ?? [:]
        var links: [[String: Any]] = []
        for key in ["repeatOf", "reopenedFrom", "possibleSecondOf"] {
            if let ref = linked[key] as? [String: Any], let n = ref["number"] as? String { links.append(["label": catalogue.text("link_\(key)", language), "number": n]) }
        }
        for ref in linked["secondComplaints"] as? [[String: Any]] ?? [] {
            if let n = ref["number"] as? String { links.append(["label": catalogue.text("link_secondComplaints", language), "number": n]) }
        }
        data["links"] = links
        data["hasLinks"] = !links.isEmpty
        let otherRows = others.filter { ($0["number"] as? String) != number && ($0["id"] as? String) != number }.map { item -> [String: Any] in
            var row = item
            row["statusLabel"] = catalogue.label("status", item["status"] as? String ?? "", language)
            row["receivedLocal"] = local(item["receivedAt"] as? String) ?? ""
            return row
        }
        data["others"] = otherRows
        data["hasOthers"] = !otherRows.isEmpty
        let visits = (c["surveys"] as? [[String: Any]] ?? []).map { visit -> [String: Any] in
            var row = visit.filter { !($0.value is NSNull) }
            row["statusLabel"] = catalogue.label("visit", visit["status"] as? String ?? "", language)
            if let resolved = visit["resolved"] as? Bool { row["resolvedLabel"] = catalogue.text(resolved ? "resolved_yes" : "resolved_no", language) }
            return row
        }
        data["visits"] = visits
        data["hasVisits"] = !visits.isEmpty
        let notices = (c["notices"] as? [[String: Any]] ?? []).map { notice -> [String: Any] in
            var row = notice
            row["templateLabel"] = catalogue.label("template", notice["template"] as? String ?? "", language)
            row["channelLabel"] = catalogue.label("contact", notice["channel"] as? String ?? "", language)
            row["statusLabel"] = catalogue.label("notice", notice["status"] as? String ?? "", language)
            row["atLocal"] = local(notice["at"] as? String) ?? ""
            return row
        }
        data["notices"] = notices
        data["hasNotices"] = !notices.isEmpty
        // Every action the API says this person may take now, as a form.
        let version = c["version"] as? Int ?? 0
        let actions = (c["allowedActions"] as? [String] ?? []).map { action -> [String: Any] in
            let isOpen = action == open
            let formFields = fields(action, taxonomy: taxonomy, units: allUnits, language).map { field -> [String: Any] in
                var view: [String: Any] = ["name": field.name, "label": catalogue.label("field", field.name, language), "required": field.required,
                                           "action": action]
                let value = isOpen ? (form?.raw(field.name) ?? "") : ""
                switch field.kind {
                case .textarea: view["isTextarea"] = true
                case .select(let options):
                    view["isSelect"] = true
                    view["options"] = options.map { ["value": $0.0, "label": $0.1, "selected": $0.0 == value] }
                case .datetime: (view["isInput"], view["type"]) = (true, "datetime-local")
                case .number: (view["isInput"], view["type"]) = (true, "number")
                case .text: (view["isInput"], view["type"]) = (true, "text")
                }
                if !value.isEmpty { view["value"] = value }
                if isOpen, let message = errors[field.name] { view["fieldError"] = message }
                return view
            }
            var view: [String: Any] = ["action": action, "label": catalogue.label("action", action, language), "fields": formFields,
                                       "number": c["number"] as? String ?? number, "version": version, "open": isOpen]
            let confirm = catalogue.text("confirm.\(action)", language)
            if confirm != "confirm.\(action)" { view["confirm"] = confirm }
            let hint = catalogue.text("hint.\(action)", language)
            if hint != "hint.\(action)" { view["hint"] = hint }
            return view
        }
        data["actions"] = actions
        data["hasActions"] = !actions.isEmpty
        // 典型案例: a supervisor may mark a closed case for training.
        if c["status"] as? String == "closed", [.supervisor, .admin].contains(session.role) { data["canMarkTypical"] = true }
        // 转相关部门调查: the owner or a supervisor asks a department of the handling unit to investigate.
        let owns = session.role == .agent && c["assignee"] as? String == session.staffID
        if c["status"] as? String != "closed", owns || [.supervisor, .admin].contains(session.role), let unit = c["handlingUnit"] as? String {
            let answer = try await api.get("/v1/departments?unit=\(unit.queryEscaped)", as: session, logger: context.logger)
            let departments = (answer.object["items"] as? [[String: Any]] ?? []).compactMap { item -> [String: Any]? in
                (item["code"] as? String).map { ["value": $0, "label": catalogue.label("department", $0, language)] }
            }
            if !departments.isEmpty {
                data["canInquire"] = true
                data["departments"] = departments
            }
        }
        if let flash { data["flash"] = flash }
        if let error {
            data["error"] = error
            let items = errors.sorted { $0.key < $1.key }.map { ["field": "\(open ?? "")-\($0.key)", "label": catalogue.label("field", $0.key, language), "message": $0.value] }
            if !items.isEmpty { data["errorList"] = ["items": items] }
        }
        var response = render("case", data, request: request, session: session, title: c["number"] as? String ?? number, status: status)
        response.headers[.cacheControl] = "no-store"
        return response
    }

    /// An action's form: sent to the staff API as the staff member; on success back to the case
    /// (the page shows the new state), on refusal the case again with the API's words beside the fields.
    func act(_ request: Request, _ context: RedressRequestContext) async throws -> Response {
        let (session, form) = try await self.form(request, context)
        let number = try context.parameters.require("number")
        let action = try context.parameters.require("action")
        let language = language(request)
        let formFields = fields(action, taxonomy: [:], units: [], language)
        let body = actionBody(action, form, fields: formFields)
        let answer = try await api.post("/v1/cases/\(number.queryEscaped)/actions/\(action.queryEscaped)", body: body, as: session, logger: context.logger)
        Counter(label: "redress_console_actions_total", dimensions: [("action", CaseAction(rawValue: action) != nil ? action : "unknown"),
                                                                    ("outcome", answer.ok ? "done" : "refused")]).increment()
        if answer.ok {
            // A reopening answers with the new case: go there.
            let target = (answer.status == 201 ? answer.object["number"] as? String : nil) ?? number
            throw Redirect(location: "/cases/\(target.queryEscaped)?done=\(action.queryEscaped)")
        }
        if answer.status == 404 && answer.object["title"] as? String != "No such action" {
            throw PageRefusal(status: .notFound, heading: text("not_found", request), message: text("case_not_found", request))
        }
        // A concurrent change: the page is shown as it is now, with what changed in its history.
        let message = answer.status == 409 && answer.detail.contains("version") ? text("conflict", request) + " " + answer.detail : answer.detail
        return try await casePage(number: number, session: session, request, context, open: action, form: form, errors: answer.fieldErrors,
                                  error: message, status: HTTPResponse.Status(code: answer.status))
    }

    /// 典型案例: marks the closed case with a summary, through the staff API.
    func markTypical(_ request: Request, _ context: RedressRequestContext) async throws -> Response {
        let (session, form) = try await self.form(request, context)
        let number = try context.parameters.require("number")
        let answer = try await api.post("/v1/cases/\(number.queryEscaped)/typical", body: ["summary": form["summary"] ?? ""], as: session, logger: context.logger)
        if answer.ok { throw Redirect(location: "/typical") }
        return try await casePage(number: number, session: session, request, context, error: answer.detail, status: HTTPResponse.Status(code: answer.status))
    }

    /// The typical cases of the person's subtree, for training.
    func typicalPage(_ request: Request, _ context: RedressRequestContext) async throws -> Response {
        let session = try await signedIn(request, context)
        let language = language(request)
        let answer = try await api.get("/v1/typical-cases", as: session, logger: context.logger)
        let items = (answer.object["items"] as? [[String: Any]] ?? []).map { item -> [String: Any] in
            var row = item.filter { !($0.value is NSNull) }
            row["categoryLabel"] = (item["category"] as? String).map { catalogue.label("category", $0, language) } ?? "—"
            row["markedLocal"] = local(item["markedAt"] as? String) ?? ""
            return row
        }
        var data: [String: Any] = ["items": items, "hasItems": !items.isEmpty]
        if !answer.ok { data["error"] = answer.detail }
        return render("typical", data, request: request, session: session, title: catalogue.text("nav_typical", language), nav: "Typical")
    }

    /// "Reveal": the full personal data, after the purpose is given; the read is on record.
    func reveal(_ request: Request, _ context: RedressRequestContext) async throws -> Response {
        let (session, form) = try await self.form(request, context)
        let number = try context.parameters.require("number")
        guard let purpose = form["purpose"] else {
            return try await casePage(number: number, session: session, request, context, error: text("reveal_needs_purpose", request), status: .badRequest)
        }
        let answer = try await api.get("/v1/cases/\(number.queryEscaped)/personal-data?purpose=\(purpose.queryEscaped)", as: session, logger: context.logger)
        guard answer.ok else {
            return try await casePage(number: number, session: session, request, context, error: answer.detail, status: HTTPResponse.Status(code: answer.status))
        }
        return try await casePage(number: number, session: session, request, context, revealed: answer.object)
    }
}
