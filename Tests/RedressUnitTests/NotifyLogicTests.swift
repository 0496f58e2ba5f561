import Foundation
import RedressContracts
import RedressDomain
@testable import RedressNotify
import Testing

@Suite struct TemplateTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let book = try! TemplateBook.load(file: repo.appendingPathComponent("deploy/notify/templates.json").path)

    @Test(arguments: TemplateBook.fields.keys.sorted())
    func everyTemplateRendersInEveryLanguageAndChannel(_ id: String) {
        let template = Self.book.templates[id]!
        let channels = template.audience == "staff" ? TemplateBook.staffChannels : TemplateBook.customerChannels
        let fields = Dictionary(uniqueKeysWithValues: TemplateBook.fields[id]!.map { ($0, "«\($0)»") })
        for language in TemplateBook.languages {
            for channel in channels {
                let text = Self.book.render(id, language: language, channel: channel, fields: fields)
                #expect(!text.body.isEmpty && !text.body.contains("{{"), "\(id) \(language) \(channel)")
                #expect(text.body.contains("«number»"), "\(id) \(language) \(channel) names the complaint")
                #expect((text.subject != nil) == (channel == "email"), "\(id) \(language) \(channel)")
            }
        }
    }

    /// Texts are plain (SMS, WeChat, text e-mail): values go in as they are, slots with inner spaces
    /// are slots, and a value that looks like a slot is not filled again.
    @Test func valuesGoInVerbatimAndOnce() throws {
        var templates = Array(Self.book.templates.values)
        let index = templates.firstIndex { $0.id == "case.closed.customer" }!
        templates[index].texts["en"]!["sms"]!.body = "Dear {{ customerName }}, case {{number}}: {{outcome}}."
        let book = try TemplateBook(templates: templates)
        let text = book.render("case.closed.customer", language: "en", channel: "sms",
                               fields: ["customerName": "Smith & <Sons>", "number": "GD-SZ-20261130-000001", "outcome": "{{number}} \"done\""])
        #expect(text.body == "Dear Smith & <Sons>, case GD-SZ-20261130-000001: {{number}} \"done\".")
        // A language the book lacks falls back to zh-CN.
        let fallback = book.render("case.closed.customer", language: "fr", channel: "sms", fields: ["number": "N-1"])
        #expect(fallback.body == book.render("case.closed.customer", language: "zh-CN", channel: "sms", fields: ["number": "N-1"]).body)
    }

    @Test func aTemplateNamingAFieldItsEventLacksFailsTheStart() throws {
        var templates = Array(Self.book.templates.values)
        let index = templates.firstIndex { $0.id == "case.closed.customer" }!
        templates[index].texts["en"]!["sms"]!.body = "Case {{number}} closed; refund {{refundAmount}}"
        templates.removeAll { $0.id == "sla.warning.staff" }
        do {
            _ = try TemplateBook(templates: templates)
            Issue.record("an unknown field must be refused")
        } catch {
            #expect(error.problems.contains { $0.contains("{{refundAmount}}") && $0.contains("case.closed.customer en sms") })
            #expect(error.problems.contains("sla.warning.staff is missing"))
        }
    }
}

@Suite struct DeliveryLogicTests {
    static let shanghai = TimeZone(identifier: "Asia/Shanghai")!

    @Test func quietHoursAcrossMidnightInLocalTime() throws {
        let quiet = try #require(QuietHours.parse("21:00-08:00", timeZone: Self.shanghai))
        #expect(quiet.release(for: Timestamp.parse("2026-11-22T20:59:00+08:00")!) == nil)
        #expect(quiet.release(for: Timestamp.parse("2026-11-22T21:00:00+08:00")!) == Timestamp.parse("2026-11-23T08:00:00+08:00"))
        #expect(quiet.release(for: Timestamp.parse("2026-11-23T03:00:00+08:00")!) == Timestamp.parse("2026-11-23T08:00:00+08:00"))
        #expect(quiet.release(for: Timestamp.parse("2026-11-23T08:00:00+08:00")!) == nil)
        let lunch = try #require(QuietHours.parse("12:00-13:30", timeZone: Self.shanghai))
        #expect(lunch.release(for: Timestamp.parse("2026-11-23T12:10:00+08:00")!) == Timestamp.parse("2026-11-23T13:30:00+08:00"))
        #expect(QuietHours.parse("25:00-08:00", timeZone: Self.shanghai) == nil)
    }

    @Test func backoffGrowsToItsCapWithJitterInTheUpperHalf() {
        let backoff = Backoff(base: 2, cap: 60)
        #expect(backoff.delay(afterAttempt: 1, unit: 0) == 1)
        #expect(backoff.delay(afterAttempt: 1, unit: 0.999) < 2)
        #expect(backoff.delay(afterAttempt: 4, unit: 0) == 8)
        #expect(backoff.delay(afterAttempt: 20, unit: 0.5) == 45)
    }

    @Test func aTokenBucketHoldsTheRate() {
        var bucket = TokenBucket(rate: 2, burst: 2)
        let start = Date(timeIntervalSince1970: 0)
        let taken = [0, 0, 0, 0.5, 0.6].map { bucket.take(now: start.addingTimeInterval($0)) }
        #expect(taken == [true, true, false, true, false])
    }

    @Test func aCustomerIsToldOnlyWhereTheyConsentedAndHaveAnAddress() {
        #expect(CustomerContact().channels(complainedThrough: .online) == [.sms])
        #expect(CustomerContact(email: "a@b.cn", preferredChannel: .email).channels(complainedThrough: .callCenter) == [.email, .sms])
        #expect(CustomerContact(wechatOpenId: "o1", smsConsent: false).channels(complainedThrough: .online) == [.wechat])
        #expect(CustomerContact(smsConsent: false).channels(complainedThrough: .callCenter).isEmpty)
        #expect(CustomerContact(email: "a@b.cn", preferredChannel: .sms, smsConsent: false).channels(complainedThrough: .email) == [.email])
    }
}
