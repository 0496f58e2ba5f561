import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import RedressServiceKit
import RedressStore

/// 定期分析报告 in the console: the staff API's report of a unit's subtree for a period, with
/// its charts drawn here as SVG (no script, no external library: they print as they show) and the
/// two CSVs to send on.
extension ConsolePages {
    /// The quarter an instant falls in, in the rules' zone: the report a person most often wants.
    static func currentQuarter(_ now: Date = Date()) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: ReportRollup.zone)!
        let parts = calendar.dateComponents([.year, .month], from: now)
        return "\(parts.year!)-Q\((parts.month! - 1) / 3 + 1)"
    }

    func reportPage(_ request: Request, _ context: RedressRequestContext) async throws -> Response {
        let session = try await signedIn(request, context)
        let language = language(request)
        let query = request.uri.queryParameters
        let unit = (query.get("unit") ?? session.unit).trimmingCharacters(in: .whitespaces).uppercased()
        let period = (query.get("period") ?? Self.currentQuarter()).trimmingCharacters(in: .whitespaces)
        var data: [String: Any] = ["unit": unit, "period": period,
                                   "csvLink": "/reports/download?unit=\(unit.queryEscaped)&period=\(period.queryEscaped)&format=csv",
                                   "regulatorLink": "/reports/download?unit=\(unit.queryEscaped)&period=\(period.queryEscaped)&format=regulator-csv"]
        // The responsible links are the deployment's taxonomy: named as the closure form names them.
        async let taxonomyAnswer = api.get("/v1/closure-taxonomy", as: session, logger: context.logger)
        let answer = try await api.get("/v1/reports?unit=\(unit.queryEscaped)&period=\(period.queryEscaped)", as: session, logger: context.logger)
        if answer.ok, let report = try? JSONDecoder().decode(PeriodicReport.self, from: Data(answer.raw)) {
            var linkNames: [String: String] = [:]
            for entry in ((try? await taxonomyAnswer)?.object["responsibleLinks"] as? [[String: Any]]) ?? [] {
                if let code = entry["code"] as? String, let name = entry["name"] as? String { linkNames[code] = Self.half(of: name, language) }
            }
            data["report"] = Self.view(report, catalogue: catalogue, language: language, linkNames: linkNames)
        } else {
            data["fieldError"] = answer.fieldErrors["period"] ?? answer.fieldErrors["unit"] ?? answer.detail
        }
        return render("report", data, request: request, session: session, title: catalogue.text("nav_reports", language), nav: "Reports",
                      status: answer.ok || answer.status == 400 || answer.status == 404 || answer.status == 422 ? .ok : .badGateway)
    }

    /// The CSV (or the regulator's) as the API gives it, to save and open in Excel.
    func reportDownload(_ request: Request, _ context: RedressRequestContext) async throws -> Response {
        let session = try await signedIn(request, context)
        let query = request.uri.queryParameters
        let unit = query.get("unit") ?? session.unit, period = query.get("period") ?? Self.currentQuarter()
        let format = query.get("format") == "regulator-csv" ? "regulator-csv" : "csv"
        let answer = try await api.get("/v1/reports?unit=\(unit.queryEscaped)&period=\(period.queryEscaped)&format=\(format)", as: session, logger: context.logger)
        guard answer.ok else { throw ConsoleError(answer.detail) }
        var headers: HTTPFields = [.contentType: "text/csv; charset=utf-8"]
        let name = "redress-\(format == "regulator-csv" ? "regulator-" : "")report-\(unit)-\(period).csv".filter { $0.isASCII && ($0.isLetter || $0.isNumber || "-._".contains($0)) }
        headers[.contentDisposition] = "attachment; filename=\"\(name)\""
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: answer.raw)))
    }

    /// The taxonomy names each entry "中文 English" (deploy/cases/closure-taxonomy.json); a chart's
    /// label column has room for one of the two: the page's language. A name not in that form is kept whole.
    static func half(of name: String, _ language: Catalogue.Language) -> String {
        guard let space = name.firstIndex(of: " "), !name[..<space].allSatisfy(\.isASCII) else { return name }
        let english = name[name.index(after: space)...].trimmingCharacters(in: .whitespaces)
        return language == .en && !english.isEmpty ? english : String(name[..<space])
    }

    static func percent(_ value: Double?) -> String { value.map { String(format: "%.1f%%", $0 * 100) } ?? "—" }

    /// `linkNames`: responsible-link code → its name in the closure taxonomy (a code it lacks shows as itself).
    static func view(_ report: PeriodicReport, catalogue: Catalogue, language: Catalogue.Language, linkNames: [String: String] = [:]) -> [String: Any] {
        func change(_ change: PeriodicReport.Change) -> String {
            guard let ratio = change.change else { return "\(change.count)" }
            return "\(change.count) (\(ratio >= 0 ? "+" : "")\(String(format: "%.1f%%", ratio * 100)))"
        }
        let channels = report.volume.byChannel.sorted { $0.value > $1.value }.map { (catalogue.label("channel", $0.key, language), $0.value) }
        let units = report.volume.byHandlingUnit.sorted { $0.value > $1.value }.map { ($0.key, $0.value) }
        let links = report.outcomes.responsibleLinks.prefix(8).map { ($0.code.isEmpty ? "—" : linkNames[$0.code] ?? $0.code, $0.count) }
        let breaches = report.timeliness.breachesByClock.sorted { $0.value > $1.value }.map { (catalogue.label("clock", $0.key, language), $0.value) }
        var view: [String: Any] = [
            "from": report.from, "to": report.to,
            "received": report.volume.received, "previous": change(report.volume.previousPeriod), "yearBefore": change(report.volume.yearBefore),
            "regulator": report.volume.regulatorTransfers, "closed": report.outcomes.closed, "liableRate": percent(report.outcomes.liableRate),
            "extended30": report.outcomes.extendedTo30, "extended60": report.outcomes.extendedTo60, "escalations": report.outcomes.escalations,
            "transfers": report.outcomes.transfers, "second": report.outcomes.secondComplaints, "repeats": report.outcomes.repeatComplaints,
            "acknowledged": report.timeliness.acknowledgedWithin24h, "firstContact": report.timeliness.firstContactWithin24h,
            "inTime": percent(report.timeliness.decidedInTimeShare),
            "regulatorMet": "\(report.timeliness.regulatorDeadlinesMet) / \(report.timeliness.regulatorClosed)",
            "meanDays": report.timeliness.handlingDays.mean.map { String(format: "%.1f", $0) } ?? "—",
            "medianDays": report.timeliness.handlingDays.median.map(String.init) ?? "—",
            "p90Days": report.timeliness.handlingDays.p90.map(String.init) ?? "—",
            "invited": report.customers.invited, "answered": report.customers.answered,
            "responseRate": percent(report.customers.responseRate), "completion": percent(report.customers.returnVisitCompletion),
            "csat": percent(report.customers.csat), "dissatisfied": percent(report.customers.dissatisfiedShare),
            "csatTarget": percent(report.customers.targets.csat), "completionTarget": percent(report.customers.targets.returnVisitCompletion),
            "csatBelow": (report.customers.csat ?? 1) < report.customers.targets.csat,
            "completionBelow": (report.customers.returnVisitCompletion ?? 1) < report.customers.targets.returnVisitCompletion,
            "channelChart": SVGChart.bars(channels, title: catalogue.text("report_by_channel", language)),
            "unitChart": SVGChart.bars(units, title: catalogue.text("report_by_unit", language)),
            "linkChart": SVGChart.bars(links, title: catalogue.text("report_links", language)),
            "breachChart": SVGChart.bars(breaches, title: catalogue.text("report_breaches", language)),
        ]
        if let handlers = report.handlers {
            view["hasHandlers"] = !handlers.isEmpty
            view["handlers"] = handlers.map { ["id": $0.id, "closed": $0.closed, "onTime": percent($0.onTimeShare), "csat": percent($0.csat)] as [String: Any] }
        }
        return view
    }
}

/// Horizontal bar charts as inline SVG, drawn on the server: readable without script, printable,
/// labelled for screen readers (`role="img"` with a title; the figures are also in the tables).
public enum SVGChart {
    public static func bars(_ items: [(String, Int64)], title: String, width: Int = 520) -> String {
        let rowHeight = 24, labelWidth = 150, valueWidth = 56
        let height = max(1, items.count) * rowHeight + 8
        let maximum = max(1, items.map(\.1).max() ?? 1)
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" role=\"img\" aria-label=\"\(escape(title))\" "
            + "viewBox=\"0 0 \(width) \(height)\" width=\"100%\" preserveAspectRatio=\"xMinYMin meet\"><title>\(escape(title))</title>"
        if items.isEmpty {
            svg += "<text x=\"0\" y=\"18\" class=\"chart-empty\">—</text>"
        }
        let barSpace = width - labelWidth - valueWidth
        for (index, (label, value)) in items.enumerated() {
            let y = index * rowHeight + 4
            let length = Int((Double(value) / Double(maximum) * Double(barSpace)).rounded())
            svg += "<text x=\"\(labelWidth - 8)\" y=\"\(y + 15)\" text-anchor=\"end\" class=\"chart-label\">\(escape(label))</text>"
            svg += "<rect x=\"\(labelWidth)\" y=\"\(y + 3)\" width=\"\(max(length, value > 0 ? 2 : 0))\" height=\"\(rowHeight - 8)\" class=\"chart-bar\"/>"
            svg += "<text x=\"\(labelWidth + length + 6)\" y=\"\(y + 15)\" class=\"chart-value\">\(value)</text>"
        }
        return svg + "</svg>"
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
