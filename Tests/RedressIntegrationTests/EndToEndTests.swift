import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import PostgresNIO
import RedressDomain
import RedressContracts
import RedressKafka
import RedressServiceKit
import Testing

/// The real executables — development broker and the six services — against a fresh database:
/// a complaint posted to intake (and one published upstream) is assigned and visible through cases,
/// investigated, closed, visited, found unresolved by the customer, and reopened one level up.
@Suite(.serialized) struct EndToEndTests {
    static let services: [(name: String, port: Int)] = [
        ("intake", 1), ("cases", 2), ("surveys", 3), ("routing", 4), ("notify", 5), ("supervisor", 6),
    ]

    final class Stack: @unchecked Sendable {
        let directory: URL
        let basePort: Int
        let secret = String(repeating: "e2e-secret-", count: 4)
        var processes: [(String, Process)] = []
        var bootstrap = ""

        init() throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("redress-e2e-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            // Each stack of this test process takes the next block of ports: two stacks never share one.
            basePort = 28_000 + Self.nextBlock.withLockedValue { block in
                defer { block = (block + 1) % 90 }
                return block
            } * 10
        }

        static let nextBlock = NIOLockedValueBox(Int.random(in: 0..<90))

        static var binaries: URL {
            if let dir = ProcessInfo.processInfo.environment["REDRESS_BIN_DIR"] { return URL(fileURLWithPath: dir) }
            return TestDatabase.repo.appendingPathComponent(".build/debug")
        }

        func port(_ service: String) -> Int { basePort + EndToEndTests.services.first { $0.name == service }!.port }

        func launch(_ executable: String, arguments: [String] = [], environment: [String: String] = [:], log: String) throws -> Process {
            let process = Process()
            process.executableURL = Self.binaries.appendingPathComponent(executable)
            process.arguments = arguments
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            let logURL = directory.appendingPathComponent(log)
            FileManager.default.createFile(atPath: logURL.path, contents: nil)
            let handle = try FileHandle(forWritingTo: logURL)
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            processes.append((executable, process))
            return process
        }

        /// The deployment files every service reads, from this checkout.
        static let files = [
            "REDRESS_ROUTING_RULES": TestDatabase.repo.appendingPathComponent("deploy/routing/rules.yaml").path,
            "REDRESS_CLOSURE_TAXONOMY": TestDatabase.repo.appendingPathComponent("deploy/cases/closure-taxonomy.json").path,
            "REDRESS_REGULATOR_CLASSES": TestDatabase.repo.appendingPathComponent("deploy/reports/regulator-classes.json").path,
            "REDRESS_SLA_POLICY": TestDatabase.repo.appendingPathComponent("deploy/sla/policy.json").path,
            "REDRESS_CALENDARS": TestDatabase.repo.appendingPathComponent("deploy/calendars").path,
            "REDRESS_NOTIFY_TEMPLATES": TestDatabase.repo.appendingPathComponent("deploy/notify/templates.json").path,
            "REDRESS_SMS_GATEWAY_URL": "log:", "REDRESS_WECHAT_GATEWAY_URL": "log:", "REDRESS_SMTP": "log:",
            // Set, not defaulted: the flow waits for texts to be delivered, which quiet hours would hold to the morning.
            "REDRESS_QUIET_HOURS": "off",
        ]

        /// The environment of a service process of this stack.
        func environment(service: String, database: String, port: Int) -> [String: String] {
            let env = ProcessInfo.processInfo.environment
            return [
                "REDRESS_PG_HOST": env["REDRESS_PG_HOST"] ?? "127.0.0.1", "REDRESS_PG_PORT": env["REDRESS_PG_PORT"] ?? "5432",
                // As production runs: the service role (row-level security applies), the schema migrated beforehand.
                "REDRESS_PG_USER": "redress_service", "REDRESS_MIGRATE_ON_START": "false", "REDRESS_PG_DATABASE": database, "REDRESS_PG_POOL_SIZE": "4",
                "REDRESS_KAFKA_BOOTSTRAP_FILE": directory.appendingPathComponent("kafka.bootstrap").path, "REDRESS_KAFKA_SESSION_TIMEOUT_MS": "6000",
                "REDRESS_JWT_SECRET": secret, "REDRESS_PII_KEY": secret + "-pii", "REDRESS_HTTP_PORT": "\(port)",
                "REDRESS_LOG_LEVEL": "info", "REDRESS_INSTANCE": "\(service)-\(port)",
            ].merging(Self.files) { $1 }
        }

        func startBroker() async throws {
            let bootstrapFile = directory.appendingPathComponent("kafka.bootstrap").path
            _ = try launch("redress-devbroker", arguments: ["--bootstrap-file", bootstrapFile], log: "devbroker.log")
            try await eventually("the development broker writes its address") { FileManager.default.fileExists(atPath: bootstrapFile) }
            bootstrap = try String(contentsOfFile: bootstrapFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        }

        func start(database: String) async throws {
            try await startBroker()
            for service in EndToEndTests.services {
                _ = try launch("redress-\(service.name)", environment: environment(service: service.name, database: database, port: port(service.name)),
                               log: "\(service.name).log")
            }
        }

        /// SIGTERM to the services, then the broker; returns the services' exit codes.
        /// Waits without blocking a thread of the cooperative pool.
        func waitForExit(_ process: Process, within seconds: Double) async -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while process.isRunning, Date() < deadline { try? await Task.sleep(for: .milliseconds(50)) }
            return !process.isRunning
        }

        func stop() async -> [String: Int32] {
            var codes: [String: Int32] = [:]
            let services = processes.filter { $0.0 != "redress-devbroker" }
            for (_, process) in services where process.isRunning { process.terminate() }
            for (name, process) in services {
                if await waitForExit(process, within: 20) {
                    codes[name] = process.terminationStatus
                } else {
                    kill(process.processIdentifier, SIGKILL)
                    _ = await waitForExit(process, within: 5)
                    codes[name] = -9
                }
            }
            for (name, process) in processes where name == "redress-devbroker" {
                process.terminate()
                if !(await waitForExit(process, within: 5)) { kill(process.processIdentifier, SIGKILL) }
            }
            return codes
        }

        /// Runs `redressctl` as the schema owner against `database` (with `environment` on top) until it
        /// ends; returns its exit status and everything it printed.
        func redressctl(database: String, _ arguments: [String], environment extra: [String: String] = [:]) async throws -> (Int32, String) {
            let output = "redressctl-\(UUID().uuidString.prefix(6)).out"
            var environment = self.environment(service: "redressctl", database: database, port: 0).merging(extra) { $1 }
            environment["REDRESS_PG_USER"] = "redress"
            let process = try launch("redressctl", arguments: arguments, environment: environment, log: output)
            try await eventually("redressctl \(arguments.joined(separator: " ")) ends", timeout: .seconds(90)) { !process.isRunning }
            return (process.terminationStatus, try String(contentsOf: directory.appendingPathComponent(output), encoding: .utf8))
        }

        /// Runs `body` with an HTTP client; on failure prints the processes' logs; whatever happens, stops
        /// the processes and the client.
        func run(_ body: (HTTPClient) async throws -> Void) async throws {
            let http = HTTPClient(eventLoopGroupProvider: .singleton)
            do {
                try await body(http)
            } catch {
                print((try? logs()) ?? "")
                _ = await stop()
                try await http.shutdown()
                throw error
            }
            _ = await stop()
            try await http.shutdown()
        }

        func logs() throws -> String {
            try FileManager.default.contentsOfDirectory(atPath: directory.path)
                .filter { $0.hasSuffix(".log") }
                .map { try String(contentsOf: directory.appendingPathComponent($0), encoding: .utf8) }
                .joined(separator: "\n")
        }
    }

    struct Answer {
        var status: Int
        var json: [String: Any]
        var text: String
    }

    static func call(_ client: HTTPClient, _ method: HTTPMethod, _ url: String, token: String? = nil, body: [UInt8]? = nil) async throws -> Answer {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response = try await client.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 4 << 20)
        let text = String(buffer: bytes)
        let json = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
        return Answer(status: Int(response.status.code), json: json, text: text)
    }

    /// Received five minutes ago, on whole seconds: every clock starts from it, so the flow reads the
    /// same on any date and at any hour.
    static func receivedAt() -> Date { Date(timeIntervalSince1970: (Date().timeIntervalSince1970 - 300).rounded(.down)) }

    static func submission(ref: String, phone: String = "13812345678", receivedAt: Date = receivedAt()) -> [UInt8] {
        Array(#"""
        {"channel":"online","externalRef":"\#(ref)","receivedAt":"\#(Timestamp.format(receivedAt))",
         "customer":{"name":"张三","phone":"\#(phone)","idNumber":"11010519491231002X","flags":["elderly"]},
         "policyNumber":"P20260001","branch":"GD-SZ","subject":"理赔太慢","content":"理赔申请一个月没有结果，请回电\#(phone)"}
        """#.utf8)
    }

    @Test func aComplaintGoesFromIntakeToClosureAndADissatisfiedVisitBringsItBackOneLevelUp() async throws {
        try await TestDatabase.withFresh { db, database in
            let stack = try Stack()
            let http = HTTPClient(eventLoopGroupProvider: .singleton)
            do {
                try await Self.flow(stack: stack, http: http, db: db, database: database)
            } catch {
                _ = await stack.stop()
                try? await http.shutdown()
                throw error
            }
            try await http.shutdown()
        }
    }

    static func flow(stack: Stack, http: HTTPClient, db: PostgresClient, database: String) async throws {
            try await stack.start(database: database)
            for service in EndToEndTests.services {
                try await eventually("redress-\(service.name) is ready", timeout: .seconds(60)) {
                    (try? await EndToEndTests.call(http, .GET, "http://127.0.0.1:\(stack.port(service.name))/ready").status) == 200
                }
            }
            let tokens = TokenAuthority(secret: stack.secret)
            let channel = (await tokens.mint(subject: "online", role: .channel, unit: "HQ"))
            // A claims complaint: Guangdong centralises claims, so the province handles it (rules: claims.*, unit.centralised_province).
            let agent = (await tokens.mint(subject: "GD-AGE01", role: .agent, unit: "GD"))
            let intake = "http://127.0.0.1:\(stack.port("intake"))/v1/complaints"
            let cases = "http://127.0.0.1:\(stack.port("cases"))/v1/complaints"

            // Registered, numbered, promised a reply date.
            let receivedAt = EndToEndTests.receivedAt()
            let created = try await EndToEndTests.call(http, .POST, intake, token: channel, body: EndToEndTests.submission(ref: "WEB-E2E-1", receivedAt: receivedAt))
            #expect(created.status == 201, "\(created.text)")
            let id = try #require(created.json["id"] as? String)
            let number = try #require(created.json["number"] as? String)
            #expect(number.hasPrefix("GD-SZ-"))
            // The regulation's 15 calendar days from receipt.
            #expect(created.json["promisedReplyBy"] as? String == Timestamp.format(receivedAt.addingTimeInterval(15 * 86_400)))

            // The same channel reference again is the same complaint.
            let again = try await EndToEndTests.call(http, .POST, intake, token: channel, body: EndToEndTests.submission(ref: "WEB-E2E-1", receivedAt: receivedAt))
            #expect(again.status == 200)
            #expect(again.json["number"] as? String == number)
            #expect(again.json["duplicate"] as? Bool == true)

            // Routed and assigned, visible to the handling unit's agent.
            var view: [String: Any] = [:]
            try await eventually("the complaint is assigned", timeout: .seconds(60)) {
                view = try await EndToEndTests.call(http, .GET, "\(cases)/\(id)", token: agent).json
                return view["status"] as? String == "assigned"
            }
            #expect(view["handlingUnit"] as? String == "GD")
            #expect((view["assignee"] as? String)?.hasPrefix("GD-AGE") == true)
            #expect(view["category"] as? String == "claims")
            #expect(view["priority"] as? String == "high")
            #expect((view["customer"] as? [String: Any])?["phone"] as? String == "138****5678")
            #expect(try await EndToEndTests.call(http, .GET, "\(cases)/\(number)", token: agent).status == 200)

            // Another province and a unit below do not see it; HQ above does.
            #expect(try await EndToEndTests.call(http, .GET, "\(cases)/\(id)", token: (await tokens.mint(subject: "ZJ-AGE01", role: .agent, unit: "ZJ"))).status == 404)
            #expect(try await EndToEndTests.call(http, .GET, "\(cases)/\(id)", token: (await tokens.mint(subject: "GD-SZ-AGE01", role: .agent, unit: "GD-SZ"))).status == 404)
            #expect(try await EndToEndTests.call(http, .GET, "\(cases)/\(id)", token: (await tokens.mint(subject: "HQ-SUP01", role: .supervisor, unit: "HQ"))).status == 200)

            // Every service that must act did, once.
            try await eventually("clocks started, customer acknowledged, owner told") {
                let clocks = try await TestDatabase.count(db, "SELECT count(*) FROM sla_clocks")
                let acknowledgements = try await TestDatabase.count(db, "SELECT count(*) FROM notifications WHERE template = 'complaint.registered.acknowledgement'")
                let owners = try await TestDatabase.count(db, "SELECT count(*) FROM notifications WHERE template = 'case.assigned.owner'")
                let introduced = try await TestDatabase.count(db, "SELECT count(*) FROM notifications WHERE template = 'case.assigned.customer'")
                // acknowledge, first contact, decision, and the daily update of a claims complaint.
                return clocks == 4 && acknowledgements == 1 && owners == 1 && introduced == 1
            }
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM case_events WHERE action = 'assign'") == 1)

            // The owner starts the investigation: cases → case.updated → the supervisor stops the first-contact clock.
            let detail = try await EndToEndTests.call(http, .GET, "\(cases.replacingOccurrences(of: "/v1/complaints", with: "/v1/cases"))/\(id)",
                                                      token: (await tokens.mint(subject: "HQ-SUP01", role: .supervisor, unit: "HQ"))).json
            let owner = try #require(detail["assignee"] as? String)
            let unit = try #require(detail["handlingUnit"] as? String)
            // The handler reads the complaint as the customer wrote it (personal data scrubbed).
            #expect((detail["content"] as? String)?.hasPrefix("理赔申请一个月没有结果，请回电138****5678") == true, "\(detail["content"] ?? "")")
            // A supervisor makes it urgent: the supervisor re-clocks, and the first contact is due in 12 hours, not 24.
            let supervisorGD = (await tokens.mint(subject: "GD-SUP01", role: .supervisor, unit: "GD"))
            let urgent = try await EndToEndTests.call(http, .POST, "\(cases.replacingOccurrences(of: "/v1/complaints", with: "/v1/cases"))/\(id)/actions/reprioritise",
                                                      token: supervisorGD, body: Array(#"{"version":\#(detail["version"] as? Int ?? 0),"priority":"urgent","reason":"客户年迈且情绪激动"}"#.utf8))
            #expect(urgent.status == 200, "\(urgent.text)")
            try await eventually("the first-contact clock is re-clocked to 12 hours") {
                try await TestDatabase.count(db, """
                    SELECT count(*) FROM sla_clocks WHERE kind = 'first_contact' AND due_at = started_at + interval '12 hours'
                    """) == 1
            }
            let started = try await EndToEndTests.call(
                http, .POST, "\(cases.replacingOccurrences(of: "/v1/complaints", with: "/v1/cases"))/\(id)/actions/start_investigation",
                token: (await tokens.mint(subject: owner, role: .agent, unit: unit)), body: Array(#"{"version":\#(urgent.json["version"] as? Int ?? 0)}"#.utf8))
            #expect(started.status == 200, "\(started.text)")
            try await eventually("the first-contact clock stops") {
                try await TestDatabase.count(db, "SELECT count(*) FROM sla_clocks WHERE kind = 'first_contact' AND stopped_at IS NOT NULL") == 1
            }

            // The case is resolved and closed; the return visit invites the customer (surveys → notify),
            // the customer answers "not resolved", and the case comes back one level up (cases → routing).
            let casesAPI = cases.replacingOccurrences(of: "/v1/complaints", with: "/v1/cases")
            let ownerToken = (await tokens.mint(subject: owner, role: .agent, unit: unit))
            var version = (started.json["version"] as? Int) ?? 0
            for (action, body) in [("propose_resolution", #""text":"补发利息""#), ("customer_accepts", ""),
                                   ("close", #""liability":"liable","responsibleLink":"claims","causeCode":"claim_delay","outcome":"理赔款已补发，并按合同支付利息""#)] {
                let answer = try await EndToEndTests.call(http, .POST, "\(casesAPI)/\(id)/actions/\(action)", token: ownerToken,
                                                          body: Array("{\"version\":\(version)\(body.isEmpty ? "" : "," + body)}".utf8))
                #expect(answer.status == 200, "\(action): \(answer.text)")
                version = (answer.json["version"] as? Int) ?? 0
            }
            var invitation = KafkaConsumerConfiguration(client: .init(bootstrapServers: stack.bootstrap, clientID: "e2e-survey"), groupID: "e2e-survey",
                                                        topics: [EventType.surveyRequested.topic])
            invitation.sessionTimeout = .seconds(6)
            invitation.startFromEarliest = true
            let invitations = try KafkaConsumer(configuration: invitation, logger: TestDatabase.logger)
            var link: String?
            let deadline = ContinuousClock.now + .seconds(60)
            while link == nil, ContinuousClock.now < deadline {
                for message in try await invitations.nextBatch(maxCount: 10, timeout: .milliseconds(500)) ?? [] {
                    // The event names the visit; the link itself (a credential) is only in the surveys table.
                    #expect(!String(decoding: message.value, as: UTF8.self).contains("/s/"), "no survey link on the broker")
                    let surveyId = try EventCoding.decoder().decode(EventEnvelope<SurveyRequested>.self, from: Data(message.value)).payload.surveyId
                    for try await value in try await db.query("SELECT link FROM surveys WHERE id = \(surveyId)", logger: TestDatabase.logger).decode(String?.self) {
                        link = value
                    }
                }
            }
            await invitations.close()
            let token = try #require(link.map { String($0.split(separator: "/").last ?? "") })
            try await eventually("the customer is sent the invitation") {
                try await TestDatabase.count(db, "SELECT count(*) FROM notifications WHERE template = 'survey.requested.customer' AND status = 'delivered'") == 1
            }
            let answered = try await EndToEndTests.call(http, .POST, "http://127.0.0.1:\(stack.port("surveys"))/v1/surveys/\(token)",
                                                        body: Array(#"{"score":2,"resolved":false}"#.utf8))
            #expect(answered.status == 201, "\(answered.text)")
            // At least high, like any repeat; this one keeps the urgency the supervisor gave the first.
            try await eventually("the second complaint is assigned one level up", timeout: .seconds(60)) {
                try await TestDatabase.count(db, """
                    SELECT count(*) FROM complaints WHERE number = \(number + "-R1") AND status = 'assigned' AND handling_unit = 'HQ' AND priority = 'urgent'
                    """) == 1
            }

            // The closure notice told the customer the outcome.
            try await eventually("the closure notice with its outcome is sent") {
                try await TestDatabase.count(db, """
                    SELECT count(*) FROM notifications WHERE template = 'case.closed.customer' AND status = 'delivered' AND body LIKE '%理赔款已补发，并按合同支付利息%'
                    """) == 1
            }

            // The same customer again, now through the regulator, with an attachment: the handler reads it whole and sees
            // the earlier complaint in the customer's history.
            let regulatorDeadline = Timestamp.format(receivedAt.addingTimeInterval(20 * 86_400))
            let transfer = String(decoding: EndToEndTests.submission(ref: "REG-E2E-1"), as: UTF8.self)
                .replacingOccurrences(of: "\"online\"", with: "\"regulator\"")
                .replacingOccurrences(of: "\"subject\"", with: #""regulator":{"caseNumber":"GDJG-2026-0042","deadline":"\#(regulatorDeadline)"},"attachments":[{"name":"病历.pdf","uri":"https://docs.example.com/claims/77.pdf","contentType":"application/pdf","size":1024}],"subject""#)
            // The regulator's interface has a token of its own: a channel token submits for its channel only.
            let regulatorToken = (await tokens.mint(subject: "regulator", role: .channel, unit: "HQ"))
            let filed = try await EndToEndTests.call(http, .POST, intake, token: regulatorToken, body: Array(transfer.utf8))
            #expect(filed.status == 201, "\(filed.text)")
            let regulatorCase = try #require(filed.json["id"] as? String)
            var whole: [String: Any] = [:]
            try await eventually("the regulator's transfer is assigned at the province", timeout: .seconds(60)) {
                whole = try await EndToEndTests.call(http, .GET, "\(casesAPI)/\(regulatorCase)", token: supervisorGD).json
                return whole["status"] as? String == "assigned"
            }
            let regulatorOwner = try #require(whole["assignee"] as? String)
            let regulatorOwnerToken = (await tokens.mint(subject: regulatorOwner, role: .agent, unit: "GD"))
            whole = try await EndToEndTests.call(http, .GET, "\(casesAPI)/\(regulatorCase)", token: regulatorOwnerToken).json
            #expect(whole["priority"] as? String == "urgent" && whole["handlingUnit"] as? String == "GD")
            #expect((whole["content"] as? String)?.contains("理赔申请一个月没有结果") == true)
            #expect((whole["attachments"] as? [[String: Any]])?.first?["uri"] as? String == "https://docs.example.com/claims/77.pdf")
            #expect((whole["regulator"] as? [String: Any])?["caseNumber"] as? String == "GDJG-2026-0042")
            // The supervisor builds the clocks from the events, in its own time: awaited, not assumed.
            try await eventually("the case page shows its running decision clock") {
                let page = try await EndToEndTests.call(http, .GET, "\(casesAPI)/\(regulatorCase)", token: regulatorOwnerToken).json
                return (page["clocks"] as? [[String: Any]])?.contains { $0["kind"] as? String == "decision" && $0["state"] as? String == "running" } == true
            }
            let history = try await EndToEndTests.call(http, .GET, "\(casesAPI)/\(regulatorCase)/customer-history", token: supervisorGD).json
            #expect((history["items"] as? [[String: Any]])?.contains { $0["number"] as? String == number } == true, "\(history)")
            // Reclassified as a service complaint: the daily update (for claims) stops.
            #expect(whole["category"] as? String == "claims")
            try await eventually("the claims complaint has its daily-update clock running") {
                try await TestDatabase.count(db, "SELECT count(*) FROM sla_clocks WHERE complaint_id = \(UUID(uuidString: regulatorCase)!) AND kind = 'update' AND stopped_at IS NULL") == 1
            }
            var regulatorVersion = whole["version"] as? Int ?? 0
            let reclassified = try await EndToEndTests.call(http, .POST, "\(casesAPI)/\(regulatorCase)/actions/reclassify", token: supervisorGD,
                                                            body: Array(#"{"version":\#(regulatorVersion),"category":"service","reason":"实为服务态度问题"}"#.utf8))
            #expect(reclassified.status == 200, "\(reclassified.text)")
            regulatorVersion = reclassified.json["version"] as? Int ?? 0
            try await eventually("the daily-update clock stops once the case is no claim") {
                try await TestDatabase.count(db, "SELECT count(*) FROM sla_clocks WHERE complaint_id = \(UUID(uuidString: regulatorCase)!) AND kind = 'update' AND stopped_at IS NOT NULL") == 1
            }
            // Escalated to HQ: the customer hears who has it now.
            let escalated = try await EndToEndTests.call(http, .POST, "\(casesAPI)/\(regulatorCase)/actions/escalate", token: regulatorOwnerToken,
                                                         body: Array(#"{"version":\#(regulatorVersion),"reason":"涉及总公司产品条款"}"#.utf8))
            #expect(escalated.status == 200, "\(escalated.text)")
            var atHQ: [String: Any] = [:]
            try await eventually("the escalated case is assigned at HQ", timeout: .seconds(60)) {
                let hqSupervisor = (await tokens.mint(subject: "HQ-SUP01", role: .supervisor, unit: "HQ"))
                atHQ = try await EndToEndTests.call(http, .GET, "\(casesAPI)/\(regulatorCase)", token: hqSupervisor).json
                return atHQ["status"] as? String == "assigned" && atHQ["handlingUnit"] as? String == "HQ"
            }
            try await eventually("the customer is told the case moved") {
                try await TestDatabase.count(db, """
                    SELECT count(*) FROM notifications WHERE complaint_id = \(UUID(uuidString: regulatorCase)!) AND template = 'case.moved.customer' AND status = 'delivered'
                    """) == 1
            }
            // Its owner leaves: an admin deactivates them, and the case goes to HQ's other service agent, still assigned.
            let leaver = try #require(atHQ["assignee"] as? String)
            let deactivated = try await EndToEndTests.call(http, .PATCH, "http://127.0.0.1:\(stack.port("cases"))/v1/staff/\(leaver)",
                                                           token: (await tokens.mint(subject: "HQ-ADM01", role: .admin, unit: "HQ")), body: Array(#"{"active":false}"#.utf8))
            #expect(deactivated.status == 200, "\(deactivated.text)")
            let handedOn = try await EndToEndTests.call(http, .GET, "\(casesAPI)/\(regulatorCase)", token: (await tokens.mint(subject: "HQ-SUP01", role: .supervisor, unit: "HQ"))).json
            #expect(handedOn["assignee"] as? String != leaver && handedOn["assignee"] as? String != nil && handedOn["status"] as? String == "assigned", "\(handedOn)")

            // Upstream channels publish to the inbound topic: same contract, same result; bad ones are dead-lettered.
            let producer = try KafkaProducer(configuration: .init(client: .init(bootstrapServers: stack.bootstrap, clientID: "e2e")), logger: TestDatabase.logger)
            let upstream = Array(String(decoding: EndToEndTests.submission(ref: "CC-E2E-2", phone: "13900001111"), as: UTF8.self).replacingOccurrences(of: "\"online\"", with: "\"call_center\"").utf8)
            try await producer.send(KafkaOutgoingMessage(topic: Topics.inbound, key: "CC-E2E-2", value: upstream))
            try await producer.send(KafkaOutgoingMessage(topic: Topics.inbound, key: "CC-BAD", value: Array(#"{"channel":"call_center"}"#.utf8)))
            try await eventually("the upstream complaint is assigned", timeout: .seconds(60)) {
                try await TestDatabase.count(db, "SELECT count(*) FROM complaints WHERE external_ref = 'CC-E2E-2' AND status = 'assigned'") == 1
            }
            var dlqConfig = KafkaConsumerConfiguration(client: .init(bootstrapServers: stack.bootstrap, clientID: "e2e-dlq"), groupID: "e2e-dlq",
                                                       topics: [Topics.deadLetter(Topics.inbound)])
            dlqConfig.sessionTimeout = .seconds(6)
            let dlq = try KafkaConsumer(configuration: dlqConfig, logger: TestDatabase.logger)
            let dead = try await TestKafka.drain(dlq, count: 1)
            #expect(dead.first?.key == "CC-BAD")
            #expect(dead.first?.header(Headers.deadLetterReason)?.contains("customer: required") == true)
            await dlq.close()
            await producer.shutdown()

            // Bad input: a clear 4xx problem document, and nothing stored.
            let before = try await TestDatabase.count(db, "SELECT count(*) FROM complaints")
            let malformed = try await EndToEndTests.call(http, .POST, intake, token: channel, body: Array("{\"channel\":".utf8))
            #expect(malformed.status == 400)
            #expect(malformed.json["detail"] as? String != nil)
            let invalid = try await EndToEndTests.call(http, .POST, intake, token: channel, body: Array(#"{"channel":"fax","customer":{"phone":"123"}}"#.utf8))
            #expect(invalid.status == 422)
            let fields = Set(((invalid.json["errors"] as? [[String: Any]]) ?? []).compactMap { $0["field"] as? String })
            #expect(fields.isSuperset(of: ["channel", "customer.phone", "externalRef", "branch", "receivedAt"]))
            let unknownBranch = String(decoding: EndToEndTests.submission(ref: "WEB-E2E-3"), as: UTF8.self).replacingOccurrences(of: "GD-SZ", with: "XX-YY")
            #expect(try await EndToEndTests.call(http, .POST, intake, token: channel, body: Array(unknownBranch.utf8)).status == 422)
            #expect(try await EndToEndTests.call(http, .POST, intake, token: channel, body: [UInt8](repeating: 0x20, count: 300_000)).status == 413)
            #expect(try await EndToEndTests.call(http, .POST, intake, token: channel, body: [0x7B, 0xFF, 0x7D]).status == 400)
            #expect(try await EndToEndTests.call(http, .POST, intake, body: EndToEndTests.submission(ref: "WEB-E2E-4")).status == 401)
            #expect(try await EndToEndTests.call(http, .POST, intake, token: (await tokens.mint(subject: "a", role: .auditor, unit: "HQ")), body: EndToEndTests.submission(ref: "WEB-E2E-5")).status == 403)
            #expect(try await TestDatabase.count(db, "SELECT count(*) FROM complaints") == before)

            // Every service serves Prometheus text.
            for service in EndToEndTests.services {
                let metrics = try await EndToEndTests.call(http, .GET, "http://127.0.0.1:\(stack.port(service.name))/metrics")
                #expect(metrics.status == 200)
                #expect(metrics.text.contains("redress_http_requests_total"), "redress-\(service.name) /metrics")
            }
            let intakeMetrics = try await EndToEndTests.call(http, .GET, "http://127.0.0.1:\(stack.port("intake"))/metrics").text
            #expect(intakeMetrics.contains("redress_complaints_received_total"))
            #expect(intakeMetrics.contains("redress_complaints_rejected_total"))
            // Group commit's two sides: requests per transaction and its duration, one observation per batch.
            for name in ["redress_intake_batch_size_count", "redress_intake_batch_seconds_count"] {
                let observed = intakeMetrics.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
                #expect((observed ?? 0) >= 1, "\(name) after the HTTP submissions above")
            }

            // SIGTERM: every service finishes and exits cleanly.
            let codes = await stack.stop()
            #expect(codes.values.allSatisfy { $0 == 0 }, "exit codes \(codes)")

            // No full phone or ID number in any log line.
            let logs = try stack.logs()
            #expect(!logs.contains("13812345678"))
            #expect(!logs.contains("13900001111"))
            #expect(!logs.contains("11010519491231002X"))
    }

    /// The oversight duties across the running services: a city closes a case "not liable"
    /// (intake → routing → cases), the province's draw picks it, the verdict revises it, a corrective
    /// action is opened and closed; the oversight events leave through the cases relay onto the broker.
    @Test func aCitysNotLiableClosureIsDrawnRevisedAndCorrectedAcrossTheServices() async throws {
        try await TestDatabase.withFresh { db, database in
            let stack = try Stack()
            let http = HTTPClient(eventLoopGroupProvider: .singleton)
            do {
                try await Self.oversightFlow(stack: stack, http: http, db: db, database: database)
            } catch {
                _ = await stack.stop()
                try? await http.shutdown()
                throw error
            }
            _ = await stack.stop()
            try await http.shutdown()
        }
    }

    static func oversightFlow(stack: Stack, http: HTTPClient, db: PostgresClient, database: String) async throws {
        try await stack.start(database: database)
        for service in EndToEndTests.services {
            try await eventually("redress-\(service.name) is ready", timeout: .seconds(60)) {
                (try? await EndToEndTests.call(http, .GET, "http://127.0.0.1:\(stack.port(service.name))/ready").status) == 200
            }
        }
        let tokens = TokenAuthority(secret: stack.secret)
        let channel = await tokens.mint(subject: "online", role: .channel, unit: "HQ")
        let intake = "http://127.0.0.1:\(stack.port("intake"))/v1/complaints"
        let api = "http://127.0.0.1:\(stack.port("cases"))/v1"
        // A complaint about a handler's manner stays with the city (service, not centralised claims).
        let body = String(decoding: EndToEndTests.submission(ref: "WEB-E2E-OVERSIGHT"), as: UTF8.self)
            .replacingOccurrences(of: "理赔申请一个月没有结果，请回电", with: "坐席态度很差还挂电话，请回电")
        let created = try await EndToEndTests.call(http, .POST, intake, token: channel, body: Array(body.utf8))
        #expect(created.status == 201, "\(created.text)")
        let id = try #require(created.json["id"] as? String)
        let province = await tokens.mint(subject: "GD-SUP01", role: .supervisor, unit: "GD")
        var view: [String: Any] = [:]
        try await eventually("the complaint is assigned at the city", timeout: .seconds(60)) {
            view = try await EndToEndTests.call(http, .GET, "\(api)/cases/\(id)", token: province).json
            return view["status"] as? String == "assigned"
        }
        #expect(view["handlingUnit"] as? String == "GD-SZ", "\(view)")
        let owner = try #require(view["assignee"] as? String)
        let ownerToken = await tokens.mint(subject: owner, role: .agent, unit: "GD-SZ")
        var version = view["version"] as? Int ?? 0
        for (action, fields) in [("start_investigation", ""), ("propose_resolution", #""text":"已核实录音，坐席用语规范""#), ("customer_accepts", ""),
                                 ("close", #""liability":"not_liable","responsibleLink":"customer_service","causeCode":"customer_misunderstanding","outcome":"经核查通话录音，坐席未挂断电话，已向您说明。""#)] {
            let answer = try await EndToEndTests.call(http, .POST, "\(api)/cases/\(id)/actions/\(action)", token: ownerToken,
                                                      body: Array("{\"version\":\(version)\(fields.isEmpty ? "" : "," + fields)}".utf8))
            #expect(answer.status == 200, "\(action): \(answer.text)")
            version = answer.json["version"] as? Int ?? 0
        }
        // The province draws the month the case closed in (Beijing time, read back: the test holds on any date).
        let closedAt = try #require(try await db.query("SELECT closed_at FROM complaints WHERE id = \(UUID(uuidString: id)!)", logger: TestDatabase.logger)
            .decode(Date.self).first { _ in true })
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Asia/Shanghai")!
        let month = calendar.dateComponents([.year, .month], from: closedAt)
        let drawn = try await EndToEndTests.call(http, .POST, "\(api)/spot-checks/draw", token: province,
                                                 body: Array(#"{"kind":"not_liable","period":"\#(String(format: "%04d-%02d", month.year!, month.month!))"}"#.utf8))
        #expect(drawn.status == 201, "\(drawn.text)")
        let check = try #require((drawn.json["items"] as? [[String: Any]])?.first { $0["caseId"] as? String == id.lowercased() || $0["caseId"] as? String == id }?["id"] as? String)
        let verdict = try await EndToEndTests.call(http, .POST, "\(api)/spot-checks/\(check)/verdict", token: province, body: Array(#"""
            {"version":1,"verdict":"revised","liability":"liable","responsibleLink":"customer_service","causeCode":"service_attitude","note":"录音显示坐席语气生硬，应认定有责"}
            """#.utf8))
        #expect(verdict.status == 200, "\(verdict.text)")
        let after = try await EndToEndTests.call(http, .GET, "\(api)/cases/\(id)", token: ownerToken).json
        #expect(after["liability"] as? String == "liable" && after["causeCode"] as? String == "service_attitude" && after["status"] as? String == "closed")
        let due = Timestamp.format(Date().addingTimeInterval(20 * 86_400))
        let opened = try await EndToEndTests.call(http, .POST, "\(api)/corrective-actions", token: province, body: Array(#"""
            {"source":"spot_check","spotCheck":"\#(check)","ownerUnit":"GD-SZ","responsible":"GD-SZ-SUP01","action":"坐席服务用语专项培训","dueAt":"\#(due)"}
            """#.utf8))
        #expect(opened.status == 201, "\(opened.text)")
        let action = try #require(opened.json["id"] as? String)
        let done = try await EndToEndTests.call(http, .POST, "\(api)/corrective-actions/\(action)/done",
                                                token: await tokens.mint(subject: "GD-SZ-SUP01", role: .supervisor, unit: "GD-SZ"),
                                                body: Array(#"{"version":1,"note":"全员培训完成"}"#.utf8))
        #expect(done.status == 200, "\(done.text)")
        let verified = try await EndToEndTests.call(http, .POST, "\(api)/corrective-actions/\(action)/verify", token: province, body: Array(#"{"version":2}"#.utf8))
        #expect(verified.status == 200 && verified.json["status"] as? String == "verified", "\(verified.text)")
        // The oversight events reach the broker: the cases relay publishes them (its own rows) and the outbox drains.
        var consumer = KafkaConsumerConfiguration(client: .init(bootstrapServers: stack.bootstrap, clientID: "e2e-oversight"), groupID: "e2e-oversight",
                                                  topics: [EventType.spotCheckDrawn.topic, EventType.spotCheckDecided.topic])
        consumer.sessionTimeout = .seconds(6)
        consumer.startFromEarliest = true
        let events = try KafkaConsumer(configuration: consumer, logger: TestDatabase.logger)
        var seen: Set<String> = []
        let deadline = ContinuousClock.now + .seconds(60)
        while seen.count < 2, ContinuousClock.now < deadline {
            for message in try await events.nextBatch(maxCount: 10, timeout: .milliseconds(500)) ?? [] { seen.insert(message.topic) }
        }
        await events.close()
        #expect(seen == [EventType.spotCheckDrawn.topic, EventType.spotCheckDecided.topic])
        try await eventually("the outbox drains") { try await TestDatabase.count(db, "SELECT count(*) FROM outbox") == 0 }
    }
}
