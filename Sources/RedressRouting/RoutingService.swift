import Foundation
import Hummingbird
import Logging
import Metrics
import NIOConcurrencyHelpers
import PostgresNIO
import RedressContracts
import RedressDomain
import RedressServiceKit
import RedressStore
import ServiceLifecycle

/// `redress-routing`: gives every registered complaint a category, a priority, a handling unit
/// and a named owner, and says so in `complaint.assigned` — with the rules and their version.
public enum RoutingService {
    public static let name = "redress-routing"
    public static let defaultPort = 8084
    public static let consumerGroup = "redress-routing"
    /// NOTIFY channel `redressctl rules reload` uses to make every routing instance reload.
    public static let reloadChannel = "redress_rules"
    static let actor = Actor.service(name)

    public static func main() async throws {
        let file = ProcessInfo.processInfo.environment["REDRESS_ROUTING_RULES"] ?? "deploy/routing/rules.yaml"
        try await ServiceHost.serve(service: name, defaultPort: defaultPort) { host in
            do {
                return build(host: host, rules: try RoutingRules.load(file: file), rulesFile: file)
            } catch {
                // Refuse to start on rules that do not validate: every problem is in the message.
                host.logger.critical("\(error)")
                exit(2)
            }
        }
    }

    /// Re-reads the rules file on SIGHUP and `redressctl rules reload`.
    static func rulesReloader(engine: RoutingEngine, file: String, postgres: PostgresClient, gate: StartupGate, logger: Logger) -> ReloadListener {
        ReloadListener(channel: reloadChannel, postgres: postgres, gate: gate, logger: logger) { reloadRules(engine, file: file, why: $0, logger: logger) }
    }

    /// An invalid file is refused with its problems logged, and the rules in force stay.
    static func reloadRules(_ engine: RoutingEngine, file: String, why: String, logger: Logger) {
        do {
            let rules = try RoutingRules.load(file: file)
            engine.replace(rules)
            logger.notice("routing rules reloaded", metadata: ["version": "\(rules.version)", "trigger": "\(why)", "file": "\(file)"])
        } catch {
            logger.error("\(error)")
        }
    }

    public static func build(host: ServiceHost, rules: RoutingRules, rulesFile: String? = nil) -> (Router<RedressRequestContext>, [any Service]) {
        let engine = RoutingEngine(rules: rules, postgres: host.postgres, logger: host.logger)
        // Lanes as configured: a batch locks only the agents with room it may assign to (`AgentPool`),
        // so lanes wait on each other only when they assign in the same unit, and in a surge, with
        // every agent full, not at all. With one lane, routing was the queue at 1,000/s.
        let consumer = host.consumer(group: consumerGroup, topics: [EventType.complaintRegistered.topic],
                                     handler: EventHandler<ComplaintRegistered>(engine.route))
        let reroutes = host.consumer(group: consumerGroup + ".reroute", topics: RerouteHandler.topics, handler: RerouteHandler(engine: engine), lanes: 1)
        var services: [any Service] = [consumer, reroutes]
        if let rulesFile {
            services.append(rulesReloader(engine: engine, file: rulesFile, postgres: host.postgres, gate: host.gate, logger: host.logger))
        }
        return (host.router(), services)
    }
}

/// The routing decisions, with the rules in force behind a lock so they can be swapped while running.
public final class RoutingEngine: Sendable {
    let triage: NIOLockedValueBox<Triage>
    private let directory = NIOLockedValueBox<(at: ContinuousClock.Instant, org: OrgDirectory)?>(nil)
    let postgres: PostgresClient
    let logger: Logger

    public init(rules: RoutingRules, postgres: PostgresClient, logger: Logger) {
        self.triage = NIOLockedValueBox(Triage(rules: rules))
        self.postgres = postgres
        self.logger = logger
    }

    public var rulesVersion: String { triage.withLockedValue { $0.rules.version } }

    /// Puts new rules in force for the next batch.
    public func replace(_ rules: RoutingRules) {
        triage.withLockedValue { $0 = Triage(rules: rules) }
    }

    /// The org tree, re-read at most every 30 seconds (units change rarely; a batch must not wait on it).
    func org(on connection: PostgresConnection) async throws -> OrgDirectory {
        if let cached = directory.withLockedValue({ $0 }), ContinuousClock.now - cached.at < .seconds(30) { return cached.org }
        var units: [OrgDirectory.Unit] = []
        let rows = try await connection.query("SELECT code, parent_code, level, claims_centralised FROM org_units", logger: logger)
        for try await (code, parent, level, centralised) in rows.decode((String, String?, String, Bool).self) {
            units.append(.init(code: code, parent: parent, level: OrgLevel(rawValue: level) ?? .city, claimsCentralised: centralised))
        }
        let org = OrgDirectory(units)
        directory.withLockedValue { $0 = (.now, org) }
        return org
    }

    /// Routes a batch: one staff query per batch, owners picked in memory under row locks, so two
    /// routing instances never push one person past capacity.
    @Sendable
    public func route(_ events: [EventEnvelope<ComplaintRegistered>], on connection: PostgresConnection, logger: Logger) async throws {
        let triage = self.triage.withLockedValue { $0 }
        let org = try await org(on: connection)
        let plans = events.map { event -> (EventEnvelope<ComplaintRegistered>, Triage.Decision, UnitResolution.Outcome) in
            let decision = triage.decide(event.payload)
            let unit = UnitResolution.initial(branch: event.payload.branch, channel: event.payload.channel,
                                              centralised: decision.centralised, rules: triage.rules, org: org)
            return (event, decision, unit)
        }
        // The skills each unit's complaints need (nil: none): only agents who could take one are locked.
        var needs: [String: Set<String?>] = [:]
        for (event, decision, unit) in plans where !event.payload.customer.flags.contains(.vexatiousRegister) {
            needs[unit.unit, default: []].insert(triage.skill(for: decision.category))
        }
        var candidates = try await AgentPool.lock(units: Set(plans.map(\.2.unit)), eligible: { unit, agent in
            needs[unit]?.contains { skill in skill.map(agent.skills.contains) ?? true } ?? false
        }, on: connection, logger: logger)
        var clock = Date().timeIntervalSince1970
        var outbox: [OutboxEntry] = []
        var load: [String: Int] = [:]
        var assigned = CounterTally("redress_complaints_assigned_total", dimensions: ["category", "priority", "unit"])
        var unassignable = CounterTally("redress_routing_unassignable_total", dimensions: ["unit"])
        var waiting: [String] = []
        let encoder = EventCoding.encoder()
        for (event, decision, unit) in plans {
            let skill = triage.skill(for: decision.category)
            let excluded = Set([event.payload.policyAgent, event.payload.claimHandler].compactMap { $0 })
            var pool = candidates[unit.unit] ?? []
            // A customer on the vexatious-complainant register: the unit's supervisor decides who handles it.
            let registered = event.payload.customer.flags.contains(.vexatiousRegister)
            let assignee = registered ? nil : Assignment.pick(1, from: &pool, clock: &clock, skill: skill, excluded: excluded)[0]
            candidates[unit.unit] = pool
            if let assignee {
                load[assignee, default: 0] += 1
            } else {
                unassignable.add(unit.unit)
                waiting.append(event.payload.number)
                let reason = registered
                    ? "the customer is on the vexatious-complainant register (无理缠访备案): a supervisor of the unit assigns the case"
                    : Self.whyUnassignable(pool: pool, skill: skill, excluded: excluded)
                outbox.append(try OutboxEntry(EventEnvelope(complaintId: event.complaintId, orgUnit: unit.unit, actor: RoutingService.actor,
                    payload: ComplaintUnassignable(number: event.payload.number, handlingUnit: unit.unit, category: decision.category,
                                                   priority: decision.priority, reason: reason)), encoder: encoder))
            }
            let payload = ComplaintAssigned(
                number: event.payload.number, category: decision.category, priority: decision.priority, handlingUnit: unit.unit,
                assignee: assignee, ruleIds: decision.ruleIds + [unit.ruleID], rulesVersion: decision.rulesVersion, reason: .initial)
            outbox.append(try OutboxEntry(EventEnvelope(complaintId: event.complaintId, orgUnit: unit.unit, actor: RoutingService.actor, payload: payload), encoder: encoder))
            assigned.add(decision.category.rawValue, decision.priority.rawValue, unit.unit)
        }
        try await addLoad(load, on: connection, logger: logger)
        try await Outbox.append(outbox, on: connection, logger: logger)
        assigned.record()
        unassignable.record()
        Self.recordWorkload(candidates)
        if !waiting.isEmpty {
            // One line per batch: in a surge, a line per complaint would drown the log.
            logger.warning("no eligible agent; complaints wait in their unit's supervisor queue", metadata: [
                "count": "\(waiting.count)", "first": "\(waiting.prefix(5).joined(separator: ","))",
            ])
        }
        // Registration to routing decision, per complaint: what operations watch during a surge.
        let now = Date()
        let timer = Metrics.Timer(label: "redress_routing_latency_seconds")
        for event in events {
            timer.recordNanoseconds(Int64(max(0, now.timeIntervalSince(event.payload.registeredAt)) * 1e9))
        }
    }

    func addLoad(_ load: [String: Int], on connection: PostgresConnection, logger: Logger) async throws {
        guard !load.isEmpty else { return }
        let ids = Array(load.keys)
        let counts = ids.map { load[$0]! }
        try await connection.query("""
            UPDATE staff s SET open_cases = s.open_cases + t.n, last_assigned_at = now()
            FROM unnest(\(ids)::text[], \(counts)::int[]) AS t(id, n) WHERE s.id = t.id
            """, logger: logger)
    }

    static func whyUnassignable(pool: [Assignment.Candidate], skill: String?, excluded: Set<String>) -> String {
        if pool.isEmpty { return "the unit has no active, available agent" }
        let skilled = pool.filter { skill.map($0.skills.contains) ?? true }
        if skilled.isEmpty { return "no available agent of the unit has the skill '\(skill ?? "")'" }
        let free = skilled.filter { !excluded.contains($0.id) }
        if free.isEmpty { return "every skilled agent of the unit has a conflict of interest (sold the policy or handled the claim)" }
        return "every eligible agent of the unit is at capacity"
    }

    /// Open cases over capacity per unit, for the units this batch touched.
    static func recordWorkload(_ candidates: [String: [Assignment.Candidate]]) {
        for (unit, agents) in candidates {
            let capacity = agents.reduce(0) { $0 + $1.capacity }
            guard capacity > 0 else { continue }
            Gauge(label: "redress_routing_workload_ratio", dimensions: [("unit", unit)]).record(Double(agents.reduce(0) { $0 + $1.openCases }) / Double(capacity))
        }
    }
}
