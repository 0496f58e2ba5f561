import Foundation
import Logging
import PostgresNIO
@testable import RedressConsole
import Testing

/// Console sign-in against the real schema: bcrypt passwords, the lock after five failures, the
/// second factor, idle and absolute session limits, deactivation taking effect at the next
/// request, and signing out everywhere. Instants are injected, so nothing waits for real minutes.
@Suite struct ConsoleAuthTests {
    static let logger = Logger(label: "console-auth-test")
    static let password = "correct horse battery"

    static func auth(requireTOTP: Bool = false, _ client: PostgresClient) -> ConsoleAuth {
        var policy = ConsoleAuth.Policy()
        policy.requireTOTP = requireTOTP
        return ConsoleAuth(postgres: client, policy: policy)
    }

    static func refusal(_ body: () async throws(SignInRefusal) -> String) async -> SignInRefusal? {
        do {
            _ = try await body()
            return nil
        } catch {
            return error
        }
    }

    @Test func fiveFailuresLockTheAccountEvenAgainstTheRightPassword() async throws {
        try await TestDatabase.withFresh { client, _ in
            _ = try await ConsoleAuth.setPassword(Self.password, for: ["GD-SZ-AGE01"], newTOTP: false, on: client, logger: Self.logger)
            let auth = Self.auth(client)
            let start = Date()
            for attempt in 1...4 {
                let refused = await Self.refusal { () async throws(SignInRefusal) in
                    try await auth.signIn(staffID: "GD-SZ-AGE01", password: "wrong \(attempt)", totp: nil, now: start, logger: Self.logger)
                }
                #expect(refused == .wrongCredentials)
            }
            let fifth = await Self.refusal { () async throws(SignInRefusal) in
                try await auth.signIn(staffID: "GD-SZ-AGE01", password: "wrong 5", totp: nil, now: start, logger: Self.logger)
            }
            guard case .locked(let until) = fifth else { Issue.record("the fifth failure locks: \(String(describing: fifth))"); return }
            #expect(abs(until.timeIntervalSince(start) - 15 * 60) < 1)
            let whileLocked = await Self.refusal { () async throws(SignInRefusal) in
                try await auth.signIn(staffID: "GD-SZ-AGE01", password: Self.password, totp: nil, now: start.addingTimeInterval(14 * 60), logger: Self.logger)
            }
            guard case .locked(let stillUntil) = whileLocked else { Issue.record("the right password does not open a locked account"); return }
            #expect(abs(stillUntil.timeIntervalSince(until)) < 0.01)
            let cookie = try await auth.signIn(staffID: "GD-SZ-AGE01", password: Self.password, totp: nil, now: start.addingTimeInterval(16 * 60), logger: Self.logger)
            #expect(!cookie.isEmpty)
            #expect(try await TestDatabase.count(client, "SELECT failed_attempts FROM staff_credentials WHERE staff_id = 'GD-SZ-AGE01'") == 0)
            // An unknown id and a staff member without a password get the same answer as a wrong password.
            for id in ["NOBODY-01", "GD-SZ-AGE02"] {
                let refused = await Self.refusal { () async throws(SignInRefusal) in
                    try await auth.signIn(staffID: id, password: Self.password, totp: nil, logger: Self.logger)
                }
                #expect(refused == .wrongCredentials, "\(id)")
            }
            #expect(try await TestDatabase.count(client, "SELECT count(*) FROM staff_credentials WHERE password_hash LIKE '$2%'") == 1,
                    "the password is stored as a bcrypt hash only")
        }
    }

    @Test func sessionsEndWhenIdleOrOldOrTheAccountIsDeactivated() async throws {
        try await TestDatabase.withFresh { client, _ in
            _ = try await ConsoleAuth.setPassword(Self.password, for: ["GD-SZ-AGE01", "GD-SZ-AGE02"], newTOTP: false, on: client, logger: Self.logger)
            let auth = Self.auth(client)
            let start = Date()
            let idle = try await auth.signIn(staffID: "GD-SZ-AGE01", password: Self.password, totp: nil, now: start, logger: Self.logger)
            #expect(try await auth.session(cookie: idle, now: start.addingTimeInterval(29 * 60), logger: Self.logger)?.staffID == "GD-SZ-AGE01")
            #expect(try await auth.session(cookie: idle, now: start.addingTimeInterval(29 * 60 + 31 * 60), logger: Self.logger) == nil,
                    "31 minutes idle ends the session")
            #expect(try await auth.session(cookie: idle, now: start.addingTimeInterval(29 * 60 + 60), logger: Self.logger) == nil, "and it stays ended")

            // Used every 20 minutes, a session still ends 10 hours after sign-in.
            let busy = try await auth.signIn(staffID: "GD-SZ-AGE01", password: Self.password, totp: nil, now: start, logger: Self.logger)
            var at = start
            while at.timeIntervalSince(start) < 10 * 3600 - 20 * 60 {
                at = at.addingTimeInterval(20 * 60)
                #expect(try await auth.session(cookie: busy, now: at, logger: Self.logger) != nil, "in use at \(at.timeIntervalSince(start) / 3600) h")
            }
            #expect(try await auth.session(cookie: busy, now: start.addingTimeInterval(10 * 3600 + 60), logger: Self.logger) == nil, "10 hours at most")

            // Deactivation and a changed role take effect at the next request, not the next sign-in.
            let other = try await auth.signIn(staffID: "GD-SZ-AGE02", password: Self.password, totp: nil, logger: Self.logger)
            try await client.query("UPDATE staff SET role = 'supervisor' WHERE id = 'GD-SZ-AGE02'", logger: Self.logger)
            #expect(try await auth.session(cookie: other, logger: Self.logger)?.role == .supervisor)
            try await client.query("UPDATE staff SET active = false WHERE id = 'GD-SZ-AGE02'", logger: Self.logger)
            #expect(try await auth.session(cookie: other, logger: Self.logger) == nil, "a deactivated account is out at once")
            #expect(try await TestDatabase.count(client, "SELECT count(*) FROM console_sessions WHERE staff_id = 'GD-SZ-AGE02' AND ended_at IS NULL") == 0)
            #expect(try await auth.session(cookie: "not-a-session", logger: Self.logger) == nil)
        }
    }

    @Test func signingOutEndsEverySessionAndANewPasswordToo() async throws {
        try await TestDatabase.withFresh { client, _ in
            _ = try await ConsoleAuth.setPassword(Self.password, for: ["GD-SZ-AGE01"], newTOTP: false, on: client, logger: Self.logger)
            let auth = Self.auth(client)
            let office = try await auth.signIn(staffID: "GD-SZ-AGE01", password: Self.password, totp: nil, logger: Self.logger)
            let phone = try await auth.signIn(staffID: "GD-SZ-AGE01", password: Self.password, totp: nil, logger: Self.logger)
            #expect(office != phone)
            try await auth.signOutEverywhere("GD-SZ-AGE01", logger: Self.logger)
            #expect(try await auth.session(cookie: office, logger: Self.logger) == nil)
            #expect(try await auth.session(cookie: phone, logger: Self.logger) == nil)
            let again = try await auth.signIn(staffID: "GD-SZ-AGE01", password: Self.password, totp: nil, logger: Self.logger)
            _ = try await ConsoleAuth.setPassword("another good password", for: ["GD-SZ-AGE01"], newTOTP: false, on: client, logger: Self.logger)
            #expect(try await auth.session(cookie: again, logger: Self.logger) == nil, "a new password ends the old one's sessions")
            await #expect(throws: ConsoleError.self) {
                _ = try await ConsoleAuth.setPassword("short", for: ["GD-SZ-AGE01"], newTOTP: false, on: client, logger: Self.logger)
            }
            await #expect(throws: ConsoleError.self) {
                _ = try await ConsoleAuth.setPassword(Self.password, for: ["NOBODY-01"], newTOTP: false, on: client, logger: Self.logger)
            }
        }
    }

    @Test func supervisorsGiveASecondFactorWhenRequired() async throws {
        try await TestDatabase.withFresh { client, _ in
            _ = try await ConsoleAuth.setPassword(Self.password, for: ["GD-SUP01", "GD-SZ-AGE01"], newTOTP: false, on: client, logger: Self.logger)
            let auth = Self.auth(requireTOTP: true, client)
            let notEnrolled = await Self.refusal { () async throws(SignInRefusal) in
                try await auth.signIn(staffID: "GD-SUP01", password: Self.password, totp: nil, logger: Self.logger)
            }
            #expect(notEnrolled == .secondFactorNotEnrolled)
            // Agents are not asked for one.
            _ = try await auth.signIn(staffID: "GD-SZ-AGE01", password: Self.password, totp: nil, logger: Self.logger)
            let secrets = try await ConsoleAuth.setPassword(Self.password, for: ["GD-SUP01"], newTOTP: true, on: client, logger: Self.logger)
            let secret = try #require(secrets["GD-SUP01"])
            #expect(ConsoleAuth.totpURL(secret: secret, staffID: "GD-SUP01").hasPrefix("otpauth://totp/"))
            let now = Date()
            let missing = await Self.refusal { () async throws(SignInRefusal) in
                try await auth.signIn(staffID: "GD-SUP01", password: Self.password, totp: nil, now: now, logger: Self.logger)
            }
            #expect(missing == .secondFactorNeeded)
            let wrongCode = String(format: "%06d", (Int(ConsoleAuth.totpCode(secret: secret, at: now))! + 1) % 1_000_000)
            let wrong = await Self.refusal { () async throws(SignInRefusal) in
                try await auth.signIn(staffID: "GD-SUP01", password: Self.password, totp: wrongCode, now: now, logger: Self.logger)
            }
            #expect(wrong == .wrongCredentials, "a wrong code counts as a failure")
            #expect(try await TestDatabase.count(client, "SELECT failed_attempts FROM staff_credentials WHERE staff_id = 'GD-SUP01'") == 1)
            let cookie = try await auth.signIn(staffID: "GD-SUP01", password: Self.password, totp: ConsoleAuth.totpCode(secret: secret, at: now), now: now,
                                               logger: Self.logger)
            #expect(try await auth.session(cookie: cookie, now: now, logger: Self.logger)?.role == .supervisor)
        }
    }
}
