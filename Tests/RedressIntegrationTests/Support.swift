import Foundation
import Logging
import PostgresNIO
import RedressKafka
import RedressServiceKit
import RedressStore
import Testing

/// Real PostgreSQL from scripts/test (REDRESS_PG_*): each test gets a database of its own.
enum TestDatabase {
    static let logger: Logger = {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        return logger
    }()

    static func settings(database: String) throws -> ServiceConfiguration.PostgresSettings {
        let env = ProcessInfo.processInfo.environment
        guard env["REDRESS_PG_PORT"] != nil else {
            throw TestSetupError("REDRESS_PG_PORT is not set: run the integration tests through scripts/test, which starts PostgreSQL")
        }
        var settings = try ServiceConfiguration.PostgresSettings.fromEnvironment(env)
        settings.database = database
        settings.poolSize = 8
        return settings
    }

    /// Runs `body` with a client of a fresh, migrated database whose name it also passes.
    static func withFresh<T: Sendable>(seed: Bool = true, _ body: @Sendable (PostgresClient, String) async throws -> T) async throws -> T {
        let name = "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
        try await withClient(database: ProcessInfo.processInfo.environment["REDRESS_PG_DATABASE"] ?? "redress") { admin in
            try await admin.query("CREATE DATABASE \(unescaped: String(name))", logger: logger)
        }
        return try await withClient(database: String(name)) { client in
            try await Migrator.migrate(client, logger: logger)
            if seed { try await OrgStore.seed(demoOrganisation(), client: client, logger: logger) }
            return try await body(client, String(name))
        }
    }

    static func withClient<T: Sendable>(database: String, _ body: @Sendable (PostgresClient) async throws -> T) async throws -> T {
        let client = PostgresClient(configuration: try settings(database: database).clientConfiguration(), backgroundLogger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }

    static func demoOrganisation() throws -> SeedFile {
        try JSONDecoder().decode(SeedFile.self, from: Data(contentsOf: repo.appendingPathComponent("deploy/seed/org.json")))
    }

    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func count(_ client: PostgresClient, _ query: PostgresQuery) async throws -> Int {
        for try await n in try await client.query(query, logger: logger).decode(Int64.self) { return Int(n) }
        return 0
    }
}

struct TestSetupError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The real Kafka protocol: librdkafka's mock cluster in this process, one per test.
enum TestKafka {
    static func cluster(topics: [String], partitions: Int = 4) throws -> MockCluster {
        let cluster = try MockCluster(logger: TestDatabase.logger)
        for topic in topics { try cluster.createTopic(topic, partitions: partitions) }
        return cluster
    }

    static func producer(_ cluster: MockCluster) throws -> KafkaProducer {
        try KafkaProducer(configuration: KafkaProducerConfiguration(client: .init(bootstrapServers: cluster.bootstrapServers, clientID: "test-producer")),
                          logger: TestDatabase.logger)
    }

    static func consumerConfiguration(_ cluster: MockCluster, group: String, topics: [String]) -> KafkaConsumerConfiguration {
        var configuration = KafkaConsumerConfiguration(client: .init(bootstrapServers: cluster.bootstrapServers, clientID: "test-\(group)"),
                                                       groupID: group, topics: topics)
        // The mock cluster makes a join wait the session timeout less one second.
        configuration.sessionTimeout = .seconds(6)
        configuration.heartbeatInterval = .seconds(1)
        return configuration
    }

    static func consumer(_ cluster: MockCluster, group: String, topics: [String]) throws -> KafkaConsumer {
        try KafkaConsumer(configuration: consumerConfiguration(cluster, group: group, topics: topics), logger: TestDatabase.logger)
    }

    /// Reads until `count` messages arrived or `timeout` passed.
    static func drain(_ consumer: KafkaConsumer, count: Int, timeout: Duration = .seconds(30)) async throws -> [KafkaMessage] {
        var received: [KafkaMessage] = []
        let deadline = ContinuousClock.now + timeout
        while received.count < count, ContinuousClock.now < deadline {
            let batch = try await consumer.nextBatch(maxCount: 1000, timeout: .milliseconds(500))
            if let batch { received += batch }
        }
        return received
    }

    /// Reads from every consumer in turn until `count` distinct values arrived between them (or a
    /// generous ceiling passed); returns what each one received. A condition, not a fixed wait.
    static func drain(_ consumers: [KafkaConsumer], distinct count: Int, timeout: Duration = .seconds(60)) async throws -> [[KafkaMessage]] {
        var received = Array(repeating: [KafkaMessage](), count: consumers.count)
        var seen = Set<String>()
        let deadline = ContinuousClock.now + timeout
        while seen.count < count, ContinuousClock.now < deadline {
            for (index, consumer) in consumers.enumerated() {
                guard let batch = try await consumer.nextBatch(maxCount: 1000, timeout: .milliseconds(100)) else { continue }
                received[index] += batch
                for message in batch { seen.insert(String(decoding: message.value, as: UTF8.self)) }
            }
        }
        return received
    }

    static func message(_ topic: String, key: String, _ text: String) -> KafkaOutgoingMessage {
        KafkaOutgoingMessage(topic: topic, key: key, value: Array(text.utf8))
    }
}

/// A service host on a test database, for a service's router through Hummingbird's test client and
/// its handlers called directly. The broker address is a dead end: these hosts never send.
enum TestHost {
    static let secret = String(repeating: "redress-test-", count: 3)
    static let tokens = TokenAuthority(secret: secret)

    static func make(service: String, database: String) throws -> ServiceHost {
        var env = ProcessInfo.processInfo.environment
        env["REDRESS_PG_DATABASE"] = database
        // As production runs: the service role (row-level security applies to it), the schema migrated by its owner.
        env["REDRESS_PG_USER"] = "redress_service"
        env["REDRESS_MIGRATE_ON_START"] = "false"
        env["REDRESS_KAFKA_BOOTSTRAP"] = "127.0.0.1:1"
        env["REDRESS_JWT_SECRET"] = secret
        env["REDRESS_PII_KEY"] = secret + "pii"
        let configuration = try ServiceConfiguration.fromEnvironment(service: service, defaultPort: 0, environment: env)
        return try ServiceHost(configuration: configuration, logger: TestDatabase.logger)
    }

    /// Runs `body` with a host whose database pool is running.
    static func withHost<T: Sendable>(service: String, database: String, _ body: @Sendable (ServiceHost) async throws -> T) async throws -> T {
        let host = try make(service: service, database: database)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await host.postgres.run() }
            defer { group.cancelAll() }
            return try await body(host)
        }
    }
}

/// Waits until `condition` holds, polling; fails the test with `what` after the timeout.
func eventually(_ what: String, timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(100))
    }
    Issue.record("timed out waiting for: \(what)")
    throw TestSetupError("timed out waiting for: \(what)")
}
