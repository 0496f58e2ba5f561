import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import PostgresNIO
import RedressConsole
import RedressContracts
import RedressDomain
import RedressKafka
import RedressStore
import RedressServiceKit
import RedressSupervisor

/// Pushes complaints through a running stack — most through the inbound topic, some through HTTP —
/// and measures registration-to-assignment latency and throughput, and that each arrived exactly once.
@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "redress-bench", abstract: "Benchmark a running Redress stack end to end.")

    @Option(help: "Complaints in all.")
    var count = 20_000

    @Option(help: "How many of them go through POST /v1/complaints (the rest through the inbound topic).")
    var http = 1_000

    @Option(help: "Concurrent HTTP requests.")
    var concurrency = 32

    @Option(help: "Intake's base URL.")
    var intake = "http://127.0.0.1:8081"

    @Option(help: "Complaints per second through the inbound topic; 0 sends them all at once (a surge).")
    var rate = 0

    @Option(help: "Instead of complaints: fill the database with this many open SLA clocks and time the supervisor's scan for each next second's due clocks.")
    var slaClocks: Int?

    @Option(help: "Instead of complaints: fill the database with this many complaints (one in 499 open) and time the staff queues of the case service at --cases.")
    var queueComplaints: Int?

    @Option(help: "Instead of complaints: fill the database with this many complaints spread over a year, rebuild the report rollup, and time GET /v1/reports for HQ's current quarter at --cases.")
    var reportComplaints: Int?

    @Option(help: "The case service's base URL (queue benchmark).")
    var cases = "http://127.0.0.1:8082"

    @Option(help: "The staff console's base URL: the queue benchmark also times its pages, signed in as the agents and supervisors.")
    var console: String?

    @Option(help: "Stage mode: once every complaint is registered, create this file and wait for routing to be started (scripts/bench --stages).")
    var signalFile: String?

    @Option(help: "Give up when nothing new was assigned for this many seconds.")
    var stallSeconds = 60

    func run() async throws {
        var logger = Logger(label: "redress-bench")
        logger.logLevel = .warning
        if let slaClocks {
            try await SLAScanBench(clocks: slaClocks, logger: logger).run()
            return
        }
        if let reportComplaints {
            guard let secret = ProcessInfo.processInfo.environment["REDRESS_JWT_SECRET"] else {
                throw ValidationError("REDRESS_JWT_SECRET must be set to the stack's (source run/<stack>/env)")
            }
            try await ReportBench(complaints: reportComplaints, cases: cases, tokens: TokenAuthority(secret: secret), logger: logger).run()
            return
        }
        if let queueComplaints {
            guard let secret = ProcessInfo.processInfo.environment["REDRESS_JWT_SECRET"] else {
                throw ValidationError("REDRESS_JWT_SECRET must be set to the stack's (source run/<stack>/env)")
            }
            try await QueueBench(complaints: queueComplaints, cases: cases, console: console, concurrency: min(concurrency, 8),
                                 tokens: TokenAuthority(secret: secret), logger: logger).run()
            return
        }
        let env = ProcessInfo.processInfo.environment
        guard let secret = env["REDRESS_JWT_SECRET"] else { throw ValidationError("REDRESS_JWT_SECRET must be set to the stack's (source run/<stack>/env)") }
        let bootstrap = try env["REDRESS_KAFKA_BOOTSTRAP"] ?? String(contentsOfFile: env["REDRESS_KAFKA_BOOTSTRAP_FILE"] ?? "run/up/kafka.bootstrap", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let postgres = PostgresClient(configuration: try ServiceConfiguration.PostgresSettings.fromEnvironment().clientConfiguration(), backgroundLogger: logger)
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(client: .init(bootstrapServers: bootstrap, clientID: "redress-bench", extraProperties: try ServiceConfiguration.kafkaSecurity())), logger: logger)
        let token = await TokenAuthority(secret: secret).mint(subject: "online", role: .channel, unit: "HQ")
        let runID = String(UUID().uuidString.prefix(8))
        let httpCount = min(http, count)
        let kafkaCount = count - httpCount
        let branches = ["GD-SZ", "GD-GZ", "ZJ-HZ", "ZJ-NB", "GD-SZ-NS", "ZJ-HZ-XH"]

        @Sendable func submission(_ i: Int, channel: RedressDomain.Channel) -> [UInt8] {
            let phone = "139" + String(format: "%08d", (i * 7919) % 100_000_000)
            let text = #"{"channel":"\#(channel.rawValue)","externalRef":"BENCH-\#(runID)-\#(i)","receivedAt":"\#(Timestamp.format(Date()))","#
                + #""customer":{"name":"测试客户\#(i % 100)","phone":"\#(phone)"},"branch":"\#(branches[i % branches.count])","#
                + #""policyNumber":"P\#(100_000 + i)","subject":"理赔进度投诉 claim delay","#
                + #""content":"客户反映理赔申请提交后三周仍未到账，多次致电无人回复，要求尽快处理。The customer says the claim has been pending for three weeks."}"#
            return Array(text.utf8)
        }

        // --rate is the whole stream's: each way in carries its share, so the HTTP part is no burst on top.
        let topicRate = rate > 0 ? max(1, rate * kafkaCount / max(count, 1)) : 0
        let httpRate = rate > 0 ? max(1, rate - topicRate) : 0
        print("bench: run \(runID): \(kafkaCount) through \(Topics.inbound)\(rate > 0 ? " at \(topicRate)/s" : " at once"), \(httpCount) through \(intake)/v1/complaints\(rate > 0 ? " at \(httpRate)/s" : "")")
        print(String(format: "bench: calibration: one core encodes and decodes 20,000 submissions as JSON in %.0f ms (compare machines by it)", try calibrate()))
        let submitted = SubmitTimes()
        let cpu = CPUSampler()
        let started = Date()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await postgres.run() }
            group.addTask { await cpu.run() }
            group.addTask {
                // The inbound topic: in batches, as an upstream platform would publish; paced when --rate is given.
                let clock = ContinuousClock()
                let begin = clock.now
                let step = topicRate > 0 ? max(1, topicRate / 20) : 1000
                var i = 0
                // Each batch's delivery is awaited on its own, so a slow acknowledgement does not hold the next
                // batch back and then release a burst: an upstream platform publishes on its own schedule.
                try await withThrowingTaskGroup(of: Void.self) { sends in
                    while i < kafkaCount {
                        if topicRate > 0 {
                            try await Task.sleep(until: begin + .nanoseconds(Int64(Double(i) / Double(topicRate) * 1e9)), clock: clock)
                        }
                        let end = min(kafkaCount, i + step)
                        let messages = (i..<end).map { n in
                            KafkaOutgoingMessage(topic: Topics.inbound, key: "BENCH-\(runID)-\(n)", value: submission(n, channel: .callCenter))
                        }
                        submitted.record(range: i..<end, at: Date())
                        let first = i == 0
                        sends.addTask {
                            let reports = try await producer.send(messages)
                            if let failed = reports.first(where: { !$0.isDelivered }) { throw failed.error! }
                            // The client's own start-up (connection, producer id) counts against the figures: shown, not hidden.
                            if first { print(String(format: "bench: first batch delivered %.0f ms after the start", Date().timeIntervalSince(started) * 1000)) }
                        }
                        i = end
                    }
                    try await sends.waitForAll()
                }
            }
            group.addTask {
                try await postHTTP(range: kafkaCount..<count, submission: { submission($0, channel: .online) }, token: token, submitted: submitted, rate: httpRate)
            }
            // Wait for the producers (the postgres task runs until cancelled).
            var finished = 0
            while finished < 2 {
                try await group.next()
                finished += 1
            }
            if let signalFile {
                // Stage mode: intake alone first, then routing alone, each measured on its own.
                let registeredAll = try await waitRegistered(postgres: postgres, runID: runID, logger: logger)
                print(String(format: "bench: stage intake: %d registered in %.1f s = %.0f/s (routing not running)",
                             count, registeredAll.timeIntervalSince(started), Double(count) / max(registeredAll.timeIntervalSince(started), 0.001)))
                _ = FileManager.default.createFile(atPath: signalFile, contents: Data("registered\n".utf8))
            }
            let outcome = try await collect(postgres: postgres, runID: runID, submitted: submitted, logger: logger)
            if signalFile != nil {
                let span = outcome.lastAssigned.timeIntervalSince(outcome.firstAssigned)
                print(String(format: "bench: stage routing: %d routed and applied in %.1f s = %.0f/s (from the first assignment, intake idle)",
                             outcome.assigned, span, Double(outcome.assigned) / max(span, 0.001)))
            }
            group.cancelAll()
            let elapsed = outcome.lastAssigned.timeIntervalSince(started)
            let throughput = Double(outcome.assigned) / max(elapsed, 0.001)
            let sorted = outcome.latencies.sorted()
            func percentile(_ p: Double) -> Double { sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] * 1000 }
            print("bench: assigned \(outcome.assigned) of \(count) in \(String(format: "%.1f", elapsed)) s (\(outcome.unowned) to a supervisor queue, every eligible agent at capacity); acknowledgements \(outcome.acknowledgements), clocks \(outcome.clocks)")
            let intakeSeconds = outcome.lastRegistered.timeIntervalSince(started)
            print(String(format: "bench: stages: intake registered %.0f/s (all %d in %.1f s), assignment followed %.1f s after the last registration",
                         Double(count - outcome.lost) / max(intakeSeconds, 0.001), count - outcome.lost, intakeSeconds,
                         outcome.lastAssigned.timeIntervalSince(outcome.lastRegistered)))
            if let account = cpu.summary(until: outcome.lastAssigned, complaints: outcome.assigned) {
                // Everything on the machine counts, the bench client and the development broker included: both say so.
                print(String(format: "bench: cpu: %.0f %% of %d cores busy from the start to the last assignment, %.2f CPU-ms per complaint; ",
                             account.busyShare * 100, ProcessInfo.processInfo.activeProcessorCount, account.cpuMillisecondsPerComplaint)
                      + account.shares.map { String(format: "%@ %.0f %%", $0.program, $0.share * 100) }.joined(separator: ", "))
            }
            if !outcome.shortfalls.isEmpty {
                print("bench: shortfalls by kind: " + outcome.shortfalls.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
            }
            print(String(format: "bench: complaints=%d lost=%d duplicated=%d incomplete=%d throughput=%.0f/s p50=%.0fms p99=%.0fms",
                         count, outcome.lost, outcome.duplicated, outcome.incomplete, throughput, percentile(0.5), percentile(0.99)))
            if outcome.lost != 0 || outcome.duplicated != 0 || outcome.incomplete != 0 { throw ExitCode(1) }
        }
        await producer.shutdown()
    }

    /// `rate` > 0 paces the requests (request i not before i / rate seconds), else they go as fast as
    /// `concurrency` connections allow.
    func postHTTP(range: Range<Int>, submission: @escaping @Sendable (Int) -> [UInt8], token: String, submitted: SubmitTimes, rate: Int = 0) async throws {
        guard !range.isEmpty else { return }
        var configuration = HTTPClient.Configuration()
        // One connection per concurrent sender, as that many channel platforms would hold.
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: concurrency)
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                let next = Counter()
                let clock = ContinuousClock()
                let begin = clock.now
                for _ in 0..<concurrency {
                    group.addTask {
                        while let i = next.take(below: range.count) {
                            if rate > 0 {
                                try await Task.sleep(until: begin + .nanoseconds(Int64(Double(i) / Double(rate) * 1e9)), clock: clock)
                            }
                            let n = range.lowerBound + i
                            var request = HTTPClientRequest(url: "\(intake)/v1/complaints")
                            request.method = .POST
                            request.headers.add(name: "Authorization", value: "Bearer \(token)")
                            request.headers.add(name: "Content-Type", value: "application/json")
                            request.body = .bytes(ByteBuffer(bytes: submission(n)))
                            submitted.record(range: n..<(n + 1), at: Date())
                            // As a channel does: a connection error or a 5xx (intake restarting, say) is
                            // retried with the same submission — the same reference — until it is taken.
                            var delay: Duration = .milliseconds(100)
                            var tries = 0
                            while true {
                                tries += 1
                                do {
                                    let response = try await client.execute(request, timeout: .seconds(30))
                                    _ = try await response.body.collect(upTo: 1 << 20)
                                    if response.status == .created || response.status == .ok { break }
                                    guard response.status.code >= 500, tries < 100 else {
                                        throw ValidationError("POST /v1/complaints answered \(response.status.code)")
                                    }
                                } catch let error as ValidationError {
                                    throw error
                                } catch {
                                    guard tries < 100 else { throw error }
                                }
                                try await Task.sleep(for: delay)
                                delay = min(delay * 2, .seconds(2))
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
        } catch {
            try await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }


    struct Outcome {
        var assigned = 0
        var lost = 0
        var duplicated = 0
        var acknowledgements = 0
        var clocks = 0
        /// Complaints with any shortfall, and the shortfalls by kind (FlowAudit).
        var incomplete = 0
        var shortfalls: [String: Int] = [:]
        /// Routed with no owner (every eligible agent at capacity): the unit's supervisor queue.
        var unowned = 0
        var latencies: [Double] = []
        var lastAssigned = Date()
        var lastRegistered = Date()
        var firstAssigned = Date()
    }

    /// Waits until every complaint of the run is registered; returns when the last one was.
    func waitRegistered(postgres: PostgresClient, runID: String, logger: Logger) async throws -> Date {
        let pattern = "BENCH-\(runID)-%"
        while true {
            for try await (n, last) in try await postgres.query(
                "SELECT count(*)::bigint, max(registered_at) FROM complaints WHERE external_ref LIKE \(pattern)", logger: logger).decode((Int64, Date?).self) {
                if n >= count, let last { return last }
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// Waits until every complaint is assigned (or progress stalls), then checks each arrived exactly once.
    func collect(postgres: PostgresClient, runID: String, submitted: SubmitTimes, logger: Logger) async throws -> Outcome {
        let pattern = "BENCH-\(runID)-%"
        var last = -1
        var lastProgress = Date()
        while true {
            var assigned = 0
            for try await n in try await postgres.query(
                "SELECT count(*)::bigint FROM complaints WHERE external_ref LIKE \(pattern) AND status = 'assigned'", logger: logger).decode(Int64.self) {
                assigned = Int(n)
            }
            if assigned >= count { break }
            if assigned != last {
                last = assigned
                lastProgress = Date()
            } else if Date().timeIntervalSince(lastProgress) > Double(stallSeconds) {
                print("bench: no progress for \(stallSeconds) s at \(assigned) assigned")
                break
            }
            // Only when to start the audit depends on this poll (the times come from the rows), and
            // the count scans the run's rows: polled often, it took CPU from the stack it measures.
            try await Task.sleep(for: .milliseconds(count > 1_000 ? 1_000 : 200))
        }
        // Then the rest of each flow (clocks, the customer's notices delivered), until complete or stalled.
        let policy = (ProcessInfo.processInfo.environment["REDRESS_SLA_POLICY"].flatMap { FileManager.default.contents(atPath: $0) })
            .flatMap { try? JSONDecoder().decode(SLAPolicy.self, from: $0) } ?? .standard
        var outcome = Outcome()
        var previousGaps = -1
        var gapsSince = Date()
        while true {
            outcome = try await audit(postgres: postgres, pattern: pattern, policy: policy, submitted: submitted, logger: logger)
            let gaps = outcome.shortfalls.values.reduce(0, +)
            if gaps == 0 { break }
            if gaps != previousGaps {
                previousGaps = gaps
                gapsSince = Date()
            } else if Date().timeIntervalSince(gapsSince) > Double(stallSeconds) {
                break
            }
            try await Task.sleep(for: .seconds(1))
        }
        return outcome
    }

    /// Each complaint of the run against `FlowAudit`: every shortfall counted by kind.
    func audit(postgres: PostgresClient, pattern: String, policy: SLAPolicy, submitted: SubmitTimes, logger: Logger) async throws -> Outcome {
        var outcome = Outcome()
        var seen = Set<Int>()
        var lastAssigned = Date.distantPast
        let rows = try await postgres.query("""
            WITH mine AS (SELECT id, external_ref, registered_at, category, claim_stage, assignee FROM complaints WHERE external_ref LIKE \(pattern)),
            assigns AS (SELECT e.complaint_id, min(e.at) AS at, count(*) AS n FROM case_events e JOIN mine ON mine.id = e.complaint_id
                        WHERE e.action = 'assign' GROUP BY e.complaint_id),
            notes AS (SELECT n.complaint_id, array_agg(n.template) AS t FROM notifications n JOIN mine ON mine.id = n.complaint_id
                      WHERE n.status = 'delivered' AND n.channel <> 'staff_inbox' GROUP BY n.complaint_id),
            clocks AS (SELECT s.complaint_id, array_agg(s.kind) AS k FROM sla_clocks s JOIN mine ON mine.id = s.complaint_id GROUP BY s.complaint_id)
            SELECT mine.external_ref, assigns.at, COALESCE(assigns.n, 0)::bigint, COALESCE(notes.t, '{}'), COALESCE(clocks.k, '{}'), mine.registered_at,
                   mine.category, mine.claim_stage, mine.assignee IS NOT NULL
            FROM mine LEFT JOIN assigns ON assigns.complaint_id = mine.id
            LEFT JOIN notes ON notes.complaint_id = mine.id LEFT JOIN clocks ON clocks.complaint_id = mine.id
            """, logger: logger)
        var lastRegistered = Date.distantPast
        var firstAssigned = Date.distantFuture
        for try await (ref, at, assignments, notes, clocks, registered, category, stage, owned) in rows.decode((String, Date?, Int64, [String], [String], Date, String?, String?, Bool).self) {
            if registered > lastRegistered { lastRegistered = registered }
            guard let n = Int(ref.split(separator: "-").last ?? "") else { continue }
            seen.insert(n)
            let subject = ClockSubject(receivedAt: registered, priority: .normal, postClaim: stage == "post_claim", regulatorDeadline: nil,
                                       category: category.flatMap(RedressDomain.Category.init(rawValue:)))
            let observed = FlowAudit.Observed(assignments: Int(assignments), delivered: Dictionary(notes.map { ($0, 1) }, uniquingKeysWith: +), clocks: clocks)
            let gaps = FlowAudit.shortfalls(observed, expectedClocks: FlowAudit.expectedClocks(policy: policy, subject: subject),
                                            notices: FlowAudit.impliedNotices(owned: owned))
            if !owned { outcome.unowned += 1 }
            for gap in gaps { outcome.shortfalls[gap.split(separator: ":").first.map(String.init) ?? gap, default: 0] += 1 }
            if gaps.contains(where: { $0.contains("duplicated") || $0.contains("unexpected") }) { outcome.duplicated += 1 }
            if !gaps.isEmpty { outcome.incomplete += 1 }
            outcome.acknowledgements += observed.delivered["complaint.registered.acknowledgement"] ?? 0
            outcome.clocks += clocks.count
            guard let at else { continue }
            outcome.assigned += 1
            if at < firstAssigned { firstAssigned = at }
            if let sent = submitted.time(n) { outcome.latencies.append(at.timeIntervalSince(sent)) }
            if at > lastAssigned { lastAssigned = at }
        }
        outcome.lost = count - seen.count
        outcome.lastAssigned = lastAssigned
        outcome.lastRegistered = lastRegistered
        outcome.firstAssigned = firstAssigned
        return outcome
    }
}

/// Submit time per complaint index, shared by the Kafka and HTTP senders.
final class SubmitTimes: @unchecked Sendable {
    private let lock = NSLock()
    private var times: [Int: Date] = [:]

    func record(range: Range<Int>, at date: Date) {
        lock.withLock { for n in range { times[n] = date } }
    }

    func time(_ n: Int) -> Date? { lock.withLock { times[n] } }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    func take(below limit: Int) -> Int? {
        lock.withLock {
            guard value < limit else { return nil }
            defer { value += 1 }
            return value
        }
    }
}

/// The supervisor's scale promise: finding the clocks due in the next second costs what is due,
/// not what is open. Fills the database with open clocks whose deadlines are spread over ten days,
/// then times `DeadlineScanner.scan` (which fires what it finds, in one transaction) second by second.
struct SLAScanBench {
    let clocks: Int
    let logger: Logger

    func run() async throws {
        let postgres = PostgresClient(configuration: try ServiceConfiguration.PostgresSettings.fromEnvironment().clientConfiguration(), backgroundLogger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await postgres.run() }
            let base = Date().addingTimeInterval(3600)
            let spread = 10 * 86_400.0
            let existing = try await count(postgres, "SELECT count(*)::bigint FROM sla_clocks WHERE stopped_at IS NULL")
            if existing < clocks {
                let started = ContinuousClock.now
                let missing = clocks - existing
                // In slices, so no single statement runs for minutes.
                var done = 0
                while done < missing {
                    let slice = min(100_000, missing - done)
                    try await postgres.query("""
                        WITH made AS (
                            INSERT INTO complaints (id, number, channel, external_ref, received_at, promised_reply_by, branch, customer_name,
                                customer_phone, customer_key, subject, content, handling_unit, status)
                            SELECT gen_random_uuid(), 'GD-SZ-SLA-' || (\(existing + done) + i), 'online', 'SLA-' || (\(existing + done) + i),
                                   now(), now() + interval '15 days', 'GD-SZ', '张三', '13812345678', 'k', 's', 'c', 'GD-SZ', 'assigned'
                            FROM generate_series(1, \(slice)) AS i
                            RETURNING id, external_ref
                        )
                        INSERT INTO sla_clocks (complaint_id, kind, started_at, warn_at, due_at)
                        SELECT id, 'decision', now(),
                               \(base)::timestamptz + make_interval(secs => (substr(external_ref, 5)::bigint % \(clocks)) * \(spread / Double(clocks))) - interval '3 days',
                               \(base)::timestamptz + make_interval(secs => (substr(external_ref, 5)::bigint % \(clocks)) * \(spread / Double(clocks)))
                        FROM made
                        """, logger: logger)
                    done += slice
                }
                try await postgres.query("ANALYZE sla_clocks", logger: logger)
                try await postgres.query("ANALYZE complaints", logger: logger)
                print(String(format: "bench: sla: %d open clocks made in %.1f s", missing, (ContinuousClock.now - started).seconds))
            }
            let open = try await count(postgres, "SELECT count(*)::bigint FROM sla_clocks WHERE stopped_at IS NULL AND breached_at IS NULL")
            let gate = StartupGate()
            gate.open()
            let scanner = DeadlineScanner(postgres: postgres, gate: gate, interval: .seconds(1), logger: logger)
            // The first due second is where the warnings begin; the scan then walks one second at a time.
            var durations: [Double] = []
            var fired = 0
            var now = try await firstDue(postgres)
            for _ in 0..<200 {
                let started = ContinuousClock.now
                fired += try await postgres.withConnection { try await scanner.scan(on: $0, now: now) }
                durations.append((ContinuousClock.now - started).seconds * 1000)
                now = now.addingTimeInterval(1)
            }
            durations.sort()
            print(String(format: "bench: sla: %d open clocks; 200 one-second scans fired %d; scan p50=%.2fms p99=%.2fms max=%.2fms",
                         open, fired, durations[100], durations[198], durations[199]))
            group.cancelAll()
        }
    }

    func count(_ postgres: PostgresClient, _ query: PostgresQuery) async throws -> Int {
        for try await n in try await postgres.query(query, logger: logger).decode(Int64.self) { return Int(n) }
        return 0
    }

    func firstDue(_ postgres: PostgresClient) async throws -> Date {
        for try await date in try await postgres.query(
            "SELECT min(warn_at) FROM sla_clocks WHERE warned_at IS NULL AND stopped_at IS NULL AND paused_at IS NULL", logger: logger).decode(Date?.self) {
            if let date { return date }
        }
        return Date()
    }
}

/// The staff queue's promise: an agent's queue of 50 answers in under 50 ms p99 with a million
/// complaints in the database. Fills it (most of them closed, one in 499 open, spread over every
/// agent), then asks the case service for agents' queues and supervisors' unit queues over HTTP.
struct QueueBench {
    let complaints: Int
    let cases: String
    let console: String?
    let concurrency: Int
    let tokens: TokenAuthority
    let logger: Logger

    func run() async throws {
        try await withBenchDatabase(logger: logger) { postgres, existing in
            if existing < complaints {
                let started = ContinuousClock.now
                var done = existing
                while done < complaints {
                    let slice = min(100_000, complaints - done)
                    try await postgres.query("""
                        WITH a AS (SELECT array_agg(id ORDER BY id) AS ids, array_agg(org_unit ORDER BY id) AS units, count(*) AS n FROM staff WHERE role = 'agent')
                        INSERT INTO complaints (id, number, channel, external_ref, received_at, promised_reply_by, branch, customer_name, customer_phone,
                            customer_key, subject, content, policy_number, category, priority, handling_unit, assignee, status)
                        SELECT gen_random_uuid(), 'BENCH-' || i, 'online', 'BENCH-' || i, now() - interval '20 days',
                               now() + make_interval(mins => (i % 1440)::int), a.units[1 + i % a.n], '张三', '13812345678', 'k-' || (i % 250000), '理赔太慢',
                               '理赔申请一个月没有结果，保单号POL-' || i || '，理赔员一直不接电话',
                               'POL-' || i, 'claims', CASE WHEN i % 7 = 0 THEN 'high' ELSE 'normal' END, a.units[1 + i % a.n], a.ids[1 + i % a.n],
                               CASE WHEN i % 499 = 0 THEN 'investigating' ELSE 'closed' END
                        FROM generate_series(\(done + 1), \(done + slice)) AS i, a
                        """, logger: logger)
                    done += slice
                }
                // What a handler's case page reads: for every open case, a history of ten actions, its four
                // clocks and three notices sent (the closed ones are the million rows the indexes must skip).
                try await postgres.query("""
                    INSERT INTO case_events (complaint_id, event_id, at, actor, action, from_status, to_status, reason, payload)
                    SELECT c.id, gen_random_uuid(), now() - make_interval(hours => 10 - k), c.assignee, 'add_note', 'investigating', 'investigating',
                           NULL, jsonb_build_object('text', '电话联系客户，说明理赔进度 ' || k)
                    FROM complaints c, generate_series(1, 10) AS k WHERE c.status <> 'closed' AND c.external_ref LIKE 'BENCH-%'
                    """, logger: logger)
                try await postgres.query("""
                    INSERT INTO sla_clocks (complaint_id, kind, started_at, warn_at, due_at)
                    SELECT c.id, k, c.received_at, c.promised_reply_by - interval '3 days', c.promised_reply_by
                    FROM complaints c, unnest(ARRAY['acknowledge', 'first_contact', 'decision', 'update']) AS k WHERE c.status <> 'closed'
                    ON CONFLICT DO NOTHING
                    """, logger: logger)
                try await postgres.query("""
                    INSERT INTO notifications (id, complaint_id, event_id, recipient, channel, template, status, body)
                    SELECT gen_random_uuid(), c.id, gen_random_uuid(), 'customer:' || c.customer_key, 'sms', t, 'delivered', '您的投诉已受理'
                    FROM complaints c, unnest(ARRAY['complaint.registered.acknowledgement', 'case.assigned.customer', 'case.awaiting_customer.customer']) AS t
                    WHERE c.status <> 'closed'
                    """, logger: logger)
                try await postgres.query("ANALYZE complaints", logger: logger)
                try await postgres.query("ANALYZE case_events", logger: logger)
                print(String(format: "bench: queue: %d complaints made in %.1f s", complaints - existing, (ContinuousClock.now - started).seconds))
            }
            var agents: [(String, String)] = [], supervisors: [(String, String)] = []
            for try await (id, unit, role) in try await postgres.query("SELECT id, org_unit, role FROM staff WHERE role IN ('agent', 'supervisor')", logger: logger)
                .decode((String, String, String).self) {
                if role == "agent" { agents.append((id, unit)) } else { supervisors.append((id, unit)) }
            }
            var total = 0, open = 0
            for try await (t, o) in try await postgres.query("SELECT count(*)::bigint, count(*) FILTER (WHERE status <> 'closed')::bigint FROM complaints", logger: logger)
                .decode((Int64, Int64).self) { (total, open) = (Int(t), Int(o)) }
            print("bench: queue: \(total) complaints in the database, \(open) open, \(agents.count) agents")
            var agentTokens: [String] = [], supervisorTokens: [String] = []
            for (id, unit) in agents { agentTokens.append(await tokens.mint(subject: id, role: .agent, unit: unit)) }
            for (id, unit) in supervisors { supervisorTokens.append(await tokens.mint(subject: id, role: .supervisor, unit: unit)) }
            let tokenOf = Dictionary(uniqueKeysWithValues: zip(agents.map(\.0), agentTokens))
            // Each agent opens their own open cases: the case page and the customer's other complaints.
            var pages: [(String, String)] = [], histories: [(String, String)] = []
            for try await (number, assignee) in try await postgres.query("""
                SELECT number, assignee FROM complaints WHERE status <> 'closed' AND assignee IS NOT NULL ORDER BY id LIMIT 2000
                """, logger: logger).decode((String, String).self) {
                guard let token = tokenOf[assignee] else { continue }
                pages.append(("/v1/cases/\(number)", token))
                histories.append(("/v1/cases/\(number)/customer-history", token))
            }
            // One staff member at a time (the latency a person sees), then the service under load.
            for connections in [1, concurrency] {
                try await measure("GET /v1/cases/mine?limit=50 (agents)", requests: agentTokens.map { ("/v1/cases/mine?limit=50", $0) },
                                  count: 2000, connections: connections, expectFull: true)
                try await measure("GET /v1/cases?limit=50 (supervisors' unit queues)", requests: supervisorTokens.map { ("/v1/cases?limit=50", $0) },
                                  count: 1000, connections: connections, expectFull: false)
                try await measure("GET /v1/cases/{number} (the case page: complaint, history, clocks, notices)", requests: pages,
                                  count: 2000, connections: connections, expectFull: false, isPage: false)
                try await measure("GET /v1/cases/{number}/customer-history", requests: histories,
                                  count: 2000, connections: connections, expectFull: false, isPage: false)
            }
            if let console {
                try await measureConsole(console, postgres: postgres, agents: agents, supervisors: supervisors, pages: pages)
            }
        }
    }

    /// The console's pages as staff see them: signed in (a session cookie), HTML rendered from the
    /// staff API's answers. The time includes the console's calls to the API.
    func measureConsole(_ console: String, postgres: PostgresClient, agents: [(String, String)], supervisors: [(String, String)],
                        pages: [(String, String)]) async throws {
        let password = "bench-password-\(UInt32.random(in: 0...UInt32.max))"
        // Agents with open cases (each signs in once: a bcrypt check), and some supervisors.
        var owners: [String] = []
        for try await id in try await postgres.query("""
            SELECT DISTINCT assignee FROM complaints WHERE status <> 'closed' AND assignee IS NOT NULL ORDER BY assignee LIMIT 24
            """, logger: logger).decode(String.self) { owners.append(id) }
        let chosen = owners + supervisors.prefix(8).map(\.0)
        _ = try await ConsoleAuth.setPassword(password, for: chosen, newTOTP: false, on: postgres, logger: logger)
        var cookies: [String: String] = [:]
        // Redirects are not followed: the answer to the sign-in post carries the session cookie itself.
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            for id in chosen { cookies[id] = try await signIn(console, id, password, client: client) }
        } catch {
            try await client.shutdown()
            throw error
        }
        try await client.shutdown()
        var casePages: [(String, String)] = []
        for try await (number, assignee) in try await postgres.query("""
            SELECT number, assignee FROM complaints WHERE status <> 'closed' AND assignee = ANY(\(chosen)::text[]) ORDER BY id LIMIT 2000
            """, logger: logger).decode((String, String).self) {
            if let cookie = cookies[assignee] { casePages.append(("/cases/\(number)", cookie)) }
        }
        let agentQueues = chosen.filter { id in agents.contains { $0.0 == id } }.compactMap { id in cookies[id].map { ("/queue/mine", $0) } }
        let unitQueues = supervisors.prefix(8).compactMap { cookies[$0.0].map { ("/queue/unit", $0) } }
        for connections in [1, concurrency] {
            try await measure("console GET /queue/mine (agents)", requests: agentQueues, count: 1000, connections: connections, expectFull: false,
                              isPage: false, base: console, cookie: true)
            try await measure("console GET /queue/unit (supervisors)", requests: unitQueues, count: 500, connections: connections, expectFull: false,
                              isPage: false, base: console, cookie: true)
            try await measure("console GET /cases/{number} (the case page)", requests: casePages, count: 1000, connections: connections,
                              expectFull: false, isPage: false, base: console, cookie: true)
        }
    }

    /// Signs in through the form, as a browser does: the sign-in page's token and cookie, then the post.
    func signIn(_ console: String, _ staffID: String, _ password: String, client: HTTPClient) async throws -> String {
        let page = try await client.execute(HTTPClientRequest(url: console + "/login"), timeout: .seconds(10))
        let html = String(buffer: try await page.body.collect(upTo: 1 << 20))
        guard let login = page.headers["Set-Cookie"].first(where: { $0.hasPrefix("redress_login=") })?.split(separator: ";").first,
              let range = html.range(of: #"name="csrf" value=""#), let end = html[range.upperBound...].firstIndex(of: "\"") else {
            throw ValidationError("the console's sign-in page has no form token")
        }
        var post = HTTPClientRequest(url: console + "/login")
        post.method = .POST
        post.headers.add(name: "Cookie", value: String(login))
        post.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        let form = "csrf=\(html[range.upperBound..<end])&staffId=\(staffID)&password=\(password)"
        post.body = .bytes(ByteBuffer(string: form))
        let answer = try await client.execute(post, timeout: .seconds(10))
        guard let session = answer.headers["Set-Cookie"].first(where: { $0.hasPrefix("redress_session=") })?.split(separator: ";").first else {
            throw ValidationError("\(staffID) could not sign in to the console (\(answer.status.code))")
        }
        return String(session)
    }

    /// Warms up, then times `count` requests over `connections` connections, each (path, token) picked in turn.
    func measure(_ name: String, requests paths: [(String, String)], count requests: Int, connections: Int, expectFull: Bool, isPage: Bool = true,
                 base: String? = nil, cookie: Bool = false) async throws {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: connections)
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        @Sendable func get(_ pair: (String, String)) async throws -> (Double, Int) {
            let (path, token) = pair
            var request = HTTPClientRequest(url: (base ?? cases) + path)
            if cookie { request.headers.add(name: "Cookie", value: token) } else { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
            let started = ContinuousClock.now
            let response = try await client.execute(request, timeout: .seconds(30))
            let body = try await response.body.collect(upTo: 4 << 20)
            let elapsed = (ContinuousClock.now - started).seconds * 1000
            guard response.status == .ok else { throw ValidationError("\(path) answered \(response.status.code)") }
            let items = ((try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any])?["items"] as? [Any]
            return (elapsed, items?.count ?? -1)
        }
        do {
            for pair in paths.prefix(200) { _ = try await get(pair) }
            let next = Counter()
            let started = ContinuousClock.now
            let results = try await withThrowingTaskGroup(of: [(Double, Int)].self) { group in
                for _ in 0..<connections {
                    group.addTask {
                        var mine: [(Double, Int)] = []
                        while let i = next.take(below: requests) { mine.append(try await get(paths[i % paths.count])) }
                        return mine
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            let seconds = (ContinuousClock.now - started).seconds
            let latencies = results.map(\.0).sorted()
            let short = results.filter { $0.1 != 50 }.count
            func at(_ q: Double) -> Double { latencies[min(latencies.count - 1, Int(Double(latencies.count) * q))] }
            print(String(format: "bench: queue: %@: %d requests, %d connections, %.0f/s; latency p50=%.1fms p99=%.1fms max=%.1fms%@",
                         name, requests, connections, Double(requests) / seconds, at(0.5), at(0.99), latencies.last ?? 0,
                         isPage ? "; pages short of 50: \(short)" : ""))
            if expectFull && short > 0 { throw ValidationError("\(short) queue pages had fewer than 50 cases: the fill did not give every agent 50 open cases") }
        } catch {
            try await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }
}

/// The report's promise: a quarter's report for HQ over a million complaints in under 2 s. Fills
/// the database (complaints received over the past year, most closed, with a cause, a liability
/// and a return visit for one in five), rebuilds the rollup for the year (what the nightly job
/// costs), then asks the case service for HQ's report of the current quarter over HTTP.
struct ReportBench {
    let complaints: Int
    let cases: String
    let tokens: TokenAuthority
    let logger: Logger

    func run() async throws {
        try await withBenchDatabase(logger: logger) { postgres, existing in
            let started = ContinuousClock.now
            var done = existing
            while done < complaints {
                let slice = min(100_000, complaints - done)
                try await postgres.query("""
                    WITH a AS (SELECT array_agg(id ORDER BY id) AS ids, array_agg(org_unit ORDER BY id) AS units, count(*) AS n FROM staff WHERE role = 'agent'),
                    r AS (SELECT i, now() - make_interval(secs => (i * 7919 % 31536000)) AS received FROM generate_series(\(done + 1), \(done + slice)) AS i)
                    INSERT INTO complaints (id, number, channel, external_ref, received_at, promised_reply_by, branch, customer_name, customer_phone,
                        customer_key, subject, content, category, priority, handling_unit, assignee, status, liability, responsible_link, cause_code,
                        closed_at, first_contact_at)
                    SELECT gen_random_uuid(), 'RBENCH-' || i, (ARRAY['online', 'call_center', 'wechat', 'branch_counter', 'regulator'])[1 + i % 5], 'RBENCH-' || i,
                           r.received, r.received + interval '15 days', a.units[1 + i % a.n], '张三', '13812345678', 'k-' || (i % 250000), '理赔太慢', '理赔太慢',
                           (ARRAY['claims', 'service', 'product', 'sales', 'other'])[1 + i % 5], 'normal', a.units[1 + i % a.n], a.ids[1 + i % a.n],
                           CASE WHEN i % 10 = 0 THEN 'investigating' ELSE 'closed' END,
                           CASE WHEN i % 10 = 0 THEN NULL WHEN i % 3 = 0 THEN 'liable' ELSE 'not_liable' END,
                           CASE WHEN i % 10 = 0 THEN NULL ELSE (ARRAY['claims', 'service', 'sales', 'product'])[1 + i % 4] END,
                           CASE WHEN i % 10 = 0 THEN NULL ELSE (ARRAY['claim_delay', 'service_attitude', 'misleading_sales', 'policy_terms'])[1 + i % 4] END,
                           CASE WHEN i % 10 = 0 THEN NULL ELSE r.received + make_interval(hours => (i % 400)::int) END,
                           r.received + make_interval(hours => (i % 30)::int)
                    FROM r, a
                    """, logger: logger)
                done += slice
            }
            if existing < complaints {
                try await postgres.query("""
                    INSERT INTO surveys (id, complaint_id, visit, due_at, status, invited_at, answered_at, score, resolved, handler)
                    SELECT gen_random_uuid(), c.id, 'day0', c.closed_at, 'answered', c.closed_at, c.closed_at + interval '2 days',
                           1 + (abs(hashtext(c.number)) % 5), true, c.assignee
                    FROM complaints c WHERE c.external_ref LIKE 'RBENCH-%' AND c.closed_at IS NOT NULL AND abs(hashtext(c.number)) % 5 = 0
                    """, logger: logger)
                try await postgres.query("ANALYZE complaints", logger: logger)
                print(String(format: "bench: report: filled %d complaints in %.1f s", complaints - existing, (ContinuousClock.now - started).seconds))
            }
            let rebuildStart = ContinuousClock.now
            try await postgres.withTransaction(logger: logger) { connection in
                try await ReportRollup.rebuild(from: Date().addingTimeInterval(-366 * 86_400), to: Date(), on: connection, logger: logger)
            }
            var rows = 0
            for try await n in try await postgres.query("SELECT count(*)::bigint FROM report_daily", logger: logger).decode(Int64.self) { rows = Int(n) }
            print(String(format: "bench: report: rollup rebuilt for a year in %.1f s (%d rollup rows; the nightly job's cost)",
                         (ContinuousClock.now - rebuildStart).seconds, rows))

            let token = await tokens.mint(subject: "HQ-SUP01", role: .supervisor, unit: "HQ")
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: ReportRollup.zone)!
            let parts = calendar.dateComponents([.year, .month], from: Date())
            let quarter = "\(parts.year!)-Q\((parts.month! - 1) / 3 + 1)"
            var latencies: [Double] = []
            var received: Int64 = -1
            for _ in 0..<30 {
                var request = HTTPClientRequest(url: "\(cases)/v1/reports?unit=HQ&period=\(quarter)")
                request.headers.add(name: "Authorization", value: "Bearer \(token)")
                let start = ContinuousClock.now
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
                let body = try await response.body.collect(upTo: 16 << 20)
                latencies.append((ContinuousClock.now - start).seconds * 1000)
                guard response.status == .ok else { throw ValidationError("GET /v1/reports answered \(response.status.code): \(String(buffer: body))") }
                received = ((try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any]).flatMap { ($0["volume"] as? [String: Any])?["received"] as? Int64 } ?? received
            }
            latencies.sort()
            print(String(format: "bench: report: GET /v1/reports?unit=HQ&period=%@ (%lld received in the quarter): p50=%.1fms p99=%.1fms max=%.1fms over %d requests",
                         quarter, received, latencies[latencies.count / 2], latencies[min(latencies.count - 1, Int(Double(latencies.count) * 0.99))],
                         latencies.last!, latencies.count))
        }
    }
}

/// The fill benchmarks' database: a client whose pool runs while `body` does, and how many
/// complaints are stored already (a second run adds only what is missing).
func withBenchDatabase(logger: Logger, _ body: (PostgresClient, Int) async throws -> Void) async throws {
    let postgres = PostgresClient(configuration: try ServiceConfiguration.PostgresSettings.fromEnvironment().clientConfiguration(), backgroundLogger: logger)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await postgres.run() }
        defer { group.cancelAll() }
        var existing = 0
        for try await n in try await postgres.query("SELECT count(*)::bigint FROM complaints", logger: logger).decode(Int64.self) { existing = Int(n) }
        try await body(postgres, existing)
    }
}

/// Reads `/proc` every quarter second while the run is timed, so the account can end at the last
/// assignment rather than after the audit (whose queries are the bench's, not the flow's).
final class CPUSampler: @unchecked Sendable {
    private let lock = NSLock()
    private let startMachine: CPUAccount.MachineTicks?
    private var ledger: CPUAccount.Ledger
    private var samples: [(at: Date, machine: CPUAccount.MachineTicks, programs: [String: UInt64])] = []

    init() {
        startMachine = Self.machine()
        ledger = CPUAccount.Ledger(start: Self.processes())
    }

    static func machine() -> CPUAccount.MachineTicks? {
        (try? String(contentsOfFile: "/proc/stat", encoding: .utf8)).flatMap(CPUAccount.machineTicks(procStat:))
    }

    static func processes() -> [Int: String] {
        var stats: [Int: String] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8) else { continue }
            stats[pid] = stat
        }
        return stats
    }

    func sample() {
        guard let machine = Self.machine() else { return }
        let stats = Self.processes()
        lock.withLock {
            ledger.record(stats)
            samples.append((Date(), machine, ledger.ticksByProgram))
        }
    }

    func run() async {
        while !Task.isCancelled {
            sample()
            try? await Task.sleep(for: .milliseconds(250))
        }
    }

    /// The account from the start to the sample nearest `end`.
    func summary(until end: Date, complaints: Int) -> CPUAccount.Summary? {
        lock.withLock {
            guard let start = startMachine,
                  let nearest = samples.min(by: { abs($0.at.timeIntervalSince(end)) < abs($1.at.timeIntervalSince(end)) })
            else { return nil }
            return CPUAccount.summary(start: start, end: nearest.machine, ticksByProgram: nearest.programs, complaints: complaints,
                                      ticksPerSecond: Double(sysconf(Int32(_SC_CLK_TCK))))
        }
    }
}

/// A fixed piece of the services' own kind of work — 20,000 submissions encoded to and decoded from
/// JSON, on one core — timed before the run: figures from machines of different speed can be compared
/// by it (the best of three, so a moment's interruption does not count).
func calibrate() throws -> Double {
    let sample = ComplaintSubmission(
        channel: "call_center", externalRef: "CAL-1", receivedAt: Date(timeIntervalSince1970: 1_764_000_000),
        customer: .init(name: "测试客户", phone: "13900000000"), policyNumber: "P100000", branch: "GD-SZ",
        subject: "理赔进度投诉 claim delay", content: String(repeating: "客户反映理赔申请提交后三周仍未到账。", count: 4))
    let encoder = EventCoding.encoder()
    let decoder = EventCoding.decoder()
    var best = Double.infinity
    for _ in 0..<3 {
        let begin = ContinuousClock.now
        for _ in 0..<20_000 {
            _ = try decoder.decode(ComplaintSubmission.self, from: encoder.encode(sample))
        }
        best = min(best, (ContinuousClock.now - begin).seconds * 1000)
    }
    return best
}
