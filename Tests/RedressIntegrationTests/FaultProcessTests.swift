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
                let token = TokenAuthority(secret: stack.secret).mint(subject: "online", role: .channel, unit: "HQ")
                let answer = try await EndToEndTests.call(http, .POST, base + "/v1/complaints", token: token,
                                                          body: EndToEndTests.submission(ref: "WEB-NOBROKER-1"))
                #expect(answer.status == 201, "\(answer.text)")
                #expect(try await TestDatabase.count(db, "SELECT count(*) FROM outbox WHERE event_type = 'complaint.registered'") == 1,
                        "the event waits in the outbox for the broker")
            }
        }
    }
}
