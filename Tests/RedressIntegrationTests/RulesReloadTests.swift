import Foundation
import PostgresNIO
@testable import RedressRouting
@testable import RedressServiceKit
import ServiceLifecycleTestKit
import Testing

/// Operations change the rules without a release: `redressctl rules reload` NOTIFYs every routing
/// instance, which re-reads its file; a bad file is refused and the rules in force stay.
@Suite struct RulesReloadTests {
    static func rules(_ version: String) -> String {
        """
        version: "\(version)"
        classification:
          - id: claims.any
            category: claims
            any: ["理赔"]
        """
    }

    @Test func aNotifiedReloadPutsNewRulesInForceAndABadFileChangesNothing() async throws {
        try await TestDatabase.withFresh(seed: false) { db, _ in
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("rules-\(UUID().uuidString).yaml")
            try Self.rules("v1").write(to: file, atomically: true, encoding: .utf8)
            let engine = RoutingEngine(rules: try RoutingRules.load(file: file.path), postgres: db, logger: TestDatabase.logger)
            let gate = StartupGate()
            gate.open()
            let reloader = RoutingService.rulesReloader(engine: engine, file: file.path, postgres: db, gate: gate, logger: TestDatabase.logger)
            try await testGracefulShutdown { trigger in
                let running = Task { try await reloader.run() }
                try Self.rules("v2").write(to: file, atomically: true, encoding: .utf8)
                // The listener may not be subscribed yet: notify until the new version is in force.
                try await eventually("v2 in force") {
                    try await db.query("SELECT pg_notify(\(RoutingService.reloadChannel), 'v2')", logger: TestDatabase.logger)
                    try await Task.sleep(for: .milliseconds(200))
                    return engine.rulesVersion == "v2"
                }
                try "version: [broken".write(to: file, atomically: true, encoding: .utf8)
                RoutingService.reloadRules(engine, file: file.path, why: "test", logger: TestDatabase.logger)
                #expect(engine.rulesVersion == "v2")
                trigger.triggerGracefulShutdown()
                _ = await running.result
            }
        }
    }
}
