import Foundation
import Logging
import NIOSSL
import PostgresNIO
import RedressKafka

/// Every setting of a Redress process, read from environment variables — the one table in the README.
public struct ServiceConfiguration: Sendable {
    public var serviceName: String
    public var instance: String
    public var httpHost: String
    public var httpPort: Int
    public var postgres: PostgresSettings
    public var kafkaBootstrap: String
    public var kafkaSessionTimeout: Duration
    /// librdkafka's security properties (`security.protocol`, `sasl.*`, `ssl.*`), from `REDRESS_KAFKA_*`.
    public var kafkaSecurity: [String: String] = [:]
    /// How bearer tokens are verified (and, with a shared secret, minted); nil for a service that
    /// takes no tokens.
    public var tokens: TokenSettings?
    /// The key of the customer-matching hash; nil for a service that matches no customers.
    public var personalDataKey: String?
    /// Settings this process was given but does not use (named in a warning at start).
    public var unusedSecrets: [String] = []
    public var logLevel: Logger.Level
    public var logFormat: LogFormat
    public var migrateOnStart: Bool
    /// Batches each consumer handles at once (in different partitions).
    public var consumerLanes: Int
    /// Attempts at an event that keeps failing before it goes to the dead-letter topic.
    public var consumerMaxAttempts: Int
    /// `REDRESS_KAFKA_FETCH_WAIT_MS` (fetch.wait.max.ms): how long a broker may hold an empty fetch.
    /// A production broker answers a held fetch as soon as data arrives, so the wait costs nothing
    /// there; librdkafka's mock cluster (the development broker) holds it the whole time, so each
    /// hop waits for it at low load (ARCHITECTURE.md, "Where the time goes").
    public var kafkaFetchWait: Duration = .milliseconds(500)
    /// `REDRESS_CONSUMER_LINGER_MS`: how long a consumer off the path to an owner (notify, the
    /// supervisor, surveys, cases' SLA and survey consumers) waits after its first message to
    /// gather a batch. Routing's and cases' assignment consumers never wait. At low load each small
    /// batch cost a transaction, an inbox insert and its handler's statements: gathered, the CPU goes
    /// to the assignment path instead.
    public var consumerLinger: Duration = .milliseconds(300)
    /// `REDRESS_SUPERVISOR_GATHER_MS`: how long the supervisor gathers events before it rebuilds the
    /// clocks they touch. A complaint's registration, assignment and acknowledgement arrive within
    /// about a second of each other; gathered for a second, one rebuild serves all three, where with
    /// the consumers' linger each rebuilt the same clocks again (the supervisor's CPU fell by a third
    /// at 1,000/s). Clocks run in hours and days, and the deadline scan runs each second.
    public var supervisorGather: Duration = .milliseconds(1_000)
    /// The fetch wait of a consumer that gathers for `linger` after its first message: a third of
    /// that linger when it is longer than `REDRESS_KAFKA_FETCH_WAIT_MS`. A gathering consumer gains
    /// nothing from fetches answered within milliseconds, and on the development broker, which holds
    /// an empty fetch for the whole wait and answers a full one at once, each short fetch is a round
    /// trip that the broker and the consumer pay for in CPU the assignment path needs (measured in a
    /// surge: ARCHITECTURE.md, "Sixth pass"). A real broker answers a held fetch when data arrives, so
    /// with its 500 ms the configured wait is the longer and stays.
    public func fetchWait(gatheringFor linger: Duration) -> Duration {
        max(kafkaFetchWait, linger / 3)
    }

    public struct PostgresSettings: Sendable {
        public var host: String
        public var port: Int
        public var user: String
        public var password: String?
        public var database: String
        public var poolSize: Int
        /// `REDRESS_PG_TLS`: `disable` (development), `require` (encrypted, the server not
        /// authenticated), or `verify-full` (encrypted, the server's certificate checked against
        /// `REDRESS_PG_TLS_CA` — or the system's roots — and its name against `REDRESS_PG_HOST`).
        public var tls: TLSMode = .disable
        public var tlsCA: String?

        public enum TLSMode: String, Sendable, CaseIterable {
            case disable, require
            case verifyFull = "verify-full"
        }

        /// The PostgreSQL settings alone: what `redressctl` needs to migrate and seed.
        public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> PostgresSettings {
            var env = EnvironmentReader(environment)
            let settings = read(&env)
            try env.check()
            return settings
        }

        static func read(_ env: inout EnvironmentReader) -> PostgresSettings {
            var settings = PostgresSettings(
                host: env.value("REDRESS_PG_HOST") ?? "127.0.0.1",
                port: env.integer("REDRESS_PG_PORT", 5432, 1...65535),
                user: env.value("REDRESS_PG_USER") ?? "redress",
                password: env.value("REDRESS_PG_PASSWORD"),
                database: env.value("REDRESS_PG_DATABASE") ?? "redress",
                poolSize: env.integer("REDRESS_PG_POOL_SIZE", 12, 1...200))
            if let raw = env.value("REDRESS_PG_TLS") {
                if let mode = TLSMode(rawValue: raw) {
                    settings.tls = mode
                } else {
                    env.problems.append("REDRESS_PG_TLS='\(raw)' must be one of \(TLSMode.allCases.map(\.rawValue).joined(separator: ", "))")
                }
            }
            settings.tlsCA = env.value("REDRESS_PG_TLS_CA")
            if let ca = settings.tlsCA {
                if settings.tls != .verifyFull {
                    env.problems.append("REDRESS_PG_TLS_CA is set but REDRESS_PG_TLS is '\(settings.tls.rawValue)': set REDRESS_PG_TLS=verify-full to check the server against it")
                } else if !FileManager.default.isReadableFile(atPath: ca) {
                    env.problems.append("REDRESS_PG_TLS_CA=\(ca) cannot be read: give the PEM file of the CA that signed the server's certificate")
                }
            }
            return settings
        }

        /// What PostgresNIO is given for `tls`; a CA file that cannot be loaded is an error at start.
        public func tlsConfiguration() throws -> PostgresClient.Configuration.TLS {
            switch tls {
            case .disable:
                return .disable
            case .require:
                var context = TLSConfiguration.makeClientConfiguration()
                context.certificateVerification = .none
                return .require(context)
            case .verifyFull:
                var context = TLSConfiguration.makeClientConfiguration()
                context.certificateVerification = .fullVerification
                if let tlsCA {
                    context.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(tlsCA))
                }
                return .require(context)
            }
        }

        public func clientConfiguration() throws -> PostgresClient.Configuration {
            var configuration = PostgresClient.Configuration(
                host: host, port: port, username: user, password: password, database: database, tls: try tlsConfiguration())
            configuration.options.maximumConnections = poolSize
            configuration.options.minimumConnections = 0
            return configuration
        }
    }

    /// Bearer tokens: the identity provider's JWKS (production) or a shared HS256 secret
    /// (development and tests), and the policy every token must meet.
    public struct TokenSettings: Sendable {
        public var policy: TokenPolicy
        /// `REDRESS_OIDC_JWKS`: a file path or an https URL.
        public var jwks: String?
        public var jwksRefresh: Duration
        /// `REDRESS_JWT_SECRET`, used only when no JWKS is configured.
        public var secret: String?
        /// The console's own signing key (`REDRESS_CONSOLE_SIGNING_KEY`, a PEM file) and its key id:
        /// with an identity provider, the console signs its calls to the APIs with it (ES256).
        public var signingKey: String? = nil
        public var signingKid: String = "redress-console"
    }

    /// The secrets each service uses, and so is given and requires: nothing else. A process that
    /// never sees a token or a customer's number holds neither key, so its compromise exposes neither.
    public static let secretsUsed: [String: Set<Secret>] = [
        "redress-intake": [.tokens, .personalData],
        "redress-cases": [.tokens, .personalData],
        "redress-console": [.tokens],
    ]

    public enum Secret: Sendable {
        case tokens, personalData
    }

    public enum LogFormat: String, Sendable {
        case json, text
    }

    /// What was wrong with the environment, all of it at once, and what to set.
    public struct Invalid: Error, CustomStringConvertible {
        public var problems: [String]
        public init(problems: [String]) { self.problems = problems }
        public var description: String {
            "configuration is invalid:\n" + problems.map { "  - \($0)" }.joined(separator: "\n")
        }
    }

    public static func fromEnvironment(
        service: String, defaultPort: Int, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> ServiceConfiguration {
        var env = EnvironmentReader(environment)
        let postgres = PostgresSettings.read(&env)
        func value(_ name: String) -> String? { env.value(name) }
        func integer(_ name: String, _ fallback: Int, _ range: ClosedRange<Int>) -> Int { env.integer(name, fallback, range) }
        func required(_ name: String, _ why: String) -> String { env.required(name, why) }

        var bootstrap = value("REDRESS_KAFKA_BOOTSTRAP")
        if bootstrap == nil {
            let file = value("REDRESS_KAFKA_BOOTSTRAP_FILE") ?? "run/kafka.bootstrap"
            if let text = try? String(contentsOfFile: file, encoding: .utf8) {
                bootstrap = text.trimmingCharacters(in: .whitespacesAndNewlines)
            } else {
                env.problems.append("REDRESS_KAFKA_BOOTSTRAP is not set and \(file) (REDRESS_KAFKA_BOOTSTRAP_FILE) cannot be read: start the development broker (scripts/up) or name the brokers")
            }
        }

        let logLevel: Logger.Level
        if let raw = value("REDRESS_LOG_LEVEL") {
            if let level = Logger.Level(rawValue: raw.lowercased()) {
                logLevel = level
            } else {
                env.problems.append("REDRESS_LOG_LEVEL='\(raw)' must be one of trace, debug, info, notice, warning, error, critical")
                logLevel = .info
            }
        } else {
            logLevel = .info
        }
        var logFormat = LogFormat.json
        if let raw = value("REDRESS_LOG_FORMAT") {
            if let format = LogFormat(rawValue: raw) { logFormat = format } else { env.problems.append("REDRESS_LOG_FORMAT='\(raw)' must be json or text") }
        }

        let uses = Self.secretsUsed[service] ?? []
        var unused: [String] = []
        var tokens: TokenSettings?
        if uses.contains(.tokens) {
            let jwks = value("REDRESS_OIDC_JWKS")
            var secret = value("REDRESS_JWT_SECRET")
            let signingKey = service == "redress-console" ? value("REDRESS_CONSOLE_SIGNING_KEY") : nil
            if let signingKey {
                // The console signs with its own key: the shared secret is neither needed nor used.
                if !FileManager.default.isReadableFile(atPath: signingKey) {
                    env.problems.append("REDRESS_CONSOLE_SIGNING_KEY=\(signingKey) cannot be read: give the PEM file `redressctl console-key` wrote")
                }
                if secret != nil { unused.append("REDRESS_JWT_SECRET") }
                secret = nil
            } else if service == "redress-console" {
                // The console verifies no tokens; it mints them, with the shared secret or its own key.
                let given = required("REDRESS_JWT_SECRET", "the console signs its calls to the APIs: set REDRESS_CONSOLE_SIGNING_KEY (its own ES256 key, when the APIs take an identity provider's tokens) or, for development, REDRESS_JWT_SECRET")
                if !given.isEmpty, given.utf8.count < 32 {
                    env.problems.append("REDRESS_JWT_SECRET is \(given.utf8.count) bytes; use at least 32 so tokens cannot be brute-forced")
                }
                if jwks != nil { unused.append("REDRESS_OIDC_JWKS") }
            } else if jwks == nil {
                let given = required("REDRESS_JWT_SECRET", "set REDRESS_OIDC_JWKS (the identity provider's keys, a file or an https URL) or, for development, REDRESS_JWT_SECRET (the HS256 key, at least 32 characters)")
                if !given.isEmpty, given.utf8.count < 32 {
                    env.problems.append("REDRESS_JWT_SECRET is \(given.utf8.count) bytes; use at least 32 so tokens cannot be brute-forced")
                }
            } else if secret != nil, service != "redress-console" {
                // With an identity provider, HS256 tokens are never accepted: the secret would be unused.
                unused.append("REDRESS_JWT_SECRET")
                secret = nil
            }
            let maxHours = integer("REDRESS_TOKEN_MAX_HOURS", 12, 1...168)
            tokens = TokenSettings(
                policy: TokenPolicy(issuer: value("REDRESS_TOKEN_ISSUER") ?? "redress", audience: value("REDRESS_TOKEN_AUDIENCE") ?? "redress-api",
                                    maxLifetime: .seconds(maxHours * 3600)),
                jwks: service == "redress-console" ? nil : jwks, jwksRefresh: .seconds(integer("REDRESS_OIDC_JWKS_REFRESH_SECONDS", 600, 10...86_400)),
                secret: secret, signingKey: signingKey, signingKid: value("REDRESS_CONSOLE_SIGNING_KID") ?? "redress-console")
        } else {
            unused += ["REDRESS_JWT_SECRET", "REDRESS_OIDC_JWKS"].filter { value($0) != nil }
        }
        var piiKey: String?
        if uses.contains(.personalData) {
            let key = required("REDRESS_PII_KEY", "the key of the hash that matches customers without revealing their numbers (at least 32 characters)")
            if !key.isEmpty, key.utf8.count < 32 {
                env.problems.append("REDRESS_PII_KEY is \(key.utf8.count) bytes; use at least 32")
            }
            piiKey = key
        } else if value("REDRESS_PII_KEY") != nil {
            unused.append("REDRESS_PII_KEY")
        }

        let configuration = ServiceConfiguration(
            serviceName: service,
            instance: value("REDRESS_INSTANCE") ?? "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)",
            httpHost: value("REDRESS_HTTP_HOST") ?? "127.0.0.1",
            httpPort: integer("REDRESS_HTTP_PORT", defaultPort, 0...65535),
            postgres: postgres,
            kafkaBootstrap: bootstrap ?? "",
            kafkaSessionTimeout: .milliseconds(integer("REDRESS_KAFKA_SESSION_TIMEOUT_MS", 45_000, 6_000...300_000)),
            kafkaSecurity: Self.readKafkaSecurity(&env),
            tokens: tokens,
            personalDataKey: piiKey,
            unusedSecrets: unused,
            logLevel: logLevel,
            logFormat: logFormat,
            migrateOnStart: (value("REDRESS_MIGRATE_ON_START") ?? "true") != "false",
            consumerLanes: integer("REDRESS_CONSUMER_LANES", 1, 1...64),
            consumerMaxAttempts: integer("REDRESS_CONSUMER_MAX_ATTEMPTS", 5, 1...100),
            kafkaFetchWait: .milliseconds(integer("REDRESS_KAFKA_FETCH_WAIT_MS", 500, 1...10_000)),
            consumerLinger: .milliseconds(integer("REDRESS_CONSUMER_LINGER_MS", 300, 0...5_000)),
            supervisorGather: .milliseconds(integer("REDRESS_SUPERVISOR_GATHER_MS", 1_000, 0...10_000)))
        try env.check()
        return configuration
    }

    public func kafkaClient(_ role: String) -> KafkaClientConfiguration {
        KafkaClientConfiguration(bootstrapServers: kafkaBootstrap, clientID: "\(serviceName)-\(role)-\(instance)", extraProperties: kafkaSecurity)
    }

    /// How Redress authenticates to Kafka and protects the connection: the librdkafka properties
    /// for `REDRESS_KAFKA_SECURITY_PROTOCOL` (`plaintext`, the default, for development; `ssl`;
    /// `sasl_plaintext`; `sasl_ssl` for any production cluster) with `REDRESS_KAFKA_SASL_MECHANISM`
    /// (`SCRAM-SHA-512`, `SCRAM-SHA-256` or `PLAIN`), `REDRESS_KAFKA_SASL_USERNAME` and `_PASSWORD`
    /// (each service its own principal), `REDRESS_KAFKA_SSL_CA_LOCATION` (else the system's roots),
    /// and for mutual TLS `REDRESS_KAFKA_SSL_CERTIFICATE_LOCATION` with `REDRESS_KAFKA_SSL_KEY_LOCATION`
    /// (and `REDRESS_KAFKA_SSL_KEY_PASSWORD`). An incomplete set is refused with what is missing.
    public static func kafkaSecurity(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> [String: String] {
        var env = EnvironmentReader(environment)
        let properties = readKafkaSecurity(&env)
        try env.check()
        return properties
    }

    static func readKafkaSecurity(_ env: inout EnvironmentReader) -> [String: String] {
        let protocols = ["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"]
        let mechanisms = ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]
        let raw = (env.value("REDRESS_KAFKA_SECURITY_PROTOCOL") ?? "plaintext").lowercased()
        guard protocols.contains(raw) else {
            env.problems.append("REDRESS_KAFKA_SECURITY_PROTOCOL='\(raw)' must be one of \(protocols.joined(separator: ", "))")
            return [:]
        }
        var properties = ["security.protocol": raw]
        let sasl = raw.hasPrefix("sasl_"), tls = raw.hasSuffix("ssl")
        let saslNames = ["REDRESS_KAFKA_SASL_MECHANISM", "REDRESS_KAFKA_SASL_USERNAME", "REDRESS_KAFKA_SASL_PASSWORD"]
        let tlsNames = ["REDRESS_KAFKA_SSL_CA_LOCATION", "REDRESS_KAFKA_SSL_CERTIFICATE_LOCATION", "REDRESS_KAFKA_SSL_KEY_LOCATION", "REDRESS_KAFKA_SSL_KEY_PASSWORD"]
        if sasl {
            let mechanism = env.value("REDRESS_KAFKA_SASL_MECHANISM") ?? "SCRAM-SHA-512"
            if !mechanisms.contains(mechanism) {
                env.problems.append("REDRESS_KAFKA_SASL_MECHANISM='\(mechanism)' must be one of \(mechanisms.joined(separator: ", "))")
            }
            if raw == "sasl_plaintext", mechanism == "PLAIN" {
                env.problems.append("REDRESS_KAFKA_SASL_MECHANISM=PLAIN over sasl_plaintext sends the password in clear: use sasl_ssl, or SCRAM")
            }
            properties["sasl.mechanisms"] = mechanism
            properties["sasl.username"] = env.required("REDRESS_KAFKA_SASL_USERNAME", "this service's Kafka principal (e.g. redress-intake)")
            properties["sasl.password"] = env.required("REDRESS_KAFKA_SASL_PASSWORD", "the password of REDRESS_KAFKA_SASL_USERNAME")
        } else {
            for name in saslNames where env.value(name) != nil {
                env.problems.append("\(name) is set but REDRESS_KAFKA_SECURITY_PROTOCOL is '\(raw)': set it to sasl_ssl (or sasl_plaintext) to use SASL")
            }
        }
        if tls {
            for (name, property) in [("REDRESS_KAFKA_SSL_CA_LOCATION", "ssl.ca.location"), ("REDRESS_KAFKA_SSL_CERTIFICATE_LOCATION", "ssl.certificate.location"),
                                     ("REDRESS_KAFKA_SSL_KEY_LOCATION", "ssl.key.location")] {
                guard let path = env.value(name) else { continue }
                if FileManager.default.isReadableFile(atPath: path) {
                    properties[property] = path
                } else {
                    env.problems.append("\(name)=\(path) cannot be read")
                }
            }
            if (env.value("REDRESS_KAFKA_SSL_CERTIFICATE_LOCATION") == nil) != (env.value("REDRESS_KAFKA_SSL_KEY_LOCATION") == nil) {
                env.problems.append("REDRESS_KAFKA_SSL_CERTIFICATE_LOCATION and REDRESS_KAFKA_SSL_KEY_LOCATION go together (the client certificate and its key)")
            }
            if let password = env.value("REDRESS_KAFKA_SSL_KEY_PASSWORD") { properties["ssl.key.password"] = password }
            // The broker's certificate is checked, and its name against the bootstrap address.
            properties["ssl.endpoint.identification.algorithm"] = "https"
        } else {
            for name in tlsNames where env.value(name) != nil {
                env.problems.append("\(name) is set but REDRESS_KAFKA_SECURITY_PROTOCOL is '\(raw)': set it to ssl or sasl_ssl to use TLS")
            }
        }
        return properties
    }
}

/// Reads variables and collects every problem, so one start-up error lists all that needs fixing.
/// Services with settings of their own read them with it too.
public struct EnvironmentReader {
    let environment: [String: String]
    public var problems: [String] = []

    public init(_ environment: [String: String]) {
        self.environment = environment
    }

    public func value(_ name: String) -> String? {
        guard let v = environment[name], !v.isEmpty else { return nil }
        return v
    }

    public mutating func integer(_ name: String, _ fallback: Int, _ range: ClosedRange<Int>) -> Int {
        guard let raw = value(name) else { return fallback }
        guard let number = Int(raw), range.contains(number) else {
            problems.append("\(name)='\(raw)' must be a whole number in \(range.lowerBound)...\(range.upperBound)")
            return fallback
        }
        return number
    }

    public mutating func required(_ name: String, _ why: String) -> String {
        if let v = value(name) { return v }
        problems.append("\(name) is not set: \(why)")
        return ""
    }

    public func check() throws {
        guard problems.isEmpty else { throw ServiceConfiguration.Invalid(problems: problems) }
    }
}
