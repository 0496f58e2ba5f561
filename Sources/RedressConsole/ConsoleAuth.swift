import Crypto
import Foundation
import HummingbirdBcrypt
import HummingbirdOTP
import Logging
import NIOPosix
import PostgresNIO
import RedressServiceKit

/// The signed-in staff member, re-read from `staff` on every request: a deactivated account, a
/// changed role or a moved unit take effect at the next click, not at the next sign-in.
public struct ConsoleSession: Sendable {
    public var staffID: String
    public var name: String
    public var role: Role
    public var unit: String
    public var unitName: String
    /// Sent back in every form; a form without it is refused.
    public var csrf: String
    var idHash: [UInt8]
}

/// Why a sign-in was refused. The page says the same for a wrong id and a wrong password, so it
/// never tells which staff ids exist; a locked account is told it is locked (its owner must know).
public enum SignInRefusal: Error, Equatable, Sendable {
    case wrongCredentials
    case locked(until: Date)
    case secondFactorNeeded
    case secondFactorNotEnrolled
}

/// Passwords (bcrypt, through hummingbird-auth), second factors (TOTP, likewise), the lock after
/// repeated failures, and sessions in PostgreSQL behind an opaque cookie.
public struct ConsoleAuth: Sendable {
    public struct Policy: Sendable {
        public var idle: TimeInterval = 30 * 60
        public var maximum: TimeInterval = 10 * 3600
        public var failuresBeforeLock = 5
        public var lockFor: TimeInterval = 15 * 60
        /// Supervisors and admins must give a TOTP code (REDRESS_CONSOLE_REQUIRE_TOTP=true).
        public var requireTOTP = false
        public init() {}
    }

    let postgres: PostgresClient
    let policy: Policy

    public init(postgres: PostgresClient, policy: Policy) {
        self.postgres = postgres
        self.policy = policy
    }

    /// Passwords shorter than this are refused when set.
    public static let minimumPasswordLength = 10
    /// bcrypt's work factor: about a quarter of a second per check on one core.
    static let bcryptCost: UInt8 = 12

    /// A hash no password matches, checked for unknown ids.
    static let decoy: String = Bcrypt.hash(randomToken(), cost: bcryptCost)

    static func sha256(_ text: String) -> [UInt8] { Array(SHA256.hash(data: Data(text.utf8))) }

    /// 32 random bytes, base64url.
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// A TOTP secret for an authenticator app: 20 random bytes, base32 as the otpauth URL carries it.
    public static func newTOTPSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        return String((0..<32).map { _ in alphabet[Int.random(in: 0..<32, using: &generator)] })
    }

    /// The otpauth:// URL an authenticator app scans or is given.
    public static func totpURL(secret: String, staffID: String) -> String {
        TOTP(secret: secret).createAuthenticatorURL(label: staffID, issuer: "Redress")
    }

    /// The code an authenticator shows at `date` (for tests and `redressctl`).
    public static func totpCode(secret: String, at date: Date = Date()) -> String {
        String(format: "%06d", TOTP(secret: secret).compute(date: date))
    }

    /// Accepts the code of the current 30-second step and of its neighbours (clock drift).
    static func totpMatches(_ code: String, secret: String, now: Date) -> Bool {
        let given = code.filter(\.isNumber)
        guard given.count == 6 else { return false }
        return [-30.0, 0, 30].contains { totpCode(secret: secret, at: now.addingTimeInterval($0)) == given }
    }

    /// bcrypt off the event loop: a check costs a quarter of a second of CPU.
    static func hash(_ password: String) async throws -> String {
        try await NIOThreadPool.singleton.runIfActive { Bcrypt.hash(password, cost: bcryptCost) }
    }

    static func verify(_ password: String, hash: String) async throws -> Bool {
        try await NIOThreadPool.singleton.runIfActive { Bcrypt.verify(password, hash: hash) }
    }

    /// Sets (or replaces) the password of each staff member named and, when asked, a new TOTP
    /// secret each (returned by id). Clears locks and ends the sessions the old password opened.
    /// Used by `redressctl staff set-password` and, for the demo staff, by `scripts/up`.
    public static func setPassword(_ password: String, for staffIDs: [String], newTOTP: Bool, on postgres: PostgresClient, logger: Logger) async throws -> [String: String] {
        guard password.count >= minimumPasswordLength else {
            throw ConsoleError("the password is \(password.count) characters; use at least \(minimumPasswordLength)")
        }
        // One hash for all: bcrypt's salt is in the hash, and the cost is paid once.
        let hash = try await hash(password)
        var secrets: [String: String] = [:]
        for id in staffIDs {
            let secret = newTOTP ? newTOTPSecret() : nil
            let rows = try await postgres.query("""
                INSERT INTO staff_credentials (staff_id, password_hash, totp_secret)
                SELECT id, \(hash), \(secret) FROM staff WHERE id = \(id)
                ON CONFLICT (staff_id) DO UPDATE SET password_hash = EXCLUDED.password_hash,
                    totp_secret = COALESCE(EXCLUDED.totp_secret, staff_credentials.totp_secret),
                    failed_attempts = 0, locked_until = NULL, changed_at = now()
                RETURNING staff_id
                """, logger: logger)
            var found = false
            for try await _ in rows.decode(String.self) { found = true }
            guard found else { throw ConsoleError("no staff member has the id '\(id)'; list them with redressctl staff list") }
            try await postgres.query("UPDATE console_sessions SET ended_at = now() WHERE staff_id = \(id) AND ended_at IS NULL", logger: logger)
            if let secret { secrets[id] = secret }
        }
        return secrets
    }

    /// Checks id, password and (when required or enrolled) the TOTP code; opens a session and
    /// returns the cookie value. Five failures in a row lock the account for 15 minutes, and a
    /// locked account refuses even the right password until then.
    public func signIn(staffID: String, password: String, totp: String?, now: Date = Date(), logger: Logger) async throws(SignInRefusal) -> String {
        let row: (hash: String, secret: String?, failures: Int, lockedUntil: Date?, role: String)?
        do {
            row = try await readCredentials(staffID, logger: logger)
        } catch {
            logger.error("sign-in could not read credentials", metadata: ["error": "\(String(reflecting: error))"])
            throw .wrongCredentials
        }
        guard let row else {
            // The same work as a real check, so the answer's timing does not tell which ids exist.
            _ = try? await Self.verify(password, hash: Self.decoy)
            throw .wrongCredentials
        }
        if let until = row.lockedUntil, until > now { throw .locked(until: until) }
        let passwordOK = (try? await Self.verify(password, hash: row.hash)) ?? false
        var secondOK = true
        let needsSecond = row.secret != nil || (policy.requireTOTP && ["supervisor", "admin"].contains(row.role))
        if passwordOK, needsSecond {
            guard let secret = row.secret else { throw .secondFactorNotEnrolled }
            guard let totp, !totp.isEmpty else { throw .secondFactorNeeded }
            secondOK = Self.totpMatches(totp, secret: secret, now: now)
        }
        guard passwordOK, secondOK else {
            let locks = row.failures + 1 >= policy.failuresBeforeLock
            _ = try? await postgres.query("""
                UPDATE staff_credentials SET
                    failed_attempts = CASE WHEN \(locks) THEN 0 ELSE failed_attempts + 1 END,
                    locked_until = CASE WHEN \(locks) THEN \(now.addingTimeInterval(policy.lockFor)) ELSE locked_until END
                WHERE staff_id = \(staffID)
                """, logger: logger)
            if locks {
                logger.warning("console account locked after repeated failed sign-ins", metadata: ["staff": "\(staffID)"])
                throw .locked(until: now.addingTimeInterval(policy.lockFor))
            }
            throw .wrongCredentials
        }
        let token = Self.randomToken()
        do {
            try await postgres.withTransaction(logger: logger) { connection in
                try await connection.query("UPDATE staff_credentials SET failed_attempts = 0, locked_until = NULL WHERE staff_id = \(staffID)", logger: logger)
                try await connection.query("""
                    INSERT INTO console_sessions (id_hash, staff_id, csrf_token, created_at, last_seen_at)
                    VALUES (\(ByteBuffer(bytes: Self.sha256(token))), \(staffID), \(Self.randomToken()), \(now), \(now))
                    """, logger: logger)
            }
        } catch {
            logger.error("sign-in could not open a session", metadata: ["error": "\(String(reflecting: error))"])
            throw .wrongCredentials
        }
        return token
    }

    func readCredentials(_ staffID: String, logger: Logger) async throws -> (hash: String, secret: String?, failures: Int, lockedUntil: Date?, role: String)? {
        let rows = try await postgres.query("""
            SELECT k.password_hash, k.totp_secret, k.failed_attempts, k.locked_until, s.role
            FROM staff_credentials k JOIN staff s ON s.id = k.staff_id WHERE k.staff_id = \(staffID) AND s.active
            """, logger: logger)
        for try await row in rows.decode((String, String?, Int, Date?, String).self) {
            return (row.0, row.1, row.2, row.3, row.4)
        }
        return nil
    }

    /// The session behind a cookie, with the staff member as they are now; nil when there is none,
    /// it has ended, it has been idle 30 minutes or open 10 hours, or the account is inactive.
    public func session(cookie: String, now: Date = Date(), logger: Logger) async throws -> ConsoleSession? {
        let hash = Self.sha256(cookie)
        let rows = try await postgres.query("""
            SELECT s.staff_id, st.name, st.role, st.org_unit, u.name, s.csrf_token, s.created_at, s.last_seen_at, st.active
            FROM console_sessions s JOIN staff st ON st.id = s.staff_id JOIN org_units u ON u.code = st.org_unit
            WHERE s.id_hash = \(ByteBuffer(bytes: hash)) AND s.ended_at IS NULL
            """, logger: logger)
        for try await row in rows.decode((String, String, String, String, String, String, Date, Date, Bool).self) {
            let (id, name, role, unit, unitName, csrf, created, seen, active) = row
            guard active, let role = Role(rawValue: role), now.timeIntervalSince(seen) < policy.idle, now.timeIntervalSince(created) < policy.maximum else {
                try await postgres.query("UPDATE console_sessions SET ended_at = now() WHERE id_hash = \(ByteBuffer(bytes: hash))", logger: logger)
                return nil
            }
            // Touched at most once a minute: a page view is a read, not a write, most of the time.
            if now.timeIntervalSince(seen) > 60 {
                try await postgres.query("UPDATE console_sessions SET last_seen_at = \(now) WHERE id_hash = \(ByteBuffer(bytes: hash))", logger: logger)
            }
            return ConsoleSession(staffID: id, name: name, role: role, unit: unit, unitName: unitName, csrf: csrf, idHash: hash)
        }
        return nil
    }

    /// Signing out ends every session of the staff member, in every browser and tab.
    public func signOutEverywhere(_ staffID: String, logger: Logger) async throws {
        try await postgres.query("UPDATE console_sessions SET ended_at = now() WHERE staff_id = \(staffID) AND ended_at IS NULL", logger: logger)
    }

    /// Constant-time comparison of a form's CSRF token with the session's.
    static func sameToken(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count, !x.isEmpty else { return false }
        return zip(x, y).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }
}

/// A console error with words for the person at the keyboard (or the operator at redressctl).
public struct ConsoleError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
