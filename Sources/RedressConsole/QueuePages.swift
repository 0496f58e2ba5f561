import Foundation
import Hummingbird
import RedressDomain
import RedressServiceKit

/// Queues, search, the inbox and the supervisor board.
extension ConsolePages {
    static let filterNames = ["status", "category", "priority", "channel"]

    func options<T: RawRepresentable & CaseIterable>(_ type: T.Type, _ kind: String, selected: String?, _ language: Catalogue.Language) -> [[String: Any]]
        where T.RawValue == String {
        T.allCases.map { ["value": $0.rawValue, "label": catalogue.label(kind, $0.rawValue, language), "selected": $0.rawValue == selected] }
    }

    /// A queue's rows, from the staff API's case summaries.
    func rows(_ items: [[String: Any]], _ language: Catalogue.Language, now: Date = Date()) -> [[String: Any]] {
        items.map { item in
            var row = item
            let status = item["status"] as? String ?? ""
            row["statusLabel"] = catalogue.label("status", status, language)
            row["categoryLabel"] = (item["category"] as? String).map { catalogue.label("category", $0, language) } ?? "—"
            row["priorityLabel"] = (item["priority"] as? String).map { catalogue.label("priority", $0, language) } ?? "—"
            row["assigneeLabel"] = item["assignee"] as? String ?? catalogue.text("nobody", language)
            if let due = (item["promisedReplyBy"] as? String).flatMap(Timestamp.parse) {
                let left = Self.timeLeft(due: due, start: (item["receivedAt"] as? String).flatMap(Timestamp.parse), now: now, language)
                row["dueClass"] = left.cls
                row["dueIcon"] = left.icon
                row["dueText"] = left.text
                row["dueLocal"] = local(due)
                row["dueAt"] = item["promisedReplyBy"]
            }
            return row
        }
    }

    func queuePage(_ request: Request, _ context: RedressRequestContext, mine: Bool) async throws -> Response {
        let session = try await signedIn(request, context)
        // Sales reads the register only: their page is the oversight page.
        if session.role == .salesLiaison { throw Redirect(location: "/oversight") }
        let language = language(request)
        let query = request.uri.queryParameters
        var parameters: [String] = []
        var chosen: [String: String] = [:]
        for name in Self.filterNames {
            if let value = query.get(name), !value.isEmpty {
                chosen[name] = value
                parameters.append("\(name)=\(value.queryEscaped)")
            }
        }
        let unit = mine ? nil : (query.get("unit").flatMap { $0.isEmpty ? nil : $0 } ?? session.unit)
        if let unit { parameters.append("unit=\(unit.queryEscaped)") }
        let filters = parameters
        if let cursor = query.get("cursor") { parameters.append("cursor=\(cursor.queryEscaped)") }
        let answer = try await api.get("/v1/cases\(mine ? "/mine" : "")?" + parameters.joined(separator: "&"), as: session, logger: context.logger)
        var data = try await queueData(session: session, language: language, chosen: chosen, unit: unit, mine: mine)
        if answer.ok {
            data["rows"] = rows(answer.object["items"] as? [[String: Any]] ?? [], language)
            data["hasRows"] = !(data["rows"] as! [[String: Any]]).isEmpty
            if let next = answer.object["nextCursor"] as? String {
                data["next"] = (mine ? "/queue/mine?" : "/queue/unit?") + (filters + ["cursor=\(next.queryEscaped)"]).joined(separator: "&")
            }
        } else {
            data["error"] = answer.detail
        }
        let heading = data["heading"] as! String
        return render("queue", data, request: request, session: session, title: heading, nav: mine ? "Mine" : "Unit",
                      status: answer.ok ? .ok : HTTPResponse.Status(code: answer.status))
    }

    func queueData(session: ConsoleSession, language: Catalogue.Language, chosen: [String: String], unit: String?, mine: Bool) async throws -> [String: Any] {
        var data: [String: Any] = [
            "heading": catalogue.text(mine ? "nav_mine" : "nav_unit", language),
            "path": mine ? "/queue/mine" : "/queue/unit",
            "statuses": options(CaseStatus.self, "status", selected: chosen["status"], language),
            "categories": options(RedressDomain.Category.self, "category", selected: chosen["category"], language),
            "priorities": options(Priority.self, "priority", selected: chosen["priority"], language),
            "channels": options(Channel.self, "channel", selected: chosen["channel"], language),
        ]
        if !mine {
            data["showUnitPicker"] = true
            data["showSearch"] = true
            data["unit"] = unit ?? session.unit
            data["units"] = await units.subtree(of: session.unit).map { ["code": $0.code, "label": "\($0.code) \($0.name)", "selected": $0.code == unit] }
        }
        return data
    }

    /// Search by number, policy, claim, phone or ID number: posted, so a phone number never
    /// appears in a URL, a history or a proxy's log.
    func searchPage(_ request: Request, _ context: RedressRequestContext) async throws -> Response {
        let (session, body) = try await form(request, context)
        let language = language(request)
        let unit = body["unit"] ?? session.unit
        var data = try await queueData(session: session, language: language, chosen: [:], unit: unit, mine: false)
        data["q"] = body.raw("q")
        guard let q = body["q"] else { throw Redirect(location: "/queue/unit") }
        let answer = try await api.get("/v1/cases?includeClosed=true&unit=\(unit.queryEscaped)&q="
                                       + (q.queryEscaped), as: session, logger: context.logger)
        if answer.ok {
            data["rows"] = rows(answer.object["items"] as? [[String: Any]] ?? [], language)
            data["hasRows"] = !(data["rows"] as! [[String: Any]]).isEmpty
        } else {
            data["error"] = answer.detail
        }
        data["heading"] = catalogue.text("search_results", language)
        return render("queue", data, request: request, session: session, title: data["heading"] as! String, nav: "Unit",
                      status: answer.ok ? .ok : HTTPResponse.Status(code: answer.status))
    }

    func inboxPage(_ request: Request, _ context: RedressRequestContext) async throws -> Response {
        let session = try await signedIn(request, context)
        let language = language(request)
        let answer = try await api.get("/v1/inbox?limit=100", as: session, logger: context.logger)
        let items = (answer.object["items"] as? [[String: Any]] ?? []).map { item -> [String: Any] in
            var row = item
            row["templateLabel"] = catalogue.label("template", item["template"] as? String ?? "", language)
            row["createdLocal"] = local(item["createdAt"] as? String) ?? ""
            // A report snapshot: `report:<unit>:<period>:<version>` links to the unit's report for the period.
            if let reference = item["reference"] as? String, reference.hasPrefix("report:") {
                let parts = reference.split(separator: ":").map(String.init)
                if parts.count == 4 {
                    row["reportLink"] = "/reports?unit=\(parts[1].queryEscaped)&period=\(parts[2].queryEscaped)"
                    row["reportName"] = "\(parts[1]) \(parts[2]) v\(parts[3])"
                }
            }
            return row
        }
        var data: [String: Any] = ["items": items, "hasItems": !items.isEmpty]
        if !answer.ok { data["error"] = answer.detail }
        return render("inbox", data, request: request, session: session, title: catalogue.text("nav_inbox", language), nav: "Inbox")
    }

    /// The supervisor board: about to breach, breached, unassigned, second complaints, spot-checks
    /// and the committee's cases, in the supervisor's subtree, each a short list linking to the case.
    func boardPage(_ request: Request, _ context: RedressRequestContext) async throws -> Response {
        let session = try await signedIn(request, context)
        guard [.supervisor, .admin].contains(session.role) else {
            throw PageRefusal(status: .forbidden, heading: text("forbidden", request), message: text("board_forbidden", request))
        }
        let language = language(request)
        let now = Date()
        let soon = Timestamp.format(now.addingTimeInterval(2 * 86_400))
        let unit = "unit=\(session.unit)&limit=20"
        let lists: [(id: String, query: String, keep: ([String: Any]) -> Bool)] = [
            ("soon", "\(unit)&dueBefore=\(soon.queryEscaped)", { item in
                ((item["promisedReplyBy"] as? String).flatMap(Timestamp.parse) ?? .distantPast) >= now }),
            ("breached", "\(unit)&dueBefore=\(Timestamp.format(now).queryEscaped)", { _ in true }),
            ("unassigned", "\(unit)&unassigned=true", { _ in true }),
            ("second", "\(unit)&secondComplaint=true", { _ in true }),
            ("spot", "\(unit)&spotCheck=true", { _ in true }),
            ("committee", "\(unit)&committee=referred", { _ in true }),
        ]
        var sections: [[String: Any]] = []
        var found: [Int: StaffAPIClient.Answer] = [:]
        let paths = lists.map { "/v1/cases?" + $0.query } + ["/v1/cases/counts?unit=\(session.unit.queryEscaped)"]
        try await withThrowingTaskGroup(of: (Int, StaffAPIClient.Answer).self) { group in
            for (index, path) in paths.enumerated() {
                group.addTask { (index, try await api.get(path, as: session, logger: context.logger)) }
            }
            for try await (index, answer) in group { found[index] = answer }
        }
        let allUnits = await units.all()
        let counts = (found[lists.count]?.object["items"] as? [[String: Any]] ?? []).map { item -> [String: Any] in
            var row = item
            row["code"] = item["unit"]
            row["name"] = allUnits.first { $0.code == item["unit"] as? String }?.name ?? ""
            return row
        }
        for (index, list) in lists.enumerated() {
            let items = rows((found[index]?.object["items"] as? [[String: Any]] ?? []).filter(list.keep), language, now: now)
            sections.append(["id": list.id, "heading": catalogue.text("board_\(list.id)", language), "count": items.count,
                             "rows": items, "hasRows": !items.isEmpty])
        }
        return render("board", ["sections": sections, "unitName": session.unitName, "units": counts, "hasUnits": !counts.isEmpty], request: request, session: session,
                      title: catalogue.text("board_title", language), nav: "Board")
    }
}

extension String {
    /// Percent-encoded for a query value: only ASCII letters, digits and -_. stay as they are.
    var queryEscaped: String {
        addingPercentEncoding(withAllowedCharacters: CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")) ?? ""
    }
}
