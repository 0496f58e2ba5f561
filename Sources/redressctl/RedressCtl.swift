import ArgumentParser
import Foundation
import Logging
import PostgresNIO
import RedressCases
import RedressConsole
import RedressContracts
import RedressKafka
import RedressServiceKit
import RedressRouting
import RedressSupervisor
import RedressStore
import RedressDomain

@main
struct RedressCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redressctl",
        abstract: "Operate Redress: schema, demo organisation, tokens, dead letters, case history.",
        discussion: "Database and broker settings come from the same REDRESS_* environment variables as the services.",
        subcommands: [Migrate.self, Seed.self, Token.self, Rules.self, SLA.self, DLQ.self, TopicsCommand.self, Report.self, ConsoleKey.self, Case.self, Staff.self])
}

/// Runs `body` with a PostgreSQL client whose pool runs for the duration.
@discardableResult
/// `actingAs` names the service whose events the command writes (its relay publishes them): staff
/// deactivation writes the case service's `case.updated` and `complaint.unassignable`.
func withPostgres<T: Sendable>(actingAs service: String? = nil, _ body: @escaping @Sendable (PostgresClient, Logger) async throws -> T) async throws -> T {
    var logger = Logger(label: "redressctl")
    logger.logLevel = .error
    var configuration = try ServiceConfiguration.PostgresSettings.fromEnvironment().clientConfiguration()
    configuration.options.additionalStartupParameters = [("application_name", service ?? "redressctl")]
    let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            await client.run()
            return nil
        }
        let result = try await body(client, logger)
        group.cancelAll()
        return result
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply the schema migrations not yet applied (safe to repeat).")

    func run() async throws {
        let applied = try await withPostgres { client, logger in try await Migrator.migrate(client, logger: logger) }
        print(applied.isEmpty ? "schema up to date (\(Migrations.all.count) migrations)" : "applied migrations \(applied.map(String.init).joined(separator: ", "))")
    }
}

struct Seed: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Load the organisation tree and staff from a seed file (safe to repeat).")

    @Option(help: "The seed file (JSON: units and staff).")
    var file = ProcessInfo.processInfo.environment["REDRESS_SEED_FILE"] ?? "deploy/seed/org.json"

    func run() async throws {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: file))
        } catch {
            throw ValidationError("cannot read seed file \(file): \(error.localizedDescription)")
        }
        let seed: SeedFile
        do {
            seed = try JSONDecoder().decode(SeedFile.self, from: data)
        } catch {
            throw ValidationError("seed file \(file) is not valid: \(EventCoding.describe(error))")
        }
        try await withPostgres { client, logger in
            try await Migrator.migrate(client, logger: logger)
            try await OrgStore.seed(seed, client: client, logger: logger)
        }
        print("seeded \(seed.units.count) units and \(seed.staff.count) staff from \(file)")
    }
}

struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Mint a bearer token for development (signed with REDRESS_JWT_SECRET).")

    @Option(help: "One of: \(Role.allCases.map(\.rawValue).joined(separator: ", ")).")
    var role: String

    @Option(help: "The org unit code the token belongs to (it sees this unit and below).")
    var unit: String

    @Option(help: "The subject: a staff id, or for role channel the channel it submits for (online, wechat, call_center, …).")
    var subject: String?

    @Option(help: "Lifetime in hours.")
    var hours = 8

    func run() async throws {
        guard let role = Role(rawValue: role) else {
            throw ValidationError("role '\(self.role)' is not one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let secret = ProcessInfo.processInfo.environment["REDRESS_JWT_SECRET"], secret.utf8.count >= 32 else {
            throw ValidationError("REDRESS_JWT_SECRET must be set (at least 32 characters), the same as the services use")
        }
        // A channel token is bound to its channel: intake refuses it for another channel's complaints.
        if role == .channel, Channel(rawValue: subject ?? "") == nil {
            throw ValidationError("a channel token names its channel as --subject: one of \(Channel.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        // The same issuer, audience and longest lifetime the services accept (REDRESS_TOKEN_*).
        let env = ProcessInfo.processInfo.environment
        let maxHours = env["REDRESS_TOKEN_MAX_HOURS"].flatMap(Int.init) ?? 12
        guard (1...maxHours).contains(hours) else {
            throw ValidationError("--hours must be 1 to \(maxHours): the services refuse a token that lives longer (REDRESS_TOKEN_MAX_HOURS)")
        }
        let policy = TokenPolicy(issuer: env["REDRESS_TOKEN_ISSUER"] ?? "redress", audience: env["REDRESS_TOKEN_AUDIENCE"] ?? "redress-api",
                                 maxLifetime: .seconds(maxHours * 3600))
        let authority = TokenAuthority(secret: secret, policy: policy)
        print(await authority.mint(subject: subject ?? "\(role.rawValue)@\(unit)", role: role, unit: unit, lifetime: .seconds(hours * 3600)))
    }
}

struct Rules: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Routing rules.", subcommands: [Check.self, Reload.self])

    static func load(_ file: String) throws -> RoutingRules {
        do {
            return try RoutingRules.load(file: file)
        } catch let error as RulesFileError {
            throw ValidationError(error.description)
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Validate a rules file; every problem is named by line.")

        @Option(help: "The rules file.")
        var file = ProcessInfo.processInfo.environment["REDRESS_ROUTING_RULES"] ?? "deploy/routing/rules.yaml"

        func run() async throws {
            let rules = try Rules.load(file)
            print("\(file): version \(rules.version), \(rules.classification.count) classification and \(rules.priority.count) priority rules: valid")
        }
    }

    struct Reload: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate the rules file, then tell every routing instance to reload it (they read their own REDRESS_ROUTING_RULES).")

        @Option(help: "The rules file to validate first.")
        var file = ProcessInfo.processInfo.environment["REDRESS_ROUTING_RULES"] ?? "deploy/routing/rules.yaml"

        func run() async throws {
            let rules = try Rules.load(file)
            try await withPostgres { client, logger in
                try await client.query("SELECT pg_notify(\(RoutingService.reloadChannel), \(rules.version))", logger: logger)
            }
            print("routing instances told to reload; version \(rules.version) is valid")
        }
    }
}

struct SLA: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sla", abstract: "SLA policy and working calendars.", subcommands: [Check.self, Recompute.self])

    struct Files: ParsableArguments {
        @Option(help: "The SLA policy file.")
        var policy = ProcessInfo.processInfo.environment["REDRESS_SLA_POLICY"] ?? "deploy/sla/policy.json"

        @Option(help: "The directory of calendar files (<REGION>-<YEAR>.json).")
        var calendars = ProcessInfo.processInfo.environment["REDRESS_CALENDARS"] ?? "deploy/calendars"

        func load() throws -> ClockBook {
            do {
                return try ClockBook.load(policyFile: policy, calendarDirectory: calendars)
            } catch {
                throw ValidationError("\(error)")
            }
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate the SLA policy and the calendars; every problem is named.",
            discussion: """
                Also refuses (exit 1) when a region's calendar lacks a year that is needed: the current year, the year \
                \(CalendarCoverage.warningDays) days ahead, or — with a database configured (REDRESS_PG_*) — any year a running \
                working-time clock reaches.
                """)
        @OptionGroup var files: Files

        @Option(help: "Check as of this instant (RFC 3339), e.g. to see what the check will say on the 1st of next month.")
        var at: String?

        @Flag(help: "Check the files only, without asking the database about running clocks.")
        var offline = false

        func run() async throws {
            let book = try files.load()
            guard let now = at.map(Timestamp.parse) ?? Date() else { throw ValidationError("--at '\(at ?? "")' is not an RFC 3339 instant (2026-12-01T00:00:00+08:00)") }
            let useDatabase = !offline && ProcessInfo.processInfo.environment["REDRESS_PG_HOST"] != nil
            let gaps = useDatabase
                ? try await withPostgres { client, logger in try await book.calendarGaps(now: now, on: client, logger: logger) }
                : book.coverage.missing(now: now)
            let covered = book.coverage.years.keys.sorted().map { "\($0) \(book.coverage.years[$0]!.sorted().map(String.init).joined(separator: ","))" }
            print("\(files.policy): \(book.policy.clocks.map(\.kind.rawValue).joined(separator: ", ")) clocks; calendars: \(covered.joined(separator: "; "))"
                  + (useDatabase ? "; running clocks checked" : "; running clocks not checked (no database configured)"))
            guard gaps.isEmpty else {
                FileHandle.standardError.write(Data("error: \(CalendarCoverage.describe(gaps))\n".utf8))
                throw ExitCode(1)
            }
            print("valid")
        }
    }

    struct Recompute: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "After a calendar or policy change: validate the files, tell every supervisor to reload them, and recompute every open clock.")
        @OptionGroup var files: Files

        func run() async throws {
            let book = try files.load()
            let rebuilt = try await withPostgres { client, logger in
                try await client.query("SELECT pg_notify(\(SupervisorService.reloadChannel), 'recompute')", logger: logger)
                return try await ClockKeeper(book: book).rebuildOpen(on: client, logger: logger)
            }
            print("supervisors told to reload; open clocks of \(rebuilt) complaints recomputed")
        }
    }
}

struct Report: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "定期分析报告: a unit's report for a period, as JSON or CSV (UTF-8 with BOM, for Excel).",
        discussion: "Reads the rollup; `report rebuild` recomputes it from the records (the supervisor keeps the last days current).",
        subcommands: [Show.self, Rebuild.self, Snapshot.self], defaultSubcommand: Show.self)

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Print a report.")
        @Option(help: "The unit whose subtree the report covers, e.g. GD.") var unit: String
        @Option(help: "2026 (year), 2026-Q4 (quarter), 2026-11 (month) or 2026-10-01..2026-12-31.") var period: String
        @Option(help: "json, csv, or regulator-csv (the regulator's classes, REDRESS_REGULATOR_CLASSES).") var format = "json"
        @Option(help: "Write to this file instead of standard output.") var output: String?

        func validate() throws {
            guard ReportPeriod.parse(period) != nil else {
                throw ValidationError("--period '\(period)': give a year (2026), a quarter (2026-Q4), a month (2026-11) or days (2026-10-01..2026-12-31)")
            }
            guard ["json", "csv", "regulator-csv"].contains(format) else { throw ValidationError("--format must be json, csv or regulator-csv") }
        }

        func run() async throws {
            let period = ReportPeriod.parse(self.period)!
            let unit = self.unit
            let report = try await withPostgres { client, logger -> PeriodicReport in
                try await client.withConnection { connection in
                    guard let path = try await PeriodicReport.unitPath(of: unit, on: connection, logger: logger) else {
                        throw ValidationError("--unit '\(unit)' is not a unit of the organisation")
                    }
                    return try await PeriodicReport.read(unit: unit, unitPath: path, period: period, withHandlers: true, on: connection, logger: logger)
                }
            }
            let bytes: [UInt8]
            if format == "csv" {
                bytes = report.csv()
            } else if format == "regulator-csv" {
                let path = ProcessInfo.processInfo.environment["REDRESS_REGULATOR_CLASSES"] ?? RegulatorClasses.defaultPath
                do {
                    bytes = try RegulatorClasses.load(path).csv(for: report)
                } catch {
                    throw ValidationError("the regulator's classes (\(path), REDRESS_REGULATOR_CLASSES) cannot be read: \(error)")
                }
            } else {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                bytes = Array(try encoder.encode(report)) + [10]
            }
            if let output {
                try Data(bytes).write(to: URL(fileURLWithPath: output))
            } else {
                FileHandle.standardOutput.write(Data(bytes))
            }
        }
    }

    struct Snapshot: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Generate a unit's report for a period again and keep it as the next snapshot version (earlier ones stay); its supervisors are told.")
        @Option(help: "The unit, e.g. GD.") var unit: String
        @Option(help: "The period, e.g. 2026-Q4.") var period: String
        @Option(help: "Who asks for it (recorded with the snapshot).") var by = "redressctl"

        func run() async throws {
            guard let period = ReportPeriod.parse(period) else { throw ValidationError("--period '\(self.period)': give a year, a quarter, a month or days") }
            let (unit, by) = (self.unit, self.by)
            let snapshot = try await withPostgres { client, logger in
                try await client.withTransaction(logger: logger) { connection in
                    try await ReportSnapshots.generate(unit: unit, period: period, by: by, on: connection, logger: logger)
                }
            }
            print("report snapshot \(snapshot.unit) \(snapshot.period) version \(snapshot.version): \(snapshot.id)")
        }
    }

    struct Rebuild: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Recompute the report rollup for a range of local days from the records (idempotent).")
        @Option(help: "First day, yyyy-MM-dd (Asia/Shanghai).") var from: String
        @Option(help: "Last day, yyyy-MM-dd.") var to: String

        func run() async throws {
            guard let first = Timestamp.parse(from + "T00:00:00+08:00"), let last = Timestamp.parse(to + "T00:00:00+08:00"), first <= last else {
                throw ValidationError("--from and --to must be days yyyy-MM-dd, --from not after --to")
            }
            try await withPostgres { client, logger in
                try await client.withConnection { connection in
                    try await connection.query("BEGIN", logger: logger)
                    do {
                        try await ReportRollup.rebuild(from: first, to: last, on: connection, logger: logger)
                        try await connection.query("COMMIT", logger: logger)
                    } catch {
                        try? await connection.query("ROLLBACK", logger: logger)
                        throw error
                    }
                }
            }
            print("report rollup rebuilt for \(from)..\(to)")
        }
    }
}

struct ConsoleKey: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "console-key",
        abstract: "Make the console's own ES256 signing key (for when the APIs take an identity provider's tokens).",
        discussion: "Writes the private key (PEM, mode 600) to --output for the console's REDRESS_CONSOLE_SIGNING_KEY, and prints a JWKS with "
            + "its public key: add that file to the APIs' REDRESS_OIDC_JWKS, beside the identity provider's (comma-separated).")
    @Option(help: "Where to write the private key.") var output: String
    @Option(help: "The key id (REDRESS_CONSOLE_SIGNING_KID).") var kid = "redress-console"

    func run() async throws {
        guard !FileManager.default.fileExists(atPath: output) else { throw ValidationError("\(output) exists; a new key is written to a new file") }
        let (pem, jwks) = TokenAuthority.newConsoleKey(kid: kid)
        FileManager.default.createFile(atPath: output, contents: Data(pem.utf8), attributes: [.posixPermissions: 0o600])
        print(jwks)
    }
}

struct TopicsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "topics", abstract: "Kafka topics.", subcommands: [Apply.self])

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create every Redress topic (and its .dlq twin) that is missing, as the code defines them; report partition drift.",
            discussion: "Idempotent: a second run creates nothing. Exits 1 when a topic has fewer partitions than defined (every second "
                + "consumer instance would idle, and adding partitions moves keys: a decision for an operator), or one cannot be created.")

        @Flag(help: "Report only; create nothing.") var dryRun = false

        func run() async throws {
            var logger = Logger(label: "redressctl")
            logger.logLevel = .error
            let client = KafkaClientConfiguration(bootstrapServers: try bootstrapServers(), clientID: "redressctl",
                                                  extraProperties: try ServiceConfiguration.kafkaSecurity())
            let admin = try KafkaAdmin(client: client, logger: logger)
            let (existing, brokers) = try admin.topics()
            let specs = RedressContracts.Topics.specs
            var problems = 0
            var present = 0
            for spec in specs {
                guard let partitions = existing[spec.name] else { continue }
                present += 1
                if partitions < spec.partitions {
                    problems += 1
                    print("drift \(spec.name): \(partitions) partitions, \(spec.partitions) defined — add partitions "
                          + "(kafka-topics --alter --partitions \(spec.partitions)) when no complaint is in flight: keys move to new partitions")
                } else if partitions > spec.partitions {
                    print("note \(spec.name): \(partitions) partitions, more than the \(spec.partitions) defined (fine)")
                }
            }
            let missing = specs.filter { existing[$0.name] == nil }
            var created = 0
            if !missing.isEmpty {
                if dryRun {
                    for spec in missing { print("missing \(spec.name) (\(spec.partitions) partitions)") }
                } else {
                    let definitions = missing.map {
                        KafkaTopicDefinition(name: $0.name, partitions: $0.partitions, replicationFactor: min($0.replicationFactor, max(1, brokers)),
                                             configs: ["retention.ms": String($0.retentionMs)])
                    }
                    let outcome = try admin.create(definitions)
                    for spec in missing {
                        switch outcome[spec.name] {
                        case .some(nil), .some("TOPIC_ALREADY_EXISTS"):
                            created += 1
                            print("created \(spec.name) (\(spec.partitions) partitions)")
                        case .some(.some(let reason)):
                            problems += 1
                            print("failed \(spec.name): \(reason)")
                        case .none:
                            problems += 1
                            print("failed \(spec.name): the broker did not answer for it")
                        }
                    }
                }
            }
            print("topics: \(specs.count) defined, \(present) present, \(created) created, \(problems) problem(s)")
            if problems > 0 || (dryRun && !missing.isEmpty) { throw ExitCode(1) }
        }
    }
}

struct DLQ: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dlq", abstract: "Dead-letter topics.", subcommands: [Replay.self])

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Put every message of <topic>.dlq back on <topic> (after the cause is fixed). Consumers de-duplicate repeats.")

        @Argument(help: "The original topic, e.g. redress.complaints.inbound (its dead letters are in <topic>.dlq).")
        var topic: String

        @Option(help: "Stop after this many seconds without a new message.")
        var idleSeconds = 10

        func run() async throws {
            let bootstrap = try bootstrapServers()
            var logger = Logger(label: "redressctl")
            logger.logLevel = .warning
            let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(client: .init(bootstrapServers: bootstrap, clientID: "redressctl", extraProperties: try ServiceConfiguration.kafkaSecurity())), logger: logger)
            var config = KafkaConsumerConfiguration(client: .init(bootstrapServers: bootstrap, clientID: "redressctl", extraProperties: try ServiceConfiguration.kafkaSecurity()), groupID: "redressctl.dlq-replay", topics: [Topics.deadLetter(topic)])
            config.sessionTimeout = .seconds(6)
            let consumer = try KafkaConsumer(configuration: config, logger: logger)
            var replayed = 0
            while true {
                let batch = try await consumer.nextBatch(maxCount: 500, timeout: .seconds(idleSeconds))
                guard let batch, !batch.isEmpty else { break }
                var messages: [KafkaOutgoingMessage] = []
                for message in batch {
                    // A dead letter too large for the broker is a reference to its dead_letters row: replay the stored one.
                    if let stored = message.header(Headers.deadLetterStored).flatMap(UUID.init(uuidString:)) {
                        guard let kept = try await withPostgres({ client, logger in try await DeadLetters.load(stored, on: client, logger: logger) }) else {
                            throw ValidationError("dead letter \(stored) is referenced on \(Topics.deadLetter(topic)) but not in the dead_letters table")
                        }
                        messages.append(KafkaOutgoingMessage(topic: topic, key: message.key, value: kept.value,
                                                             headers: kept.headers.filter { !$0.key.hasPrefix("redress-dlq-") }.map { KafkaHeader(name: $0.key, value: $0.value) }))
                        continue
                    }
                    messages.append(KafkaOutgoingMessage(topic: topic, key: message.key, value: message.value,
                                                         headers: message.headers.filter { !$0.name.hasPrefix("redress-dlq-") }))
                }
                let reports = try await producer.send(messages)
                guard reports.allSatisfy(\.isDelivered) else {
                    throw ValidationError("replay stopped: \(reports.first { !$0.isDelivered }?.error?.message ?? "delivery failed"); nothing was marked replayed")
                }
                consumer.storeOffsets(for: batch)
                try await consumer.commit()
                replayed += batch.count
            }
            await consumer.close()
            await producer.shutdown()
            print("replayed \(replayed) message(s) from \(Topics.deadLetter(topic)) to \(topic)")
        }
    }
}

struct Case: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Case tools.", subcommands: [History.self])

    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a case's audit trail.")

        @Argument(help: "Complaint number (GD-SZ-20261122-000123) or id.")
        var complaint: String

        func run() async throws {
            let complaint = self.complaint
            let lines = try await withPostgres { client, logger -> [String] in
                let id = UUID(uuidString: complaint) ?? UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
                let rows = try await client.query("""
                    SELECT e.at, e.actor, e.action, COALESCE(e.from_status, '-'), e.to_status, COALESCE(e.reason, '')
                    FROM case_events e JOIN complaints c ON c.id = e.complaint_id
                    WHERE c.number = \(complaint) OR c.id = \(id)
                    ORDER BY e.id
                    """, logger: logger)
                var lines: [String] = []
                for try await (at, actor, action, from, to, reason) in rows.decode((Date, String, String, String, String, String).self) {
                    lines.append("\(Timestamp.format(at))  \(action)  \(from) → \(to)  by \(actor)  \(reason)")
                }
                return lines
            }
            if lines.isEmpty { throw ValidationError("no case '\(complaint)' with history; check the number") }
            lines.forEach { print($0) }
        }
    }
}

func bootstrapServers() throws -> String {
    let env = ProcessInfo.processInfo.environment
    if let b = env["REDRESS_KAFKA_BOOTSTRAP"], !b.isEmpty { return b }
    let file = env["REDRESS_KAFKA_BOOTSTRAP_FILE"] ?? "run/kafka.bootstrap"
    guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
        throw ValidationError("REDRESS_KAFKA_BOOTSTRAP is not set and \(file) cannot be read: start the development broker (scripts/up) or name the brokers")
    }
    return text.trimmingCharacters(in: .whitespacesAndNewlines)
}

struct Staff: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "staff", abstract: "The staff directory (as GET/POST/PATCH /v1/staff do it).",
                                                    subcommands: [List.self, Add.self, Deactivate.self, SetPassword.self])

    static func refused(_ error: any Error) -> any Error {
        (error as? StaffCommands.Refused).map { ValidationError($0.description) } ?? error
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Staff of a unit (all units without --unit): id, name, unit, role, skills, open/capacity, state.")
        @Option(help: "A unit code, e.g. GD-SZ.") var unit: String?

        func run() async throws {
            let lines = try await withPostgres { [unit] client, logger in try await StaffCommands.list(unit: unit, on: client, logger: logger) }
            lines.forEach { print($0) }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a staff member (recorded in staff_events).")
        @Option(help: "Staff id: capital letters, digits, dashes (GD-SZ-AGE04).") var id: String
        @Option(help: "Full name.") var name: String
        @Option(help: "Unit code.") var unit: String
        @Option(help: "agent, supervisor, committee, auditor or admin.") var role: String
        @Option(help: "Comma-separated categories the agent handles (claims,service,…).") var skills = ""
        @Option(help: "Open cases at most.") var capacity = 20

        func run() async throws {
            let skillList = skills.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
            do {
                let line = try await withPostgres { [id, name, unit, role, capacity] client, logger in
                    try await StaffCommands.add(id: id, name: name, unit: unit, role: role, skills: skillList, capacity: capacity, on: client, logger: logger)
                }
                print(line)
            } catch {
                throw Staff.refused(error)
            }
        }
    }

    struct Deactivate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Deactivate a staff member: they cannot act any more, and their open cases go to new owners.")
        @Argument(help: "Staff id.") var id: String

        func run() async throws {
            do {
                print(try await withPostgres(actingAs: "redress-cases") { [id] client, logger in
                    try await StaffCommands.deactivate(id: id, on: client, logger: logger)
                })
            } catch {
                throw Staff.refused(error)
            }
        }
    }

    struct SetPassword: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set-password",
            abstract: "Set a staff member's console password (bcrypt), and with --totp a new authenticator secret.",
            discussion: "The password is read from standard input (one line) unless --password gives it (development only: it shows in ps). "
                + "Setting a password clears a lock and ends the member's console sessions.")
        @Argument(help: "Staff ids; with --all, none.") var ids: [String] = []
        @Flag(help: "Every active staff member (the demo organisation).") var all = false
        @Option(help: "The password (development only; otherwise give it on standard input).") var password: String?
        @Flag(help: "Also enrol a new TOTP secret and print its otpauth:// URL for an authenticator app.") var totp = false

        func validate() throws {
            if all == !ids.isEmpty { throw ValidationError("name the staff ids, or give --all") }
        }

        func run() async throws {
            let secret = password ?? readLine(strippingNewline: true) ?? ""
            do {
                let enrolled = try await withPostgres { [ids, all, totp] client, logger in
                    var targets = ids
                    if all {
                        targets = []
                        for try await id in try await client.query("SELECT id FROM staff WHERE active ORDER BY id", logger: logger).decode(String.self) {
                            targets.append(id)
                        }
                    }
                    let secrets = try await ConsoleAuth.setPassword(secret, for: targets, newTOTP: totp, on: client, logger: logger)
                    return (targets.count, secrets)
                }
                print("password set for \(enrolled.0) staff member(s)")
                for (id, secret) in enrolled.1.sorted(by: { $0.key < $1.key }) {
                    print("\(id) \(ConsoleAuth.totpURL(secret: secret, staffID: id))")
                }
            } catch let error as ConsoleError {
                throw ValidationError(error.description)
            }
        }
    }
}
