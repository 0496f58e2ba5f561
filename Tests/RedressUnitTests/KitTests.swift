import CryptoExtras
import Foundation
import JWTKit
import Logging
import Testing
@testable import RedressContracts
@testable import RedressKafka
@testable import RedressDomain
@testable import RedressRouting
@testable import RedressServiceKit
@testable import RedressStore

@Suite struct TokenTests {
    let authority = TokenAuthority(secret: String(repeating: "k", count: 32))

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func base64URL(_ bytes: some DataProtocol) -> String { base64URL(Data(bytes)) }

    /// Signs `claims` with `keys` (another party's signer: an identity provider, or an attacker).
    static func sign(_ keys: JWTKeyCollection, kid: String, _ claims: StaffClaims) async throws -> String {
        try await keys.sign(claims, kid: JWKIdentifier(string: kid))
    }

    static func claims(iss: String = "redress", aud: String = "redress-api", role: String = "agent", lifetime: TimeInterval = 3600,
                       issuedAgo: TimeInterval = 0, nbfIn: TimeInterval? = nil) -> StaffClaims {
        let iat = Date(timeIntervalSinceNow: -issuedAgo)
        return StaffClaims(sub: .init(value: "GD-SZ-AGE01"), role: role, unit: "GD-SZ", iss: .init(value: iss), aud: .init(value: [aud]),
                           iat: .init(value: iat), nbf: nbfIn.map { .init(value: Date(timeIntervalSinceNow: $0)) },
                           exp: .init(value: iat.addingTimeInterval(lifetime)))
    }

    @Test func mintedTokensVerify() async throws {
        let token = await authority.mint(subject: "GD-SZ-AGE01", role: .agent, unit: "GD-SZ")
        let identity = try await authority.verify(token)
        #expect(identity.subject == "GD-SZ-AGE01")
        #expect(identity.role == .agent)
        #expect(identity.unit == "GD-SZ")
    }

    @Test func refusesTamperedForeignExpiredAndUnsignedTokens() async throws {
        let token = await authority.mint(subject: "a", role: .agent, unit: "GD-SZ")
        var parts = token.split(separator: ".").map(String.init)
        let adminClaims = Self.base64URL(Data(#"{"aud":"redress-api","exp":9999999999,"iat":0,"iss":"redress","role":"admin","sub":"a","unit":"HQ"}"#.utf8))
        await #expect(throws: TokenAuthority.Failure.badSignature) { try await authority.verify(parts[0] + "." + adminClaims + "." + parts[2]) }
        let other = TokenAuthority(secret: String(repeating: "x", count: 32))
        await #expect(throws: TokenAuthority.Failure.badSignature) { try await other.verify(token) }
        let old = await authority.mint(subject: "a", role: .agent, unit: "GD-SZ", lifetime: .seconds(60), now: Date(timeIntervalSinceNow: -3600))
        await #expect(throws: TokenAuthority.Failure.expired) { try await authority.verify(old) }
        parts[0] = Self.base64URL(Data(#"{"alg":"none","typ":"JWT"}"#.utf8))
        await #expect(throws: TokenAuthority.Failure.algorithm("none")) { try await authority.verify(parts.joined(separator: ".")) }
        await #expect(throws: TokenAuthority.Failure.malformed) { try await authority.verify("not-a-token") }
    }

    /// iss, aud, nbf and the longest lifetime are checked, whoever signed the token.
    @Test func refusesAnotherIssuerOrAudienceALifetimeTooLongAndAFutureToken() async throws {
        let secret = String(repeating: "k", count: 32)
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: Data(secret.utf8)), digestAlgorithm: .sha256, kid: "dev")
        let strict = TokenAuthority(secret: secret, policy: TokenPolicy(issuer: "redress", audience: "redress-api", maxLifetime: .seconds(8 * 3600)))
        #expect(try await strict.verify(try await Self.sign(keys, kid: "dev", Self.claims())).subject == "GD-SZ-AGE01")
        await #expect(throws: TokenAuthority.Failure.wrongIssuer("someone-else")) { try await strict.verify(try await Self.sign(keys, kid: "dev", Self.claims(iss: "someone-else"))) }
        await #expect(throws: TokenAuthority.Failure.wrongAudience) { try await strict.verify(try await Self.sign(keys, kid: "dev", Self.claims(aud: "billing"))) }
        await #expect(throws: TokenAuthority.Failure.tooLong(8)) { try await strict.verify(try await Self.sign(keys, kid: "dev", Self.claims(lifetime: 9 * 3600))) }
        await #expect(throws: TokenAuthority.Failure.notYetValid) { try await strict.verify(try await Self.sign(keys, kid: "dev", Self.claims(nbfIn: 600))) }
        await #expect(throws: TokenAuthority.Failure.unknownRole("root")) { try await strict.verify(try await Self.sign(keys, kid: "dev", Self.claims(role: "root"))) }
    }

    /// The identity provider's RS256 and ES256 tokens verify against its JWKS; a token signed by a
    /// key not in the JWKS (even with a listed kid), an HS256 token, or one from before a key was
    /// withdrawn is refused.
    @Test func identityProviderTokensVerifyAgainstItsJWKSAndNothingElseDoes() async throws {
        let rsa = try Insecure.RSA.PrivateKey(backing: _RSA.Signing.PrivateKey(keySize: .bits2048))
        let ec = ES256PrivateKey()
        let (n, e) = try rsa.publicKey.getKeyPrimitives()
        let ecPublic = try #require(ec.publicKey.parameters)
        let jwks = """
            {"keys": [{"kty": "RSA", "kid": "idp-rsa", "alg": "RS256", "use": "sig", "n": "\(Self.base64URL(n))", "e": "\(Self.base64URL(e))"},
                      {"kty": "EC", "kid": "idp-ec", "alg": "ES256", "use": "sig", "crv": "P-256", "x": "\(ecPublic.x)", "y": "\(ecPublic.y)"}]}
            """
        let verifier = try TokenAuthority(jwks: jwks, policy: TokenPolicy())
        #expect(!verifier.canMint)
        let provider = JWTKeyCollection()
        await provider.add(rsa: rsa, digestAlgorithm: .sha256, kid: "idp-rsa")
        await provider.add(ecdsa: ec, kid: "idp-ec")
        #expect(try await verifier.verify(try await Self.sign(provider, kid: "idp-rsa", Self.claims())).unit == "GD-SZ")
        #expect(try await verifier.verify(try await Self.sign(provider, kid: "idp-ec", Self.claims())).role == .agent)

        // An attacker's own RSA key, naming the provider's kid.
        let forger = JWTKeyCollection()
        await forger.add(rsa: try Insecure.RSA.PrivateKey(backing: _RSA.Signing.PrivateKey(keySize: .bits2048)), digestAlgorithm: .sha256, kid: "idp-rsa")
        await #expect(throws: TokenAuthority.Failure.badSignature) { try await verifier.verify(try await Self.sign(forger, kid: "idp-rsa", Self.claims())) }
        // HS256, even with a secret the attacker chose: not an algorithm of the provider's keys.
        let hs = JWTKeyCollection()
        await hs.add(hmac: HMACKey(from: Data(String(repeating: "a", count: 32).utf8)), digestAlgorithm: .sha256, kid: "idp-rsa")
        await #expect(throws: TokenAuthority.Failure.algorithm("HS256")) { try await verifier.verify(try await Self.sign(hs, kid: "idp-rsa", Self.claims())) }
        // The provider withdraws its RSA key: tokens it signed are refused from the next reload.
        let rsaToken = try await Self.sign(provider, kid: "idp-rsa", Self.claims())
        try verifier.replaceKeys(jwks: """
            {"keys": [{"kty": "EC", "kid": "idp-ec", "crv": "P-256", "x": "\(ecPublic.x)", "y": "\(ecPublic.y)"}]}
            """)
        await #expect(throws: TokenAuthority.Failure.algorithm("RS256")) { try await verifier.verify(rsaToken) }

        // Behind the identity provider, the console signs its calls with its own ES256 key, whose
        // public half is one more JWKS source of the APIs.
        let (consolePEM, consoleJWKS) = TokenAuthority.newConsoleKey(kid: "redress-console")
        let console = try TokenAuthority(signingKeyPEM: consolePEM, kid: "redress-console", policy: TokenPolicy())
        let api = try TokenAuthority(jwks: [jwks, consoleJWKS], policy: TokenPolicy())
        let consoleToken = await console.mint(subject: "GD-SZ-AGE01", role: .agent, unit: "GD-SZ", lifetime: .seconds(120))
        #expect(try await api.verify(consoleToken).subject == "GD-SZ-AGE01")
        #expect(try await api.verify(try await Self.sign(provider, kid: "idp-ec", Self.claims())).role == .agent, "the provider's tokens still verify")
        await #expect(throws: TokenAuthority.Failure.badSignature, "only a key the APIs list") {
            try await verifier.verify(consoleToken)
        }

        #expect(throws: TokenAuthority.Failure.self) { try TokenAuthority(jwks: #"{"keys": []}"#, policy: TokenPolicy()) }
        #expect(throws: TokenAuthority.Failure.self) { try TokenAuthority(jwks: #"{"keys": [{"kty": "oct", "kid": "x", "k": "c2VjcmV0"}]}"#, policy: TokenPolicy()) }
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

    /// The fetch wait and the consumers' linger: defaults for a real broker, lowered for a development
    /// stack, and a value out of range refused by name rather than clamped.
    @Test func fetchWaitAndLingerAreReadAndBounded() throws {
        let defaults = try ServiceConfiguration.fromEnvironment(service: "redress-notify", defaultPort: 1, environment: base)
        #expect(defaults.kafkaFetchWait == .milliseconds(500) && defaults.consumerLinger == .milliseconds(300))
        var env = base
        env["REDRESS_KAFKA_FETCH_WAIT_MS"] = "10"
        env["REDRESS_CONSUMER_LINGER_MS"] = "0"
        let lowered = try ServiceConfiguration.fromEnvironment(service: "redress-notify", defaultPort: 1, environment: env)
        #expect(lowered.kafkaFetchWait == .milliseconds(10) && lowered.consumerLinger == .zero)
        env["REDRESS_CONSUMER_LINGER_MS"] = "5001"
        let error = #expect(throws: ServiceConfiguration.Invalid.self) {
            try ServiceConfiguration.fromEnvironment(service: "redress-notify", defaultPort: 1, environment: env)
        }
        #expect(error?.problems.contains { $0.contains("REDRESS_CONSUMER_LINGER_MS") } == true)
        // The supervisor gathers a second unless told otherwise, up to ten.
        #expect(defaults.supervisorGather == .seconds(1))
        env["REDRESS_CONSUMER_LINGER_MS"] = "0"
        env["REDRESS_SUPERVISOR_GATHER_MS"] = "250"
        #expect(try ServiceConfiguration.fromEnvironment(service: "redress-supervisor", defaultPort: 1, environment: env).supervisorGather == .milliseconds(250))
        env["REDRESS_SUPERVISOR_GATHER_MS"] = "10001"
        let gather = #expect(throws: ServiceConfiguration.Invalid.self) {
            try ServiceConfiguration.fromEnvironment(service: "redress-supervisor", defaultPort: 1, environment: env)
        }
        #expect(gather?.problems.contains { $0.contains("REDRESS_SUPERVISOR_GATHER_MS") } == true)
    }

    /// A gathering consumer fetches at a third of its linger, never sooner than the configured wait;
    /// one on the assignment path keeps the configured wait. Read from consumers built by a host, as
    /// each service builds its own (the broker address is never dialled: nothing is started).
    @Test func aGatheringConsumerFetchesAtAThirdOfItsLinger() throws {
        var env = base
        env["REDRESS_KAFKA_FETCH_WAIT_MS"] = "10"
        let development = try ServiceHost(configuration: ServiceConfiguration.fromEnvironment(service: "redress-notify", defaultPort: 1, environment: env),
                                          logger: Logger(label: "test"))
        let handler = EventHandler<ComplaintRegistered>(inbox: false) { _, _, _ in }
        #expect(development.consumer(group: "g", topics: ["t"], handler: handler).configuration.fetchWait == .milliseconds(10))
        #expect(development.consumer(group: "g", topics: ["t"], handler: handler, gathers: true).configuration.fetchWait == .milliseconds(100))
        #expect(development.consumer(group: "g", topics: ["t"], handler: handler, gather: .milliseconds(1_200)).configuration.fetchWait == .milliseconds(400))
        // A real broker's 500 ms is longer than any of these and stays for every consumer.
        let production = try ServiceHost(configuration: ServiceConfiguration.fromEnvironment(service: "redress-notify", defaultPort: 1, environment: base),
                                         logger: Logger(label: "test"))
        #expect(production.consumer(group: "g", topics: ["t"], handler: handler, gathers: true).configuration.fetchWait == .milliseconds(500))
        #expect(production.consumer(group: "g", topics: ["t"], handler: handler, gather: .milliseconds(1_200)).configuration.fetchWait == .milliseconds(500))
    }

    /// Each process holds only the secrets it uses: intake and cases the token and customer keys,
    /// the console the token key; the others neither, and are told when they are given one.
    @Test func eachServiceIsGivenOnlyTheSecretsItUses() throws {
        let intake = try ServiceConfiguration.fromEnvironment(service: "redress-intake", defaultPort: 1, environment: base)
        #expect(intake.tokens?.secret != nil && intake.personalDataKey != nil && intake.unusedSecrets.isEmpty)
        let console = try ServiceConfiguration.fromEnvironment(service: "redress-console", defaultPort: 1, environment: base)
        #expect(console.tokens != nil && console.personalDataKey == nil && console.unusedSecrets == ["REDRESS_PII_KEY"])
        let surveys = try ServiceConfiguration.fromEnvironment(service: "redress-surveys", defaultPort: 1, environment: base)
        #expect(surveys.tokens == nil && surveys.personalDataKey == nil && Set(surveys.unusedSecrets) == ["REDRESS_JWT_SECRET", "REDRESS_PII_KEY"])
        #expect(try ServiceConfiguration.fromEnvironment(service: "redress-notify", defaultPort: 1,
                                                         environment: ["REDRESS_KAFKA_BOOTSTRAP": "x"]).unusedSecrets.isEmpty, "starts without either")
        // With an identity provider, the shared secret is neither needed nor used by the APIs.
        var oidc = base
        oidc["REDRESS_OIDC_JWKS"] = "/etc/redress/jwks.json"
        oidc["REDRESS_TOKEN_MAX_HOURS"] = "4"
        let cases = try ServiceConfiguration.fromEnvironment(service: "redress-cases", defaultPort: 1, environment: oidc)
        #expect(cases.tokens?.jwks == "/etc/redress/jwks.json" && cases.tokens?.secret == nil && cases.unusedSecrets == ["REDRESS_JWT_SECRET"])
        #expect(cases.tokens?.policy.maxLifetime == .seconds(4 * 3600))
        oidc["REDRESS_OIDC_JWKS"] = nil
        oidc["REDRESS_JWT_SECRET"] = nil
        #expect(throws: ServiceConfiguration.Invalid.self) { try ServiceConfiguration.fromEnvironment(service: "redress-cases", defaultPort: 1, environment: oidc) }
        // The console behind an identity provider: its own signing key instead of the shared secret.
        let keyFile = FileManager.default.temporaryDirectory.appendingPathComponent("console-\(UUID().uuidString.prefix(6)).pem").path
        try TokenAuthority.newConsoleKey(kid: "c1").privatePEM.write(toFile: keyFile, atomically: true, encoding: .utf8)
        var consoleEnv = base
        consoleEnv["REDRESS_CONSOLE_SIGNING_KEY"] = keyFile
        let signing = try ServiceConfiguration.fromEnvironment(service: "redress-console", defaultPort: 1, environment: consoleEnv)
        #expect(signing.tokens?.signingKey == keyFile && signing.tokens?.secret == nil && signing.unusedSecrets.contains("REDRESS_JWT_SECRET"))
        #expect(throws: ServiceConfiguration.Invalid.self, "a console needs one or the other") {
            try ServiceConfiguration.fromEnvironment(service: "redress-console", defaultPort: 1, environment: ["REDRESS_KAFKA_BOOTSTRAP": "x"])
        }
    }

    /// Kafka's transport security from the environment: complete sets become librdkafka's
    /// properties (and librdkafka itself accepts them); incomplete or contradictory ones are refused
    /// with what to set.
    @Test func kafkaSecurityIsReadCompletelyOrRefused() async throws {
        #expect(try ServiceConfiguration.kafkaSecurity([:]) == ["security.protocol": "plaintext"])
        let ca = FileManager.default.temporaryDirectory.appendingPathComponent("redress-kafka-ca-\(UUID().uuidString.prefix(6)).pem").path
        try "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".write(toFile: ca, atomically: true, encoding: .utf8)
        let sasl = try ServiceConfiguration.kafkaSecurity([
            "REDRESS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "REDRESS_KAFKA_SASL_USERNAME": "redress-intake",
            "REDRESS_KAFKA_SASL_PASSWORD": "s3cret", "REDRESS_KAFKA_SSL_CA_LOCATION": ca,
        ])
        #expect(sasl == ["security.protocol": "sasl_ssl", "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": "redress-intake",
                         "sasl.password": "s3cret", "ssl.ca.location": ca, "ssl.endpoint.identification.algorithm": "https"])
        func problems(_ env: [String: String]) -> [String] {
            do { _ = try ServiceConfiguration.kafkaSecurity(env); return [] } catch let invalid as ServiceConfiguration.Invalid { return invalid.problems } catch { return ["\(error)"] }
        }
        #expect(problems(["REDRESS_KAFKA_SECURITY_PROTOCOL": "sasl_ssl"]).count == 2, "user and password named")
        #expect(problems(["REDRESS_KAFKA_SECURITY_PROTOCOL": "kerberos"]).first?.contains("must be one of plaintext, ssl, sasl_plaintext, sasl_ssl") == true)
        #expect(problems(["REDRESS_KAFKA_SASL_USERNAME": "x"]).first?.contains("REDRESS_KAFKA_SECURITY_PROTOCOL is 'plaintext'") == true)
        #expect(problems(["REDRESS_KAFKA_SECURITY_PROTOCOL": "ssl", "REDRESS_KAFKA_SSL_CERTIFICATE_LOCATION": ca]).first?.contains("go together") == true)
        #expect(problems(["REDRESS_KAFKA_SECURITY_PROTOCOL": "sasl_plaintext", "REDRESS_KAFKA_SASL_MECHANISM": "PLAIN",
                          "REDRESS_KAFKA_SASL_USERNAME": "u", "REDRESS_KAFKA_SASL_PASSWORD": "p"]).first?.contains("in clear") == true)
        #expect(problems(["REDRESS_KAFKA_SECURITY_PROTOCOL": "ssl", "REDRESS_KAFKA_SSL_CA_LOCATION": "/nonexistent/ca.pem"]).first?.contains("cannot be read") == true)
        // librdkafka accepts the properties as they are passed to it (it was built with SASL and TLS);
        // the placeholder CA file is left out, as librdkafka reads it at once.
        let producer = KafkaProducerConfiguration(client: .init(bootstrapServers: "127.0.0.1:1", clientID: "security-check",
                                                                extraProperties: sasl.filter { $0.key != "ssl.ca.location" }))
        let client = try KafkaProducer(configuration: producer, logger: Logger(label: "test"))
        await client.shutdown()
    }

    @Test func listsEveryProblemAtOnce() {
        let env = ["REDRESS_PG_PORT": "eighty", "REDRESS_JWT_SECRET": "short", "REDRESS_KAFKA_BOOTSTRAP": "x", "REDRESS_LOG_LEVEL": "loud"]
        do {
            _ = try ServiceConfiguration.fromEnvironment(service: "redress-intake", defaultPort: 1, environment: env)
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
            // Each migration's last statement ends whole: a function body's `;` never splits it.
            #expect(!statements.isEmpty && !statements.last!.hasSuffix("BEGIN"), "migration \(migration.version)")
            #expect(statements.allSatisfy { !$0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty }, "migration \(migration.version)")
        }
        #expect(Migrations.all.map(\.version) == Array(1...Migrations.all.count))
        // Migration 12 is one statement, a function whose body has several `;`.
        let wakeUp = Migrator.statements(Migrations.all.first { $0.version == 12 }!.sql)
        #expect(wakeUp.count == 1 && wakeUp[0].hasPrefix("CREATE OR REPLACE FUNCTION outbox_notify()") && wakeUp[0].hasSuffix("END $$"))
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
            // Every digit hidden (no end digits to narrow a guess down), the place kept.
            #expect(line.contains("customer *********** with ID") && line.contains("***********"), "\(format): redacted, not dropped: \(line)")
            #expect(!line.contains("5678") && !line.contains("002X"), "\(format): \(line)")
            #expect(!line.contains("\n"), "one event, one line")
            if format == .json {
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                #expect(object?["level"] as? String == "warning" && object?["service"] as? String == "redress-test")
            }
        }
    }
}

@Suite struct RequestEdgeTests {
    @Test func aNULIsFoundOnlyWhereJSONCarriesOne() {
        #expect(NULCharacter.present(inJSON: Array(#"{"a":"x\u0000y"}"#.utf8)))
        #expect(NULCharacter.present(inJSON: Array(#"{"a":"\\\u0000"}"#.utf8)))      // an escaped backslash, then the escape
        #expect(!NULCharacter.present(inJSON: Array(#"{"a":"\\u0000"}"#.utf8)))      // a backslash and the letters u0000
        #expect(NULCharacter.present(inJSON: Array(#"{"a":"\u00001"}"#.utf8)))
        #expect(!NULCharacter.present(inJSON: Array(#"{"a":"\u0001 \u1000"}"#.utf8)))
        #expect(NULCharacter.present(inJSON: [0x7B, 0x00, 0x7D]))
        #expect(!NULCharacter.present(inJSON: Array(#"{"a":"\u000"#.utf8)))          // cut short: no escape to read
        #expect(NULCharacter.present(inPath: "/v1/cases/a%00b") && !NULCharacter.present(inPath: "/v1/cases/a%2500"))
    }

    @Test func routePatternsMatchLiteralsCapturesAndWildcards() {
        #expect(RouteMethods.matches(["v1", "cases", "{key}"], ["v1", "cases", "abc"]))
        #expect(RouteMethods.matches(["v1", "cases", ":key", "actions", "{action}"], ["v1", "cases", "abc", "actions", "close"]))
        #expect(!RouteMethods.matches(["v1", "cases", "{key}"], ["v1", "cases"]))
        #expect(!RouteMethods.matches(["v1", "staff"], ["v1", "inbox"]))
        #expect(RouteMethods.matches(["static", "**"], ["static", "css", "console.css"]))
        #expect(!RouteMethods.matches(["static", "**"], ["other", "x"]))
    }
}

@Suite struct MessageBufferTests {
    static func message(_ partition: Int32, _ offset: Int64) -> KafkaMessage {
        KafkaMessage(topic: "t", partition: partition, offset: offset, key: nil, value: [], headers: [])
    }

    /// A lane whose handler does not take its messages holds its share of the buffer and no more:
    /// its partition is paused, the buffer keeps room for the other lane, and the partition resumes
    /// once the lane is half drained.
    @Test func aFullLanePausesItsPartitionAndLeavesRoomForTheOthers() async throws {
        let buffer = MessageBuffer(capacity: 8, lanes: 2)
        let p0 = TopicPartition(topic: "t", partition: 0), p2 = TopicPartition(topic: "t", partition: 2), p1 = TopicPartition(topic: "t", partition: 1)
        buffer.assign([p0, p1, p2])
        #expect(Set(buffer.takeFlowChanges().resume) == [p0, p1, p2], "assigned partitions start unpaused")
        for offset: Int64 in 0..<3 { buffer.append(Self.message(0, offset)) }
        #expect(buffer.takeFlowChanges().pause.isEmpty, "below its share: nothing paused")
        buffer.append(Self.message(0, 3))
        buffer.append(Self.message(2, 0))   // the same lane (2 mod 2), overfilling it further
        #expect(Set(buffer.takeFlowChanges().pause) == [p0, p2])
        #expect(buffer.pausedPartitions == [p0, p2])
        #expect(buffer.waitForSpace(timeout: 0), "lane 0 is stuck, but the buffer has room for lane 1")
        for offset: Int64 in 0..<3 { buffer.append(Self.message(1, offset)) }
        #expect(try await buffer.next(maxCount: 10, lane: 1)?.map(\.offset) == [0, 1, 2])
        #expect(buffer.takeFlowChanges().resume.isEmpty, "lane 0 still full")
        #expect(try await buffer.next(maxCount: 3, lane: 0)?.count == 3)
        let changes = buffer.takeFlowChanges()
        #expect(Set(changes.resume) == [p0, p2] && changes.pause.isEmpty, "half drained: resumed")
        #expect(buffer.pausedPartitions.isEmpty)
    }
}

@Suite struct MetricHelpTests {
    @Test func everyFamilyGetsAHelpLineOnce() {
        let exposition = Array("""
            # TYPE redress_outbox_pending gauge
            redress_outbox_pending 3
            # HELP already_helped Kept as it was.
            # TYPE already_helped counter
            already_helped 1
            # TYPE redress_http_request_duration_seconds histogram
            redress_http_request_duration_seconds_bucket{le="0.1"} 1

            """.utf8)
        let text = String(decoding: MetricHelp.annotate(exposition), as: UTF8.self)
        #expect(text.contains("# HELP redress_outbox_pending Events this service wrote to the outbox and its relay has not yet published to Kafka (sum over services: the backlog).\n# TYPE redress_outbox_pending gauge"))
        #expect(text.components(separatedBy: "# HELP already_helped").count == 2, "not added twice")
        #expect(text.contains("# HELP redress_http_request_duration_seconds Time from request to response"))
        #expect(text.hasSuffix("} 1\n\n") || text.hasSuffix("} 1\n"), "no line lost or added at the end")
        #expect(MetricHelp.text(for: "redress_unknown_total") == "redress unknown total.")
    }

    /// Every metric name the code makes has its own help text.
    @Test func everyMetricInTheCodeHasItsText() throws {
        let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources")
        var missing: [String] = []
        var found = Set<String>()
        let files = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)!.compactMap { $0 as? URL }.filter { $0.pathExtension == "swift" }
        let pattern = try Regex(#"(?:label: |Tally\(|record\()"(redress_[a-z_]+)""#)
        for file in files {
            let text = try String(contentsOf: file, encoding: .utf8)
            for match in text.matches(of: pattern) {
                let name = String(match.output[1].substring ?? "")
                found.insert(name)
                if MetricHelp.texts[name] == nil { missing.append("\(name) (\(file.lastPathComponent))") }
            }
        }
        #expect(found.count >= 30, "the scan finds the metrics (\(found.count))")
        #expect(missing.isEmpty, "add help texts to MetricHelp.texts: \(Set(missing).sorted())")
    }
}
