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

    /// Defence in depth for log lines: masks any run of digits that looks like a mobile number or a
    /// resident ID, wherever it appears in free text (complaint content quoted in an error, say).
    public static func scrub(_ text: String) -> String {
        var utf8 = Array(text.utf8)
        var changed = false
        var i = 0
        while i < utf8.count {
            guard isDigit(utf8[i]) else { i += 1; continue }
            var j = i
            while j < utf8.count, isDigit(utf8[j]) { j += 1 }
            var end = j
            // An ID number may end in X.
            if j - i == 17, j < utf8.count, utf8[j] == UInt8(ascii: "X") || utf8[j] == UInt8(ascii: "x") { end = j + 1 }
            let length = end - i
            if length == 11, utf8[i] == UInt8(ascii: "1") {
                for k in (i + 3)..<(i + 7) { utf8[k] = UInt8(ascii: "*") }
                changed = true
            } else if length == 18 || length == 15 {
                for k in (i + 6)..<(end - 4) { utf8[k] = UInt8(ascii: "*") }
                changed = true
            }
            i = end
        }
        return changed ? String(decoding: utf8, as: UTF8.self) : text
    }

    @inline(__always)
    static func isDigit(_ byte: UInt8) -> Bool { byte >= 48 && byte <= 57 }
}
