import Foundation
import Logging
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
    public var jwtSecret: String
    public var personalDataKey: String
    public var logLevel: Logger.Level
    public var logFormat: LogFormat
    public var migrateOnStart: Bool
    /// Batches each consumer handles at once (in different partitions).
    public var consumerLanes: Int
    /// Attempts at an event that keeps failing before it goes to the dead-letter topic.
    public var consumerMaxAttempts: Int

    public struct PostgresSettings: Sendable {
        public var host: String
        public var port: Int
        public var user: String
        public var password: String?
        public var database: String
        public var poolSize: Int

        /// The PostgreSQL settings alone: what `redressctl` needs to migrate and seed.
        public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> PostgresSettings {
            var env = EnvironmentReader(environment)
            let settings = read(&env)
            try env.check()
            return settings
        }

        static func read(_ env: inout EnvironmentReader) -> PostgresSettings {
            PostgresSettings(
                host: env.value("REDRESS_PG_HOST") ?? "127.0.0.1",
                port: env.integer("REDRESS_PG_PORT", 5432, 1...65535),
                user: env.value("REDRESS_PG_USER") ?? "redress",
                password: env.value("REDRESS_PG_PASSWORD"),
                database: env.value("REDRESS_PG_DATABASE") ?? "redress",
                poolSize: env.integer("REDRESS_PG_POOL_SIZE", 12, 1...200))
        }

        public func clientConfiguration() -> PostgresClient.Configuration {
            var configuration = PostgresClient.Configuration(
                host: host, port: port, username: user, password: password, database: database, tls: .disable)
            configuration.options.maximumConnections = poolSize
            configuration.options.minimumConnections = 0
            return configuration
        }
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

        let secret = required("REDRESS_JWT_SECRET", "the HS256 key bearer tokens are signed with (at least 32 characters)")
        if !secret.isEmpty, secret.utf8.count < 32 {
            env.problems.append("REDRESS_JWT_SECRET is \(secret.utf8.count) bytes; use at least 32 so tokens cannot be brute-forced")
        }
        let piiKey = required("REDRESS_PII_KEY", "the key of the hash that matches customers without revealing their numbers (at least 32 characters)")
        if !piiKey.isEmpty, piiKey.utf8.count < 32 {
            env.problems.append("REDRESS_PII_KEY is \(piiKey.utf8.count) bytes; use at least 32")
        }

        let configuration = ServiceConfiguration(
            serviceName: service,
            instance: value("REDRESS_INSTANCE") ?? "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)",
            httpHost: value("REDRESS_HTTP_HOST") ?? "127.0.0.1",
            httpPort: integer("REDRESS_HTTP_PORT", defaultPort, 0...65535),
            postgres: postgres,
            kafkaBootstrap: bootstrap ?? "",
            kafkaSessionTimeout: .milliseconds(integer("REDRESS_KAFKA_SESSION_TIMEOUT_MS", 45_000, 6_000...300_000)),
            jwtSecret: secret,
            personalDataKey: piiKey,
            logLevel: logLevel,
            logFormat: logFormat,
            migrateOnStart: (value("REDRESS_MIGRATE_ON_START") ?? "true") != "false",
            consumerLanes: integer("REDRESS_CONSUMER_LANES", 4, 1...64),
            consumerMaxAttempts: integer("REDRESS_CONSUMER_MAX_ATTEMPTS", 5, 1...100))
        try env.check()
        return configuration
    }

    public func kafkaClient(_ role: String) -> KafkaClientConfiguration {
        KafkaClientConfiguration(bootstrapServers: kafkaBootstrap, clientID: "\(serviceName)-\(role)-\(instance)")
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
