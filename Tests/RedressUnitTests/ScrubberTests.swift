import PropertyBased
@testable import RedressDomain
import Testing

/// The one scrubber, against generated personal data inside Chinese text: mobile numbers written
/// every way people write them, ID numbers (with X), e-mail addresses and Luhn-valid card numbers
/// come out masked; codes and ordinary numbers come out as they went in.
@Suite struct ScrubberTests {
    static let fullWidth: [Character] = ["０", "１", "２", "３", "４", "５", "６", "７", "８", "９"]

    /// A mainland mobile number from a seed, and the ways it is written.
    static func mobile(_ seed: Int) -> String {
        var rng = Seeded(seed)
        return "1" + String("3456789".randomElement(using: &rng)!) + String(format: "%09d", seed % 1_000_000_000)
    }

    static func written(_ number: String, style: Int) -> String {
        let d = Array(number)
        let (a, b, c) = (String(d[0..<3]), String(d[3..<7]), String(d[7..<11]))
        switch style {
        case 0: return number
        case 1: return "\(a)-\(b)-\(c)"
        case 2: return "\(a) \(b) \(c)"
        case 3: return "+86 \(number)"
        case 4: return "+86 \(a)-\(b)-\(c)"
        case 5: return "0086\(number)"
        case 6: return String(d.map { fullWidth[Int(String($0))!] })
        default: return "86-\(a).\(b).\(c)"
        }
    }

    /// Whether any 4 consecutive digits of the middle of the number survive.
    static func leaks(_ output: String, _ number: String) -> Bool {
        let digits = output.unicodeScalars.compactMap { PersonalData.digit($0) }.map(String.init).joined()
        return digits.contains(number) || digits.contains(String(Array(number)[3..<11]))
    }

    @Test func mobileNumbersAreMaskedHoweverTheyAreWritten() async {
        await propertyCheck(count: 300, input: Gen.int(in: 0...Int(Int32.max)), Gen.int(in: 0...7)) { seed, style in
            let number = Self.mobile(seed)
            let text = "客户来电称请回电\(Self.written(number, style: style))，谢谢"
            let scrubbed = PersonalData.scrub(text)
            #expect(!Self.leaks(scrubbed, number), "\(text) → \(scrubbed)")
            #expect(scrubbed.hasPrefix("客户来电称请回电") && scrubbed.hasSuffix("，谢谢"), "the words around stay")
        }
    }

    /// For events and logs, where a masked number would sit beside the customer's keyed hash: no
    /// digit of a number survives, however it is written, and the words around stay.
    @Test func redactionLeavesNoDigitOfANumber() async {
        await propertyCheck(count: 300, input: Gen.int(in: 0...Int(Int32.max)), Gen.int(in: 0...7)) { seed, style in
            let number = Self.mobile(seed)
            let text = "客户来电称请回电\(Self.written(number, style: style))，谢谢"
            let redacted = PersonalData.redact(text)
            #expect(!redacted.unicodeScalars.contains { PersonalData.digit($0) != nil }, "\(text) → \(redacted)")
            #expect(redacted.hasPrefix("客户来电称请回电") && redacted.hasSuffix("，谢谢"), "the words around stay")
        }
        #expect(PersonalData.redact("保单 P4403000012345 的理赔") == "保单 P4403000012345 的理赔", "codes are left alone")
    }

    @Test func idNumbersCardsAndEmailsAreMasked() async {
        await propertyCheck(count: 200, input: Gen.int(in: 0...Int(Int32.max))) { seed in
            var rng = Seeded(seed)
            // A resident ID with its real check character (X included, about one in eleven).
            let body = "4403" + String(format: "%02d", seed % 100) + "19" + String(format: "%02d", 50 + seed % 50) + "0101" + String(format: "%03d", seed % 1000)
            let id = body + PersonalData.checkCharacter(body)
            // A Luhn-valid 16-digit card number.
            let card16 = (0..<15).map { _ in Int.random(in: 0...9, using: &rng) }
            let card = card16 + [PersonalData.luhnCheckDigit(card16)]
            let cardText = card.map(String.init).joined()
            let email = "user\(seed)@example.com"
            let text = "身份证\(id)，银行卡 \(cardText)，邮箱\(email)。"
            let scrubbed = PersonalData.scrub(text)
            #expect(!scrubbed.contains(id) && scrubbed.contains(String(id.prefix(6)) + "********" + String(id.suffix(4))), "\(scrubbed)")
            #expect(!scrubbed.contains(cardText) && scrubbed.contains(String(cardText.suffix(4))), "\(scrubbed)")
            #expect(!scrubbed.contains(email) && scrubbed.contains("@example.com"), "\(scrubbed)")
        }
    }

    /// Any text at all: the scrubber ends, and masks one character for one (without e-mail addresses,
    /// whose local part becomes "x***").
    @Test func anyTextComesOutTheSameLength() async {
        let alphabet = Array("0123456789０１２３+-. x_Xa电话号码，：@")
        await propertyCheck(count: 500, input: Gen.int(in: 0...Int(Int32.max)), Gen.int(in: 0...60)) { seed, length in
            var rng = Seeded(seed)
            let text = String((0..<length).map { _ in alphabet.randomElement(using: &rng)! })
            let scrubbed = PersonalData.scrub(text)
            if !text.contains("@") { #expect(scrubbed.unicodeScalars.count == text.unicodeScalars.count, "\(text) → \(scrubbed)") }
        }
    }

    @Test func codesAndOrdinaryNumbersAreLeftAlone() {
        for text in ["a+1", "x+", "+", "C++17", "保单号P4403000012345", "赔案号CLM-2026-001122", "2026-11-30 申请", "金额12345.67元", "共3次来电", "GD-SZ-20261130-000001"] {
            #expect(PersonalData.scrub(text) == text, "\(text)")
        }
        #expect(PersonalData.scrub("电话13812345678") == "电话138****5678", "the mask staff know stays")
        #expect(PersonalData.scrub("+86 138-1234-5678") == "+86 138-****-5678")
    }
}

/// A small deterministic generator, so a seed gives the same number every time.
struct Seeded: RandomNumberGenerator {
    var state: UInt64
    init(_ seed: Int) { state = UInt64(truncatingIfNeeded: seed) &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
