import Foundation
import Testing
@testable import RedressContracts
@testable import RedressDomain

@Suite struct SubmissionValidatorTests {
    static let now = Date(timeIntervalSince1970: 1_795_312_800)

    static func valid() -> ComplaintSubmission {
        ComplaintSubmission(
            channel: "online", externalRef: "WEB-1", receivedAt: now.addingTimeInterval(-3600),
            customer: .init(name: "张三", phone: "138 1234 5678", idNumber: "11010519491231002x", flags: ["elderly"]),
            policyNumber: "P1", branch: "GD-SZ", subject: "理赔太慢", content: "已经一个月了")
    }

    func errors(_ s: ComplaintSubmission) -> [String] {
        if case .failure(let rejected) = SubmissionValidator.validate(s, now: Self.now) { return rejected.errors.map(\.field) }
        return []
    }

    @Test func acceptsAndNormalisesAValidSubmission() throws {
        let result = try SubmissionValidator.validate(Self.valid(), now: Self.now).get()
        #expect(result.customerPhone == "13812345678")
        #expect(result.customerIDNumber == "11010519491231002X")
        #expect(result.customerFlags == [.elderly])
        #expect(result.channel == .online)
    }

    @Test func contactPreferencesAreCheckedAndAnAddressCannotCarryHeaders() throws {
        var s = Self.valid()
        s.customer?.email = "li@example.com"
        s.customer?.preferredChannel = "email"
        s.customer?.smsConsent = false
        s.customer?.language = "en"
        let contact = try SubmissionValidator.validate(s, now: Self.now).get().contact
        #expect(contact == CustomerContact(email: "li@example.com", preferredChannel: .email, smsConsent: false, language: .en))
        for bad in ["li@example.com\r\nBcc: all@example.com", "<li@example.com>", "li example@x.cn", "no-at-sign", "li@localhost"] {
            var t = Self.valid()
            t.customer?.email = bad
            #expect(errors(t) == ["customer.email"], "\(bad)")
        }
        var u = Self.valid()
        u.customer?.preferredChannel = "fax"
        u.customer?.language = "fr"
        u.customer?.wechatOpenId = "o x"
        #expect(Set(errors(u)) == ["customer.preferredChannel", "customer.language", "customer.wechatOpenId"])
    }

    @Test func namesEveryMissingField() {
        #expect(Set(errors(ComplaintSubmission())) == ["channel", "externalRef", "receivedAt", "customer", "branch", "subject", "content"])
    }

    @Test func refusesEachBadField() {
        var s = Self.valid(); s.channel = "fax"
        #expect(errors(s) == ["channel"])
        s = Self.valid(); s.externalRef = "has space"
        #expect(errors(s) == ["externalRef"])
        s = Self.valid(); s.receivedAt = Self.now.addingTimeInterval(3600)
        #expect(errors(s) == ["receivedAt"])
        s = Self.valid(); s.customer?.phone = "12345"
        #expect(errors(s) == ["customer.phone"])
        s = Self.valid(); s.customer?.phone = nil
        #expect(errors(s) == ["customer.phone"])
        s = Self.valid(); s.customer?.idNumber = "110105194912310021"
        #expect(errors(s) == ["customer.idNumber"])
        s = Self.valid(); s.customer?.flags = ["vip", "angry"]
        #expect(errors(s) == ["customer.flags[1]"])
        s = Self.valid(); s.customer?.name = "   "
        #expect(errors(s) == ["customer.name"])
        s = Self.valid(); s.branch = "gd-sz"
        #expect(errors(s) == ["branch"])
        s = Self.valid(); s.subject = String(repeating: "投", count: SubmissionValidator.maxSubjectCharacters + 1)
        #expect(errors(s) == ["subject"])
        s = Self.valid(); s.content = String(repeating: "a", count: SubmissionValidator.maxContentCharacters + 1)
        #expect(errors(s) == ["content"])
        s = Self.valid(); s.content = "bell\u{07}"
        #expect(errors(s) == ["content"])
        s = Self.valid(); s.regulator = .init(caseNumber: "R1", deadline: Self.now)
        #expect(errors(s) == ["regulator"])
    }

    @Test func attachmentsAreReferencesNeverInlineData() throws {
        var s = Self.valid()
        s.attachments = [.init(name: "理赔通知书.pdf", uri: "https://docs.example/claims/123.pdf", contentType: "application/pdf", size: 20_480)]
        #expect(try SubmissionValidator.validate(s, now: Self.now).get().attachments.count == 1)
        s.attachments = [.init(name: "photo.jpg", uri: "data:image/jpeg;base64,AAAA"), .init(name: nil, uri: "s3://bucket/key"), .init(name: "x", uri: "s3://b/k", size: -1)]
        #expect(errors(s) == ["attachments[0].uri", "attachments[1].name", "attachments[2].size"])
        s.attachments = Array(repeating: .init(name: "a", uri: "https://d/x"), count: SubmissionValidator.maxAttachments + 1)
        #expect(errors(s) == ["attachments"])
    }

    @Test func regulatorTransfersNeedCaseNumberAndDeadline() throws {
        var s = Self.valid(); s.channel = "regulator"
        #expect(Set(errors(s)) == ["regulator.caseNumber", "regulator.deadline"])
        s.regulator = .init(caseNumber: "银保监-2026-001", deadline: Self.now.addingTimeInterval(86_400 * 10))
        let valid = try SubmissionValidator.validate(s, now: Self.now).get()
        #expect(valid.regulatorCaseNumber == "银保监-2026-001")
    }

    @Test func phoneNeverAppearsUnmaskedInAnError() {
        var s = Self.valid(); s.customer?.phone = "1381234567890"
        guard case .failure(let rejected) = SubmissionValidator.validate(s, now: Self.now) else {
            Issue.record("must be refused")
            return
        }
        #expect(!rejected.summary.contains("1381234567890"))
    }

    @Test func decodingErrorsNameTheField() {
        let json = #"{"channel":"online","customer":{"phone":13812345678}}"#
        do {
            _ = try EventCoding.decoder().decode(ComplaintSubmission.self, from: Data(json.utf8))
            Issue.record("a number for a string must not decode")
        } catch {
            #expect(EventCoding.describe(error) == "customer.phone: expected a string")
        }
        do {
            _ = try EventCoding.decoder().decode(ComplaintSubmission.self, from: Data("{".utf8))
        } catch {
            #expect(EventCoding.describe(error) == "the body is not valid JSON")
        }
    }
}

@Suite struct OrgTests {
    @Test func subtreeMembershipIsByWholeCodes() {
        #expect(OrgPath.isWithin("HQ/GD/GD-SZ", subtree: "HQ/GD"))
        #expect(OrgPath.isWithin("HQ/GD", subtree: "HQ/GD"))
        #expect(!OrgPath.isWithin("HQ/GDX/GDX-1", subtree: "HQ/GD"))
        #expect(!OrgPath.isWithin("HQ/GD", subtree: "HQ/GD/GD-SZ"))
        #expect(OrgPath.parentCode("HQ/GD/GD-SZ") == "GD")
        #expect(OrgPath.parentCode("HQ") == nil)
    }

    @Test func unitCodesAreSafeForComplaintNumbers() {
        #expect(OrgUnitCode.isValid("GD-SZ"))
        #expect(OrgUnitCode.isValid("HQ"))
        #expect(!OrgUnitCode.isValid("gd"))
        #expect(!OrgUnitCode.isValid("-GD"))
        #expect(!OrgUnitCode.isValid("G"))
        #expect(!OrgUnitCode.isValid("GD SZ"))
        #expect(ComplaintNumber.make(branch: "GD-SZ", day: "20261122", sequence: 123) == "GD-SZ-20261122-000123")
        #expect(ComplaintNumber.make(branch: "GD-SZ", day: "20261122", sequence: 1_234_567) == "GD-SZ-20261122-1234567")
    }
}
