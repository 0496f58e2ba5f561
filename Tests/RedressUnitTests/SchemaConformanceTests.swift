import Foundation
import Testing
@testable import RedressContracts
@testable import RedressDomain

/// The Swift event types against `schemas/events/*.schema.json`: every type we emit encodes to a
/// document its schema accepts, so the published contract and the code cannot drift apart.
@Suite struct SchemaConformanceTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func schema(_ type: EventType) throws -> [String: Any] {
        let url = repo.appendingPathComponent("schemas/events/\(type.rawValue).schema.json")
        return try #require(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any], "\(url.path) must be a JSON object")
    }

    static func document<P: EventPayload>(_ payload: P, unit: String = "GD-SZ") throws -> Any {
        let envelope = EventEnvelope(complaintId: UUID(), orgUnit: unit, actor: .service("redress-test"), payload: payload)
        return try JSONSerialization.jsonObject(with: EventCoding.encoder().encode(envelope))
    }

    static let customer = MaskedCustomer(name: "张*", key: String(repeating: "a", count: 64), flags: [.elderly])
    static let transition = CaseTransition(number: "GD-SZ-20261122-000001", fromStatus: .registered, toStatus: .assigned, handlingUnit: "GD-SZ",
                                           assignee: "GD-SZ-AGE01", reason: "initial", caseVersion: 2, action: .assign)
    static let clock = SLAClockEvent(number: "GD-SZ-20261122-000001", clock: .decision, startedAt: Date(), dueAt: Date(), handlingUnit: "GD-SZ", assignee: nil)

    static func registered(regulator: Bool) -> ComplaintRegistered {
        ComplaintRegistered(
            number: "GD-SZ-20261122-000001", channel: regulator ? .regulator : .online, externalRef: "WEB-1", receivedAt: Date(), registeredAt: Date(),
            promisedReplyBy: Date(), branch: "GD-SZ", customer: customer, policyNumber: regulator ? "P1" : nil, claimNumber: regulator ? "C1" : nil,
            claimStage: regulator ? "adjustment" : nil, subject: "理赔太慢", content: "电话138****5678",
            regulatorCaseNumber: regulator ? "R-1" : nil, regulatorDeadline: regulator ? Date() : nil,
            repeatOf: regulator ? ComplaintReference(id: UUID(), number: "GD-SZ-20261101-000002") : nil,
            policyAgent: regulator ? "GD-SZ-AGE02" : nil, claimHandler: regulator ? "GD-AGE01" : nil,
            attachments: regulator ? [AttachmentReference(name: "函.pdf", uri: "https://docs.example/r/1.pdf", contentType: "application/pdf", size: 1024)] : [])
    }

    static func samples() throws -> [(EventType, Any)] {
        [
            (.complaintRegistered, try document(registered(regulator: false))),
            (.complaintRegistered, try document(registered(regulator: true))),
            (.complaintRegistered, try document({ () -> ComplaintRegistered in
                var onRegister = Self.registered(regulator: false)
                onRegister.customer.flags = [.elderly, .vexatiousRegister]
                return onRegister
            }())),
            (.complaintAssigned, try document(ComplaintAssigned(number: "GD-SZ-20261122-000001", category: .claims, priority: .high, handlingUnit: "GD",
                                                                assignee: "GD-AGE01", ruleIds: ["kw.claims"], rulesVersion: "builtin-1", reason: .initial))),
            (.complaintAssigned, try document(ComplaintAssigned(number: "GD-SZ-20261122-000001", category: .other, priority: .normal, handlingUnit: "GD-SZ",
                                                                assignee: nil, ruleIds: [], rulesVersion: "builtin-1", reason: .escalated))),
            (.caseAssigned, try document(CaseAssigned(transition: transition))),
            (.caseClosed, try document(CaseClosed(
                transition: CaseTransition(number: "GD-SZ-20261122-000001", fromStatus: .resolved, toStatus: .closed, handlingUnit: "GD-SZ",
                                           assignee: "GD-SZ-AGE01", reason: nil, caseVersion: 7, action: .close),
                liability: .notLiable, responsibleLink: "claims", causeCode: "C01", spotCheck: true))),
            (.slaWarning, try document(SLAWarning(clock: clock))),
            (.slaBreached, try document(SLABreached(clock: clock))),
            (.complaintUnassignable, try document(ComplaintUnassignable(number: "GD-SZ-20261122-000001", handlingUnit: "GD-SZ", category: .claims,
                                                                        priority: .urgent, reason: "every eligible agent of the unit is at capacity"))),
            (.caseEscalated, try document(CaseEscalated(transition: CaseTransition(number: "GD-SZ-20261122-000001", fromStatus: .investigating,
                toStatus: .escalated, handlingUnit: "GD-SZ", assignee: "GD-SZ-AGE01", reason: "deadline missed", caseVersion: 4)))),
            (.caseTransferred, try document(CaseTransferred(transition: CaseTransition(number: "GD-SZ-20261122-000001", fromStatus: .assigned,
                toStatus: .transferred, handlingUnit: "GD-SZ", assignee: nil, reason: "underwriting question", caseVersion: 2), targetUnit: "GD"))),
            (.caseReopened, try document(CaseReopened(transition: CaseTransition(number: "GD-SZ-20261122-000009", fromStatus: .closed,
                toStatus: .reopened, handlingUnit: "GD", assignee: nil, reason: "survey dissatisfied", caseVersion: 1, action: .reopen),
                reopenedFrom: ComplaintReference(id: UUID(), number: "GD-SZ-20261122-000001"), firstHandlingUnit: "GD-SZ"))),
            (.caseExtended, try document(CaseExtended(transition: CaseTransition(number: "GD-SZ-20261122-000001", fromStatus: .investigating,
                toStatus: .investigating, handlingUnit: "GD-SZ", assignee: "GD-SZ-AGE01", reason: "awaiting the hospital's records", caseVersion: 5,
                action: .extend), decisionDays: 60, promisedReplyBy: Date(), approvedBy: "GD-SUP01"))),
            (.caseUpdated, try document(CaseUpdated(transition: CaseTransition(number: "GD-SZ-20261122-000001", fromStatus: .investigating,
                toStatus: .investigating, handlingUnit: "GD-SZ", assignee: "GD-SZ-AGE01", reason: "called the customer", caseVersion: 6,
                action: .recordContact), nextContactAt: Date()))),
            (.caseUpdated, try document(CaseUpdated(transition: CaseTransition(number: "GD-SZ-20261122-000001", fromStatus: .assigned,
                toStatus: .investigating, handlingUnit: "GD-SZ", assignee: "GD-SZ-AGE01", reason: nil, caseVersion: 3,
                action: .startInvestigation)))),
            (.surveyDissatisfied, try document(SurveyDissatisfied(surveyId: UUID(), number: "GD-SZ-20261122-000001", wave: "day7", score: 2,
                                                                  resolved: false, comment: "电话138****5678没人回", answeredAt: Date()))),
            (.surveyDissatisfied, try document(SurveyDissatisfied(surveyId: UUID(), number: "GD-SZ-20261122-000001", wave: "day0", score: 4,
                                                                  resolved: false, comment: nil, answeredAt: Date()))),
            (.surveyRequested, try document(SurveyRequested(surveyId: UUID(), number: "GD-SZ-20261122-000001", wave: "day7",
                                                            requestedAt: Date(), expiresAt: Date()))),
            (.statusCodeRequested, try document(StatusCodeRequested(number: "GD-SZ-20261122-000001", codeId: UUID(), expiresAt: Date()))),
            (.surveyAnswered, try document(SurveyAnswered(surveyId: UUID(), number: "GD-SZ-20261122-000001", wave: "day0", score: 5,
                                                          resolved: true, satisfied: true, comment: "很快就处理好了", answeredAt: Date()))),
            (.notificationDelivered, try document(NotificationDelivered(notificationId: UUID(), number: "GD-SZ-20261122-000001",
                template: "complaint.registered.acknowledgement", channel: "sms",
                recipient: NotificationRecipient(kind: .customer, id: "k", address: "138****5678"), sourceEventId: UUID(), attempt: 2,
                gatewayMessageId: "SMS-20261122-0001", deliveredAt: Date()))),
            (.notificationDelivered, try document(NotificationDelivered(notificationId: UUID(), number: "GD-SZ-20261122-000001",
                template: "sla.warning.staff", channel: "staff_inbox", recipient: NotificationRecipient(kind: .staff, id: "GD-SZ-AGE01", address: nil),
                sourceEventId: UUID(), attempt: 1, gatewayMessageId: nil, deliveredAt: Date()))),
            (.notificationFailed, try document(NotificationFailed(notificationId: UUID(), number: "GD-SZ-20261122-000001",
                template: "case.extended.customer", channel: "sms",
                recipient: NotificationRecipient(kind: .customer, id: "k", address: "138****5678"), sourceEventId: UUID(), attempts: 5,
                error: "gateway rejected 138****5678: number out of service", failedAt: Date()))),
            (.inquiryOpened, try document(InquiryOpened(number: "GD-SZ-20261122-000001", inquiryId: UUID(), unit: "GD-SZ", department: "legal",
                                                        dueAt: Date(), automatic: true))),
            (.inquiryAnswered, try document(InquiryAnswered(number: "GD-SZ-20261122-000001", inquiryId: UUID(), unit: "GD-SZ", department: "legal",
                                                            answeredBy: "GD-SZ-LEG01", late: false))),
            (.spotCheckDrawn, try document(SpotCheckDrawn(number: "GD-SZ-20261122-000001", spotCheckId: UUID(), kind: .notLiable, drawingUnit: "GD",
                                                          period: "2026-11", handlingUnit: "GD-SZ"))),
            (.spotCheckDecided, try document(SpotCheckDecided(number: "GD-SZ-20261122-000001", spotCheckId: UUID(), kind: .notLiable, drawingUnit: "GD",
                                                              handlingUnit: "GD-SZ", verdict: .revised, liability: .liable, responsibleLink: "claims",
                                                              causeCode: "C02"))),
            (.spotCheckDecided, try document(SpotCheckDecided(number: "GD-SZ-20261122-000001", spotCheckId: UUID(), kind: .satisfaction, drawingUnit: "GD",
                                                              handlingUnit: "GD-SZ", verdict: .reinvestigate,
                                                              reviewCase: ComplaintReference(id: UUID(), number: "GD-SZ-20261122-000001-S1")))),
            (.spotCheckDecided, try document(SpotCheckDecided(number: "GD-SZ-20261122-000001", spotCheckId: UUID(), kind: .notLiable, drawingUnit: "GD",
                                                              handlingUnit: "GD-SZ", verdict: .upheld))),
            (.committeeReferred, try document(CommitteeReferred(number: "GD-SZ-20261122-000001", referralId: UUID(), handlingUnit: "GD-SZ", dueAt: Date()))),
            (.committeeRuled, try document(CommitteeRuled(number: "GD-SZ-20261122-000001", referralId: UUID(), handlingUnit: "GD-SZ",
                                                          members: ["GD-COM01", "GD-SUP01"], liability: .notLiable, responsibleLink: "claims",
                                                          causeCode: "C01"))),
            (.registerChanged, try document(RegisterChanged(entryId: UUID(), customerKey: String(repeating: "a", count: 64), status: .approved,
                                                            change: "approve", unit: "GD-SZ", reviewAt: Date()))),
            (.registerChanged, try document(RegisterChanged(entryId: UUID(), customerKey: String(repeating: "a", count: 64), status: .proposed,
                                                            change: "propose", unit: "GD-SZ", reviewAt: nil))),
        ]
    }

    /// The envelope names every event type the code has, and no other.
    @Test func theEnvelopeListsEveryEventType() throws {
        let url = Self.repo.appendingPathComponent("schemas/events/envelope.schema.json")
        let envelope = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let type = (envelope["properties"] as? [String: Any])?["type"] as? [String: Any]
        #expect(Set(type?["enum"] as? [String] ?? []) == Set(EventType.allCases.map(\.rawValue)))
    }

    @Test func everyEmittedEventMatchesItsSchema() throws {
        for (type, document) in try Self.samples() {
            let problems = JSONSchemaCheck.problems(document, against: try Self.schema(type))
            #expect(problems.isEmpty, "\(type.rawValue): \(problems)")
        }
    }

    @Test func schemasCatchDrift() throws {
        var document = try #require(try Self.document(CaseAssigned(transition: Self.transition)) as? [String: Any])
        document["unexpected"] = true
        #expect(!JSONSchemaCheck.problems(document, against: try Self.schema(.caseAssigned)).isEmpty)
        document.removeValue(forKey: "unexpected")
        document["version"] = "one"
        #expect(!JSONSchemaCheck.problems(document, against: try Self.schema(.caseAssigned)).isEmpty)
    }

    @Test func everyEventTypeHasASchema() throws {
        for type in EventType.allCases {
            #expect(try Self.schema(type)["type"] as? String == "object", "\(type.rawValue)")
        }
    }
}

/// The subset of JSON Schema the project's schemas use (type, properties, required,
/// additionalProperties, items, enum, const, format date-time/uuid, lengths, bounds).
enum JSONSchemaCheck {
    static func problems(_ value: Any, against schema: [String: Any], at path: String = "$") -> [String] {
        var found: [String] = []
        if let types = (schema["type"] as? [String]) ?? (schema["type"] as? String).map({ [$0] }) {
            guard types.contains(where: { matches(value, $0) }) else { return ["\(path): expected \(types.joined(separator: " or ")), got \(value)"] }
        }
        if let constant = schema["const"], !equal(value, constant) { found.append("\(path): must be \(constant)") }
        if let options = schema["enum"] as? [Any], !options.contains(where: { equal(value, $0) }) { found.append("\(path): \(value) not in \(options)") }
        if let text = value as? String {
            if let min = schema["minLength"] as? Int, text.count < min { found.append("\(path): shorter than \(min)") }
            if let max = schema["maxLength"] as? Int, text.count > max { found.append("\(path): longer than \(max)") }
            switch schema["format"] as? String {
            case "date-time": if Timestamp.parse(text) == nil { found.append("\(path): not a date-time") }
            case "uuid": if UUID(uuidString: text) == nil { found.append("\(path): not a uuid") }
            default: break
            }
        }
        if let number = value as? NSNumber, !(value is String) {
            if let min = schema["minimum"] as? Double, number.doubleValue < min { found.append("\(path): below \(min)") }
            if let max = schema["maximum"] as? Double, number.doubleValue > max { found.append("\(path): above \(max)") }
        }
        if let object = value as? [String: Any] {
            let properties = schema["properties"] as? [String: Any] ?? [:]
            for key in schema["required"] as? [String] ?? [] where object[key] == nil { found.append("\(path).\(key): required") }
            for (key, member) in object {
                if let sub = properties[key] as? [String: Any] {
                    found += problems(member, against: sub, at: "\(path).\(key)")
                } else if schema["additionalProperties"] as? Bool == false {
                    found.append("\(path).\(key): not allowed")
                }
            }
        }
        if let array = value as? [Any], let items = schema["items"] as? [String: Any] {
            for (index, element) in array.enumerated() { found += problems(element, against: items, at: "\(path)[\(index)]") }
        }
        return found
    }

    static func matches(_ value: Any, _ type: String) -> Bool {
        switch type {
        case "object": value is [String: Any]
        case "array": value is [Any]
        case "string": value is String
        case "null": value is NSNull
        case "boolean": (value as? NSNumber).map(isBool) ?? false
        case "integer": (value as? NSNumber).map { !isBool($0) && $0.doubleValue.rounded() == $0.doubleValue } ?? false
        case "number": (value as? NSNumber).map { !isBool($0) } ?? false
        default: false
        }
    }

    static func isBool(_ number: NSNumber) -> Bool {
        String(cString: number.objCType) == "c"
    }

    static func equal(_ a: Any, _ b: Any) -> Bool {
        if let x = a as? String, let y = b as? String { return x == y }
        if let x = a as? NSNumber, let y = b as? NSNumber { return x == y }
        return false
    }
}

/// The deploy kit's Kafka ACLs (`deploy/kafka/acls.json`) against the code's table of who writes
/// what: each event type's topic is writable by the principals of its writers alone (and by
/// `redressctl`, which replays dead letters), every reader may write the dead-letter twin of what it
/// reads, and the channels write only the inbound topic.
@Suite struct KafkaACLTests {
    struct Principal: Decodable {
        var write: [String]
        var read: [String]
        var groups: [String]
    }
    struct File: Decodable {
        var principals: [String: Principal]
    }

    static func load() throws -> File {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("deploy/kafka/acls.json")
        return try JSONDecoder().decode(File.self, from: Data(contentsOf: url))
    }

    @Test func eachEventTypeIsWrittenByItsOwnerAlone() throws {
        let acls = try Self.load().principals
        for type in EventType.allCases {
            let writers = Set(acls.filter { $0.key != "redressctl" && $0.value.write.contains(type.topic) }.map { "redress-" + $0.key })
            #expect(writers == type.writers, "\(type.topic): written by \(writers.sorted()), the code says \(type.writers.sorted())")
            #expect(acls["redressctl"]?.write.contains(type.topic) == true, "redressctl replays dead letters to \(type.topic)")
        }
        // What the issue feared: a compromised surveys pod publishing an assignment.
        #expect(!(acls["surveys"]?.write.contains(EventType.complaintAssigned.topic) ?? true))
        #expect(acls["channels"]?.write == [Topics.inbound])
        #expect(acls["console"]?.write.isEmpty == true, "the console writes no events")
        // Each service's principal reads exactly the topics of its consumer groups, under those groups.
        for (name, principal) in acls where !["redressctl", "channels", "console"].contains(name) {
            let groups = ConsumerGroups.all.filter { $0.key.hasPrefix("redress-" + name) }
            #expect(Set(principal.groups) == Set(groups.keys), "\(name)'s groups")
            #expect(Set(principal.read) == Set(groups.values.flatMap { $0 }), "\(name) reads what its groups read")
        }
        for (name, principal) in acls {
            for topic in principal.read where !topic.hasSuffix(".dlq") {
                #expect(principal.write.contains(Topics.deadLetter(topic)), "\(name) reads \(topic), so must be able to dead-letter it")
            }
            for topic in principal.write + principal.read {
                #expect(Topics.all.contains(topic), "\(name): \(topic) is not a topic of Redress")
            }
        }
    }
}
