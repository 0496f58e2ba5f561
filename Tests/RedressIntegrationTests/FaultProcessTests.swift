import AsyncHTTPClient
import Foundation
import NIOCore
import PostgresNIO
import RedressContracts
import RedressServiceKit
import Testing

/// Real processes when their parts are missing: a service that cannot reach its database still
/// stops when told, and intake takes complaints while the broker is away (they wait in the outbox).
@Suite(.serialized) struct FaultProcessTests {
    typealias Stack = EndToEndTests.Stack

    @Test func aServiceWithoutItsDatabaseStopsOnSIGTERMWithinTenSeconds() async throws {
        let stack = try Stack()
        try await stack.startBroker()
        try await stack.run { _ in
            for service in ["cases", "intake", "notify"] {
                var environment = stack.environment(service: service, database: "redress", port: stack.port(service))
                // Nothing listens there: the service keeps retrying its start-up, its consumers wait at the gate.
                environment["REDRESS_PG_PORT"] = "1"
                let process = try stack.launch("redress-\(service)", environment: environment, log: "\(service)-nodb.log")
                try await Task.sleep(for: .seconds(2))
                #expect(process.isRunning, "\(service) waits for its database rather than dying")
                process.terminate()
                #expect(await stack.waitForExit(process, within: 10), "\(service) did not stop within 10 s of SIGTERM")
            }
        }
    }

    @Test func intakeIsReadyAndTakesComplaintsWithTheBrokerAway() async throws {
        try await TestDatabase.withFresh { db, database in
            let stack = try Stack()
            try await stack.run { http in
                var environment = stack.environment(service: "intake", database: database, port: stack.port("intake"))
                environment["REDRESS_KAFKA_BOOTSTRAP"] = "127.0.0.1:1"
                _ = try stack.launch("redress-intake", environment: environment, log: "intake-nobroker.log")
                let base = "http://127.0.0.1:\(stack.port("intake"))"
                try await eventually("intake is ready on PostgreSQL alone", timeout: .seconds(30)) {
                    (try? await EndToEndTests.call(http, .GET, base + "/ready").status) == 200
                }
                let token = (await TokenAuthority(secret: stack.secret).mint(subject: "online", role: .channel, unit: "HQ"))
                let answer = try await EndToEndTests.call(http, .POST, base + "/v1/complaints", token: token,
                                                          body: EndToEndTests.submission(ref: "WEB-NOBROKER-1"))
                #expect(answer.status == 201, "\(answer.text)")
                #expect(try await TestDatabase.count(db, "SELECT count(*) FROM outbox WHERE event_type = 'complaint.registered'") == 1,
                        "the event waits in the outbox for the broker")
            }
        }
    }

    /// The benchmark behaves like a channel: intake killed (SIGKILL) and started again while HTTP
    /// submissions are in flight costs time, not complaints — every one registered once and assigned.
    @Test func theBenchmarkLosesAndDuplicatesNothingWhenIntakeRestartsMidRun() async throws {
        try await TestDatabase.withFresh { db, database in
            let stack = try Stack()
            try await stack.run { http in
                try await stack.start(database: database)
                for service in EndToEndTests.services {
                    try await eventually("redress-\(service.name) is ready", timeout: .seconds(60)) {
                        (try? await EndToEndTests.call(http, .GET, "http://127.0.0.1:\(stack.port(service.name))/ready").status) == 200
                    }
                }
                // Consumer groups join after the mock cluster's session timeout.
                try await Task.sleep(for: .seconds(7))
                var environment = stack.environment(service: "bench", database: database, port: 0)
                environment["REDRESS_PG_USER"] = "redress"
                let bench = try stack.launch("redress-bench", arguments: ["--count", "800", "--http", "800", "--concurrency", "16",
                                                                         "--intake", "http://127.0.0.1:\(stack.port("intake"))"],
                                             environment: environment, log: "bench.log")
                try await eventually("the first complaints are registered", timeout: .seconds(60)) {
                    (try? await TestDatabase.count(db, "SELECT count(*) FROM complaints WHERE external_ref LIKE 'BENCH-%'")) ?? 0 >= 50
                }
                let intake = try #require(stack.processes.first { $0.0 == "redress-intake" }?.1)
                kill(intake.processIdentifier, SIGKILL)
                _ = await stack.waitForExit(intake, within: 5)
                let registeredAtKill = try await TestDatabase.count(db, "SELECT count(*) FROM complaints WHERE external_ref LIKE 'BENCH-%'")
                #expect(registeredAtKill < 800, "intake was killed with submissions still to come (\(registeredAtKill) registered)")
                try await Task.sleep(for: .seconds(1))
                _ = try stack.launch("redress-intake", environment: stack.environment(service: "intake", database: database, port: stack.port("intake")),
                                     log: "intake-restarted.log")
                try await eventually("the benchmark ends", timeout: .seconds(240)) { !bench.isRunning }
                let output = try String(contentsOf: stack.directory.appendingPathComponent("bench.log"), encoding: .utf8)
                #expect(bench.terminationStatus == 0, "\(output)")
                #expect(output.contains("lost=0 duplicated=0 incomplete=0"), "\(output)")
                #expect(try await TestDatabase.count(db, "SELECT count(*) FROM complaints WHERE external_ref LIKE 'BENCH-%'") == 800)
            }
        }
    }
}

