import Foundation
import Logging
import PostgresNIO

/// Applies the migrations not yet applied. Safe on every start and with many instances starting
/// at once: an advisory lock makes them take turns, and each migration runs once, in one transaction.
public enum Migrator {
    /// Key of the advisory lock taken while migrating ('rdrs' as an integer).
    static let lockKey: Int64 = 0x7264_7273

    @discardableResult
    public static func migrate(_ client: PostgresClient, logger: Logger) async throws -> [Int] {
        try await client.withConnection { connection in
            try await connection.query("SELECT pg_advisory_lock(\(lockKey))", logger: logger)
            do {
                let applied = try await apply(connection, logger: logger)
                try await connection.query("SELECT pg_advisory_unlock(\(lockKey))", logger: logger)
                return applied
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(lockKey))", logger: logger)
                throw error
            }
        }
    }

    private static func apply(_ connection: PostgresConnection, logger: Logger) async throws -> [Int] {
        try await connection.query("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """, logger: logger)
        var done = Set<Int>()
        for try await version in try await connection.query("SELECT version FROM schema_migrations", logger: logger).decode(Int.self) {
            done.insert(version)
        }
        var applied: [Int] = []
        for migration in Migrations.all.sorted(by: { $0.version < $1.version }) where !done.contains(migration.version) {
            try await connection.withTransaction(logger: logger) { tx in
                for statement in statements(migration.sql) {
                    try await tx.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await tx.query("INSERT INTO schema_migrations (version, name) VALUES (\(migration.version), \(migration.name))", logger: logger)
            }
            logger.info("migration applied", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
            applied.append(migration.version)
        }
        return applied
    }

    /// Splits a migration into statements: PostgresNIO speaks the extended protocol, one statement
    /// per query. Semicolons inside quotes, `$$` bodies and `--` comments do not split.
    static func statements(_ sql: String) -> [String] {
        var result: [String] = []
        var current = ""
        var inSingle = false
        var inDollar = false
        var inComment = false
        let chars = Array(sql)
        var i = 0
        while i < chars.count {
            let c = chars[i]
            let next: Character? = i + 1 < chars.count ? chars[i + 1] : nil
            if inComment {
                if c == "\n" { inComment = false; current.append(c) }
                i += 1
                continue
            }
            if !inSingle, !inDollar, c == "-", next == "-" { inComment = true; i += 2; continue }
            if !inSingle, c == "$", next == "$" { inDollar.toggle(); current += "$$"; i += 2; continue }
            if !inDollar, c == "'" { inSingle.toggle() }
            if !inSingle, !inDollar, c == ";" {
                let trimmed = current.trimmingCharacters(in: .whitespacesAndNewlines)
                if !trimmed.isEmpty { result.append(trimmed) }
                current = ""
            } else {
                current.append(c)
            }
            i += 1
        }
        let trimmed = current.trimmingCharacters(in: .whitespacesAndNewlines)
        if !trimmed.isEmpty { result.append(trimmed) }
        return result
    }
}
