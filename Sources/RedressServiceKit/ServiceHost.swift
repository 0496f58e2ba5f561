import Foundation
import Hummingbird
import Logging
import Metrics
import NIOConcurrencyHelpers
import PostgresNIO
import Prometheus
import RedressContracts
import RedressKafka
import RedressStore
import ServiceLifecycle

/// What every Redress process shares: configuration, database pool, producer, token authority,
/// metrics registry, and the start-up gate. A service library takes a host, adds its routes and
/// consumers, and `run`s.
public final class ServiceHost: Sendable {
    public let configuration: ServiceConfiguration
    public let logger: Logger
    public let postgres: PostgresClient
    public let producer: KafkaProducer
    let tokenAuthority: TokenAuthority?
    let personalDataKey: PersonalDataKey?
    public let gate = StartupGate()
    public let registry: PrometheusCollectorRegistry
    private let readiness = NIOLockedValueBox<(at: ContinuousClock.Instant, ready: Bool, detail: String)?>(nil)
    private let brokerNeeded = NIOLockedValueBox(true)
    /// The methods each path answers, for 405 with `Allow` (filled from the router when the process runs).
    public let routeMethods = RouteMethods()

    /// Process-wide set-up (logging and metrics back ends) happens once; tests create hosts freely.
    private static let metricsRegistry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
        ]
        // How long an SLA clock ran before it was missed: hours to the statutory 60 days.
        factory.valueHistogramBuckets["redress_sla_time_to_breach_seconds"] = [3600, 4 * 3600, 12 * 3600, 86_400, 2 * 86_400, 5 * 86_400,
                                                                                10 * 86_400, 15 * 86_400, 30 * 86_400, 60 * 86_400]
        // Requests one intake transaction registered (group commit).
        factory.valueHistogramBuckets["redress_intake_batch_size"] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 500]
        MetricsSystem.bootstrap(factory)
        return registry
    }()

    public init(configuration: ServiceConfiguration, logger: Logger) throws {
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "instance"] = "\(configuration.instance)"
        self.logger = logger
        self.registry = Self.metricsRegistry
        var postgresConfiguration = try configuration.postgres.clientConfiguration()
        // The outbox records each row's writer from this name, and only this service's relay publishes it.
        postgresConfiguration.options.additionalStartupParameters = [("application_name", configuration.serviceName)]
        self.postgres = PostgresClient(configuration: postgresConfiguration, backgroundLogger: logger)
        var producerConfiguration = KafkaProducerConfiguration(client: configuration.kafkaClient("producer"))
        producerConfiguration.linger = .milliseconds(2)
        self.producer = try KafkaProducer(configuration: producerConfiguration, logger: logger)
        if let settings = configuration.tokens {
            if let path = settings.signingKey {
                do {
                    tokenAuthority = try TokenAuthority(signingKeyPEM: try String(contentsOfFile: path, encoding: .utf8), kid: settings.signingKid,
                                                        policy: settings.policy)
                } catch {
                    throw ServiceConfiguration.Invalid(problems: ["REDRESS_CONSOLE_SIGNING_KEY: \(error)"])
                }
            } else if let sources = settings.jwks {
                var documents: [String] = []
                for source in sources.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !source.isEmpty {
                    do {
                        documents.append(try Self.readSync(source))
                    } catch {
                        throw ServiceConfiguration.Invalid(problems: ["REDRESS_OIDC_JWKS: cannot read \(source): \(error)"])
                    }
                }
                do {
                    tokenAuthority = try TokenAuthority(jwks: documents, policy: settings.policy)
                } catch {
                    throw ServiceConfiguration.Invalid(problems: ["REDRESS_OIDC_JWKS: \(error)"])
                }
            } else {
                tokenAuthority = TokenAuthority(secret: settings.secret ?? "", policy: settings.policy)
            }
        } else {
            tokenAuthority = nil
        }
        personalDataKey = configuration.personalDataKey.map { PersonalDataKey(secret: $0) }
        if !configuration.unusedSecrets.isEmpty {
            logger.warning("given settings this service does not use; remove them from its environment, so that a compromise of this process cannot expose them",
                           metadata: ["settings": "\(configuration.unusedSecrets.joined(separator: ", "))"])
        }
    }

    /// The identity provider's keys at start: a file, or an https URL fetched once here (the
    /// refresher fetches it again every `REDRESS_OIDC_JWKS_REFRESH_SECONDS`).
    static func readSync(_ source: String) throws -> String {
        guard source.hasPrefix("http://") || source.hasPrefix("https://") else {
            return try String(contentsOfFile: source, encoding: .utf8)
        }
        let result = NIOLockedValueBox<Result<String, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            do {
                let text = try await JWKSRefresher.load(source)
                result.withLockedValue { $0 = .success(text) }
            } catch {
                result.withLockedValue { $0 = .failure(error) }
            }
            done.signal()
        }
        done.wait()
        return try result.withLockedValue { $0 }!.get()
    }

    /// The bearer-token authority; only services given token settings (`secretsUsed`) have one.
    public var tokens: TokenAuthority {
        guard let tokenAuthority else { preconditionFailure("\(configuration.serviceName) is not given token settings: add it to ServiceConfiguration.secretsUsed") }
        return tokenAuthority
    }

    /// The customer-matching key; only services given it (`secretsUsed`) have one.
    public var personalData: PersonalDataKey {
        guard let personalDataKey else { preconditionFailure("\(configuration.serviceName) is not given REDRESS_PII_KEY: add it to ServiceConfiguration.secretsUsed") }
        return personalDataKey
    }

    /// Reads the environment, installs logging, and creates the host: what an executable's `main` calls.
    public static func fromEnvironment(service: String, defaultPort: Int) throws -> ServiceHost {
        let configuration: ServiceConfiguration
        do {
            configuration = try ServiceConfiguration.fromEnvironment(service: service, defaultPort: defaultPort)
        } catch {
            FileHandle.standardError.write(Data("\(service): \(error)\n".utf8))
            exit(2)
        }
        RedressLogging.bootstrap(service: service, level: configuration.logLevel, format: configuration.logFormat)
        return try ServiceHost(configuration: configuration, logger: Logger(label: service))
    }

    /// What every executable's `main` does: read the environment, build the service, run it.
    /// `relay: false` for a service that writes no events (the console).
    public static func serve(
        service: String, defaultPort: Int, relay: Bool = true,
        _ build: (ServiceHost) throws -> (Router<RedressRequestContext>, [any Service])
    ) async throws {
        let host = try fromEnvironment(service: service, defaultPort: defaultPort)
        let (router, services) = try build(host)
        try await host.run(router: router, services: services, relay: relay)
    }

    /// Consumer settings for this process: group, topics, and the session timeout from the environment.
    public func consumerConfiguration(group: String, topics: [String], lanes: Int? = nil) -> KafkaConsumerConfiguration {
        var consumer = KafkaConsumerConfiguration(client: configuration.kafkaClient(group), groupID: group, topics: topics)
        consumer.sessionTimeout = configuration.kafkaSessionTimeout
        consumer.lanes = lanes ?? configuration.consumerLanes
        consumer.fetchWait = configuration.kafkaFetchWait
        consumer.heartbeatInterval = .nanoseconds(min(3_000_000_000, configuration.kafkaSessionTimeout.nanoseconds / 3))
        return consumer
    }

    /// `lanes` overrides REDRESS_CONSUMER_LANES for a handler whose batches would only queue on the same locks.
    /// `gathers`: a consumer off the path to an owner waits `REDRESS_CONSUMER_LINGER_MS` to gather its batch,
    /// and fetches less often to match (`ServiceConfiguration.fetchWait(gatheringFor:)`).
    /// `gather` and `maxBatch`: a handler's own, when it gathers longer and more (the supervisor).
    public func consumer<H: BatchHandler>(group: String, topics: [String], handler: H, lanes: Int? = nil, gathers: Bool = false,
                                          gather: Duration? = nil, maxBatch: Int? = nil) -> EventConsumer<H> {
        var settings = EventConsumer<H>.Settings()
        settings.maxAttempts = configuration.consumerMaxAttempts
        if gathers { settings.linger = configuration.consumerLinger }
        if let gather { settings.linger = gather }
        var consumer = consumerConfiguration(group: group, topics: topics, lanes: lanes)
        consumer.fetchWait = configuration.fetchWait(gatheringFor: settings.linger)
        if let maxBatch {
            settings.maxBatch = maxBatch
            // Room for every lane to gather a whole batch while the one before is handled.
            consumer.bufferCapacity = max(consumer.bufferCapacity, 2 * maxBatch * consumer.lanes)
        }
        return EventConsumer(configuration: consumer, handler: handler, postgres: postgres, producer: producer, gate: gate, settings: settings, logger: logger)
    }

    /// For a service whose work needs only PostgreSQL (intake and surveys write to the outbox, which
    /// the relay sends when the broker is back): `/ready` then does not ask the broker.
    public func readyWithoutBroker() {
        brokerNeeded.withLockedValue { $0 = false }
    }

    /// A router with the problem-document and metrics middleware and the system routes
    /// `/health` (process up), `/ready` (database and broker reachable) and `/metrics`.
    public func router() -> Router<RedressRequestContext> {
        let router = Router(context: RedressRequestContext.self)
        router.add(middleware: ProblemMiddleware())
        router.add(middleware: HTTPMetricsMiddleware(service: configuration.serviceName))
        router.add(middleware: MethodNotAllowedMiddleware(routes: routeMethods))
        router.add(middleware: NULInAddressMiddleware())
        router.get("/health") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"status":"up"}"#)))
        }
        router.get("/ready") { [self] _, _ in
            let (ready, detail) = await checkReadiness()
            let body = #"{"status":"\#(ready ? "ready" : "not_ready")","detail":"\#(detail)"}"#
            return Response(status: ready ? .ok : .serviceUnavailable, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        router.get("/metrics") { [self] _, _ in
            var buffer: [UInt8] = []
            buffer.reserveCapacity(16 * 1024)
            registry.emit(into: &buffer)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(bytes: MetricHelp.annotate(buffer))))
        }
        return router
    }

    /// Ready when migrations are done, PostgreSQL answers and a Kafka broker answers. Cached for a second.
    func checkReadiness() async -> (Bool, String) {
        if let cached = readiness.withLockedValue({ $0 }), ContinuousClock.now - cached.at < .seconds(1) {
            return (cached.ready, cached.detail)
        }
        var ready = true
        var detail = "database and broker reachable"
        if !gate.isOpen {
            ready = false
            detail = "starting: migrations not finished"
        } else {
            do {
                try await postgres.query("SELECT 1", logger: logger)
            } catch {
                ready = false
                detail = "PostgreSQL unreachable"
            }
            if ready, brokerNeeded.withLockedValue({ $0 }) {
                do {
                    // Ready only on the topics as defined: missing ones would fail every publish,
                    // too few partitions would leave consumer instances idle.
                    let partitions = try await producer.topicPartitions(timeout: .seconds(2))
                    let short = Topics.specs.filter { (partitions[$0.name] ?? 0) < $0.partitions }.map(\.name)
                    if !short.isEmpty {
                        ready = false
                        detail = "topics missing or with too few partitions (\(short.count)): \(short.prefix(3).joined(separator: ", "))\(short.count > 3 ? ", …" : ""); run redressctl topics apply"
                        logger.warning("not ready: Kafka topics missing or with too few partitions", metadata: ["topics": "\(short.joined(separator: ","))"])
                    }
                } catch {
                    ready = false
                    detail = "Kafka unreachable"
                }
            }
        }
        readiness.withLockedValue { $0 = (ContinuousClock.now, ready, detail) }
        return (ready, detail)
    }

    /// Runs the process: database pool, producer, migrations, relay, the given services, and HTTP,
    /// in one `ServiceGroup` that shuts down in reverse order on SIGTERM/SIGINT — HTTP stops first,
    /// consumers finish their batch, the producer flushes, the database pool closes last.
    public func run(router: Router<RedressRequestContext>, services: [any Service], relay: Bool = true) async throws {
        routeMethods.load(router)
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(configuration.httpHost, port: configuration.httpPort), serverName: configuration.serviceName),
            onServerRunning: { [logger, configuration] channel in
                logger.info("listening", metadata: ["address": "\(channel.localAddress?.description ?? "?")", "service": "\(configuration.serviceName)"])
            },
            logger: logger)
        var all: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: postgres),
            .init(service: producer),
            .init(service: StartupService(host: self), successTerminationBehavior: .ignore),
        ]
        if relay {
            var settings = OutboxRelay.Settings()
            settings.writers = [configuration.serviceName, Outbox.anyWriter]
            all.append(.init(service: OutboxRelay(postgres: postgres, producer: producer, gate: gate, settings: settings, logger: logger)))
        }
        if let source = configuration.tokens?.jwks, let tokenAuthority, let refresh = configuration.tokens?.jwksRefresh {
            all.append(.init(service: JWKSRefresher(source: source, authority: tokenAuthority, interval: refresh, logger: logger)))
        }
        all += services.map { .init(service: $0) }
        all.append(.init(service: app))
        all.append(.init(service: ProducerWatch(producer: producer, logger: logger)))
        var group = ServiceGroupConfiguration(services: all, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        // Within 10 s of SIGTERM whatever happens: 7 s to finish gracefully, 1 s for cancellation, and
        // the watchdog at 9 s, with a second to spare for the orchestrator's grace period.
        group.maximumGracefulShutdownDuration = .seconds(7)
        group.maximumCancellationDuration = .seconds(1)
        ShutdownWatchdog.arm(after: .seconds(9), logger: logger)
        try await ServiceGroup(configuration: group).run()
    }
}

/// Migrates (when configured) and opens the gate; retries while PostgreSQL is not reachable yet.
struct StartupService: Service {
    let host: ServiceHost

    func run() async throws {
        var delay: Duration = .milliseconds(200)
        while true {
            do {
                if host.configuration.migrateOnStart {
                    try await Migrator.migrate(host.postgres, logger: host.logger)
                } else {
                    try await host.postgres.query("SELECT 1", logger: host.logger)
                }
                host.gate.open()
                host.logger.info("started", metadata: ["service": "\(host.configuration.serviceName)"])
                return
            } catch {
                if Task.isShuttingDownGracefully || Task.isCancelled { return }
                host.logger.warning("database not ready; retrying", metadata: ["error": "\(String(reflecting: error))", "retryIn": "\(delay)"])
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
    }
}

/// Ends the process (status 1) when the producer has failed for good: librdkafka cannot recover a
/// fatal error, and a process that only looks healthy helps no one; the orchestrator restarts it.
struct ProducerWatch: Service {
    let producer: KafkaProducer
    let logger: Logger

    func run() async throws {
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            if let fatal = producer.fatalError {
                logger.critical("the Kafka producer failed for good; exiting so that the process is restarted", metadata: ["error": "\(fatal.message)"])
                exit(1)
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }
}

/// SIGTERM ends the process within `after` whatever PostgreSQL and Kafka are doing: the graceful
/// shutdown gets its time (7 s), and if something still hangs — a connection to a database that
/// is gone — the process exits anyway rather than outlive its grace period.
public enum ShutdownWatchdog {
    private static let armed = NIOLockedValueBox(false)

    public static func arm(after limit: Duration, logger: Logger) {
        let first = armed.withLockedValue { armed -> Bool in
            defer { armed = true }
            return !armed
        }
        guard first else { return }
        for signal in [SIGTERM, SIGINT] {
            let source = DispatchSource.makeSignalSource(signal: signal, queue: .global())
            source.setEventHandler {
                DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(Int(limit.components.seconds * 1000))) {
                    logger.critical("still running \(limit) after the stop signal; exiting")
                    exit(1)
                }
            }
            source.resume()
            sources.append(source)
        }
    }

    /// Kept alive for the life of the process; written once, by the first `arm`, guarded by `armed`.
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []
}
