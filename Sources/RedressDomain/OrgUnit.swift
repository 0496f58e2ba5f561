/// The organisation is a tree: 总公司 HQ → 省公司 province → 地市级公司 city → county branch.
/// A unit's code is stable and human-readable (`GD-SZ`); its path is the chain of codes from HQ,
/// which is what visibility ("this unit and below") and escalation ("one level up") are computed on.
public enum OrgLevel: String, Sendable, Codable, CaseIterable, Comparable {
    case hq
    case province
    case city
    case county

    /// Depth in the tree, HQ = 0.
    public var depth: Int {
        switch self {
        case .hq: 0
        case .province: 1
        case .city: 2
        case .county: 3
        }
    }

    public static func < (lhs: OrgLevel, rhs: OrgLevel) -> Bool { lhs.depth < rhs.depth }
}

public struct OrgUnit: Sendable, Codable, Hashable {
    public var code: String
    public var parentCode: String?
    public var level: OrgLevel
    public var name: String
    /// Materialised path, codes joined by `/` from HQ down, e.g. `HQ/GD/GD-SZ`.
    public var path: String
    /// The working-day calendar this unit follows (`CN`).
    public var region: String

    public init(code: String, parentCode: String?, level: OrgLevel, name: String, path: String, region: String = "CN") {
        self.code = code
        self.parentCode = parentCode
        self.level = level
        self.name = name
        self.path = path
        self.region = region
    }
}

public enum OrgPath {
    public static let separator: Character = "/"

    /// True when `path` is `ancestor` itself or lies below it: the visibility rule of every query.
    public static func isWithin(_ path: String, subtree ancestor: String) -> Bool {
        if path == ancestor { return true }
        return path.hasPrefix(ancestor) && path.dropFirst(ancestor.count).first == separator
    }

    public static func child(of parentPath: String, code: String) -> String {
        parentPath + String(separator) + code
    }

    /// The codes on the path, HQ first.
    public static func codes(_ path: String) -> [String] {
        path.split(separator: separator).map(String.init)
    }

    /// The parent's code, or nil at HQ.
    public static func parentCode(_ path: String) -> String? {
        let codes = codes(path)
        return codes.count > 1 ? codes[codes.count - 2] : nil
    }
}

/// A unit code is upper-case letters, digits and dashes, 2–32 long: it goes into complaint numbers
/// read aloud on the phone, so nothing else is allowed.
public enum OrgUnitCode {
    public static func isValid(_ code: String) -> Bool {
        guard (2...32).contains(code.utf8.count) else { return false }
        guard let first = code.utf8.first, first != UInt8(ascii: "-") else { return false }
        return code.utf8.allSatisfy { byte in
            (byte >= 65 && byte <= 90) || (byte >= 48 && byte <= 57) || byte == UInt8(ascii: "-")
        }
    }
}
