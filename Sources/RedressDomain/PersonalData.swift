/// 会员信息保密: the full phone number, ID number and name live only in PostgreSQL.
/// Everything that leaves it — events, log lines, metrics labels — carries these masked forms.
public enum PersonalData {
    /// `13812345678` → `138****5678`. Anything that is not a plausible number keeps only its last 2 characters.
    public static func maskPhone(_ phone: String) -> String {
        let chars = Array(phone)
        if chars.count >= 7 {
            return String(chars.prefix(3)) + String(repeating: "*", count: chars.count - 7) + String(chars.suffix(4))
        }
        return String(repeating: "*", count: max(0, chars.count - 2)) + String(chars.suffix(2))
    }

    /// `440305199001011234` → `440305********1234`: region kept for routing, birth date hidden.
    public static func maskIDNumber(_ id: String) -> String {
        let chars = Array(id)
        guard chars.count > 10 else { return String(repeating: "*", count: chars.count) }
        return String(chars.prefix(6)) + String(repeating: "*", count: chars.count - 10) + String(chars.suffix(4))
    }

    /// `张三丰` → `张**`, `John Smith` → `J*********`: enough for staff to greet, not to identify.
    public static func maskName(_ name: String) -> String {
        guard let first = name.first else { return "" }
        return String(first) + String(repeating: "*", count: max(0, name.count - 1))
    }

    /// Mainland mobile number: 11 digits starting 13–19.
    public static func isMainlandMobile(_ phone: String) -> Bool {
        let bytes = Array(phone.utf8)
        guard bytes.count == 11, bytes[0] == UInt8(ascii: "1"), (UInt8(ascii: "3")...UInt8(ascii: "9")).contains(bytes[1]) else {
            return false
        }
        return bytes.allSatisfy(isDigit)
    }

    /// 18-digit resident ID (GB 11643-1999): 17 digits, then an ISO 7064 MOD 11-2 check character (0–9 or X).
    public static func isResidentID(_ id: String) -> Bool {
        let bytes = Array(id.utf8)
        guard bytes.count == 18, bytes.prefix(17).allSatisfy(isDigit) else { return false }
        let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
        var sum = 0
        for i in 0..<17 { sum += Int(bytes[i] - UInt8(ascii: "0")) * weights[i] }
        let checks: [UInt8] = Array("10X98765432".utf8)
        let expected = checks[sum % 11]
        let given = bytes[17] == UInt8(ascii: "x") ? UInt8(ascii: "X") : bytes[17]
        return given == expected
    }

    /// Masks personal data in free text — notes, proposals, reasons, complaint text, comments — before it
    /// reaches an event, a log line or a page for someone other than the case's handler:
    /// mobile numbers however written (`138-1234-5678`, `138 1234 5678`, `+86 13812345678`,
    /// `0086…`, full-width digits), resident ID numbers (18, or 17 and X; the old 15), bank-card
    /// numbers (13–19 digits passing the Luhn check), and e-mail addresses. A run of digits that is
    /// part of a code (`P4403…`, `CLM-2026-…`) is left alone when a letter touches it.
    public static func scrub(_ text: String) -> String { scrub(text, keepEnds: true) }

    /// As `scrub`, but every digit of a number found is hidden (`***********`), none kept at its
    /// ends: for what travels beside the customer's keyed hash (events) and for logs, where the
    /// visible digits of a masked number would let its hidden ones be found by trying the candidates.
    public static func redact(_ text: String) -> String { scrub(text, keepEnds: false) }

    static func scrub(_ text: String, keepEnds: Bool) -> String {
        var scalars = Array(text.unicodeScalars)
        var changed = false
        var i = 0
        let count = scalars.count
        while i < count {
            let startsNumber = digit(scalars[i]) != nil || (scalars[i] == "+" && i + 1 < count && digit(scalars[i + 1]) != nil)
            guard startsNumber else { i += 1; continue }
            // Digits glued to a letter or digit before them belong to a code, not a number of their own.
            if i > 0, isWordCharacter(scalars[i - 1]) {
                var j = i + 1
                while j < count, digit(scalars[j]) != nil || isWordCharacter(scalars[j]) { j += 1 }
                i = j
                continue
            }
            var positions: [Int] = []
            var j = scalars[i] == "+" ? i + 1 : i
            while j < count {
                if digit(scalars[j]) != nil { positions.append(j); j += 1; continue }
                // One separator between two digits keeps the number going.
                if !positions.isEmpty, isSeparator(scalars[j]), j + 1 < count, digit(scalars[j + 1]) != nil { j += 1; continue }
                break
            }
            var end = j
            var checkX: Int?
            if positions.count == 17, j < count, scalars[j] == "X" || scalars[j] == "x" {
                checkX = j
                end = j + 1
            }
            if end < count, isASCIILetter(scalars[end]) {
                i = end
                continue
            }
            let digits = positions.map { digit(scalars[$0])! }
            var masked: Range<Int>?
            var prefix = 0
            if digits.count == 13, digits.starts(with: [8, 6]), digits[2] == 1 { prefix = 2 }
            if digits.count == 15, digits.starts(with: [0, 0, 8, 6]), digits[4] == 1 { prefix = 4 }
            let core = digits.count - prefix
            if core == 11, digits[prefix] == 1 {
                masked = (prefix + 3)..<(prefix + 7)
            } else if checkX != nil {
                masked = 6..<14
            } else if digits.count == 18 || digits.count == 15 {
                masked = 6..<(digits.count - 4)
            } else if (13...19).contains(digits.count), luhn(digits) {
                masked = 0..<(digits.count - 4)
            }
            if var masked {
                if !keepEnds { masked = 0..<digits.count }
                for k in masked { scalars[positions[k]] = "*" }
                changed = true
            }
            i = end
        }
        if scalars.contains("@") {
            let before = scalars
            scalars = maskEmails(scalars)
            changed = changed || scalars != before
        }
        guard changed else { return text }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: scalars)
        return String(out)
    }

    /// `zhang.san@example.com` → `z***@example.com`.
    static func maskEmails(_ scalars: [Unicode.Scalar]) -> [Unicode.Scalar] {
        func local(_ c: Unicode.Scalar) -> Bool { isASCIILetter(c) || (c.value >= 48 && c.value <= 57) || "._%+-".unicodeScalars.contains(c) }
        func domain(_ c: Unicode.Scalar) -> Bool { isASCIILetter(c) || (c.value >= 48 && c.value <= 57) || c == "." || c == "-" }
        var out: [Unicode.Scalar] = []
        var i = 0
        var pending: [Unicode.Scalar] = []
        while i < scalars.count {
            let c = scalars[i]
            if c == "@", !pending.isEmpty {
                var j = i + 1
                while j < scalars.count, domain(scalars[j]) { j += 1 }
                let host = scalars[(i + 1)..<j]
                if host.contains("."), host.first != ".", host.last != "." {
                    out.append(pending[0])
                    out += Array("***".unicodeScalars)
                    out += scalars[i..<j]
                    pending = []
                    i = j
                    continue
                }
            }
            if local(c) {
                pending.append(c)
            } else {
                out += pending
                pending = []
                out.append(c)
            }
            i += 1
        }
        return out + pending
    }

    /// ASCII and full-width digits (`０`–`９`) as their values.
    static func digit(_ c: Unicode.Scalar) -> Int? {
        switch c.value {
        case 48...57: Int(c.value - 48)
        case 0xFF10...0xFF19: Int(c.value - 0xFF10)
        default: nil
        }
    }

    static func isSeparator(_ c: Unicode.Scalar) -> Bool {
        [" ", "-", ".", "\u{00A0}", "\u{3000}", "\u{FF0D}", "\u{2010}", "\u{2011}", "\u{2012}", "\u{2013}", "\u{2014}", "\u{2212}"].contains(c)
    }

    static func isASCIILetter(_ c: Unicode.Scalar) -> Bool { (c.value >= 65 && c.value <= 90) || (c.value >= 97 && c.value <= 122) }

    static func isWordCharacter(_ c: Unicode.Scalar) -> Bool { isASCIILetter(c) || (c.value >= 48 && c.value <= 57) || c == "_" }

    /// The check character (0–9 or X) of a resident ID's first 17 digits.
    public static func checkCharacter(_ body: String) -> String {
        let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
        let digits = body.compactMap { $0.wholeNumberValue }
        guard digits.count == 17 else { return "?" }
        let sum = zip(digits, weights).reduce(0) { $0 + $1.0 * $1.1 }
        return String(Array("10X98765432")[sum % 11])
    }

    /// The digit that makes `digits` pass the Luhn check.
    public static func luhnCheckDigit(_ digits: [Int]) -> Int {
        (0...9).first { luhn(digits + [$0]) } ?? 0
    }

    /// The Luhn check bank-card numbers carry.
    static func luhn(_ digits: [Int]) -> Bool {
        var sum = 0
        for (offset, d) in digits.reversed().enumerated() {
            if offset % 2 == 1 {
                let doubled = d * 2
                sum += doubled > 9 ? doubled - 9 : doubled
            } else {
                sum += d
            }
        }
        return sum % 10 == 0
    }

    @inline(__always)
    static func isDigit(_ byte: UInt8) -> Bool { byte >= 48 && byte <= 57 }
}
