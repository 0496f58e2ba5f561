import Foundation

/// RFC 3339 timestamps, written in UTC with milliseconds and read with any offset.
/// Hand-written because every event carries several and Foundation's formatters are slow and not Sendable.
public enum Timestamp {
    public static func format(_ date: Date) -> String {
        let millisTotal = Int64((date.timeIntervalSince1970 * 1000).rounded())
        let days = millisTotal >= 0 ? millisTotal / 86_400_000 : (millisTotal - 86_399_999) / 86_400_000
        var msOfDay = millisTotal - days * 86_400_000
        let ms = Int(msOfDay % 1000); msOfDay /= 1000
        let second = Int(msOfDay % 60); msOfDay /= 60
        let minute = Int(msOfDay % 60)
        let hour = Int(msOfDay / 60)
        let (y, m, d) = civilFromDays(days)
        var out = [UInt8]()
        out.reserveCapacity(24)
        func put(_ value: Int, _ width: Int) {
            var digits = [UInt8](repeating: 48, count: width)
            var v = value
            for k in stride(from: width - 1, through: 0, by: -1) { digits[k] = UInt8(48 + v % 10); v /= 10 }
            out.append(contentsOf: digits)
        }
        put(y, 4); out.append(45); put(m, 2); out.append(45); put(d, 2); out.append(84)
        put(hour, 2); out.append(58); put(minute, 2); out.append(58); put(second, 2); out.append(46); put(ms, 3); out.append(90)
        return String(decoding: out, as: UTF8.self)
    }

    /// The instants Redress stores and every consumer reads: 1970-01-01 up to the end of 9999.
    /// PostgreSQL refuses some years outside it (0000), and none of its dates is a complaint's.
    public static let storable = Date(timeIntervalSince1970: 0)..<Date(timeIntervalSince1970: 253_402_300_800)

    /// `parse`, and nil outside `storable`: what request fields use, so a year PostgreSQL would
    /// refuse is the caller's field error, not a failed transaction.
    public static func parseStorable(_ text: String) -> Date? {
        parse(text).flatMap { storable.contains($0) ? $0 : nil }
    }

    /// Parses `YYYY-MM-DDThh:mm:ss[.fff…](Z|±hh:mm)`. Returns nil for anything else, so callers can name the field.
    public static func parse(_ text: String) -> Date? {
        let b = Array(text.utf8)
        guard b.count >= 20 else { return nil }
        func num(_ from: Int, _ len: Int) -> Int? {
            var v = 0
            for k in from..<(from + len) {
                guard k < b.count, b[k] >= 48, b[k] <= 57 else { return nil }
                v = v * 10 + Int(b[k] - 48)
            }
            return v
        }
        guard let y = num(0, 4), b[4] == 45, let mo = num(5, 2), b[7] == 45, let d = num(8, 2),
              b[10] == 84 || b[10] == 116 || b[10] == 32,
              let h = num(11, 2), b[13] == 58, let mi = num(14, 2), b[16] == 58, let s = num(17, 2)
        else { return nil }
        guard (1...12).contains(mo), (1...daysInMonth(y, mo)).contains(d), h < 24, mi < 60, s < 61 else { return nil }
        var i = 19
        var fraction = 0.0
        if i < b.count, b[i] == 46 {
            i += 1
            var scale = 0.1
            let start = i
            while i < b.count, b[i] >= 48, b[i] <= 57 { fraction += Double(b[i] - 48) * scale; scale /= 10; i += 1 }
            guard i > start else { return nil }
        }
        guard i < b.count else { return nil }
        var offsetSeconds = 0
        if b[i] == 90 || b[i] == 122 {
            i += 1
        } else if b[i] == 43 || b[i] == 45 {
            guard let oh = num(i + 1, 2), i + 3 < b.count, b[i + 3] == 58, let om = num(i + 4, 2), oh < 24, om < 60 else { return nil }
            offsetSeconds = (oh * 3600 + om * 60) * (b[i] == 45 ? -1 : 1)
            i += 6
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        let days = daysFromCivil(y, mo, d)
        let seconds = Double(days * 86_400 + h * 3600 + mi * 60 + s - offsetSeconds) + fraction
        return Date(timeIntervalSince1970: seconds)
    }

    /// `YYYYMMDD` of the date in the given UTC offset (complaint numbers use the branch's local date).
    public static func compactDay(_ date: Date, utcOffsetSeconds: Int) -> String {
        let local = Int64(floor((date.timeIntervalSince1970 + Double(utcOffsetSeconds)) / 86_400))
        let (y, m, d) = civilFromDays(local)
        return String(format: "%04d%02d%02d", y, m, d)
    }

    static func daysInMonth(_ y: Int, _ m: Int) -> Int {
        switch m {
        case 2: return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    // Howard Hinnant's days-from-civil algorithms: exact for the proleptic Gregorian calendar.
    static func daysFromCivil(_ y0: Int, _ m: Int, _ d: Int) -> Int {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civilFromDays(_ z0: Int64) -> (Int, Int, Int) {
        let z = Int(z0) + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp + (mp < 10 ? 3 : -9)
        return (m <= 2 ? y + 1 : y, m, d)
    }
}
