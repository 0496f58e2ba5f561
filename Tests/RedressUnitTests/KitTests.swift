import Foundation
import Logging
import Testing
@testable import RedressContracts
@testable import RedressDomain
@testable import RedressRouting
@testable import RedressServiceKit
@testable import RedressStore

@Suite struct TokenTests {
    let authority = TokenAuthority(secret: String(repeating: "k", count: 32))

    @Test func mintedTokensVerify() throws {
        let token = authority.mint(subject: "GD-SZ-AGE01", role: .agent, unit: "GD-SZ")
        let identity = try authority.verify(token)
        #expect(identity.subject == "GD-SZ-AGE01")
        #expect(identity.role == .agent)
        #expect(identity.unit == "GD-SZ")
    }

    @Test func refusesTamperedForeignExpiredAndUnsignedTokens() {
        let token = authority.mint(subject: "a", role: .agent, unit: "GD-SZ")
        var parts = token.split(separator: ".").map(String.init)
        let adminClaims = TokenAuthority.base64URL(Data(#"{"exp":9999999999,"iat":0,"role":"admin","sub":"a","unit":"HQ"}"#.utf8))
        #expect(throws: TokenAuthority.Failure.badSignature) { try authority.verify(parts[0] + "." + adminClaims + "." + parts[2]) }
        let other = TokenAuthority(secret: String(repeating: "x", count: 32))
        #expect(throws: TokenAuthority.Failure.badSignature) { try other.verify(token) }
        let old = authority.mint(subject: "a", role: .agent, unit: "GD-SZ", lifetime: .seconds(60), now: Date(timeIntervalSinceNow: -3600))
        #expect(throws: TokenAuthority.Failure.expired) { try authority.verify(old) }
        parts[0] = TokenAuthority.base64URL(Data(#"{"alg":"none","typ":"JWT"}"#.utf8))
        #expect(throws: TokenAuthority.Failure.malformed) { try authority.verify(parts.joined(separator: ".")) }
        #expect(throws: TokenAuthority.Failure.malformed) { try authority.verify("not-a-token") }
    }
}

@Suite struct ConfigurationTests {
    let base = [
        "REDRESS_KAFKA_BOOTSTRAP": "127.0.0.1:9092",
        "REDRESS_JWT_SECRET": String(repeating: "s", count: 32),
        "REDRESS_PII_KEY": String(repeating: "p", count: 32),
    ]

    @Test func defaultsAndOverrides() throws {
        var env = base
        env["REDRESS_HTTP_PORT"] = "9000"
        let config = try ServiceConfiguration.fromEnvironment(service: "redress-intake", defaultPort: 8081, environment: env)
        #expect(config.httpPort == 9000)
        #expect(config.postgres.port == 5432)
        #expect(config.kafkaSessionTimeout == .seconds(45))
        #expect(try ServiceConfiguration.fromEnvironment(service: "x", defaultPort: 8081, environment: base).httpPort == 8081)
    }

    @Test func listsEveryProblemAtOnce() {
        let env = ["REDRESS_PG_PORT": "eighty", "REDRESS_JWT_SECRET": "short", "REDRESS_KAFKA_BOOTSTRAP": "x", "REDRESS_LOG_LEVEL": "loud"]
        do {
            _ = try ServiceConfiguration.fromEnvironment(service: "x", defaultPort: 1, environment: env)
            Issue.record("must be refused")
        } catch let invalid as ServiceConfiguration.Invalid {
            #expect(invalid.problems.count == 4)
            #expect(invalid.description.contains("REDRESS_PG_PORT='eighty'"))
            #expect(invalid.description.contains("REDRESS_PII_KEY is not set"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}

@Suite struct AssignmentTests {
    @Test func thousandAssignmentsOverFiveEqualAgentsDifferByAtMostOne() {
        var pool = (1...5).map { Assignment.Candidate(id: "A\($0)", openCases: 0, capacity: 1_000, lastAssigned: nil) }
        var clock = 0.0
        let picks = Assignment.pick(1_000, from: &pool, clock: &clock)
        var counts: [String: Int] = [:]
        for pick in picks { counts[pick!, default: 0] += 1 }
        #expect(counts.count == 5)
        #expect(counts.values.max()! - counts.values.min()! <= 1)
    }

    @Test func nobodyPastCapacityAndLeastLoadedFirst() {
        var pool = [
            Assignment.Candidate(id: "busy", openCases: 9, capacity: 10, lastAssigned: nil),
            Assignment.Candidate(id: "free", openCases: 0, capacity: 2, lastAssigned: nil),
        ]
        var clock = 0.0
        let picks = Assignment.pick(5, from: &pool, clock: &clock)
        #expect(picks == ["free", "free", "busy", nil, nil])
    }

}

@Suite struct StoreLogicTests {
    @Test func migrationSplitterKeepsFunctionBodiesAndQuotesWhole() {
        let sql = """
        CREATE TABLE a (x text DEFAULT 'a;b'); -- a comment; with a semicolon
        CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no; never'; END $$;
        INSERT INTO a VALUES ('it''s; fine')
        """
        let statements = Migrator.statements(sql)
        #expect(statements.count == 3)
        #expect(statements[1].hasSuffix("END $$"))
        #expect(statements[2] == "INSERT INTO a VALUES ('it''s; fine')")
    }

    @Test func everyMigrationSplitsIntoStatements() {
        for migration in Migrations.all {
            let statements = Migrator.statements(migration.sql)
            #expect(statements.count > 3, "migration \(migration.version)")
            #expect(statements.allSatisfy { !$0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty }, "migration \(migration.version)")
        }
        #expect(Migrations.all.map(\.version) == Array(1...Migrations.all.count))
    }

    @Test func lanesAreStableAndSpread() {
        #expect(OutboxEntry.lane(of: "abc") == OutboxEntry.lane(of: "abc"))
        let lanes = Set((0..<1_000).map { _ in OutboxEntry.lane(of: UUID().uuidString.lowercased()) })
        #expect(lanes.count > 50)
        #expect(lanes.allSatisfy { (0..<Int16(OutboxEntry.laneCount)).contains($0) })
    }

    @Test func customerKeyIsStableKeyedAndHidesTheNumber() {
        let key = PersonalDataKey(secret: String(repeating: "k", count: 32))
        #expect(key.customerKey(phone: "13812345678") == key.customerKey(phone: "138 1234 5678"))
        #expect(key.customerKey(phone: "13812345678") != PersonalDataKey(secret: String(repeating: "j", count: 32)).customerKey(phone: "13812345678"))
        #expect(key.customerKey(phone: "13812345678").count == 64)
    }

    @Test func logHandlerScrubsAndEscapes() throws {
        #expect(RedressLogHandler.quote("a\"b\n") == #""a\"b\n""#)
        // A careless log line with a phone and an ID number, in the message and in metadata, in both formats.
        for format in [ServiceConfiguration.LogFormat.json, .text] {
            var handler = RedressLogHandler(label: "test", service: "redress-test", level: .info, format: format)
            handler.metadata = ["caller": "13812345678"]
            let line = handler.line(for: LogEvent(level: .warning, message: "customer 13912345678 with ID 11010519491231002X said \"hi\"\n",
                                                  metadata: ["id": "11010519491231002X"], source: "t", file: #fileID, function: #function, line: #line))
            for clear in ["13812345678", "13912345678", "11010519491231002X"] { #expect(!line.contains(clear), "\(format): \(line)") }
            #expect(line.contains("139****5678") && line.contains("138****5678"), "\(format): masked, not dropped: \(line)")
            #expect(!line.contains("\n"), "one event, one line")
            if format == .json {
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                #expect(object?["level"] as? String == "warning" && object?["service"] as? String == "redress-test")
            }
        }
    }
}
