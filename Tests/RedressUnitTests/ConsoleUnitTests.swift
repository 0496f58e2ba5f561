import Foundation
@testable import RedressConsole
import RedressDomain
import RedressServiceKit
import Testing

/// The console's pure parts: the catalogues (every string a page uses exists in both languages),
/// form bodies, local date-times, time left, and one-time codes.
@Suite struct ConsoleUnitTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func catalogue(_ path: String) throws -> [String: [String: String]] {
        try JSONDecoder().decode([String: [String: String]].self, from: Data(contentsOf: repo.appendingPathComponent(path)))
    }

    /// Every `{{t.key}}` in the templates of a directory.
    static func templateKeys(_ directory: String) throws -> Set<String> {
        let folder = repo.appendingPathComponent(directory)
        var keys: Set<String> = []
        for file in try FileManager.default.contentsOfDirectory(atPath: folder.path) where file.hasSuffix(".mustache") {
            let text = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
            let pattern = try NSRegularExpression(pattern: #"\{\{\s*t\.([A-Za-z0-9_.]+)\s*\}\}"#)
            for match in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                keys.insert(String(text[Range(match.range(at: 1), in: text)!]))
            }
        }
        return keys
    }

    @Test(arguments: [("Sources/RedressConsole/Resources/catalogue.json", "Sources/RedressConsole/Resources/templates"),
                      ("Sources/RedressSurveys/Resources/catalogue.json", "Sources/RedressSurveys/Resources/templates")])
    func everyPageStringIsInBothLanguages(catalogue path: String, templates: String) throws {
        let texts = try Self.catalogue(path)
        let zh = try #require(texts["zh-CN"]), en = try #require(texts["en"])
        #expect(Set(zh.keys) == Set(en.keys), "keys in one language only: \(Set(zh.keys).symmetricDifference(en.keys).sorted())")
        let used = try Self.templateKeys(templates)
        #expect(!used.isEmpty)
        #expect(used.subtracting(zh.keys).isEmpty, "templates use keys the catalogue lacks: \(used.subtracting(zh.keys).sorted())")
        for (key, text) in zh where text.trimmingCharacters(in: .whitespaces).isEmpty { Issue.record("\(key) is blank") }
    }

    @Test func everyCodeAPageShowsHasALabel() throws {
        let texts = try Self.catalogue("Sources/RedressConsole/Resources/catalogue.json")
        let codes: [(String, [String])] = [
            ("status", CaseStatus.allCases.map(\.rawValue)), ("category", RedressDomain.Category.allCases.map(\.rawValue)),
            ("priority", Priority.allCases.map(\.rawValue)), ("channel", Channel.allCases.map(\.rawValue)),
            ("action", CaseAction.allCases.map(\.rawValue)), ("role", Role.allCases.map(\.rawValue)),
            ("liability", Liability.allCases.map(\.rawValue)), ("flag", CustomerFlag.allCases.map(\.rawValue)),
        ]
        for language in ["zh-CN", "en"] {
            for (kind, values) in codes {
                for value in values { #expect(texts[language]?["\(kind).\(value)"] != nil, "\(language): \(kind).\(value)") }
            }
        }
    }

    @Test func formBodiesDecodeLikeBrowsersEncode() {
        let form = FormBody("text=%E8%A1%A5%E5%8F%91+%E5%88%A9%E6%81%AF&members=A&members=B&blank=+&csrf=a%2Bb%3D")
        #expect(form["text"] == "补发 利息")
        #expect(form.values["members"] == ["A", "B"])
        #expect(form["blank"] == nil, "blank is absent")
        #expect(form.raw("blank") == " ")
        #expect(form["csrf"] == "a+b=")
        #expect(form["missing"] == nil)
    }

    @Test func localDateTimesAreChinaTime() throws {
        let text = try #require(ConsolePages.rfc3339(local: "2026-12-01T10:30"))
        #expect(Timestamp.parse(text) == Timestamp.parse("2026-12-01T02:30:00Z"))
        #expect(ConsolePages.rfc3339(local: "tomorrow") == nil)
    }

    @Test func timeLeftIsWordsAClassAndAnIcon() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let start = now.addingTimeInterval(-10 * 86_400)
        func left(_ seconds: TimeInterval, _ language: Catalogue.Language = .zh) -> (String, String, String) {
            let view = ConsolePages.timeLeft(due: now.addingTimeInterval(seconds), start: start, now: now, language)
            return (view.cls, view.icon, view.text)
        }
        #expect(left(20 * 86_400) == ("ok", "●", "剩 20天0小时"))
        #expect(left(5 * 86_400 + 3 * 3600) == ("warn", "▲", "剩 5天3小时"), "half the time gone")
        #expect(left(90 * 60, .en) == ("warn", "▲", "1h 30m left"))
        #expect(left(-2 * 3600 - 60) == ("breached", "✖", "已超时 2小时1分"))
        #expect(left(-59, .en) == ("breached", "✖", "0m overdue"))
    }

    @Test func oneTimeCodesFollowRFC6238() {
        // RFC 6238 appendix B, SHA-1 secret, T = 59 s: 94287082, whose last six digits an app shows.
        #expect(ConsoleAuth.totpCode(secret: "12345678901234567890", at: Date(timeIntervalSince1970: 59)) == "287082")
        let secret = ConsoleAuth.newTOTPSecret()
        #expect(secret.count == 32 && secret.allSatisfy { "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".contains($0) })
        let now = Date()
        #expect(ConsoleAuth.totpMatches(ConsoleAuth.totpCode(secret: secret, at: now.addingTimeInterval(-30)), secret: secret, now: now), "one step of drift")
        #expect(!ConsoleAuth.totpMatches(ConsoleAuth.totpCode(secret: secret, at: now.addingTimeInterval(-120)), secret: secret, now: now))
        #expect(!ConsoleAuth.totpMatches("12345", secret: secret, now: now))
        #expect(ConsoleAuth.sameToken("abc", "abc") && !ConsoleAuth.sameToken("abc", "abd") && !ConsoleAuth.sameToken("", ""))
    }
}

@Suite struct ReportChartTests {
    @Test func barsAreProportionalLabelledAndEscaped() {
        let svg = SVGChart.bars([("网上<渠道>", 10), ("电话", 5), ("零", 0)], title: "按渠道 & 单位", width: 520)
        #expect(svg.hasPrefix("<svg") && svg.hasSuffix("</svg>"))
        #expect(svg.contains("role=\"img\"") && svg.contains("<title>按渠道 &amp; 单位</title>"))
        #expect(svg.contains("网上&lt;渠道&gt;") && !svg.contains("<渠道>"), "labels are escaped")
        // 520 − 150 for labels − 56 for values = 314 for the longest bar; half of it for half the value.
        #expect(svg.contains("width=\"314\"") && svg.contains("width=\"157\"") && svg.contains("width=\"0\""))
        #expect(SVGChart.bars([], title: "空").contains(">—</text>"), "an empty chart says so")
    }

    /// A taxonomy name "中文 English" gives the chart the page language's half; any other name stays whole.
    @Test func aTaxonomyNameGivesItsHalfInThePagesLanguage() {
        #expect(ConsolePages.half(of: "客户服务环节 Customer service", .zh) == "客户服务环节")
        #expect(ConsolePages.half(of: "客户服务环节 Customer service", .en) == "Customer service")
        #expect(ConsolePages.half(of: "Customer service", .zh) == "Customer service", "no Chinese half: kept whole")
        #expect(ConsolePages.half(of: "客户服务环节", .en) == "客户服务环节", "no English half: kept whole")
    }

    @Test func theCurrentQuarterIsCountedInBeijingTime() {
        // 16:30 UTC on 31 December is 00:30 on 1 January in Shanghai: the next year's first quarter.
        #expect(ConsolePages.currentQuarter(Date(timeIntervalSince1970: 1_798_734_600)) == "2027-Q1")
        #expect(ConsolePages.currentQuarter(Date(timeIntervalSince1970: 1_798_734_600 - 3_600)) == "2026-Q4")
    }
}
