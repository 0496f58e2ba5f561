import Foundation
import Logging
import PostgresNIO
import RedressDomain

/// The demo organisation and staff file (`deploy/seed/org.json`).
public struct SeedFile: Sendable, Codable {
    public struct Unit: Sendable, Codable {
        public var code: String
        public var parent: String?
        public var level: OrgLevel
        public var name: String
        public var region: String?
        public var claimsCentralised: Bool?
        /// The unit's business departments; the file's `departments` when absent.
        public var departments: [Department]?
    }

    /// A business department of a unit (理赔、核保、销售、法律合规、财务), asked by inquiries.
    public struct Department: Sendable, Codable {
        public var code: String
        public var name: String
    }

    public struct Staff: Sendable, Codable {
        public var id: String
        public var name: String
        public var unit: String
        public var role: String
        public var skills: [String]?
        public var capacity: Int?
        public var available: Bool?
        /// A coordinator's department.
        public var department: String?
    }

    public var units: [Unit]
    public var staff: [Staff]
    /// Every unit's departments, unless the unit lists its own.
    public var departments: [Department]?
}

public struct SeedError: Error, CustomStringConvertible {
    public var description: String
}

public enum OrgStore {
    /// Loads or updates units (parents before children) and staff, in one transaction. Re-running is safe.
    public static func seed(_ file: SeedFile, client: PostgresClient, logger: Logger) async throws {
        var paths: [String: String] = [:]
        var ordered: [SeedFile.Unit] = []
        var remaining = file.units
        while !remaining.isEmpty {
            let before = remaining.count
            remaining.removeAll { unit in
                if let parent = unit.parent {
                    guard let parentPath = paths[parent] else { return false }
                    paths[unit.code] = OrgPath.child(of: parentPath, code: unit.code)
                } else {
                    paths[unit.code] = unit.code
                }
                ordered.append(unit)
                return true
            }
            if remaining.count == before {
                throw SeedError(description: "seed file: units \(remaining.map(\.code).joined(separator: ", ")) name a parent that is not in the file")
            }
        }
        for unit in ordered where !OrgUnitCode.isValid(unit.code) {
            throw SeedError(description: "seed file: unit code '\(unit.code)' is not valid (upper-case letters, digits, dashes)")
        }
        for person in file.staff where paths[person.unit] == nil {
            throw SeedError(description: "seed file: staff \(person.id) belongs to unknown unit \(person.unit)")
        }
        try await client.withTransaction(logger: logger) { tx in
            for unit in ordered {
                let path = paths[unit.code]!
                try await tx.query("""
                    INSERT INTO org_units (code, parent_code, level, name, path, region, claims_centralised)
                    VALUES (\(unit.code), \(unit.parent), \(unit.level.rawValue), \(unit.name), \(path), \(unit.region ?? "CN"), \(unit.claimsCentralised ?? false))
                    ON CONFLICT (code) DO UPDATE SET parent_code = EXCLUDED.parent_code, level = EXCLUDED.level,
                        name = EXCLUDED.name, path = EXCLUDED.path, region = EXCLUDED.region,
                        claims_centralised = EXCLUDED.claims_centralised
                    """, logger: logger)
            }
            for unit in ordered {
                for department in unit.departments ?? file.departments ?? [] {
                    try await tx.query("""
                        INSERT INTO departments (unit, code, name) VALUES (\(unit.code), \(department.code), \(department.name))
                        ON CONFLICT (unit, code) DO UPDATE SET name = EXCLUDED.name
                        """, logger: logger)
                }
            }
            for person in file.staff {
                try await tx.query("""
                    INSERT INTO staff (id, name, org_unit, role, skills, capacity, available, department)
                    VALUES (\(person.id), \(person.name), \(person.unit), \(person.role), \(person.skills ?? []), \(person.capacity ?? 20), \(person.available ?? true),
                            \(person.department))
                    ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, org_unit = EXCLUDED.org_unit, role = EXCLUDED.role,
                        skills = EXCLUDED.skills, capacity = EXCLUDED.capacity, available = EXCLUDED.available, department = EXCLUDED.department
                    """, logger: logger)
            }
        }
    }
}
